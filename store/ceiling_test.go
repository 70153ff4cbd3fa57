package store

import (
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// TestMemoryCeiling: once the engine's memory estimate reaches the
// store-wide ceiling, every unprivileged change is refused with ENOMEM and
// counted, reads and removals still work, dom0 keeps working, and guests
// may change again once memory is freed (issue 13, the stub's memory).
func TestMemoryCeiling(t *testing.T) {
	const ceiling = 2 << 20
	value := strings.Repeat("v", 1500)
	e := newTestEngine(t, func(c *Config) { c.MemoryCeiling = ceiling; c.WriteRate = -1 })
	d := dom0(t, e)
	var guests []*tconn
	for id := 5; id < 9; id++ {
		guestHome(t, d, strconv.Itoa(id))
		guests = append(guests, guest(t, e, uint32(id)))
	}
	g := guests[0]
	// Four guests, each well within its own quotas, fill the store.
	written := 0
fill:
	for i := 0; ; i++ {
		for _, x := range guests {
			if errName := x.writeErr("k"+strconv.Itoa(i), value); errName != "" {
				if errName != "ENOMEM" {
					t.Fatalf("write %d: %s, want ENOMEM", i, errName)
				}
				break fill
			}
			written++
		}
	}
	// Refused by the ceiling, not by a guest's own quotas: the values
	// written are a good part of it (the rest: the node table's slack).
	if max := ceiling / len(value); written < max/3 || written > max {
		t.Fatalf("refused after %d writes of %d bytes; the ceiling (%d) holds at most %d", written, len(value), ceiling, max)
	}
	// dom0 is exempt: it may change, start transactions and watch; its
	// additions take the estimate past the ceiling, so that even the
	// smallest guest change is refused below.
	tx := startTx(t, d)
	for i := 0; i < 3; i++ {
		d.write("/dom0/big"+strconv.Itoa(i), value)
	}
	d.must(wire.Watch, 0, "/dom0", "t")
	refused := []struct {
		name string
		typ  wire.Type
		args []string
	}{
		{"write", wire.Write, []string{"new", "x"}},
		{"mkdir", wire.Mkdir, []string{"dir"}},
		{"set_perms", wire.SetPerms, []string{"k0", "n5", "r6"}},
		{"watch", wire.Watch, []string{"k0", "tok"}},
		{"transaction start", wire.TransactionStart, []string{""}},
	}
	for _, r := range refused {
		t.Run("refused "+r.name, func(t *testing.T) {
			g.fails("ENOMEM", r.typ, 0, r.args...)
		})
	}
	// Not changes, or changes that free memory: allowed.
	if got := g.read("k0"); got != value {
		t.Fatalf("read back %d bytes", len(got))
	}
	g.must(wire.Directory, 0, "/local/domain/5")
	d.must(wire.TransactionEnd, tx, "T")
	out := d.must(wire.Control, 0, "quota")
	if want := "refused " + strconv.Itoa(len(refused)+1) + ")"; !strings.Contains(out, want) {
		t.Fatalf("quota output lacks %q:\n%s", want, out)
	}
	e.mu.Lock()
	est := e.memEstimate()
	e.mu.Unlock()
	if est > ceiling+16<<10 { // dom0's own additions on top
		t.Fatalf("estimate %d past the ceiling %d", est, ceiling)
	}
	// Freed memory lets guests change again.
	for i := 0; i < 10; i++ {
		g.must(wire.Rm, 0, "k"+strconv.Itoa(i))
	}
	d.must(wire.Rm, 0, "/dom0")
	g.write("again", "x")
	checkConsistent(t, e)
}

// TestMemoryCeilingInTransaction: an open transaction's copies count
// towards the ceiling (they are memory the guest holds), so another guest
// is refused that much earlier; the commit turns copies into live nodes
// and releases them.
func TestMemoryCeilingInTransaction(t *testing.T) {
	const ceiling = 1 << 20
	value := strings.Repeat("v", 1500)
	fill := func(t *testing.T, withTx bool) int {
		e := newTestEngine(t, func(c *Config) { c.MemoryCeiling = ceiling; c.WriteRate = -1 })
		d := dom0(t, e)
		guestHome(t, d, "5")
		guestHome(t, d, "6")
		g, h := guest(t, e, 5), guest(t, e, 6)
		g.write("tx", "")
		var tx uint32
		if withTx {
			tx = startTx(t, g)
			for i := 0; i < 12; i++ {
				txWrite(t, g, tx, "tx/k"+strconv.Itoa(i), value)
			}
		}
		n := 0
		for ; ; n++ {
			if errName := h.writeErr("k"+strconv.Itoa(n), value); errName != "" {
				if errName != "ENOMEM" {
					t.Fatalf("write %d: %s", n, errName)
				}
				break
			}
		}
		if withTx {
			g.must(wire.TransactionEnd, tx, "T")
		}
		e.mu.Lock()
		tb, est := e.txBytes, e.memEstimate()
		e.mu.Unlock()
		// The check before each change uses the request's size; its
		// overheads may take the estimate a little past the ceiling.
		if tb != 0 || est > ceiling+4096 {
			t.Fatalf("after commit: transactions hold %d bytes, estimate %d, ceiling %d", tb, est, ceiling)
		}
		checkConsistent(t, e)
		return n
	}
	without, with := fill(t, false), fill(t, true)
	if with > without-6 {
		t.Fatalf("with 12 values in an open transaction the other guest wrote %d, without %d: the copies are not counted", with, without)
	}
}
