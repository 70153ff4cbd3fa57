package main

import (
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

func TestPollLoop(t *testing.T) {
	// answer builds a device whose READ of "name" gives values[i] for the
	// ith READ of it (the last one repeated), and of "stop" ENOENT until
	// stopAt READs of "name" were answered.
	answer := func(values []string, stopAt int) func(wire.Msg) wire.Msg {
		n := 0
		return func(m wire.Msg) wire.Msg {
			path := strings.TrimRight(string(m.Payload), "\x00")
			switch {
			case m.Type == wire.Read && path == "name":
				v := values[min(n, len(values)-1)]
				n++
				if v == "EACCES" {
					return wire.Msg{Type: wire.Error, ReqID: m.ReqID, Payload: []byte("EACCES\x00")}
				}
				return wire.Msg{Type: wire.Read, ReqID: m.ReqID, Payload: []byte(v)}
			case m.Type == wire.Read && path == "stop" && n >= stopAt:
				return wire.Msg{Type: wire.Read, ReqID: m.ReqID, Payload: []byte("1")}
			}
			return wire.Msg{Type: wire.Error, ReqID: m.ReqID, Payload: []byte("ENOENT\x00")}
		}
	}
	tests := []struct {
		name     string
		values   []string
		stopAt   int
		reads    int
		errors   int
		firstErr string
		stopped  bool
	}{
		{"steady, stopped", []string{"domud"}, 10, 10, 0, "", true},
		{"error reply counted", []string{"domud", "EACCES", "domud"}, 5, 4, 1, "ERROR EACCES", true},
		{"changed value counted", []string{"domud", "other", "domud"}, 5, 4, 1, `value "other", first read "domud"`, true},
		{"never stopped: deadline", []string{"domud"}, 1 << 30, -1, 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{f: &fakeDev{answer: answer(tc.values, tc.stopAt)}}
			s, err := pollLoop(c, "name", "stop", 0, time.Now().Add(50*time.Millisecond), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reads >= 0 && s.Reads != tc.reads {
				t.Errorf("reads=%d, want %d", s.Reads, tc.reads)
			}
			if tc.reads < 0 && s.Reads == 0 {
				t.Errorf("reads=0 until the deadline")
			}
			if s.Errors != tc.errors || s.FirstErr != tc.firstErr || s.Stopped != tc.stopped {
				t.Errorf("got %s, want errors=%d first_error=%q stopped=%v", s, tc.errors, tc.firstErr, tc.stopped)
			}
		})
	}
}

func TestPollLoopLost(t *testing.T) {
	// fakeDev reads EOF when nothing is pending: a reply that never comes.
	c := &conn{f: &fakeDev{answer: func(wire.Msg) wire.Msg { return wire.Msg{} }}}
	c.f.(*fakeDev).out.WriteString("x") // a torn header, then EOF
	if _, err := pollLoop(c, "name", "stop", 0, time.Now().Add(time.Second), nil); err == nil {
		t.Fatal("no error from a device that failed")
	}
}
