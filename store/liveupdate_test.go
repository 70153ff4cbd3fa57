package store

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// fakeUpdater records what live update asks of the daemon.
type fakeUpdater struct {
	badBinary error
	execErr   error
	execs     []fakeExec
	image     *imageBuf
}

// imageBuf is an image held in memory; closed tells it was dropped.
type imageBuf struct {
	bytes.Buffer
	closed bool
}

func (b *imageBuf) Close() error { b.closed = true; return nil }

type fakeExec struct {
	st              *State
	binary, cmdline string
	image           []byte
}

func (f *fakeUpdater) CheckBinary(path string) error { return f.badBinary }

func (f *fakeUpdater) NewImage(size int) (io.WriteCloser, error) {
	f.image = &imageBuf{}
	return f.image, nil
}

func (f *fakeUpdater) Exec(st *State, binary string, cmdline string) error {
	var image []byte
	if binary == "" && f.image != nil {
		image = bytes.Clone(f.image.Bytes())
	}
	f.execs = append(f.execs, fakeExec{st, binary, cmdline, image})
	if f.execErr != nil {
		return f.execErr
	}
	return errors.New("fake: exec does not replace the test")
}

func luEngine(t *testing.T, clock *time.Time) (*Engine, *fakeUpdater) {
	f := &fakeUpdater{}
	e := newTestEngine(t, func(c *Config) {
		c.LiveUpdate = f
		c.Now = func() time.Time { return *clock }
	})
	return e, f
}

func lu(tc *tconn, args ...string) string {
	tc.t.Helper()
	return strings.TrimRight(tc.must(wire.Control, 0, append([]string{"live-update"}, args...)...), "\x00")
}

func TestLiveUpdateProtocol(t *testing.T) {
	now := time.Unix(1000, 0)
	e, f := luEngine(t, &now)
	d0, other := dom0(t, e), dom0(t, e)
	if got := lu(d0, "-c", "x"); got != "Not in live-update session." {
		t.Fatalf("-c without session: %q", got)
	}
	f.badBinary = errors.New("File not executable.")
	if got := lu(d0, "-f", "/bin/nope"); got != "File not executable." {
		t.Fatalf("-f bad: %q", got)
	}
	f.badBinary = nil
	if got := lu(d0, "-f", "/usr/sbin/new"); got != "OK" {
		t.Fatalf("-f: %q", got)
	}
	if got := lu(other, "-f", "/usr/sbin/new"); got != "live-update session already active." {
		t.Fatalf("second session: %q", got)
	}
	if got := lu(other, "-s"); got != "Not in live-update session." {
		t.Fatalf("-s from another connection: %q", got)
	}
	if got := lu(d0, "-c", "-N --verbose"); got != "OK" {
		t.Fatalf("-c: %q", got)
	}
	// -s: the exec is tried at once (no transaction open); it fails here,
	// so the request is answered with the reason and the session ends.
	d0.c.Handle(wire.Msg{Type: wire.Control, ReqID: 42, Payload: wire.JoinStrings("live-update", "-s", "-t", "5")})
	if len(f.execs) != 1 || f.execs[0].binary != "/usr/sbin/new" || f.execs[0].cmdline != "-N --verbose" {
		t.Fatalf("execs %+v", f.execs)
	}
	if r := f.execs[0].st.Reply; r == nil || r.Conn != d0.c.ID() || r.ReqID != 42 {
		t.Fatalf("state's pending reply %+v", r)
	}
	b, _ := d0.c.NextOutput()
	m, _ := wire.Decode(b)
	if m.ReqID != 42 || !strings.HasPrefix(string(m.Payload), "Error activating new binary") {
		t.Fatalf("answer to a failed exec: %+v %q", m, m.Payload)
	}
	if got := lu(other, "-f", "/usr/sbin/new"); got != "OK" {
		t.Fatalf("a new session after the failure: %q", got)
	}
	if got := lu(other, "-a"); got != "OK" {
		t.Fatalf("-a: %q", got)
	}
	if got := lu(other, "-a"); got != "No live-update session active." {
		t.Fatalf("-a twice: %q", got)
	}
}

