package unixsock

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/wire"
)

func serve(t *testing.T) (*Server, string) {
	t.Helper()
	return serveWith(t, store.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// serveWith serves an engine made with cfg; the server logs to cfg.Logger.
func serveWith(t *testing.T, cfg store.Config) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "socket")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	log := cfg.Logger
	s := NewServer(store.New(cfg), ln, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, sock
}

func dial(t *testing.T, sock string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func msg(typ wire.Type, id uint32, parts ...string) []byte {
	var p []byte
	for _, s := range parts {
		p = append(append(p, s...), 0)
	}
	return enc(wire.Msg{Type: typ, ReqID: id, Payload: p})
}

func enc(m wire.Msg) []byte { return m.Encode() }

func next(t *testing.T, c net.Conn) (wire.Header, string) {
	t.Helper()
	var h [wire.HeaderSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatal(err)
	}
	hd, err := wire.ParseHeader(h[:])
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, hd.Len)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatal(err)
	}
	return hd, string(p)
}

// Requests sent in one write, then a half-close: every reply, in order,
// then EOF.
func TestBatchThenHalfClose(t *testing.T) {
	_, sock := serve(t)
	c := dial(t, sock)
	var b bytes.Buffer
	b.Write(enc(wire.Msg{Type: wire.Write, ReqID: 1, Payload: []byte("/a\x00v1")}))
	b.Write(msg(wire.Read, 2, "/a"))
	b.Write(msg(wire.Read, 3, "/nope"))
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	want := []struct {
		typ wire.Type
		p   string
	}{{wire.Write, "OK\x00"}, {wire.Read, "v1"}, {wire.Error, "ENOENT\x00"}}
	for i, w := range want {
		h, p := next(t, c)
		if h.ReqID != uint32(i+1) || h.Type != w.typ || p != w.p {
			t.Fatalf("reply %d: %v id %d %q, want %v %q", i, h.Type, h.ReqID, p, w.typ, w.p)
		}
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the replies: %d, %v; want EOF", n, err)
	}
}

// An over-long header closes that client only.
func TestOverlongCloses(t *testing.T) {
	_, sock := serve(t)
	bad, good := dial(t, sock), dial(t, sock)
	var h [wire.HeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(wire.Read))
	binary.LittleEndian.PutUint32(h[12:], wire.PayloadMax+1)
	bad.Write(h[:])
	if _, err := bad.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("over-long header: %v, want EOF", err)
	}
	good.Write(msg(wire.Directory, 7, "/"))
	if h, _ := next(t, good); h.Type != wire.Directory || h.ReqID != 7 {
		t.Fatalf("other client: %v id %d", h.Type, h.ReqID)
	}
}

// A request whose handler panics (here the engine's clock, read by
// TRANSACTION_START) is answered EIO and its client closed; the other
// client is served on and the tree is as before.
func TestPanicClosesOnlyItsClient(t *testing.T) {
	var armed atomic.Bool
	now := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			panic("injected failure")
		}
		return time.Now()
	}
	_, sock := serveWith(t, store.Config{Now: now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bad, good := dial(t, sock), dial(t, sock)
	good.Write(msg(wire.Watch, 1, "/", "w"))
	next(t, good) // the reply
	next(t, good) // the initial event
	bad.Write(msg(wire.Write, 2, "/a", "v"))
	if h, _ := next(t, bad); h.Type != wire.Write {
		t.Fatalf("write: %v", h.Type)
	}
	next(t, good) // the event for /a
	armed.Store(true)
	bad.Write(msg(wire.TransactionStart, 3, ""))
	if h, p := next(t, bad); h.Type != wire.Error || h.ReqID != 3 || p != "EIO\x00" {
		t.Fatalf("failed request: %v id %d %q, want EIO", h.Type, h.ReqID, p)
	}
	if n, err := bad.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the EIO: %d, %v; want EOF", n, err)
	}
	good.Write(msg(wire.Directory, 4, "/"))
	if h, p := next(t, good); h.Type != wire.Directory || p != "tool\x00a\x00" {
		t.Fatalf("other client: %v %q", h.Type, p)
	}
}

