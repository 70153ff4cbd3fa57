package store

import (
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// tconn drives one engine connection in-process.
type tconn struct {
	t      testing.TB
	c      *Conn
	events []string // "path token", in arrival order
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEngine(t testing.TB, mod func(*Config)) *Engine {
	cfg := Config{Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func dom0(t testing.TB, e *Engine) *tconn { return &tconn{t: t, c: e.NewConn(0, true, nil)} }

func guest(t testing.TB, e *Engine, domid uint32) *tconn {
	return &tconn{t: t, c: e.NewConn(domid, false, nil)}
}

// do sends one request and returns its reply; events produced meanwhile are
// collected.
func (tc *tconn) do(typ wire.Type, tx uint32, payload []byte) wire.Msg {
	tc.t.Helper()
	tc.c.Handle(wire.Msg{Type: typ, ReqID: 7, TxID: tx, Payload: payload})
	var reply *wire.Msg
	for {
		b, ok := tc.c.NextOutput()
		if !ok {
			break
		}
		m, err := wire.Decode(b)
		if err != nil {
			tc.t.Fatalf("engine produced undecodable output: %v", err)
		}
		if m.Type == wire.WatchEvent {
			parts, _ := wire.SplitStrings(m.Payload)
			tc.events = append(tc.events, strings.Join(parts, " "))
			continue
		}
		if reply != nil {
			tc.t.Fatalf("two replies to one request: %v and %v", reply.Type, m.Type)
		}
		if m.ReqID != 7 || m.TxID != tx {
			tc.t.Fatalf("reply ids %d/%d, want 7/%d", m.ReqID, m.TxID, tx)
		}
		reply = &m
	}
	if reply == nil {
		tc.t.Fatalf("no reply to %v", typ)
	}
	return *reply
}

// call sends NUL-terminated args and returns the payload or the error name.
func (tc *tconn) call(typ wire.Type, tx uint32, args ...string) (string, string) {
	tc.t.Helper()
	m := tc.do(typ, tx, wire.JoinStrings(args...))
	if m.Type == wire.Error {
		return "", strings.TrimRight(string(m.Payload), "\x00")
	}
	if m.Type != typ {
		tc.t.Fatalf("reply type %v to %v", m.Type, typ)
	}
	return string(m.Payload), ""
}

// must fails the test unless the call succeeds.
func (tc *tconn) must(typ wire.Type, tx uint32, args ...string) string {
	tc.t.Helper()
	p, errName := tc.call(typ, tx, args...)
	if errName != "" {
		tc.t.Fatalf("%v %q: %s", typ, args, errName)
	}
	return p
}

// fails asserts the call gives error name want.
func (tc *tconn) fails(want string, typ wire.Type, tx uint32, args ...string) {
	tc.t.Helper()
	p, errName := tc.call(typ, tx, args...)
	if errName != want {
		tc.t.Fatalf("%v %q: got %q / %q, want error %s", typ, args, p, errName, want)
	}
}

func (tc *tconn) write(path, value string) {
	tc.t.Helper()
	m := tc.do(wire.Write, 0, append(append([]byte(path), 0), value...))
	if m.Type != wire.Write {
		tc.t.Fatalf("write %s: %s", path, m.Payload)
	}
}

func (tc *tconn) writeErr(path, value string) string {
	tc.t.Helper()
	m := tc.do(wire.Write, 0, append(append([]byte(path), 0), value...))
	if m.Type == wire.Error {
		return strings.TrimRight(string(m.Payload), "\x00")
	}
	return ""
}

func (tc *tconn) read(path string) string {
	tc.t.Helper()
	return tc.must(wire.Read, 0, path)
}

func (tc *tconn) takeEvents() []string {
	ev := tc.events
	tc.events = nil
	return ev
}

// drainEvents collects events queued outside a request.
func (tc *tconn) drainEvents() []string {
	for {
		b, ok := tc.c.NextOutput()
		if !ok {
			break
		}
		m, _ := wire.Decode(b)
		parts, _ := wire.SplitStrings(m.Payload)
		tc.events = append(tc.events, strings.Join(parts, " "))
	}
	return tc.takeEvents()
}

func checkConsistent(t testing.TB, e *Engine) {
	t.Helper()
	if err := e.Check(); err != nil {
		t.Fatal(err)
	}
}

func list(s string) []string {
	parts, _ := wire.SplitStrings([]byte(s))
	return parts
}

var _ = syscall.EINVAL