// TestLiveUpdateWaitsForTransactions: -s waits (no answer, no more input
// from that connection) while a transaction is open; it goes ahead when
// it ends; with -F after the timeout it aborts the old ones; without -F
// it answers why.
func TestLiveUpdateWaitsForTransactions(t *testing.T) {
	for _, tt := range []struct {
		name      string
		force     bool
		endTx     bool
		wantExec  bool
		wantReply string
	}{
		{"transaction ends", false, true, true, "Error activating"},
		{"timeout, no force", false, false, false, "Domains with long running transactions:\nDomain 0: 10 s"},
		{"timeout, force", true, false, true, "Error activating"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			e, f := luEngine(t, &now)
			d0, busy := dom0(t, e), dom0(t, e)
			tx := busy.must(wire.TransactionStart, 0, "")
			lu(d0, "-f", "/new")
			args := []string{"live-update", "-s", "-t", "10"}
			if tt.force {
				args = append(args, "-F")
			}
			d0.c.Handle(wire.Msg{Type: wire.Control, ReqID: 5, Payload: wire.JoinStrings(args...)})
			if len(f.execs) != 0 || d0.c.PendingOutput() != 0 || d0.c.WantsInput() {
				t.Fatalf("did not wait: execs %d, output %d, input %v", len(f.execs), d0.c.PendingOutput(), d0.c.WantsInput())
			}
			if tt.endTx {
				busy.must(wire.TransactionEnd, atoiTx(tx), "T")
			} else {
				now = now.Add(10 * time.Second)
				e.mu.Lock()
				e.luTry() // what the retry timer does
				e.mu.Unlock()
			}
			if got := len(f.execs) == 1; got != tt.wantExec {
				t.Fatalf("exec = %v, want %v", got, tt.wantExec)
			}
			if tt.force {
				if cs := f.execs[0].st.Conns; len(cs) != 2 || len(cs[1].AbortedTxns) != 1 {
					t.Fatalf("the old transaction is not carried as aborted: %+v", cs)
				}
			}
			b, ok := d0.c.NextOutput()
			m, _ := wire.Decode(b)
			if !ok || m.ReqID != 5 || !strings.HasPrefix(string(m.Payload), tt.wantReply) {
				t.Fatalf("answer %v %q, want %q", ok, m.Payload, tt.wantReply)
			}
			if !d0.c.WantsInput() {
				t.Fatal("connection still stopped after the answer")
			}
		})
	}
}

func atoiTx(s string) uint32 { return uint32(atoi(strings.TrimRight(s, "\x00"))) }

// TestLiveUpdateImage: the stub's image comes in chunks that may hold
// NULs; too much data and a start before it is complete are refused.
func TestLiveUpdateImage(t *testing.T) {
	now := time.Unix(1000, 0)
	e, f := luEngine(t, &now)
	d0 := dom0(t, e)
	if got := lu(d0, "-b", "6"); got != "OK" {
		t.Fatalf("-b: %q", got)
	}
	chunk := func(data string) string {
		p := append(wire.JoinStrings("live-update", "-d", "3"), data...)
		return strings.TrimRight(string(d0.do(wire.Control, 0, p).Payload), "\x00")
	}
	if got := chunk("a\x00b"); got != "OK" {
		t.Fatalf("-d: %q", got)
	}
	if got := lu(d0, "-s"); got != "Kernel not complete." {
		t.Fatalf("-s early: %q", got)
	}
	chunk("c\x00d")
	if got := chunk("xyz"); got != "Too much kernel data." {
		t.Fatalf("-d too much: %q", got)
	}
	d0.c.Handle(wire.Msg{Type: wire.Control, ReqID: 1, Payload: wire.JoinStrings("live-update", "-s")})
	if len(f.execs) != 1 || string(f.execs[0].image) != "a\x00bc\x00d" {
		t.Fatalf("image %+v", f.execs)
	}
	if !f.image.closed {
		t.Fatal("the image of a failed update is not dropped")
	}
}

func TestLiveUpdateUnsupported(t *testing.T) {
	e := newTestEngine(t, nil)
	if got := lu(dom0(t, e), "-f", "/x"); got != "Live update is not possible here." {
		t.Fatalf("%q", got)
	}
}
