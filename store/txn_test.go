package store

import (
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

func startTx(t *testing.T, c *tconn) uint32 {
	t.Helper()
	p := c.must(wire.TransactionStart, 0, "")
	id, err := strconv.ParseUint(p[:len(p)-1], 10, 32)
	if err != nil || id == 0 {
		t.Fatalf("transaction id %q", p)
	}
	return uint32(id)
}

func txWrite(t *testing.T, c *tconn, tx uint32, path, v string) {
	t.Helper()
	m := c.do(wire.Write, tx, append(append([]byte(path), 0), v...))
	if m.Type != wire.Write {
		t.Fatalf("tx write %s: %s", path, m.Payload)
	}
}

func TestTransactions(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b *tconn)
	}{
		{"commit applies writes atomically", func(t *testing.T, a, b *tconn) {
			tx := startTx(t, a)
			txWrite(t, a, tx, "/t/x", "1")
			txWrite(t, a, tx, "/t/y", "2")
			b.fails("ENOENT", wire.Read, 0, "/t/x") // invisible outside
			if got := a.must(wire.Read, tx, "/t/x"); got != "1" {
				t.Fatalf("own write invisible in tx: %q", got)
			}
			a.must(wire.TransactionEnd, tx, "T")
			if b.read("/t/x") != "1" || b.read("/t/y") != "2" {
				t.Fatal("commit lost writes")
			}
		}},
		{"abort discards", func(t *testing.T, a, b *tconn) {
			tx := startTx(t, a)
			txWrite(t, a, tx, "/t/x", "1")
			a.must(wire.TransactionEnd, tx, "F")
			b.fails("ENOENT", wire.Read, 0, "/t/x")
			a.fails("ENOENT", wire.TransactionEnd, tx, "T") // id gone
		}},
		{"a missing @ name read in a transaction reads / (C 4.22)", func(t *testing.T, a, b *tconn) {
			tx := startTx(t, a)
			a.fails("ENOENT", wire.GetPerms, tx, "@")
			b.write("/new/x", "0") // creates /new: / changes
			a.fails("EAGAIN", wire.TransactionEnd, tx, "T")
		}},
		{"conflict gives EAGAIN", func(t *testing.T, a, b *tconn) {
			b.write("/t/x", "0")
			tx := startTx(t, a)
			a.must(wire.Read, tx, "/t/x")
			b.write("/t/x", "other")
			txWrite(t, a, tx, "/t/y", "1")
			a.fails("EAGAIN", wire.TransactionEnd, tx, "T")
			b.fails("ENOENT", wire.Read, 0, "/t/y")
		}},
		{"snapshot: first read is kept", func(t *testing.T, a, b *tconn) {
			b.write("/t/x", "old")
			tx := startTx(t, a)
			if got := a.must(wire.Read, tx, "/t/x"); got != "old" {
				t.Fatal(got)
			}
			b.write("/t/x", "new")
			if got := a.must(wire.Read, tx, "/t/x"); got != "old" {
				t.Fatalf("transaction saw %q after its first read", got)
			}
		}},
		{"created elsewhere conflicts", func(t *testing.T, a, b *tconn) {
			tx := startTx(t, a)
			a.fails("ENOENT", wire.Read, tx, "/t/n")
			b.write("/t/n", "x")
			txWrite(t, a, tx, "/t/n", "mine")
			a.fails("EAGAIN", wire.TransactionEnd, tx, "T")
			if b.read("/t/n") != "x" {
				t.Fatal("failed commit changed the store")
			}
		}},
		{"rm in transaction", func(t *testing.T, a, b *tconn) {
			b.write("/t/r/s", "x")
			tx := startTx(t, a)
			a.must(wire.Rm, tx, "/t/r")
			a.fails("ENOENT", wire.Read, tx, "/t/r/s")
			if b.read("/t/r/s") != "x" {
				t.Fatal("rm visible before commit")
			}
			a.must(wire.TransactionEnd, tx, "T")
			b.fails("ENOENT", wire.Read, 0, "/t/r")
		}},
		{"unknown and bad ids", func(t *testing.T, a, b *tconn) {
			a.fails("ENOENT", wire.Read, 999, "/t")
			tx := startTx(t, a)
			a.fails("EBUSY", wire.TransactionStart, tx, "")
			a.fails("EINVAL", wire.TransactionEnd, tx, "X")
			b.fails("ENOENT", wire.Read, tx, "/tool") // ids are per connection
		}},
		{"ids are not reused while live", func(t *testing.T, a, b *tconn) {
			seen := map[uint32]bool{}
			for i := 0; i < 20; i++ {
				tx := startTx(t, a)
				if seen[tx] {
					t.Fatalf("id %d reused", tx)
				}
				seen[tx] = true
			}
		}},
		{"watch events only on commit", func(t *testing.T, a, b *tconn) {
			b.must(wire.Watch, 0, "/t", "tok")
			b.takeEvents()
			tx := startTx(t, a)
			txWrite(t, a, tx, "/t/w", "1")
			if ev := b.drainEvents(); len(ev) != 0 {
				t.Fatalf("events before commit: %q", ev)
			}
			a.must(wire.TransactionEnd, tx, "T")
			if ev := b.drainEvents(); len(ev) != 1 || ev[0] != "/t/w tok" {
				t.Fatalf("events after commit: %q", ev)
			}
		}},
		{"reset watches ends transactions (XSA-484)", func(t *testing.T, a, b *tconn) {
			tx := startTx(t, a)
			txWrite(t, a, tx, "/t/z", "1")
			a.must(wire.ResetWatches, tx, "")
			a.fails("ENOENT", wire.TransactionEnd, tx, "T")
			b.fails("ENOENT", wire.Read, 0, "/t/z")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			a, b := dom0(t, e), dom0(t, e)
			b.write("/t", "")
			tt.run(t, a, b)
			checkConsistent(t, e)
		})
	}
}

