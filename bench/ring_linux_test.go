package bench

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkRingRoundTrip: one guest, one request in flight, READ and WRITE
// alternating, driven directly on the ring (no ringclient).
func BenchmarkRingRoundTrip(b *testing.B) {
	r, err := RingThroughput(RingOptions{Domains: 1, Depth: 1, Ops: max(b.N, 1), Mix: "rw"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Lat.Quantile(0.5).Nanoseconds()), "p50-ns")
	b.ReportMetric(r.Rate(), "ops/s")
}

// BenchmarkRingClientRoundTrip is the same through xen/ringclient.
func BenchmarkRingClientRoundTrip(b *testing.B) {
	r, err := RingThroughput(RingOptions{Domains: 1, Depth: 1, Ops: max(b.N, 1), Mix: "rw", Clients: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Lat.Quantile(0.5).Nanoseconds()), "p50-ns")
	b.ReportMetric(r.Rate(), "ops/s")
}

// BenchmarkRingThroughput: b.N requests spread over 1, 100 and 1000
// guests, one in flight on each.
func BenchmarkRingThroughput(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(n)+"domains", func(b *testing.B) {
			r, err := RingThroughput(RingOptions{Domains: n, Depth: 1, Ops: max(b.N, n), Mix: "rw"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Rate(), "ops/s")
			b.ReportMetric(float64(r.Lat.Quantile(0.99).Nanoseconds()), "p99-ns")
		})
	}
}

func TestRingThroughputSmall(t *testing.T) {
	for _, clients := range []bool{false, true} {
		r, err := RingThroughput(RingOptions{Domains: 20, Depth: 2, Duration: 100 * time.Millisecond, Mix: "rw", Populate: true, Clients: clients})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ops == 0 || r.Lat.Quantile(0.5) <= 0 {
			t.Errorf("clients=%v: no requests measured: %+v", clients, r)
		}
	}
}

func TestDomainScaleSmall(t *testing.T) {
	res, err := DomainScale(DomainScaleOptions{Counts: []int{5, 20}, Ops: 200, Reps: 1, RingOps: 40, Sample: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 || res.Rows[1].Domains != 20 || res.Rows[1].Nodes < 20*GuestTreeNodes() {
		t.Fatalf("rows %+v", res.Rows)
	}
	for _, r := range res.Rows {
		if r.Read <= 0 || r.RingRead[0] <= 0 || r.RingTxn[0] <= 0 || r.HeapPerDomain <= 0 {
			t.Errorf("missing measurement: %+v", r)
		}
	}
	t.Logf("\n%s", DomainTables(res, false))
}
