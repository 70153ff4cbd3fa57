package store

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// buildBusyStore makes a store with something of everything State holds:
// nodes in several homes, permissions with an ignored entry, per-domain
// quotas and features, a target, watches (relative, with depth) with
// queued events, an open transaction and a reply not yet taken.
func buildBusyStore(t *testing.T) (*Engine, *tconn, *tconn) {
	e := newTestEngine(t, nil)
	d0 := dom0(t, e)
	for _, id := range []string{"3", "4"} {
		d0.must(wire.Introduce, 0, id, "0", "5")
		d0.must(wire.Mkdir, 0, "/local/domain/"+id)
		d0.must(wire.SetPerms, 0, "/local/domain/"+id, "n"+id)
	}
	d0.must(wire.SetQuota, 0, "3", "nodes", "77")
	d0.must(wire.SetTarget, 0, "4", "3")
	g := guest(t, e, 3)
	for i := 0; i < 5; i++ {
		g.must(wire.Write, 0, "/local/domain/3/k"+strconv.Itoa(i), "v"+strconv.Itoa(i))
	}
	g.must(wire.SetPerms, 0, "/local/domain/3/k1", "n3", "r4", "r9")
	g.must(wire.Watch, 0, "k0", "rel")
	g.must(wire.Watch, 0, "/local/domain/3", "deep", "1")
	g.takeEvents()
	d0.must(wire.Watch, 0, "@releaseDomain", "rd")
	tx := g.must(wire.TransactionStart, 0, "")
	g.must(wire.Write, uint32(atoi(tx[:len(tx)-1])), "/local/domain/3/intx", "x")
	// Events queued but not taken: write as dom0 without draining g.
	d0.must(wire.Write, 0, "/local/domain/3/k0", "changed")
	return e, d0, g
}

// TestStateRoundTrip: export, restore, export again gives the same state,
// and the restored store passes its own consistency check.
func TestStateRoundTrip(t *testing.T) {
	e, _, _ := buildBusyStore(t)
	st := e.Export()
	if len(st.Nodes) < 10 || len(st.Conns) != 2 || len(st.Domains) < 3 {
		t.Fatalf("export looks short: %d nodes, %d conns, %d domains", len(st.Nodes), len(st.Conns), len(st.Domains))
	}
	r, err := Restore(Config{Logger: quietLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	st2 := r.Export()
	// Transactions open at export come back as aborted ones.
	if !reflect.DeepEqual(st, st2) {
		for i := range st.Conns {
			if !reflect.DeepEqual(st.Conns[i], st2.Conns[i]) {
				t.Errorf("conn %d: %+v\nrestored: %+v", i, st.Conns[i], st2.Conns[i])
			}
		}
		if !reflect.DeepEqual(st.Nodes, st2.Nodes) {
			t.Errorf("nodes differ:\n%+v\n%+v", st.Nodes, st2.Nodes)
		}
		if !reflect.DeepEqual(st.Domains, st2.Domains) {
			t.Errorf("domains differ:\n%+v\n%+v", st.Domains, st2.Domains)
		}
		if st.Quotas != st2.Quotas {
			t.Errorf("quotas differ")
		}
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestStateRestoredBehaviour: after a restore, the clients carry on: queued
// events arrive, watches fire (relative, with depth), quotas and
// permissions hold, the open transaction answers EAGAIN, and the pending
// live-update request is answered OK.
func TestStateRestoredBehaviour(t *testing.T) {
	e, d0, g := buildBusyStore(t)
	st := e.Export()
	st.Reply = &PendingReply{Conn: d0.c.ID(), ReqID: 99}
	var txID uint32
	for _, cs := range st.Conns {
		if cs.ID == g.c.ID() && len(cs.AbortedTxns) == 1 {
			txID = cs.AbortedTxns[0]
		}
	}
	if txID == 0 {
		t.Fatal("open transaction not exported")
	}
	r, err := Restore(Config{Logger: quietLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	nd0 := &tconn{t: t, c: r.ConnByID(d0.c.ID())}
	ng := &tconn{t: t, c: r.ConnByID(g.c.ID())}
	if nd0.c == nil || ng.c == nil {
		t.Fatal("connections not restored")
	}
	// dom0's pending reply, then nothing else.
	b, ok := nd0.c.NextOutput()
	m, _ := wire.Decode(b)
	if !ok || m.Type != wire.Control || m.ReqID != 99 || string(m.Payload) != "OK\x00" {
		t.Fatalf("pending reply: %v %+v", ok, m)
	}
	// The guest's queued event survived, then its watches fire again.
	if ev := ng.drainEvents(); !reflect.DeepEqual(ev, []string{"k0 rel", "/local/domain/3/k0 deep"}) {
		t.Fatalf("queued events after restore: %q", ev)
	}
	nd0.must(wire.Write, 0, "/local/domain/3/k0", "again")
	nd0.must(wire.Write, 0, "/local/domain/3/sub/deeper", "x") // below the depth: no event
	if ev := ng.drainEvents(); !reflect.DeepEqual(ev, []string{"k0 rel", "/local/domain/3/k0 deep"}) {
		t.Fatalf("events after restore: %q", ev)
	}
	ng.fails("EAGAIN", wire.Write, txID, "/local/domain/3/intx", "y")
	ng.fails("EAGAIN", wire.TransactionEnd, txID, "T")
	ng.fails("ENOENT", wire.TransactionEnd, txID, "T")
	if got := nd0.must(wire.GetQuota, 0, "3", "nodes"); got != "77\x00" {
		t.Fatalf("domain quota after restore: %q", got)
	}
	other := guest(t, r, 4)
	if got := other.read("/local/domain/3/k1"); got != "v1\x00" {
		t.Fatalf("granted read after restore: %q", got)
	}
	if got := other.must(wire.Write, 0, "/local/domain/3/k2", "by-target"); got != "OK\x00" {
		t.Fatalf("target's write after restore: %q", got)
	}
}

// TestRestoreRejects: a state that cannot be a store is refused, never
// half-applied.
func TestRestoreRejects(t *testing.T) {
	e, _, _ := buildBusyStore(t)
	tests := []struct {
		name string
		mod  func(*State)
	}{
		{"child before parent", func(s *State) { s.Nodes[1], s.Nodes[len(s.Nodes)-3] = s.Nodes[len(s.Nodes)-3], s.Nodes[1] }},
		{"no root", func(s *State) { s.Nodes = s.Nodes[len(s.Nodes)-2:] }},
		{"node twice", func(s *State) { s.Nodes = append(s.Nodes, s.Nodes[3]) }},
		{"node without perms", func(s *State) { s.Nodes[2].Perms = nil }},
		{"connection id twice", func(s *State) { s.Conns = append(s.Conns, s.Conns[0]) }},
		{"ring of a domain not introduced", func(s *State) { s.Conns = append(s.Conns, ConnState{ID: 50, Domid: 9, Ring: true}) }},
		{"garbage output", func(s *State) { s.Conns[0].Output = append(s.Conns[0].Output, []byte("junk")) }},
		{"reply to nobody", func(s *State) { s.Reply = &PendingReply{Conn: 1234} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := e.Export()
			tt.mod(st)
			if _, err := Restore(Config{Logger: quietLogger()}, st); err == nil {
				t.Fatal("restored")
			}
		})
	}
}