func TestTransactionQuotas(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	g := guest(t, e, 5)
	d.write("/local/domain/5", "")
	d.must(wire.SetPerms, 0, "/local/domain/5", "n5")
	for i := 0; i < 10; i++ {
		startTx(t, g)
	}
	g.fails("ENOSPC", wire.TransactionStart, 0, "")
	g.must(wire.ResetWatches, 0, "")
	tx := startTx(t, g)
	// transaction-nodes: at most 1024 nodes touched in one transaction.
	var failed bool
	for i := 0; i < 1100 && !failed; i++ {
		_, errName := g.call(wire.Read, tx, "n"+strconv.Itoa(i))
		failed = errName == "ENOSPC"
	}
	if !failed {
		t.Fatal("transaction-nodes quota not enforced")
	}
	// Node quota counts nodes created in a transaction (XSA-421).
	g.must(wire.TransactionEnd, tx, "F")
	e.mu.Lock()
	e.domains[5].quotas.Hard[QNodes] = 3
	e.mu.Unlock()
	tx = startTx(t, g)
	txWrite(t, g, tx, "a", "")
	txWrite(t, g, tx, "b", "")
	if m := g.do(wire.Write, tx, []byte("c\x00")); m.Type != wire.Error {
		t.Fatal("node quota not applied inside a transaction")
	}
	g.must(wire.TransactionEnd, tx, "T")
	checkConsistent(t, e)
}

// TestTransactionMemoryQuota: the memory quota holds inside a transaction
// (issue 13 item 1). A transaction's writes are charged as they happen,
// and the commit re-checks the outcome against the live use, as it does
// for the node count.
func TestTransactionMemoryQuota(t *testing.T) {
	const quota, size, writes = 20000, 1500, 20
	value := strings.Repeat("v", size)
	tests := []struct {
		name string
		// run returns the 1-based index of the first write refused
		// (0: none) and its error name, or the commit's.
		run        func(t *testing.T, g *tconn) (int, string)
		wantFirst  int
		wantCommit string
	}{
		{"outside a transaction", func(t *testing.T, g *tconn) (int, string) {
			for i := 1; i <= writes; i++ {
				if errName := g.writeErr("k"+strconv.Itoa(i), value); errName != "" {
					return i, errName
				}
			}
			return 0, ""
		}, 13, "ENOMEM"},
		{"inside a transaction", func(t *testing.T, g *tconn) (int, string) {
			tx := startTx(t, g)
			first, firstErr := 0, ""
			for i := 1; i <= writes; i++ {
				_, errName := g.call(wire.Write, tx, "k"+strconv.Itoa(i), value)
				if errName != "" && first == 0 {
					first, firstErr = i, errName
				}
			}
			// What was accepted fits: the commit goes through.
			if _, errName := g.call(wire.TransactionEnd, tx, "T"); errName != "" {
				t.Fatalf("commit: %s", errName)
			}
			return first, firstErr
		}, 13, "ENOMEM"},
		{"commit after live writes", func(t *testing.T, g *tconn) (int, string) {
			g.write("tx", "")
			g.write("live", "")
			tx := startTx(t, g)
			for i := 1; i <= 8; i++ {
				txWrite(t, g, tx, "tx/k"+strconv.Itoa(i), value)
			}
			// Outside, the live use grows; each write alone fits.
			for i := 1; i <= 6; i++ {
				g.write("live/k"+strconv.Itoa(i), value)
			}
			_, errName := g.call(wire.TransactionEnd, tx, "T")
			return 0, errName
		}, 0, "ENOMEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, func(c *Config) { c.WriteRate = -1 })
			d := dom0(t, e)
			guestHome(t, d, "5")
			d.must(wire.SetQuota, 0, "5", "memory", strconv.Itoa(quota))
			g := guest(t, e, 5)
			first, errName := tt.run(t, g)
			if first != tt.wantFirst || errName != tt.wantCommit {
				t.Fatalf("first refused write %d (%s), want %d (%s)", first, errName, tt.wantFirst, tt.wantCommit)
			}
			e.mu.Lock()
			use := e.domains[5].memory
			e.mu.Unlock()
			if use > quota {
				t.Fatalf("domain 5 uses %d bytes, quota %d", use, quota)
			}
			checkConsistent(t, e)
		})
	}
}
