package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// DomainScaleOptions configures DomainScale.
type DomainScaleOptions struct {
	Counts   []int // domain counts to grow to, ascending (10, 100, 1000, 10000)
	Ops      int   // engine operations per timed batch (default 20000)
	Reps     int   // batches per engine measurement, best kept (default 3)
	RingOps  int   // ring round trips per operation kind (default 2000)
	Sample   int   // guests the ring round trips are spread over (default 8)
	Progress func(string)
}

// DomainRow is one domain count's measurements.
type DomainRow struct {
	Domains, Nodes, Watches int
	// Engine time per operation, dom0 in-process on random guests' nodes.
	Read, Write, Dir, Txn time.Duration
	// Ring round trip (p50, p99) from sample guests through their own
	// ring client: READ, WRITE, DIRECTORY, and the whole transaction RMW.
	RingRead, RingWrite, RingDir, RingTxn [2]time.Duration
	Setup                                 time.Duration // per domain added in this step
	HeapPerDomain, RSSPerDomain           float64       // over the engine before any guest
	IdleCPU                               time.Duration // process CPU per second with every guest idle
	// DomainExists is the transport's answer to "does domain N exist"
	// (asked by the engine for every SET_PERMS entry naming a domain):
	// it lists every domain of the (fake) hypervisor.
	DomainExists time.Duration
	FDs          int // descriptors open in the process, all guests idle
}

// DomainScaleResult is DomainScale's output.
type DomainScaleResult struct {
	Rows []DomainRow
	// NodesOnlyHeap is the heap one guest's nodes take without a domain
	// (no connection, ring, or watches): subtract it from HeapPerDomain for
	// the cost of an idle connection.
	NodesOnlyHeap float64
	FDLimit       uint64
	Note          string // e.g. domain counts left out to fit the descriptor limit
}