// A watch event caused by another client reaches its watcher (output
// queued outside the watcher's own requests wakes the poller).
func TestEventFromElsewhere(t *testing.T) {
	_, sock := serve(t)
	w, x := dial(t, sock), dial(t, sock)
	w.Write(msg(wire.Watch, 1, "/w", "tok"))
	seen := map[wire.Type]int{}
	for len(seen) < 2 { // the reply and the initial event, in either order
		h, _ := next(t, w)
		seen[h.Type]++
	}
	x.Write(enc(wire.Msg{Type: wire.Write, ReqID: 2, Payload: []byte("/w/x\x00v")}))
	if h, _ := next(t, x); h.Type != wire.Write {
		t.Fatalf("write: %v", h.Type)
	}
	h, p := next(t, w)
	if h.Type != wire.WatchEvent || p != "/w/x\x00tok\x00" {
		t.Fatalf("event: %v %q", h.Type, p)
	}
}

// A client's own write fires its own watch: the event, queued while the
// poller handles that very client (which does not mark it dirty), goes
// out with the reply.
func TestOwnEvent(t *testing.T) {
	_, sock := serve(t)
	w := dial(t, sock)
	w.Write(msg(wire.Watch, 1, "/w", "tok"))
	seen := map[wire.Type]int{}
	for len(seen) < 2 { // the reply and the initial event
		h, _ := next(t, w)
		seen[h.Type]++
	}
	w.Write(enc(wire.Msg{Type: wire.Write, ReqID: 2, Payload: []byte("/w/x\x00v")}))
	got := map[wire.Type]string{}
	for len(got) < 2 { // the reply and the event, in either order
		h, p := next(t, w)
		got[h.Type] = p
	}
	if got[wire.Write] != "OK\x00" || got[wire.WatchEvent] != "/w/x\x00tok\x00" {
		t.Fatalf("got %q", got)
	}
}

// A freeze hands over the bytes read but not handled; after a thaw the
// client carries on where it was.
func TestFreezeKeepsPartialRequest(t *testing.T) {
	s, sock := serve(t)
	c := dial(t, sock)
	req := msg(wire.Read, 5, "/")
	c.Write(req[:wire.HeaderSize+1])
	deadline := time.Now().Add(10 * time.Second)
	for {
		lf, hs, err := s.Freeze()
		if err != nil {
			t.Fatal(err)
		}
		lf.Close()
		var in []byte
		for _, h := range hs {
			if h.Store != nil {
				in = h.State.In
			}
		}
		s.Thaw(hs)
		if bytes.Equal(in, req[:wire.HeaderSize+1]) {
			break
		}
		if len(in) != 0 || time.Now().After(deadline) {
			t.Fatalf("handover input %q, want %q", in, req[:wire.HeaderSize+1])
		}
		time.Sleep(time.Millisecond)
	}
	c.Write(req[wire.HeaderSize+1:])
	if h, _ := next(t, c); h.Type != wire.Read || h.ReqID != 5 {
		t.Fatalf("after thaw: %v id %d", h.Type, h.ReqID)
	}
}

// A client that reads nothing while far more than 64 KiB of replies wait:
// the handover's out is the rest of one message, then whole messages, in
// order, at least 64 KiB of them, and the engine holds the replies after
// them; after a thaw all of them arrive.
func TestFreezeSplitsUnsentReplies(t *testing.T) {
	s, sock := serve(t)
	c := dial(t, sock)
	value := string(bytes.Repeat([]byte("v"), 4000))
	c.Write(msg(wire.Write, 0, "/big", value))
	value += "\x00" // msg ends every part with a NUL
	next(t, c)
	const n = 300
	var reqs []byte
	for i := range n {
		reqs = append(reqs, msg(wire.Read, uint32(i+1), "/big")...)
	}
	c.Write(reqs)
	var h conn.Handover
	engineHeld := 0
	for prev := -1; ; prev = len(h.State.Out) {
		time.Sleep(50 * time.Millisecond) // until the daemon stops making progress
		lf, hs, err := s.Freeze()
		if err != nil {
			t.Fatal(err)
		}
		lf.Close()
		for _, x := range hs {
			if x.Store != nil {
				h = x
			}
		}
		engineHeld = h.Store.PendingOutput()
		s.Thaw(hs)
		if len(h.State.Out) == prev && len(h.State.Out) >= 64<<10 {
			break
		}
	}
	if h.State.Partial >= wire.HeaderSize+len(value) {
		t.Fatalf("Partial %d: more than one reply", h.State.Partial)
	}
	// The rest stays counted in the engine (its outstanding replies stop
	// the client's input), not in the transport's buffer.
	if limit := 64<<10 + wire.HeaderSize + len(value); len(h.State.Out) > limit {
		t.Fatalf("the transport holds %d bytes for a client that reads nothing, want at most %d", len(h.State.Out), limit)
	}
	rest := h.State.Out[h.State.Partial:]
	first := uint32(0)
	for len(rest) > 0 {
		hd, err := wire.ParseHeader(rest)
		if err != nil || hd.Type != wire.Read || int(hd.Len) != len(value) || len(rest) < wire.HeaderSize+len(value) {
			t.Fatalf("after Partial %d: not a whole reply: %+v, %v", h.State.Partial, hd, err)
		}
		if first != 0 && hd.ReqID != first+1 {
			t.Fatalf("reply %d after %d", hd.ReqID, first)
		}
		first = hd.ReqID
		rest = rest[wire.HeaderSize+len(value):]
	}
	if int(first)+engineHeld != n {
		t.Fatalf("the transport holds replies to %d, the engine %d more: want %d in all", first, engineHeld, n)
	}
	for i := range n {
		hd, p := next(t, c)
		if hd.ReqID != uint32(i+1) || p != value {
			t.Fatalf("reply %d: id %d, %d bytes", i+1, hd.ReqID, len(p))
		}
	}
}

