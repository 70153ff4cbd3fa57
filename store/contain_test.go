package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// containScene is a store with a watcher, a guest with a watch and an open
// transaction, and a dom0 connection with one: the offender is dom0's
// (priv) or the guest's connection.
type containScene struct {
	e                     *Engine
	dom0, guest, watcher  *tconn
	dom0Tx, guestTx       uint32
	unwatchedDom0, noWait bool
}

func newContainScene(t *testing.T, log *slog.Logger, watched bool) *containScene {
	t.Helper()
	at := time.Unix(1700000000, 0)
	e := New(Config{Logger: log, Now: func() time.Time { return at }})
	s := &containScene{e: e, dom0: dom0(t, e), watcher: dom0(t, e)}
	d := s.dom0
	for _, p := range []string{"/a/b/c", "/a/b/d", "/a/x", "/local/domain/5/data"} {
		d.write(p, "v"+p)
	}
	d.must(wire.SetPerms, 0, "/local/domain/5", "b5")
	d.must(wire.SetPerms, 0, "/local/domain/5/data", "b5")
	d.must(wire.SetPerms, 0, "/a/x", "b0", "r5")
	s.guest = guest(t, e, 5)
	s.guest.write("mine", "1")
	s.guest.must(wire.Watch, 0, "mine", "g")
	s.guest.takeEvents()
	s.guestTx = txID(t, s.guest)
	s.guest.write("ignored", "") // outside the transaction
	s.guest.must(wire.Write, s.guestTx, "data", "in-tx")
	s.dom0Tx = txID(t, d)
	d.must(wire.Write, s.dom0Tx, "/a/b/c", "in-tx")
	d.must(wire.Rm, s.dom0Tx, "/a/x")
	d.must(wire.Write, s.dom0Tx, "/a/new/node", "n")
	d.must(wire.Watch, 0, "/a/b", "d")
	d.takeEvents()
	if watched {
		s.watcher.must(wire.Watch, 0, "/", "all")
		s.watcher.must(wire.Watch, 0, "@releaseDomain", "rel")
	}
	return s
}

func txID(t *testing.T, tc *tconn) uint32 {
	t.Helper()
	id := strings.TrimRight(tc.must(wire.TransactionStart, 0, ""), "\x00")
	var n uint32
	fmt.Sscan(id, &n)
	return n
}

// fullDump renders everything a request could change: the exported state
// (tree in order, domains, connections with queued output and watches),
// every node's generation, the accounting, and each connection's counters.
func fullDump(e *Engine) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	st := e.exportLocked()
	for _, n := range st.Nodes {
		fmt.Fprintf(&b, "node %s %q %v gen %d\n", n.Path, n.Value, n.Perms.Strings(), e.nodes.generation(n.Path))
	}
	fmt.Fprintf(&b, "quotas %v\n", st.Quotas)
	for _, d := range st.Domains {
		r := e.domains[d.ID]
		fmt.Fprintf(&b, "domain %+v nodes %d memory %d txns %d watches %d\n", d, r.nodes, r.memory, r.txns, r.watches)
	}
	for _, c := range e.sortedConns() {
		fmt.Fprintf(&b, "conn %d replies %d parked %d txns %d\n", c.id, c.replies, c.parked, len(c.txns))
		for _, w := range c.watches {
			fmt.Fprintf(&b, "  watch %s %s queued %d parked %d\n", w.path, w.token, w.queued, len(w.overflow))
		}
		for _, id := range slices.Sorted(maps.Keys(c.txns)) {
			tx := c.txns[id]
			fmt.Fprintf(&b, "  tx %d order %v bytes %d nodes %v mem %v\n", id, tx.order, tx.bytes, tx.nodeDelta, tx.memDelta)
		}
	}
	for _, c := range st.Conns {
		fmt.Fprintf(&b, "conn %d output %q watches %v\n", c.ID, bytes.Join(c.Output, nil), c.Watches)
	}
	var mentions []string
	for id, set := range e.mentions {
		for p := range set {
			mentions = append(mentions, fmt.Sprint(id, p))
		}
	}
	slices.Sort(mentions)
	fmt.Fprintf(&b, "gen %d memTotal %d watches %d txBytes %d outBytes %d nodes %d mentions %v\n",
		e.gen, e.memTotal, e.watchCount, e.txBytes, e.outBytes, e.nodes.len(), mentions)
	return b.String()
}

// armPanic makes the n-th probe from now panic; it returns how many
// probes ran.
func armPanic(t *testing.T, n int) *int {
	count := new(int)
	panicProbe = func() {
		if *count++; *count == n {
			panic("injected failure")
		}
	}
	t.Cleanup(func() { panicProbe = nil })
	return count
}

// handleCatching runs one request and reports whether a panic escaped.
func handleCatching(c *Conn, m wire.Msg) (escaped any) {
	defer func() { escaped = recover() }()
	c.Handle(m)
	return nil
}

