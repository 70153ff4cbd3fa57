package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
)

// TreeScaleOptions configures TreeScale.
type TreeScaleOptions struct {
	Sizes     []int // total node counts to grow the store to, ascending
	Ops       int   // operations per timed batch (default 20000)
	Reps      int   // batches per measurement, best kept (default 3)
	Lifecycle int   // guests created and destroyed per size (default 10)
	Progress  func(string)
}

// TreeRow is one size's measurements. Operation times are the mean engine
// time per operation, in-process (no transport), on random nodes across
// the whole tree.
type TreeRow struct {
	Nodes                     int
	Read, Write, Dir, Txn     time.Duration
	GuestCreate, GuestDestroy time.Duration // ~100 nodes + INTRODUCE; rm + RELEASE
	Fill                      time.Duration // mean time per node created while growing
	HeapPerNode, RSSPerNode   float64       // bytes per node over the empty engine
}

// The tree: 16-byte leaves /t/A/B/C/D with A..D in 0..31 (fan-out 32,
// constant depth, dom0's), so directories stay small and only the number
// of nodes changes.
const treeFan = 32

func treeLeaf(i int) string {
	return "/t/" + strconv.Itoa(i>>15&31) + "/" + strconv.Itoa(i>>10&31) + "/" + strconv.Itoa(i>>5&31) + "/" + strconv.Itoa(i&31)
}

var value16 = []byte("value-0123456789")

// TreeScale grows one engine through o.Sizes and measures READ, WRITE,
// DIRECTORY and a transaction read-modify-write at each size, plus the
// cost of creating and destroying a whole guest and the memory per node.
func TreeScale(o TreeScaleOptions) ([]TreeRow, error) {
	if o.Ops <= 0 {
		o.Ops = 20000
	}
	if o.Reps <= 0 {
		o.Reps = 3
	}
	if o.Lifecycle <= 0 {
		o.Lifecycle = 10
	}
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	e := store.New(store.Config{Logger: discardLogger()})
	c := NewEngineConn(e, 0, true)
	base := ReadMem()
	baseNodes := e.NodeCount()
	leaves := 0
	var rows []TreeRow
	for _, size := range o.Sizes {
		start := time.Now()
		before := e.NodeCount()
		for e.NodeCount() < size {
			if _, err := c.Call(wire.Write, 0, append(wire.JoinStrings(treeLeaf(leaves)), value16...)); err != nil {
				return rows, err
			}
			leaves++
			if leaves >= treeFan*treeFan*treeFan*treeFan {
				return rows, fmt.Errorf("tree scale: %d nodes is beyond the tree's %d leaves", size, leaves)
			}
		}
		row := TreeRow{Nodes: e.NodeCount()}
		if added := row.Nodes - before; added > 0 {
			row.Fill = time.Since(start) / time.Duration(added)
		}
		say(fmt.Sprintf("tree: %d nodes (%.1fs to grow)", row.Nodes, time.Since(start).Seconds()))
		m := ReadMem()
		row.HeapPerNode = float64(int64(m.HeapInuse-base.HeapInuse)) / float64(row.Nodes-baseNodes)
		row.RSSPerNode = float64(int64(m.RSSAnon)-int64(base.RSSAnon)) / float64(row.Nodes-baseNodes)
		if err := measureTreeOps(c, leaves, o, &row); err != nil {
			return rows, err
		}
		// Guest life cycle: what xl create / xl destroy cost the store.
		var cr, de time.Duration
		for k := 0; k < o.Lifecycle; k++ {
			id := uint32(20000 + k)
			t0 := time.Now()
			if err := CreateGuest(c, id); err != nil {
				return rows, err
			}
			if err := e.IntroduceDomain(id, 1, 0); err != nil {
				return rows, err
			}
			t1 := time.Now()
			if err := DestroyGuest(c, id); err != nil {
				return rows, err
			}
			cr += t1.Sub(t0)
			de += time.Since(t1)
		}
		row.GuestCreate = cr / time.Duration(o.Lifecycle)
		row.GuestDestroy = de / time.Duration(o.Lifecycle)
		rows = append(rows, row)
	}
	return rows, nil
}

// randomReqs prepares n requests built by mk on random indices in [0, k).
func randomReqs(seed uint64, n, k int, mk func(i int) []byte) [][]byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]byte, n)
	for i := range out {
		out[i] = mk(r.IntN(k))
	}
	return out
}

func measureTreeOps(c *EngineConn, leaves int, o TreeScaleOptions, row *TreeRow) error {
	const pool = 4096
	reads := randomReqs(1, pool, leaves, func(i int) []byte { return wire.JoinStrings(treeLeaf(i)) })
	writes := randomReqs(2, pool, leaves, func(i int) []byte { return append(wire.JoinStrings(treeLeaf(i)), value16...) })
	dirs := randomReqs(3, pool, leaves, func(i int) []byte { return wire.JoinStrings(parentOf(treeLeaf(i))) })
	var err error
	if row.Read, err = timeOps(o.Ops, o.Reps, func(i int) error {
		_, err := c.Call(wire.Read, 0, reads[i%pool])
		return err
	}); err != nil {
		return err
	}
	if row.Write, err = timeOps(o.Ops, o.Reps, func(i int) error {
		_, err := c.Call(wire.Write, 0, writes[i%pool])
		return err
	}); err != nil {
		return err
	}
	if row.Dir, err = timeOps(o.Ops, o.Reps, func(i int) error {
		_, err := c.Call(wire.Directory, 0, dirs[i%pool])
		return err
	}); err != nil {
		return err
	}
	row.Txn, err = timeOps(o.Ops/4, o.Reps, func(i int) error {
		return txnRMW(c, reads[i%pool], writes[i%pool])
	})
	return err
}

// txnRMW is TRANSACTION_START, READ, WRITE, TRANSACTION_END commit.
func txnRMW(c *EngineConn, read, write []byte) error {
	p, err := c.Call(wire.TransactionStart, 0, []byte{0})
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(string(p[:len(p)-1]), 10, 32)
	if err != nil {
		return fmt.Errorf("transaction id %q: %w", p, err)
	}
	tx := uint32(id)
	if _, err := c.Call(wire.Read, tx, read); err != nil {
		return err
	}
	if _, err := c.Call(wire.Write, tx, write); err != nil {
		return err
	}
	_, err = c.Call(wire.TransactionEnd, tx, []byte("T\x00"))
	return err
}

// TreeTable renders TreeScale's rows.
func TreeTable(rows []TreeRow, md bool) string {
	h := []string{"nodes", "read", "write", "dir", "txn RMW", "guest create", "guest destroy", "fill/node", "heap/node", "RSS/node"}
	var out [][]string
	for _, r := range rows {
		out = append(out, []string{strconv.Itoa(r.Nodes), fmtNs(r.Read), fmtNs(r.Write), fmtNs(r.Dir), fmtNs(r.Txn),
			fmtNs(r.GuestCreate), fmtNs(r.GuestDestroy), fmtNs(r.Fill), fmtBytes(r.HeapPerNode), fmtBytes(r.RSSPerNode)})
	}
	return table(md, h, out)
}
