//go:build linux

package difftest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// luClient is a socket client for the live-update tests: requests answered
// in order, watch events kept apart.
type luClient struct {
	t      *testing.T
	c      *rawConn
	reqID  uint32
	events []string // "path token", in arrival order
}

func dialLU(t *testing.T, sock string) *luClient {
	t.Helper()
	c, err := dialRaw(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return &luClient{t: t, c: c}
}

// call sends a request and returns its reply's type and payload (NULs as
// "|"), keeping the watch events that come first.
func (l *luClient) call(typ wire.Type, tx uint32, args ...string) (wire.Type, string) {
	l.t.Helper()
	l.reqID++
	m := wire.Msg{Type: typ, ReqID: l.reqID, TxID: tx, Payload: []byte(strings.Join(args, "\x00") + "\x00")}
	if typ == wire.Write { // the value is not NUL-terminated
		m.Payload = m.Payload[:len(m.Payload)-1]
	}
	if err := l.c.send(m.Encode()); err != nil {
		l.t.Fatalf("%s: %v", typ, err)
	}
	for {
		r, ok, timedOut := l.c.next(10 * time.Second)
		if !ok || timedOut {
			l.t.Fatalf("%s %q: no reply (closed %v, timed out %v)", typ, args, !ok, timedOut)
		}
		if r.Type == wire.WatchEvent {
			l.events = append(l.events, strings.ReplaceAll(strings.TrimRight(string(r.Payload), "\x00"), "\x00", " "))
			continue
		}
		if r.ReqID != l.reqID {
			l.t.Fatalf("%s: reply to request %d, want %d", typ, r.ReqID, l.reqID)
		}
		return r.Type, strings.ReplaceAll(string(r.Payload), "\x00", "|")
	}
}

func (l *luClient) ok(typ wire.Type, tx uint32, args ...string) string {
	l.t.Helper()
	rt, p := l.call(typ, tx, args...)
	if rt == wire.Error {
		l.t.Fatalf("%s %q: %s", typ, args, p)
	}
	return p
}

// waitEvents waits until the client has n watch events.
func (l *luClient) waitEvents(n int) []string {
	l.t.Helper()
	for len(l.events) < n {
		m, ok, timedOut := l.c.next(10 * time.Second)
		if !ok || timedOut {
			l.t.Fatalf("%d watch events, want %d: %q", len(l.events), n, l.events)
		}
		if m.Type == wire.WatchEvent {
			l.events = append(l.events, strings.ReplaceAll(strings.TrimRight(string(m.Payload), "\x00"), "\x00", " "))
		}
	}
	return l.events
}

// dumpTree is every node under path with its value and permissions
// (the slow reader's many long ones left out).
func (l *luClient) dumpTree(path string) []string {
	l.t.Helper()
	if path == "/slow" {
		return nil
	}
	out := []string{path + "=" + l.ok(wire.Read, 0, path) + " " + l.ok(wire.GetPerms, 0, path)}
	kids := strings.TrimSuffix(l.ok(wire.Directory, 0, path), "|")
	if kids == "" {
		return out
	}
	for _, k := range strings.Split(kids, "|") {
		out = append(out, l.dumpTree(strings.TrimSuffix(path, "/")+"/"+k)...)
	}
	return out
}

// xenstoreControl is p's own xenstore-control: installed next to 4.17's
// xenstored, in usr/bin of 4.22's tree (with its libraries).
func xenstoreControl(t *testing.T, p *peer) (path string, env []string) {
	t.Helper()
	path = filepath.Join(filepath.Dir(p.bin), "xenstore-control")
	env = os.Environ()
	if p.libs != "" {
		path = filepath.Join(filepath.Dir(p.libs), "bin", "xenstore-control")
		env = append(env, "LD_LIBRARY_PATH="+p.libs)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no xenstore-control for %s: %v", p.name, err)
	}
	return path, env
}

// liveUpdate runs p's own xenstore-control against the daemon on sock.
func liveUpdate(t *testing.T, p *peer, sock string, args ...string) string {
	t.Helper()
	xc, env := xenstoreControl(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No answer is a lost reply: the OK travels in the stream.
	cmd := exec.CommandContext(ctx, xc, append([]string{"live-update"}, args...)...)
	cmd.Env = append(env, "XENSTORED_PATH="+sock)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xenstore-control live-update %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func exeOf(t *testing.T, d *daemon) string {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestLiveUpdateCRoundTrip: C xenstored (4.22, 4.17) serving on its socket hands
// over to ours by its own live update, and ours back to it, while clients
// hold watches (absolute, relative, special), a request sent in part,
// watch events the client has not read and an introduced domain. Each
// side must carry all of it: same process, same socket, same tree.
func TestLiveUpdateCRoundTrip(t *testing.T) { forPeers(t, testLiveUpdateRoundTrip) }

func testLiveUpdateRoundTrip(t *testing.T, p *peer) {
	goBin, err := filepath.Abs(theEnv.goBin)
	if err != nil {
		t.Fatal(err)
	}
	d, err := startC(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	defer func() {
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.log.String())
		}
	}()

	admin := dialLU(t, d.sock)
	admin.ok(wire.Write, 0, "/lu/a", "value a")
	admin.ok(wire.SetPerms, 0, "/lu/a", "n0", "r5", "w7")
	admin.ok(wire.Write, 0, "/local/domain/0/rel", "r")
	admin.ok(wire.Mkdir, 0, "/split")
	admin.ok(wire.Introduce, 0, "5", "1", "9")
	admin.ok(wire.Write, 0, "/local/domain/5/x", "in 5")
	admin.ok(wire.SetPerms, 0, "/local/domain/5", "n5", "r0")
	watcher := dialLU(t, d.sock)
	watcher.ok(wire.Watch, 0, "/lu", "tok-abs")
	watcher.ok(wire.Watch, 0, "rel", "tok-rel")
	watcher.ok(wire.Watch, 0, "@introduceDomain", "tok-intro")
	watcher.waitEvents(3) // each watch fires once when set
	watcher.events = nil
	slow := newSlowReader(t, d.sock, 1500)
	split := newSplitWriter(t, d.sock)
	before := admin.dumpTree("/")

	hops := []struct {
		name, bin string
	}{{p.name + " to ours", goBin}, {"ours to " + p.name, p.bin}}
	for i, hop := range hops {
		split.sendHead(fmt.Sprintf("/split/%d", i), "split value")
		slow.flood(admin, 200)
		liveUpdate(t, p, d.sock, "-f", hop.bin)
		if dead, out := d.dead(); dead {
			t.Fatalf("%s: the daemon died:\n%s", hop.name, out)
		}
		if exe := exeOf(t, d); exe != hop.bin {
			t.Fatalf("%s: the daemon runs %s", hop.name, exe)
		}
		split.sendTail()
		if got := admin.ok(wire.Read, 0, fmt.Sprintf("/split/%d", i)); got != "split value" {
			t.Errorf("%s: the request sent in part wrote %q", hop.name, got)
		}
		slow.check(hop.name)
		after := admin.dumpTree("/")
		want := append(slices.Clone(before), fmt.Sprintf("/split/%d=split value n0|", i))
		for j := range i {
			want = append(want, fmt.Sprintf("/split/%d=split value n0|", j))
		}
		if extra, missing := setDiff(after, want); len(extra)+len(missing) > 0 {
			t.Errorf("%s: tree differs: extra %q, missing %q", hop.name, extra, missing)
		}
		if got := admin.ok(wire.IsDomainIntroduced, 0, "5"); got != "T|" {
			t.Errorf("%s: domain 5 introduced: %q", hop.name, got)
		}
		watcher.events = nil
		admin.ok(wire.Write, 0, "/lu/w", "x")
		admin.ok(wire.Write, 0, "/local/domain/0/rel", "y")
		admin.ok(wire.Introduce, 0, "6", "1", "9")
		admin.ok(wire.Release, 0, "6")
		evs := watcher.waitEvents(3)
		if want := []string{"/lu/w tok-abs", "rel tok-rel", "@introduceDomain tok-intro"}; !slices.Equal(evs, want) {
			t.Errorf("%s: watch events %q, want %q", hop.name, evs, want)
		}
		before = admin.dumpTree("/")
	}
}

// setDiff is what got has that want has not, and the other way round.
func setDiff(got, want []string) (extra, missing []string) {
	in := func(s []string, x string) bool { return slices.Contains(s, x) }
	for _, g := range got {
		if !in(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !in(got, w) {
			missing = append(missing, w)
		}
	}
	return extra, missing
}

// slowReader watches a node and reads nothing until check: the daemon
// holds its events (in the kernel's buffer and its own queue) across the
// update. Long paths make the queue outgrow the socket buffer quickly.
type slowReader struct {
	t    *testing.T
	nc   net.Conn
	sent int // events the daemon owes
	got  int
	path string
}

func newSlowReader(t *testing.T, sock string, pathLen int) *slowReader {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	s := &slowReader{t: t, nc: nc, path: "/slow/" + strings.Repeat("p", pathLen)}
	s.request(wire.Watch, "/slow\x00tok-slow\x00")
	s.read(1) // WATCH's OK
	s.read(1) // the watch fires once when set
	return s
}

func (s *slowReader) request(typ wire.Type, payload string) {
	s.t.Helper()
	m := wire.Msg{Type: typ, ReqID: 1, Payload: []byte(payload)}
	if _, err := s.nc.Write(m.Encode()); err != nil {
		s.t.Fatal(err)
	}
}

// read reads n messages and returns their payloads.
func (s *slowReader) read(n int) []string {
	s.t.Helper()
	var out []string
	_ = s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range n {
		var h [wire.HeaderSize]byte
		if _, err := io.ReadFull(s.nc, h[:]); err != nil {
			s.t.Fatalf("slow reader: %d of %d messages: %v", len(out), n, err)
		}
		p := make([]byte, binary.LittleEndian.Uint32(h[12:]))
		if _, err := io.ReadFull(s.nc, p); err != nil {
			s.t.Fatalf("slow reader: %v", err)
		}
		out = append(out, string(p))
	}
	return out
}

// flood makes the daemon owe n events, each for a node of its own: C drops an event equal to one still queued.
func (s *slowReader) flood(admin *luClient, n int) {
	for i := range n {
		admin.ok(wire.Write, 0, fmt.Sprintf("%s/%d", s.path, s.sent+i), "v")
	}
	s.sent += n
}

// check reads every event owed: each one, once, in order.
func (s *slowReader) check(hop string) {
	s.t.Helper()
	for _, p := range s.read(s.sent - s.got) {
		if want := fmt.Sprintf("%s/%d\x00tok-slow\x00", s.path, s.got); p != want {
			s.t.Fatalf("%s: slow reader's event %d: %.40q..., want the flooded path", hop, s.got, p)
		}
		s.got++
	}
	_ = s.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	if n, _ := s.nc.Read(b[:]); n != 0 {
		s.t.Errorf("%s: slow reader got more than the %d events owed", hop, s.sent)
	}
}

// splitWriter sends a WRITE in two parts: the header and half the
// payload before the update, the rest after it.
type splitWriter struct {
	t    *testing.T
	nc   net.Conn
	tail []byte
	id   uint32
}

func newSplitWriter(t *testing.T, sock string) *splitWriter {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &splitWriter{t: t, nc: nc}
}

func (s *splitWriter) sendHead(path, value string) {
	s.t.Helper()
	s.id++
	m := wire.Msg{Type: wire.Write, ReqID: s.id, Payload: []byte(path + "\x00" + value)}
	msg := m.Encode()
	cut := wire.HeaderSize + len(path)/2
	if _, err := s.nc.Write(msg[:cut]); err != nil {
		s.t.Fatal(err)
	}
	s.tail = msg[cut:]
	time.Sleep(50 * time.Millisecond) // read by the daemon, not left in the socket
}

func (s *splitWriter) sendTail() {
	s.t.Helper()
	if _, err := s.nc.Write(s.tail); err != nil {
		s.t.Fatal(err)
	}
	_ = s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [wire.HeaderSize]byte
	if _, err := io.ReadFull(s.nc, h[:]); err != nil {
		s.t.Fatalf("split request: no reply: %v", err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[12:]))
	if _, err := io.ReadFull(s.nc, p); err != nil {
		s.t.Fatal(err)
	}
	if typ, id := wire.Type(binary.LittleEndian.Uint32(h[:])), binary.LittleEndian.Uint32(h[4:]); typ != wire.Write || id != s.id || !bytes.Equal(p, []byte("OK\x00")) {
		s.t.Errorf("split request: reply %s id %d %q", typ, id, p)
	}
}