// DomainScale grows one ring rig through o.Counts guests, each with
// GuestTree's ~100 nodes, GuestWatches on its own ring and dom0's
// BackendWatches, and at each count measures the engine's operation cost,
// ring round trips, the memory per domain and the CPU burnt while idle.
func DomainScale(o DomainScaleOptions) (*DomainScaleResult, error) {
	if o.Ops <= 0 {
		o.Ops = 20000
	}
	if o.Reps <= 0 {
		o.Reps = 3
	}
	if o.RingOps <= 0 {
		o.RingOps = 2000
	}
	if o.Sample <= 0 {
		o.Sample = 8
	}
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	res := &DomainScaleResult{}
	res.NodesOnlyHeap = nodesOnlyHeap(200)

	// Descriptors: the rig's, one ring client's at a time, FDsPerGuest per
	// guest (none: pages share one memfd and events two handles). A
	// count that does not fit under RLIMIT_NOFILE is left out, and the
	// note says so.
	const slack = 128
	base := OpenFDs() + RigFDs + FDsPerClient + slack
	maxCount := 0
	for _, n := range o.Counts {
		maxCount = max(maxCount, n)
	}
	lim, err := RaiseFDLimit(uint64(base + maxCount*FDsPerGuest))
	res.FDLimit = lim
	if need := base + maxCount*FDsPerGuest; int(lim) < need {
		var counts []int
		for _, n := range o.Counts {
			if base+n*FDsPerGuest <= int(lim) {
				counts = append(counts, n)
			}
		}
		res.Note = fmt.Sprintf("RLIMIT_NOFILE is %d (raising it: %v): %d domains need %d descriptors (%d per domain, %d for the rig and this process); measured %v only",
			lim, err, maxCount, need, FDsPerGuest, base, counts)
		say(res.Note)
		if len(counts) == 0 {
			return res, errors.New("domain scale: " + res.Note)
		}
		o.Counts = counts
	}

	r, err := NewRingRig(RingRigConfig{WriteRate: -1, CacheDomains: true})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for _, w := range Dom0Watches {
		if _, err := r.Dom0.Call(wire.Watch, 0, wire.JoinStrings(w, "xl")); err != nil {
			return nil, err
		}
	}
	mem0 := ReadMem()
	have := 0
	for _, count := range o.Counts {
		start := time.Now()
		for have < count {
			id := uint32(have + 1)
			if err := r.AddGuest(id, true); err != nil {
				return res, err
			}
			if err := r.GuestWatch(id); err != nil {
				return res, err
			}
			have++
			if have%1000 == 0 {
				say(fmt.Sprintf("domains: %d introduced (%.1fs)", have, time.Since(start).Seconds()))
			}
		}
		row := DomainRow{Domains: have, Nodes: r.E.NodeCount(), Watches: have * (len(GuestWatches(1)) + len(BackendWatches(1)))}
		if added := have - prevCount(res.Rows); added > 0 {
			row.Setup = time.Since(start) / time.Duration(added)
		}
		// Events for dom0's watches waiting since the last call.
		r.Dom0.Call(wire.Read, 0, wire.JoinStrings("/local/domain/1/name"))
		m := ReadMem()
		row.HeapPerDomain = float64(int64(m.HeapInuse)-int64(mem0.HeapInuse)) / float64(have)
		row.RSSPerDomain = float64(int64(m.RSSAnon)-int64(mem0.RSSAnon)) / float64(have)
		row.FDs = OpenFDs()
		row.IdleCPU = idleCPU(500 * time.Millisecond)
		row.DomainExists, _ = timeOps(max(10, 20000/have), 1, func(i int) error {
			r.Srv.DomainExists(uint32(1 + i%have))
			return nil
		})
		if err := measureDomainEngineOps(r.Dom0, have, o, &row); err != nil {
			return res, err
		}
		if err := measureDomainRingOps(r, have, o, &row); err != nil {
			return res, err
		}
		say(fmt.Sprintf("domains: %d measured (%.1fs)", have, time.Since(start).Seconds()))
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

func prevCount(rows []DomainRow) int {
	if len(rows) == 0 {
		return 0
	}
	return rows[len(rows)-1].Domains
}

// nodesOnlyHeap measures the heap that n guests' GuestTree nodes take in a
// bare engine, per guest.
func nodesOnlyHeap(n int) float64 {
	e := store.New(store.Config{Logger: discardLogger()})
	c := NewEngineConn(e, 0, true)
	base := ReadMem()
	for i := 1; i <= n; i++ {
		if err := CreateGuest(c, uint32(i)); err != nil {
			return 0
		}
	}
	m := ReadMem()
	runtime.KeepAlive(c)
	return float64(int64(m.HeapInuse)-int64(base.HeapInuse)) / float64(n)
}

// idleCPU is the process's CPU time (user+system) per second while
// nothing happens, measured over d.
func idleCPU(d time.Duration) time.Duration {
	t0 := procCPU()
	time.Sleep(d)
	return (procCPU() - t0) * time.Second / d
}

// procCPU is the process's user+system time (getrusage).
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func guestPath(id int, rel string) string { return "/local/domain/" + strconv.Itoa(id) + "/" + rel }

func measureDomainEngineOps(c *EngineConn, domains int, o DomainScaleOptions, row *DomainRow) error {
	const pool = 4096
	reads := randomReqs(11, pool, domains, func(i int) []byte { return wire.JoinStrings(guestPath(i+1, "device/vif/0/state")) })
	cnt := randomReqs(12, pool, domains, func(i int) []byte { return wire.JoinStrings(guestPath(i+1, "data/counter")) })
	writes := randomReqs(12, pool, domains, func(i int) []byte {
		return append(wire.JoinStrings(guestPath(i+1, "data/counter")), value16...)
	})
	dirs := randomReqs(13, pool, domains, func(i int) []byte { return wire.JoinStrings(guestPath(i+1, "device/vif/0")) })
	var err error
	call := func(typ wire.Type, reqs [][]byte) func(int) error {
		return func(i int) error { _, err := c.Call(typ, 0, reqs[i%pool]); return err }
	}
	if row.Read, err = timeOps(o.Ops, o.Reps, call(wire.Read, reads)); err != nil {
		return err
	}
	if row.Write, err = timeOps(o.Ops, o.Reps, call(wire.Write, writes)); err != nil {
		return err
	}
	if row.Dir, err = timeOps(o.Ops, o.Reps, call(wire.Directory, dirs)); err != nil {
		return err
	}
	row.Txn, err = timeOps(o.Ops/4, o.Reps, func(i int) error { return txnRMW(c, cnt[i%pool], writes[i%pool]) })
	return err
}

// measureDomainRingOps spreads o.RingOps round trips of each kind over
// o.Sample random guests, each through a fresh ring client on its ring.
func measureDomainRingOps(r *RingRig, domains int, o DomainScaleOptions, row *DomainRow) error {
	rnd := rand.New(rand.NewPCG(uint64(domains), 5))
	var hs [4]Histogram
	per := max(1, o.RingOps/o.Sample)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for s := 0; s < o.Sample; s++ {
		id := uint32(1 + rnd.IntN(domains))
		c, err := r.Client(id)
		if err != nil {
			return err
		}
		err = func() error {
			defer c.Close()
			for i := 0; i < per; i++ {
				t0 := time.Now()
				if _, err := c.Read(ctx, "device/vif/0/state"); err != nil {
					return err
				}
				t1 := time.Now()
				if err := c.Write(ctx, "data/counter", value16); err != nil {
					return err
				}
				t2 := time.Now()
				if _, err := c.Directory(ctx, "device/vif/0"); err != nil {
					return err
				}
				t3 := time.Now()
				if err := ringTxn(ctx, c.Client); err != nil {
					return err
				}
				t4 := time.Now()
				hs[0].Record(t1.Sub(t0))
				hs[1].Record(t2.Sub(t1))
				hs[2].Record(t3.Sub(t2))
				hs[3].Record(t4.Sub(t3))
			}
			// A last round trip, so nothing is left half-read on the ring.
			_, err := c.Read(ctx, "name")
			return err
		}()
		if err != nil {
			return fmt.Errorf("guest %d: %w", id, err)
		}
	}
	q := func(h *Histogram) [2]time.Duration { return [2]time.Duration{h.Quantile(0.5), h.Quantile(0.99)} }
	row.RingRead, row.RingWrite, row.RingDir, row.RingTxn = q(&hs[0]), q(&hs[1]), q(&hs[2]), q(&hs[3])
	return nil
}

// DomainTables renders DomainScale's result: engine costs and memory, and
// ring round trips.
func DomainTables(res *DomainScaleResult, md bool) string {
	h := []string{"domains", "nodes", "watches", "read", "write", "dir", "txn RMW", "setup/domain", "heap/domain", "RSS/domain", "idle CPU", "DomainExists", "fds"}
	var out [][]string
	for _, r := range res.Rows {
		out = append(out, []string{strconv.Itoa(r.Domains), strconv.Itoa(r.Nodes), strconv.Itoa(r.Watches),
			fmtNs(r.Read), fmtNs(r.Write), fmtNs(r.Dir), fmtNs(r.Txn), fmtNs(r.Setup),
			fmtBytes(r.HeapPerDomain), fmtBytes(r.RSSPerDomain), fmt.Sprintf("%.2f%%", float64(r.IdleCPU)/float64(time.Second)*100), fmtNs(r.DomainExists), strconv.Itoa(r.FDs)})
	}
	s := table(md, h, out)
	h2 := []string{"domains", "ring read p50/p99", "ring write p50/p99", "ring dir p50/p99", "ring txn RMW p50/p99"}
	out = nil
	pq := func(d [2]time.Duration) string { return fmtNs(d[0]) + " / " + fmtNs(d[1]) }
	for _, r := range res.Rows {
		out = append(out, []string{strconv.Itoa(r.Domains), pq(r.RingRead), pq(r.RingWrite), pq(r.RingDir), pq(r.RingTxn)})
	}
	s += "\n" + table(md, h2, out)
	s += fmt.Sprintf("\nnodes of one guest without a domain (no connection, ring, watches): %s of heap\n", fmtBytes(res.NodesOnlyHeap))
	s += fmt.Sprintf("fds: descriptors open in the process (RLIMIT_NOFILE %d)\n", res.FDLimit)
	if res.Note != "" {
		s += "note: " + res.Note + "\n"
	}
	return s
}

// ringTxn is a transaction read-modify-write of data/counter on a ring.
func ringTxn(ctx context.Context, c *ringclient.Client) error {
	m, err := c.Call(ctx, wire.TransactionStart, 0, []byte{0})
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(strings.TrimRight(string(m.Payload), "\x00"), 10, 32)
	if err != nil {
		return fmt.Errorf("transaction id %q: %w", m.Payload, err)
	}
	tx := uint32(id)
	if _, err := c.Call(ctx, wire.Read, tx, wire.JoinStrings("data/counter")); err != nil {
		return err
	}
	if _, err := c.Call(ctx, wire.Write, tx, append(wire.JoinStrings("data/counter"), value16...)); err != nil {
		return err
	}
	_, err = c.Call(ctx, wire.TransactionEnd, tx, []byte("T\x00"))
	return err
}
