package handover

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/migration"
	"github.com/xsstub/xenstored/wire"
)

func call(t *testing.T, c *store.Conn, typ wire.Type, tx uint32, args ...string) string {
	t.Helper()
	c.Handle(wire.Msg{Type: typ, ReqID: 1, TxID: tx, Payload: wire.JoinStrings(args...)})
	var reply string
	for {
		b, ok := c.NextOutput()
		if !ok {
			return reply
		}
		m, _ := wire.Decode(b)
		if m.Type != wire.WatchEvent {
			reply = string(m.Payload)
		}
	}
}

// TestHandoverRoundTrip: a store's state and the socket transport's bytes
// go through the migration stream and come back the same, connections
// renumbered from 1 as C xenstored numbers them.
func TestHandoverRoundTrip(t *testing.T) {
	e := store.New(store.Config{})
	d0 := e.NewConn(0, true, nil)
	call(t, d0, wire.Introduce, 0, "5", "0", "9") // no Xen: introduced, no ring
	call(t, d0, wire.Write, 0, "/local/domain/5/a", "1")
	call(t, d0, wire.SetPerms, 0, "/local/domain/5/a", "n5", "r0", "b7")
	call(t, d0, wire.SetQuota, 0, "5", "watches", "11")
	call(t, d0, wire.SetTarget, 0, "5", "3")
	call(t, d0, wire.Watch, 0, "/local/domain/5", "deep", "2")
	call(t, d0, wire.Watch, 0, "@releaseDomain", "rel")
	tx := call(t, d0, wire.TransactionStart, 0, "")
	_ = tx
	other := e.NewConn(0, true, nil)
	call(t, other, wire.Watch, 0, "/local", "w")
	call(t, d0, wire.Write, 0, "/local/x", "y") // an event queued for other
	st := e.Export()
	st.Reply = &store.PendingReply{Conn: d0.ID(), ReqID: 9}
	h := &Transports{ListenFD: 3, EvtchnFD: -1, Sockets: map[uint64]Conn{
		d0.ID():    {FD: 4, In: []byte("partial request"), Out: []byte("rest of a reply"), Partial: 15},
		other.ID(): {FD: 5},
	}}
	var buf bytes.Buffer
	if err := Encode(&buf, st, h); err != nil {
		t.Fatal(err)
	}
	got, gh, err := Decode(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Nodes, st.Nodes) {
		t.Errorf("nodes:\n%+v\n%+v", got.Nodes, st.Nodes)
	}
	if got.Quotas != st.Quotas {
		t.Errorf("global quotas differ")
	}
	byID := map[uint32]store.DomainState{}
	for _, d := range got.Domains {
		byID[d.ID] = d
	}
	for _, want := range st.Domains {
		g := byID[want.ID]
		if g.Introduced != want.Introduced || g.Features != want.Features || g.Quotas != want.Quotas ||
			g.HasTarget != want.HasTarget || g.Target != want.Target {
			t.Errorf("domain %d: %+v, want %+v", want.ID, g, want)
		}
	}
	// Sockets are numbered after the domains (C's order: dom0 first).
	if len(got.Conns) != 2 || got.Conns[0].ID != 3 || got.Conns[1].ID != 4 {
		t.Fatalf("connections %+v", got.Conns)
	}
	c0 := got.Conns[0]
	if !reflect.DeepEqual(c0.Watches, st.Conns[0].Watches) || !reflect.DeepEqual(c0.AbortedTxns, st.Conns[0].AbortedTxns) {
		t.Errorf("conn 1: %+v\nwant %+v", c0, st.Conns[0])
	}
	if n := len(c0.Output); n != len(st.Conns[0].Output)+1 {
		t.Errorf("conn 1 carries %d messages, want the queue plus the live-update reply", n)
	}
	if !reflect.DeepEqual(got.Conns[1].Output, st.Conns[1].Output) {
		t.Errorf("conn 2 output differs")
	}
	if gh.ListenFD != 3 || gh.Sockets[3].FD != 4 || string(gh.Sockets[3].In) != "partial request" ||
		string(gh.Sockets[3].Out) != "rest of a reply" || gh.Sockets[4].FD != 5 {
		t.Errorf("handover %+v", gh)
	}
	r, err := store.Restore(store.Config{}, got)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestHandoverUnsentReplies: a socket transport holding far more than
// out-resp-len's 64 KiB of unwritten replies (the rest of one, then whole
// ones) hands them over in order: the rest to the transport, the whole
// ones to the engine's queue, ahead of what the engine queued itself.
func TestHandoverUnsentReplies(t *testing.T) {
	e := store.New(store.Config{})
	c := e.NewConn(0, true, nil)
	reply := wire.Msg{Type: wire.Read, Payload: bytes.Repeat([]byte("v"), 4000)}
	const rest = 100
	out := reply.Encode()[wire.HeaderSize+4000-rest:]
	var whole [][]byte
	for i := range 300 {
		reply.ReqID = uint32(i)
		whole = append(whole, reply.Encode())
		out = append(out, whole[i]...)
	}
	st := e.Export()
	ev := wire.Msg{Type: wire.WatchEvent, Payload: []byte("/w\x00tok\x00")}
	st.Conns[0].Output = [][]byte{ev.Encode()}
	for _, tt := range []struct {
		name    string
		partial int
		wantErr bool
	}{
		{"rest of a reply, then whole ones", rest, false},
		{"whole ones only", 0, true}, // out does not start with a header
		{"more than out-resp-len holds", 70000, true},
		{"more than out", len(out) + 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &Transports{ListenFD: 3, EvtchnFD: -1, Sockets: map[uint64]Conn{c.ID(): {FD: 4, Out: out, Partial: tt.partial}}}
			var buf bytes.Buffer
			err := Encode(&buf, st, h)
			if err == nil {
				err = Check(bytes.NewReader(buf.Bytes()))
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("encode and check: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, gh, err := Decode(&buf, 0)
			if err != nil {
				t.Fatal(err)
			}
			if s := gh.Sockets[got.Conns[0].ID]; len(s.Out) != rest || s.Partial != rest {
				t.Errorf("transport gets %d bytes (partial %d), want the rest of one reply, %d", len(s.Out), s.Partial, rest)
			}
			want := append(whole, ev.Encode())
			if !reflect.DeepEqual(got.Conns[0].Output, want) {
				t.Errorf("engine queue: %d messages, want the %d whole replies then the engine's", len(got.Conns[0].Output), len(whole))
			}
		})
	}
}

// TestHandoverQuotaRange: a quota the stream's 32 bits cannot carry stops
// the encoding (it would come back as another value); the largest one
// clients may set comes back whole.
func TestHandoverQuotaRange(t *testing.T) {
	for _, tt := range []struct {
		name    string
		global  int
		domain  int
		wantErr bool
	}{
		{"largest settable", store.MaxQuota, store.MaxQuota, false},
		{"global 2^32+1", 1<<32 + 1, 10, true},
		{"domain 2^32+1", 10, 1<<32 + 1, true},
		{"negative", -1, 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := store.New(store.Config{})
			call(t, e.NewConn(0, true, nil), wire.Introduce, 0, "5", "0", "9")
			st := e.Export()
			st.Quotas.Hard[store.QNodes] = tt.global
			for i := range st.Domains {
				st.Domains[i].Quotas.Hard[store.QNodes] = tt.domain
			}
			h := NewTransports()
			var buf bytes.Buffer
			err := Encode(&buf, st, h)
			if (err != nil) != tt.wantErr {
				t.Fatalf("encode: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, _, err := Decode(&buf, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.Quotas.Hard[store.QNodes] != tt.global {
				t.Errorf("global nodes %d, want %d", got.Quotas.Hard[store.QNodes], tt.global)
			}
			for _, d := range got.Domains {
				if d.Quotas.Hard[store.QNodes] != tt.domain {
					t.Errorf("domain %d nodes %d, want %d", d.ID, d.Quotas.Hard[store.QNodes], tt.domain)
				}
			}
		})
	}
}

// TestForeignQuotas: another writer's quotas we cannot keep as they are
// (C keeps unsigned 32 bits; a newer daemon may name more) are kept as
// the largest value, or skipped, and each is told, never lost silently.
func TestForeignQuotas(t *testing.T) {
	var buf bytes.Buffer
	w, err := migration.NewWriter(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []migration.Record{
		&migration.Global{SocketFD: -1, EvtchnFD: -1},
		&migration.GlobalQuota{PerDomain: []migration.Quota{{Name: "nodes", Value: 0xFFFFFFFF}, {Name: "future", Value: 3}}},
		&migration.Node{Path: "/", Perms: []migration.Perm{{Perm: 'n'}}},
		&migration.Domain{DomID: 5, Quotas: []migration.Quota{{Name: "nodes", Value: 1 << 31}}},
	} {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var warned []string
	st, _, err := DecodeWith(&buf, DecodeOptions{Warn: func(msg string, args ...any) { warned = append(warned, fmt.Sprint(msg, args)) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Quotas.Hard[store.QNodes]; got != store.MaxQuota {
		t.Errorf("global nodes %d, want %d", got, store.MaxQuota)
	}
	if len(st.Domains) != 1 || st.Domains[0].Quotas.Hard[store.QNodes] != store.MaxQuota {
		t.Errorf("domain quotas %+v, want nodes %d", st.Domains, store.MaxQuota)
	}
	if len(warned) != 3 {
		t.Errorf("warnings %q, want one per quota not kept as it was (3)", warned)
	}
}
