package store

import (
	"fmt"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// collect is an into for HandleTake and Take that accepts up to max
// messages (max < 0: all) and decodes them.
type collect struct {
	t    *testing.T
	max  int
	msgs []wire.Msg
}

func (c *collect) into(b []byte) bool {
	m, err := wire.Decode(b)
	if err != nil {
		c.t.Fatalf("engine produced undecodable output: %v", err)
	}
	c.msgs = append(c.msgs, m)
	return c.max < 0 || len(c.msgs) < c.max
}

// HandleTake and Take give a transport, in one call, the request's reply,
// what was queued before it, and the connection's state; the connection's
// own wake-ups during the call are not signalled (the Status carries
// them), others' are.
func TestHandleTake(t *testing.T) {
	read := wire.Msg{Type: wire.Read, ReqID: 9, Payload: wire.JoinStrings("/tool")}
	tests := []struct {
		name      string
		max       int // into accepts this many messages, -1: all
		queued    int // replies queued by Handle before the call
		outstand  int // QMaxOutstanding
		wantMsgs  int
		wantQueue int
		wantInput bool
	}{
		{"the reply alone", -1, 0, 0, 1, 0, true},
		{"earlier replies first", -1, 2, 0, 3, 0, true},
		{"into stops after one", 1, 2, 0, 1, 2, true},
		{"into takes nothing: the reply stays queued", 0, 0, 0, 0, 1, true},
		{"outstanding bound reached, nothing taken", 0, 2, 3, 0, 3, false},
		{"outstanding bound reached, taking resumes input", -1, 2, 3, 3, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := DefaultQuotas()
			q.Hard[QMaxOutstanding] = tt.outstand
			e := newTestEngine(t, func(c *Config) { c.Quotas = &q })
			wakes := 0
			c := e.NewConn(0, true, func() { wakes++ })
			for i := range tt.queued {
				c.Handle(wire.Msg{Type: wire.Read, ReqID: uint32(i + 1), Payload: wire.JoinStrings("/tool")})
			}
			wakes = 0
			got := &collect{t: t, max: tt.max}
			into := got.into
			if tt.max == 0 {
				into = nil
			}
			st := c.HandleTake(read, into)
			if len(got.msgs) != tt.wantMsgs || st.Queued != tt.wantQueue || st.WantsInput != tt.wantInput || st.Closed {
				t.Fatalf("took %d, status %+v; want %d taken, %d queued, input %v", len(got.msgs), st, tt.wantMsgs, tt.wantQueue, tt.wantInput)
			}
			for i, m := range got.msgs {
				if want := uint32(i + 1); i < tt.queued && m.ReqID != want {
					t.Errorf("message %d has req %d, want %d: order lost", i, m.ReqID, want)
				}
			}
			if wakes != 0 {
				t.Errorf("%d wake-ups for the connection's own call", wakes)
			}
			if st.Queued != c.PendingOutput() || st.WantsInput != c.WantsInput() {
				t.Errorf("status %+v disagrees with PendingOutput %d, WantsInput %v", st, c.PendingOutput(), c.WantsInput())
			}
			rest := &collect{t: t, max: -1}
			if st := c.Take(rest.into); st.Queued != 0 || !st.WantsInput || len(rest.msgs) != tt.wantQueue {
				t.Errorf("Take after: took %d, status %+v", len(rest.msgs), st)
			}
			if wakes != 0 {
				t.Errorf("%d wake-ups for the connection's own Take", wakes)
			}
		})
	}
}

// A wake-up that another connection's request causes (a watch firing)
// still reaches the transport, and so does one for a connection whose
// events the call's connection takes (its parked writer resumes).
func TestHandleTakeSignalsOthers(t *testing.T) {
	q := DefaultQuotas()
	q.Hard[QMaxWatchEvents] = 1
	e := newTestEngine(t, func(c *Config) { c.Quotas = &q })
	watcherWakes, writerWakes := 0, 0
	watcher := e.NewConn(0, true, func() { watcherWakes++ })
	writer := e.NewConn(0, true, func() { writerWakes++ })
	all := &collect{t: t, max: -1}
	watcher.HandleTake(wire.Msg{Type: wire.Watch, ReqID: 1, Payload: wire.JoinStrings("/w", "tok")}, all.into)
	all.msgs = nil
	watcherWakes = 0
	write := func(id uint32) Status {
		return writer.HandleTake(wire.Msg{Type: wire.Write, ReqID: id, Payload: []byte(fmt.Sprintf("/w/%d\x00v", id))}, all.into) // distinct: identical events merge
	}
	write(1) // one event queued: the watch is full
	if watcherWakes == 0 {
		t.Fatal("the watcher was not woken for an event another connection caused")
	}
	if st := write(2); st.WantsInput {
		t.Fatalf("writer status %+v: its second event should be parked", st)
	}
	writerWakes = 0
	mine := &collect{t: t, max: -1}
	if st := watcher.Take(mine.into); st.Queued != 0 {
		t.Fatalf("watcher status %+v", st)
	}
	if writerWakes == 0 {
		t.Fatal("the parked writer was not woken when the watcher read")
	}
}