// A dom0 client that watches / and stops reading (a stopped
// xenstore-watch /) holds up a writer whose changes it would be told of
// only until its unread events time out; from then on the writer is
// served, whatever it writes, while the watcher still reads nothing.
func TestStoppedWatcherReleasesWriters(t *testing.T) {
	q := store.DefaultQuotas()
	q.Hard[store.QMaxWatchEvents] = 16
	var logs syncBuffer
	_, sock := serveWith(t, store.Config{
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
		Quotas:       &q,
		EventTimeout: 100 * time.Millisecond,
	})
	watcher, writer := dial(t, sock), dial(t, sock)
	watcher.Write(msg(wire.Watch, 1, "/", "tok")) // and never read
	const after = 1000                            // writes once the watcher's events timed out
	timedOut := -1
	for i := 0; timedOut < 0 || i < timedOut+after; i++ {
		if i == 200000 {
			t.Fatalf("no event timed out after %d writes", i)
		}
		writer.SetDeadline(time.Now().Add(10 * time.Second)) // a hang, not a speed limit
		writer.Write(enc(wire.Msg{Type: wire.Write, ReqID: uint32(i), Payload: []byte("/w/" + strconv.Itoa(i) + "\x00v")}))
		if h, p := next(t, writer); h.Type != wire.Write || h.ReqID != uint32(i) {
			t.Fatalf("write %d: %v id %d %q", i, h.Type, h.ReqID, p)
		}
		if timedOut < 0 && strings.Contains(logs.String(), "dropping unread watch events") {
			timedOut = i
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A client the poller cannot take (epoll_ctl fails) is closed and
// forgotten, not kept half-registered and never served; others are served.
func TestPollerRefusalClosesClient(t *testing.T) {
	// The hook goes in before the server starts and out after it stops
	// (cleanups run last-in first-out); armed, it fails one EPOLL_CTL_ADD.
	orig := epollAdd
	var fail atomic.Bool
	epollAdd = func(ep, fd int, ev *unix.EpollEvent) error {
		if fail.CompareAndSwap(true, false) {
			return unix.ENOSPC
		}
		return orig(ep, fd, ev)
	}
	t.Cleanup(func() { epollAdd = orig })
	s, sock := serve(t)
	good := dial(t, sock)
	good.Write(msg(wire.Read, 1, "/tool"))
	next(t, good)
	s.mu.Lock()
	before := len(s.clients)
	s.mu.Unlock()
	fail.Store(true)
	bad := dial(t, sock)
	if n, err := bad.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("refused client: read %d, %v; want EOF", n, err)
	}
	s.mu.Lock()
	after := len(s.clients)
	s.mu.Unlock()
	if after != before {
		t.Errorf("clients %d before, %d after the refused one", before, after)
	}
	good.Write(msg(wire.Read, 2, "/tool"))
	if h, _ := next(t, good); h.ReqID != 2 {
		t.Fatalf("other client: reply %d", h.ReqID)
	}
	late := dial(t, sock)
	late.Write(msg(wire.Read, 3, "/tool"))
	if h, _ := next(t, late); h.ReqID != 3 {
		t.Fatalf("a later client: reply %d", h.ReqID)
	}
}
