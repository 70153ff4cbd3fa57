package bench

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// BenchmarkRingRoundTrip: one guest, one request in flight, READ and WRITE
// alternating, driven directly on the ring (no ringclient).
func BenchmarkRingRoundTrip(b *testing.B) {
	r, err := RingThroughput(RingOptions{Domains: 1, Depth: 1, Ops: max(b.N, 1), Mix: Mix{OpRead: 1, OpWrite: 1}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Lat.Quantile(0.5).Nanoseconds()), "p50-ns")
	b.ReportMetric(r.Rate(), "ops/s")
}

// BenchmarkRingClientRoundTrip is the same through xen/ringclient.
func BenchmarkRingClientRoundTrip(b *testing.B) {
	r, err := RingThroughput(RingOptions{Domains: 1, Depth: 1, Ops: max(b.N, 1), Mix: Mix{OpRead: 1, OpWrite: 1}, Clients: true})
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
			r, err := RingThroughput(RingOptions{Domains: n, Depth: 1, Ops: max(b.N, n), Mix: Mix{OpRead: 1, OpWrite: 1}})
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
		r, err := RingThroughput(RingOptions{Domains: 20, Depth: 2, Duration: 100 * time.Millisecond, Mix: Mix{OpRead: 1, OpWrite: 1}, Populate: true, Clients: clients})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ops == 0 || r.Lat.Quantile(0.5) <= 0 {
			t.Errorf("clients=%v: no requests measured: %+v", clients, r)
		}
	}
}

func TestRingCycle(t *testing.T) {
	tests := []struct {
		mix  string
		want []wire.Type // nil: an error
	}{
		{"", []wire.Type{wire.Read}},
		{"read=1,write=1", []wire.Type{wire.Read, wire.Write}},
		{"read=2,write=1", []wire.Type{wire.Read, wire.Write, wire.Read}},
		{"dir", []wire.Type{wire.Directory}},
		{"write=1,dir=2", []wire.Type{wire.Write, wire.Directory, wire.Directory}},
		{"txn", nil},
		{"read,watch", nil},
	}
	for _, tc := range tests {
		m, err := ParseMix(tc.mix)
		if err != nil {
			t.Fatal(err)
		}
		cycle, err := ringCycle(RingOptions{Mix: m})
		if tc.want == nil {
			if err == nil {
				t.Errorf("mix %q: no error", tc.mix)
			}
			continue
		}
		var got []wire.Type
		for _, r := range cycle {
			got = append(got, r.typ)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("mix %q: cycle %v, %v; want %v", tc.mix, got, err, tc.want)
		}
	}
}

// TestRingMixes drives every ring mix on both guest sides; the driver fails
// on any error reply (values stay under a guest's 2048-byte node-size
// quota, which answers ENOSPC).
func TestRingMixes(t *testing.T) {
	for _, tc := range []struct {
		mix  string
		size int
	}{{"read", 0}, {"write", 1000}, {"dir", 0}, {"read=3,write=1,dir=1", 100}} {
		for _, clients := range []bool{false, true} {
			m, _ := ParseMix(tc.mix)
			r, err := RingThroughput(RingOptions{Domains: 3, Depth: 2, Ops: 300, Mix: m, ValueSize: tc.size, Clients: clients})
			if err != nil {
				t.Fatalf("%s (clients %v): %v", tc.mix, clients, err)
			}
			if r.Ops < 300 {
				t.Errorf("%s (clients %v): %d requests measured, want 300", tc.mix, clients, r.Ops)
			}
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

// TestRingNull: the do-nothing ring server answers every request of every
// guest, at depth 1 and with the ring nearly full (16 in flight), and the
// driver counts the requests asked for (plus at most two rounds in flight:
// the stop is checked once per wake-up).
func TestRingNull(t *testing.T) {
	for _, tc := range []struct{ domains, depth, ops int }{{1, 1, 500}, {1, 16, 2000}, {5, 4, 1000}} {
		r, err := RingThroughput(RingOptions{Domains: tc.domains, Depth: tc.depth, Ops: tc.ops, Mix: Mix{OpRead: 1, OpWrite: 1, OpDirectory: 1}, Null: true})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if r.Ops < uint64(tc.ops) || r.Ops > uint64(tc.ops+2*tc.domains*tc.depth) {
			t.Errorf("%+v: %d requests answered", tc, r.Ops)
		}
	}
	if _, err := RingThroughput(RingOptions{Domains: 1, Ops: 1, Null: true, Populate: true}); err == nil {
		t.Error("Null with Populate: no error")
	}
}

func TestRingCeilingTable(t *testing.T) {
	rows, err := RingCeiling(50*time.Millisecond, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := RingCeilingTable(rows, false)
	for _, want := range []string{"ring-1x1", "ring-1x16", "ringnull", "cpu µs/op", "target go >= 90% of ringnull at ring-1x16"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, r := range rows {
		for _, cpu := range append(append([]float64(nil), r.GoCPU...), r.NullCPU...) {
			if cpu <= 0 {
				t.Errorf("%s: CPU per request %v: the process's CPU was not measured", r.Case.Name, cpu)
			}
		}
	}
}
