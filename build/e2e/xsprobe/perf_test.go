package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

func TestPipelineGot(t *testing.T) {
	rd := expect{wire.Read, []byte(perfValue)}
	type reply struct {
		h wire.Header
		p string
	}
	tests := []struct {
		name       string
		inflight   []uint32 // req_ids sent (all READs)
		replies    []reply
		ops, errs  int
		left       int
		firstError string
	}{
		{"in order", []uint32{1, 2}, []reply{
			{wire.Header{Type: wire.Read, ReqID: 1}, perfValue},
			{wire.Header{Type: wire.Read, ReqID: 2}, perfValue},
		}, 2, 0, 0, ""},
		{"out of order is fine", []uint32{1, 2}, []reply{
			{wire.Header{Type: wire.Read, ReqID: 2}, perfValue},
			{wire.Header{Type: wire.Read, ReqID: 1}, perfValue},
		}, 2, 0, 0, ""},
		{"watch event skipped", []uint32{1}, []reply{
			{wire.Header{Type: wire.WatchEvent, ReqID: 0}, "a\x00b\x00"},
			{wire.Header{Type: wire.Read, ReqID: 1}, perfValue},
		}, 1, 0, 0, ""},
		{"error reply", []uint32{1, 2}, []reply{
			{wire.Header{Type: wire.Error, ReqID: 1}, "EACCES\x00"},
			{wire.Header{Type: wire.Read, ReqID: 2}, perfValue},
		}, 1, 1, 0, "ERROR EACCES"},
		{"wrong type", []uint32{1}, []reply{
			{wire.Header{Type: wire.Write, ReqID: 1}, "OK\x00"},
		}, 0, 1, 0, "reply type WRITE to READ"},
		{"wrong payload", []uint32{1}, []reply{
			{wire.Header{Type: wire.Read, ReqID: 1}, "other"},
		}, 0, 1, 0, `READ reply payload "other"`},
		{"unknown req_id", []uint32{1}, []reply{
			{wire.Header{Type: wire.Read, ReqID: 7}, perfValue},
		}, 0, 1, 1, "reply with req_id 7 not in flight"},
		{"answered twice", []uint32{1}, []reply{
			{wire.Header{Type: wire.Read, ReqID: 1}, perfValue},
			{wire.Header{Type: wire.Read, ReqID: 1}, perfValue},
		}, 1, 1, 0, "reply with req_id 1 not in flight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline()
			for _, id := range tc.inflight {
				p.sent(id, rd)
			}
			for _, r := range tc.replies {
				p.got(r.h, []byte(r.p))
			}
			if p.res.Ops != tc.ops || p.res.Errors != tc.errs || len(p.inflight) != tc.left {
				t.Errorf("ops=%d errors=%d left=%d, want %d %d %d", p.res.Ops, p.res.Errors, len(p.inflight), tc.ops, tc.errs, tc.left)
			}
			if !strings.HasPrefix(p.res.FirstErr, tc.firstError) || (tc.firstError == "") != (p.res.FirstErr == "") {
				t.Errorf("first error %q, want prefix %q", p.res.FirstErr, tc.firstError)
			}
		})
	}
}

// fakeDev is a device that answers the requests written to it only when
// the client reads and has nothing left to read: it sees how many requests
// were in flight at once.
type fakeDev struct {
	pending  []wire.Msg
	out      bytes.Buffer
	maxFly   int
	requests int
	answer   func(wire.Msg) wire.Msg
}

func (f *fakeDev) Write(b []byte) (int, error) {
	m, err := wire.Decode(b) // exactly one message per write, or an error
	if err != nil {
		return 0, err
	}
	f.pending = append(f.pending, m)
	f.requests++
	return len(b), nil
}

func (f *fakeDev) Read(b []byte) (int, error) {
	if f.out.Len() == 0 {
		if len(f.pending) == 0 {
			return 0, io.EOF // the client would block forever
		}
		if len(f.pending) > f.maxFly {
			f.maxFly = len(f.pending)
		}
		for _, m := range f.pending {
			r := f.answer(m)
			f.out.Write(r.Encode())
		}
		f.pending = nil
	}
	return f.out.Read(b)
}