// A panic injected at every probe a request passes, in turn: either it
// is contained (EIO, connection closed, the store exactly as if the
// connection had just closed instead, checks pass) or the request had
// passed a commit point and the panic goes on (logged as such).
func TestPanicContained(t *testing.T) {
	type req struct {
		name    string
		byGuest bool
		typ     wire.Type
		tx      bool // in the offender's open transaction
		args    []string
		watched bool // another connection watches everything
		// undoable: every injected panic must be contained.
		undoable bool
	}
	cases := []req{
		{name: "read", typ: wire.Read, args: []string{"/a/b/c"}, watched: true, undoable: true},
		{name: "directory", typ: wire.Directory, args: []string{"/a"}, watched: true, undoable: true},
		{name: "get-perms", typ: wire.GetPerms, args: []string{"/a/x"}, watched: true, undoable: true},
		{name: "write new deep path", typ: wire.Write, args: []string{"/a/n1/n2/n3", "v"}, undoable: true},
		{name: "write existing", typ: wire.Write, args: []string{"/a/b/c", "w"}, undoable: true},
		{name: "write watched", typ: wire.Write, args: []string{"/a/b/c", "w"}, watched: true},
		{name: "mkdir", typ: wire.Mkdir, args: []string{"/m/k"}, undoable: true},
		{name: "rm subtree", typ: wire.Rm, args: []string{"/a/b"}, undoable: true},
		{name: "rm subtree watched", typ: wire.Rm, args: []string{"/a"}, watched: true},
		{name: "set-perms new owner", typ: wire.SetPerms, args: []string{"/a/x", "b9", "r5"}, undoable: true},
		{name: "watch", typ: wire.Watch, args: []string{"/a", "t"}, watched: true, undoable: true},
		{name: "unwatch", typ: wire.Unwatch, args: []string{"/a/b", "d"}, watched: true, undoable: true},
		{name: "reset-watches", typ: wire.ResetWatches, args: []string{""}, watched: true, undoable: true},
		{name: "transaction start", typ: wire.TransactionStart, args: []string{""}, watched: true, undoable: true},
		{name: "write in transaction", typ: wire.Write, tx: true, args: []string{"/a/t/u", "v"}, watched: true, undoable: true},
		{name: "rm in transaction", typ: wire.Rm, tx: true, args: []string{"/a/b"}, watched: true, undoable: true},
		{name: "commit", typ: wire.TransactionEnd, tx: true, args: []string{"T"}, undoable: true},
		{name: "commit watched", typ: wire.TransactionEnd, tx: true, args: []string{"T"}, watched: true},
		{name: "abort", typ: wire.TransactionEnd, tx: true, args: []string{"F"}, watched: true, undoable: true},
		{name: "guest write", byGuest: true, typ: wire.Write, args: []string{"more/deep", "x"}, undoable: true},
		{name: "guest rm", byGuest: true, typ: wire.Rm, args: []string{"/local/domain/5"}, undoable: true},
		{name: "guest commit", byGuest: true, typ: wire.TransactionEnd, tx: true, args: []string{"T"}, undoable: true},
		{name: "guest write watched", byGuest: true, typ: wire.Write, args: []string{"mine", "x"}, watched: true},
		{name: "quota set", typ: wire.Control, args: []string{"quota", "set", "nodes", "7"}, watched: true},
		{name: "introduce", typ: wire.Introduce, args: []string{"12", "1", "3"}, watched: true},
		{name: "release", typ: wire.Release, args: []string{"5"}, watched: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			contained, escaped := 0, 0
			for n := 1; ; n++ {
				var logged bytes.Buffer
				log := slog.New(slog.NewTextHandler(&logged, nil))
				s, twin := newContainScene(t, log, tc.watched), newContainScene(t, quietLogger(), tc.watched)
				off, twinOff := s.dom0, twin.dom0
				tx := s.dom0Tx
				if tc.byGuest {
					off, twinOff, tx = s.guest, twin.guest, s.guestTx
				}
				if !tc.tx {
					tx = 0
				}
				if tc.typ == wire.Introduce || tc.typ == wire.Release {
					s.dom0.must(wire.Introduce, 0, "5", "1", "2")
					twin.dom0.must(wire.Introduce, 0, "5", "1", "2")
				}
				twinOff.c.Close()
				want := fullDump(twin.e)
				m := wire.Msg{Type: tc.typ, ReqID: 99, TxID: tx, Payload: wire.JoinStrings(tc.args...)}
				probes := armPanic(t, n)
				r := handleCatching(off.c, m)
				panicProbe = nil
				if *probes < n { // the request ran to its end: every probe tried
					if n == 1 {
						t.Fatal("the request passed no probe")
					}
					checkConsistent(t, s.e)
					break
				}
				if r != nil {
					escaped++
					if tc.undoable {
						t.Fatalf("probe %d: panic not contained: %v\n%s", n, r, logged.String())
					}
					if !strings.Contains(logged.String(), "cannot contain it") || !strings.Contains(logged.String(), "stack=") {
						t.Fatalf("probe %d: escaped without its log line: %s", n, logged.String())
					}
					continue
				}
				contained++
				if !off.c.Take(nil).Closed {
					t.Fatalf("probe %d: offending connection still open", n)
				}
				out, ok := off.c.NextOutput()
				reply, err := wire.Decode(out)
				if !ok || err != nil || reply.Type != wire.Error || reply.ReqID != 99 || string(reply.Payload) != "EIO\x00" {
					t.Fatalf("probe %d: reply %+v (%v), want EIO for request 99", n, reply, err)
				}
				if _, more := off.c.NextOutput(); more {
					t.Fatalf("probe %d: more than the error reply queued", n)
				}
				if got := fullDump(s.e); got != want {
					t.Fatalf("probe %d: store differs from the store with the connection closed:\n got: %s\nwant: %s", n, got, want)
				}
				checkConsistent(t, s.e)
				if !strings.Contains(logged.String(), "undone, connection closed") || !strings.Contains(logged.String(), "injected failure") {
					t.Fatalf("probe %d: log %s", n, logged.String())
				}
				if rep := s.watcher.must(wire.Control, 0, "memreport"); !strings.Contains(rep, "internal errors contained: 1 ") {
					t.Fatalf("probe %d: memreport %q", n, rep)
				}
				// The others are served on.
				s.watcher.must(wire.Read, 0, "/a/b/d")
			}
			if contained == 0 {
				t.Fatal("no injected panic was contained")
			}
			t.Logf("%d probes contained, %d past a commit point", contained, escaped)
		})
	}
}