func TestRunPerf(t *testing.T) {
	store := func(m wire.Msg) wire.Msg {
		switch m.Type {
		case wire.Read:
			return wire.Msg{Type: wire.Read, ReqID: m.ReqID, Payload: []byte(perfValue)}
		case wire.Write:
			if !bytes.Equal(m.Payload, []byte("p\x00"+perfValue)) {
				return wire.Msg{Type: wire.Error, ReqID: m.ReqID, Payload: []byte("EINVAL\x00")}
			}
			return wire.Msg{Type: wire.Write, ReqID: m.ReqID, Payload: []byte("OK\x00")}
		}
		return wire.Msg{Type: wire.Error, ReqID: m.ReqID, Payload: []byte("ENOSYS\x00")}
	}
	refuse := func(m wire.Msg) wire.Msg {
		return wire.Msg{Type: wire.Error, ReqID: m.ReqID, Payload: []byte("EACCES\x00")}
	}
	wrongID := func(m wire.Msg) wire.Msg { r := store(m); r.ReqID += 1000; return r }
	tests := []struct {
		name    string
		kind    string
		depth   int
		d       time.Duration
		answer  func(wire.Msg) wire.Msg
		minOps  int
		errs    bool
		wantFly int
	}{
		// d = 0: exactly the first window is sent, then drained.
		{"read depth 1", "read", 1, 0, store, 1, false, 1},
		{"read depth 16", "read", 16, 0, store, 16, false, 16},
		{"write depth 16", "write", 16, 0, store, 16, false, 16},
		{"read depth 4 for a while", "read", 4, 20 * time.Millisecond, store, 4, false, 4},
		{"refused", "write", 4, 0, refuse, 0, true, 4},
		{"req_id mismatch", "read", 2, 0, wrongID, 0, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := perfOpFor(tc.kind, "p", 0)
			if err != nil {
				t.Fatal(err)
			}
			dev := &fakeDev{answer: tc.answer}
			var id uint32
			res := runPerf(dev, op, tc.d, tc.depth, func() uint32 { id++; return id })
			if (res.Errors > 0) != tc.errs {
				t.Errorf("errors=%d (%s), want errors: %v", res.Errors, res.FirstErr, tc.errs)
			}
			if !tc.errs && res.Ops != dev.requests {
				t.Errorf("ops=%d, but %d requests sent", res.Ops, dev.requests)
			}
			if res.Ops < tc.minOps || (tc.errs && res.Ops != 0) {
				t.Errorf("ops=%d, want at least %d", res.Ops, tc.minOps)
			}
			if dev.maxFly != tc.wantFly {
				t.Errorf("at most %d requests in flight, want %d", dev.maxFly, tc.wantFly)
			}
		})
	}
}

func TestPerfOpFor(t *testing.T) {
	op, err := perfOpFor("write", "data/p", 5)
	if err != nil {
		t.Fatal(err)
	}
	if op.msg.Type != wire.Write || op.msg.TxID != 5 || string(op.msg.Payload) != "data/p\x00"+perfValue || len(perfValue) != 16 {
		t.Errorf("write op %+v", op.msg)
	}
	op, _ = perfOpFor("read", "data/p", 0)
	if op.msg.Type != wire.Read || string(op.msg.Payload) != "data/p\x00" {
		t.Errorf("read op %+v", op.msg)
	}
	if _, err := perfOpFor("dir", "x", 0); err == nil {
		t.Error("kind dir accepted")
	}
}

func TestPerfResultString(t *testing.T) {
	r := perfResult{Ops: 500, Errors: 1, FirstErr: "ERROR E2BIG x", Elapsed: 2 * time.Second}
	if got, want := r.String(), "ops=500 secs=2.00 ops_per_s=250 errors=1 first_error=ERROR_E2BIG_x"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
