package conn

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
)

// pipe is an in-memory Endpoint: toServer is what the peer sent and the
// server has not read; fromServer what the server wrote. room bounds what
// one Write takes (-1: everything), eof ends the peer's sending side.
type pipe struct {
	toServer   []byte
	fromServer []byte
	room       int
	eof        bool
	readErr    error
	reads      int
	// afterRead runs after each read that returned bytes: a peer writing
	// meanwhile. afterWrite runs after each write: a peer reading.
	afterRead  func(p *pipe, n int)
	afterWrite func(p *pipe, n int)
}

func (p *pipe) Read(b []byte) (int, error) {
	p.reads++
	if p.readErr != nil {
		return 0, p.readErr
	}
	if len(p.toServer) == 0 && p.eof {
		return 0, io.EOF
	}
	n := copy(b, p.toServer)
	p.toServer = p.toServer[n:]
	if n > 0 && p.afterRead != nil {
		p.afterRead(p, n)
	}
	return n, nil
}

func (p *pipe) Write(b []byte) (int, error) {
	n := len(b)
	if p.room >= 0 {
		n = min(n, p.room)
		p.room -= n
	}
	p.fromServer = append(p.fromServer, b[:n]...)
	if p.afterWrite != nil {
		p.afterWrite(p, n)
	}
	return n, nil
}

// replies cuts what the server wrote into messages.
func (p *pipe) replies(t *testing.T) []wire.Msg {
	t.Helper()
	var out []wire.Msg
	b := p.fromServer
	for len(b) >= wire.HeaderSize {
		h, err := wire.ParseHeader(b)
		if err != nil || len(b) < wire.HeaderSize+int(h.Len) {
			break
		}
		m, err := wire.Decode(b[:wire.HeaderSize+int(h.Len)])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		b = b[wire.HeaderSize+int(h.Len):]
	}
	return out
}

// write is a WRITE request: its value is not NUL-terminated.
func write(id uint32, path, value string) []byte {
	m := wire.Msg{Type: wire.Write, ReqID: id, Payload: []byte(path + "\x00" + value)}
	return m.Encode()
}

func req(typ wire.Type, id uint32, args ...string) []byte {
	m := wire.Msg{Type: typ, ReqID: id, Payload: wire.JoinStrings(args...)}
	return m.Encode()
}

type rig struct {
	e     *store.Engine
	p     *pipe
	c     *Conn
	loop  *Loop
	kicks int
}

func newRig(t *testing.T, cfg Config, quotas func(*store.Quotas)) *rig {
	t.Helper()
	q := store.DefaultQuotas()
	if quotas != nil {
		quotas(&q)
	}
	r := &rig{p: &pipe{room: -1}}
	r.e = store.New(store.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Quotas: &q})
	r.loop = NewLoop(func() { r.kicks++ })
	sc := r.e.NewConn(0, true, nil)
	r.c = New(sc, r.p, r.loop, cfg)
	sc.Adopt(r.c.Wake)
	return r
}

// Requests arrive whole, split or several in one read; each is handled
// once and answered in order, in one pass per readiness.
func TestPumpFraming(t *testing.T) {
	a, b := write(1, "/a", "x"), req(wire.Read, 2, "/a")
	both := append(bytes.Clone(a), b...)
	tests := []struct {
		name   string
		chunks [][]byte // what the peer has sent before each pass
		want   []int    // replies seen after each pass
	}{
		{"two in one read", [][]byte{both}, []int{2}},
		{"split in the header", [][]byte{both[:7], both[7:]}, []int{0, 2}},
		{"split in the payload", [][]byte{both[:18], both[18:]}, []int{0, 2}},
		{"one and a half, then the rest", [][]byte{both[:len(a)+3], both[len(a)+3:]}, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			for i, ch := range tt.chunks {
				r.p.toServer = append(r.p.toServer, ch...)
				res := r.c.Pump(true)
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if got := len(r.p.replies(t)); got != tt.want[i] {
					t.Fatalf("after pass %d: %d replies, want %d", i, got, tt.want[i])
				}
			}
			ms := r.p.replies(t)
			if ms[0].Type != wire.Write || ms[1].ReqID != 2 || string(ms[1].Payload) != "x" {
				t.Fatalf("replies %+v", ms)
			}
		})
	}
}

// A header announcing more than 4096 bytes is the connection's error; the
// bytes after it are not read, the requests before it are answered.
func TestPumpTooLong(t *testing.T) {
	r := newRig(t, Config{}, nil)
	bad := make([]byte, wire.HeaderSize)
	wire.Header{Type: wire.Read, ReqID: 2, Len: wire.PayloadMax + 1}.Put(bad)
	r.p.toServer = append(req(wire.Read, 1, "/"), bad...)
	res := r.c.Pump(true)
	var ce *Error
	if !errors.As(res.Err, &ce) || ce.Op != OpFrame || !errors.Is(res.Err, wire.ErrTooLong) {
		t.Fatalf("err %v, want a frame error", res.Err)
	}
	if got := len(r.p.replies(t)); got != 1 {
		t.Fatalf("%d replies before the bad header, want 1", got)
	}
	r.p.toServer = req(wire.Read, 3, "/")
	if res := r.c.Pump(true); res.Err == nil || len(r.p.toServer) == 0 {
		t.Fatalf("read past a bad header: err %v, %d bytes left unread", res.Err, len(r.p.toServer))
	}
}

// A peer that reads nothing: out takes what OutLimit allows, the engine
// keeps the rest and stops input at maxoutstanding; the peer's further
// requests stay unread. Once it reads, everything arrives in order.
func TestPumpBackPressure(t *testing.T) {
	const max = 4
	r := newRig(t, Config{OutLimit: 64}, func(q *store.Quotas) { q.Hard[store.QMaxOutstanding] = max })
	const n = 1000 // more than one read takes
	r.p.room = 0
	for i := range n {
		r.p.toServer = append(r.p.toServer, req(wire.Read, uint32(i+1), "/tool")...)
	}
	res := r.c.Pump(true)
	if res.Err != nil || res.WantsInput || !res.OutPending || res.Queued != max {
		t.Fatalf("result %+v: want input stopped, output pending, %d queued in the engine", res, max)
	}
	reads := r.p.reads
	if res := r.c.Pump(true); r.p.reads != reads || res.WantsInput {
		t.Fatalf("read again (%d reads) with input stopped: no back-pressure", r.p.reads-reads)
	}
	if len(r.p.toServer) == 0 {
		t.Fatal("every request read: no back-pressure")
	}
	r.p.room = -1
	for range n {
		if res = r.c.Pump(true); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	ms := r.p.replies(t)
	if len(ms) != n {
		t.Fatalf("%d replies, want %d", len(ms), n)
	}
	for i, m := range ms {
		if m.ReqID != uint32(i+1) {
			t.Fatalf("reply %d is to %d: order lost", i, m.ReqID)
		}
	}
}

// A budget cuts a pass short and says so; the next pass goes on.
func TestPumpBudget(t *testing.T) {
	r := newRig(t, Config{Budget: 3}, nil)
	for i := range 5 {
		r.p.toServer = append(r.p.toServer, req(wire.Read, uint32(i+1), "/")...)
	}
	if res := r.c.Pump(true); !res.More || len(r.p.replies(t)) != 3 {
		t.Fatalf("first pass: more %v, %d replies; want more, 3", res.More, len(r.p.replies(t)))
	}
	if res := r.c.Pump(false); res.More || len(r.p.replies(t)) != 5 {
		t.Fatalf("second pass: more %v, %d replies; want 5", res.More, len(r.p.replies(t)))
	}
}

// The peer's end of input and a failed read are reported.
func TestPumpEOFAndReadError(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.p.toServer, r.p.eof = req(wire.Read, 1, "/"), true
	r.c.Pump(true)
	res := r.c.Pump(true) // the read that finds the end
	if !res.EOF || res.Err != nil || len(r.p.replies(t)) != 1 {
		t.Fatalf("result %+v, %d replies: want EOF after the reply", res, len(r.p.replies(t)))
	}
	r = newRig(t, Config{}, nil)
	r.p.readErr = errors.New("gone")
	var ce *Error
	if res := r.c.Pump(true); !errors.As(res.Err, &ce) || ce.Op != OpRead {
		t.Fatalf("err %v, want a read error", res.Err)
	}
}

// Only readiness makes a pass read: a pass for output alone (a wake-up)
// after a short read does not read again.
func TestPumpReadsOnlyWhenReadable(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.p.toServer = req(wire.Read, 1, "/")
	r.c.Pump(true)
	reads := r.p.reads
	r.p.toServer = req(wire.Read, 2, "/")
	r.c.Pump(false)
	if r.p.reads != reads {
		t.Fatalf("%d reads in a pass without readiness", r.p.reads-reads)
	}
	r.c.Pump(true)
	if got := len(r.p.replies(t)); got != 2 {
		t.Fatalf("%d replies, want 2", got)
	}
}

// What a live update carries: the requests not handled (whole ones first,
// then a partial one), the unwritten rest of a message partly written and
// the whole messages after it. Frozen, nothing is read, written or
// handled; thawed, everything goes on and the connection is marked.
func TestFreezeHandover(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.p.room = 5
	r.p.toServer = append(write(1, "/a", "v"), req(wire.Read, 2, "/a")...)
	r.c.Pump(true)
	next := req(wire.Read, 3, "/a")
	r.p.toServer = next[:9]
	r.c.Pump(true)
	replies := bytes.Clone(r.p.fromServer) // 5 bytes of the first reply

	h := r.c.Freeze()
	if !bytes.Equal(h.State.In, next[:9]) {
		t.Errorf("handover in %q, want the partial request %q", h.State.In, next[:9])
	}
	if h.State.Partial != wire.HeaderSize+3-5 { // WRITE's reply is "OK\0"
		t.Errorf("Partial %d, want %d", h.State.Partial, wire.HeaderSize+3-5)
	}
	all := append(replies, h.State.Out...)
	r.p.fromServer = all
	if ms := r.p.replies(t); len(ms) != 2 || ms[1].ReqID != 2 {
		t.Fatalf("sent and handed over: %+v, want both replies", ms)
	}
	if h.Store != r.c.Store() || h.State.FD != -1 {
		t.Errorf("handover names conn %v fd %d", h.Store, h.State.FD)
	}

	r.p.fromServer = replies
	r.p.room = -1
	r.p.toServer = next[9:]
	if res := r.c.Pump(true); !res.Frozen || len(r.p.fromServer) != len(replies) || len(r.p.toServer) == 0 {
		t.Fatalf("frozen pass moved bytes (result %+v)", res)
	}
	r.loop.Take(nil)
	r.c.Thaw()
	if got := r.loop.Take(nil); len(got) != 1 || got[0] != r.c {
		t.Fatalf("thaw marked %v", got)
	}
	r.c.Pump(true)
	if ms := r.p.replies(t); len(ms) != 3 || ms[2].ReqID != 3 {
		t.Fatalf("after thaw: %+v, want 3 replies", ms)
	}
}

// A request with the engine when the freeze comes stays in the handover
// until the engine has handled it: HandledLocked decides.
func TestFreezePendingRequest(t *testing.T) {
	for _, handled := range []bool{false, true} {
		t.Run("handled="+strconv.FormatBool(handled), func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			a := req(wire.Read, 1, "/")
			r.p.toServer = a
			r.c.readable = true
			r.c.mu.Lock()
			r.c.fillLocked()
			m, n, err := r.c.nextLocked()
			r.c.pending = n // as handleLocked marks it, the engine call to come
			r.c.mu.Unlock()
			if err != nil || n != len(a) {
				t.Fatalf("next: %d, %v", n, err)
			}
			if handled {
				r.c.sc.Handle(m) // the engine took it; calls not counted yet
			}
			h := r.c.Freeze()
			if want := !handled; (len(h.State.In) == len(a)) != want {
				t.Errorf("handover in %d bytes, request carried: want %v", len(h.State.In), want)
			}
		})
	}
}

// The loop's wake-up is sent only while its goroutine sleeps, once.
func TestLoopWakesOnlySleeper(t *testing.T) {
	r := newRig(t, Config{}, nil)
	l := r.loop
	r.c.Wake()
	if r.kicks != 0 {
		t.Fatal("an awake loop was kicked")
	}
	if l.Sleep() {
		t.Fatal("Sleep with a dirty connection")
	}
	if got := l.Take(nil); len(got) != 1 {
		t.Fatalf("dirty %d, want 1", len(got))
	}
	if !l.Sleep() {
		t.Fatal("Sleep refused with nothing to do")
	}
	r.c.Wake()
	r.c.Wake()
	l.Poke()
	if r.kicks != 1 {
		t.Fatalf("%d kicks for one sleep, want 1", r.kicks)
	}
	l.Awake()
	if got := l.Take(nil); len(got) != 1 {
		t.Fatalf("dirty %d after two marks of one connection, want 1", len(got))
	}
	l.Poke()
	if l.Sleep() || r.kicks != 1 {
		t.Fatalf("a poke while awake: Sleep must refuse once, and not kick (%d)", r.kicks)
	}
	if !l.Sleep() {
		t.Fatal("the poke was not consumed")
	}
}

// An engine call for the connection's own request does not mark it: the
// pass learns of its reply from the call.
func TestOwnReplyDoesNotMark(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.p.toServer = req(wire.Read, 1, "/")
	r.c.Pump(true)
	if got := r.loop.Take(nil); len(got) != 0 {
		t.Fatalf("%d connections marked by their own request", len(got))
	}
	other := r.e.NewConn(0, true, nil)
	r.p.toServer = req(wire.Watch, 2, "/w", "t")
	r.c.Pump(true)
	r.loop.Take(nil)
	other.Handle(wire.Msg{Type: wire.Write, ReqID: 1, Payload: []byte("/w\x00v")})
	if got := r.loop.Take(nil); len(got) != 1 {
		t.Fatal("a watch event another connection caused did not mark the watcher")
	}
	r.c.Pump(false)
	if ms := r.p.replies(t); len(ms) != 4 || ms[3].Type != wire.WatchEvent { // READ, WATCH, its event, the write's
		t.Fatalf("replies %+v", ms)
	}
}

func TestHeadAfter(t *testing.T) {
	a := req(wire.Read, 1, "aaaa") // 21 bytes
	b := req(wire.Read, 2, "bb")   // 19 bytes
	whole := append(bytes.Clone(a), b...)
	headed := append([]byte("xyz"), whole...)
	for _, tt := range []struct {
		name    string
		out     []byte
		head, n int
		want    int
	}{
		{"inside the partial head", headed, 3, 2, 1},
		{"the head exactly", headed, 3, 3, 0},
		{"into the first whole message", headed, 3, 5, 19},
		{"the first whole message exactly", headed, 3, 24, 0},
		{"into the second", headed, 3, 30, 13},
		{"everything", headed, 3, len(headed), 0},
		{"no head, into the first", whole, 0, 4, 17},
		{"no head, into the second", whole, 0, 22, 18},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := headAfter(tt.out, tt.head, tt.n); got != tt.want {
				t.Errorf("headAfter(head %d, n %d) = %d, want %d", tt.head, tt.n, got, tt.want)
			}
		})
	}
}

// ReadExact (a ring): nothing after a bad header is consumed, and a
// request is read only when the one before it is handled; OutLimit 1
// holds one message outside the engine, written before the next request.
func TestPumpExact(t *testing.T) {
	r := newRig(t, Config{ReadExact: true, OutLimit: 1}, nil)
	bad := make([]byte, wire.HeaderSize)
	wire.Header{Type: wire.Write, ReqID: 2, Len: 1 << 30}.Put(bad)
	body := bytes.Repeat([]byte("x"), 200)
	r.p.toServer = append(append(req(wire.Read, 1, "/"), bad...), body...)
	res := r.c.Pump(true)
	if !errors.Is(res.Err, wire.ErrTooLong) {
		t.Fatalf("err %v, want ErrTooLong", res.Err)
	}
	if !bytes.Equal(r.p.toServer, body) {
		t.Fatalf("%d bytes left with the peer, want the %d after the bad header", len(r.p.toServer), len(body))
	}
	if len(r.p.replies(t)) != 1 {
		t.Fatal("the request before the bad header was not answered")
	}

	r = newRig(t, Config{ReadExact: true, OutLimit: 1}, nil)
	r.p.room = 0
	for i := range 3 {
		r.p.toServer = append(r.p.toServer, req(wire.Read, uint32(i+1), "/tool")...)
	}
	r.c.Pump(true)
	h := r.c.Freeze()
	if st := r.c.Store(); st.PendingOutput() != 2 {
		t.Fatalf("engine holds %d replies, want 2 (one taken)", st.PendingOutput())
	}
	if len(h.State.In) != 0 {
		t.Fatalf("handover in %q: nothing should be left", h.State.In)
	}
	if m, err := wire.Decode(h.State.Out); err != nil || m.ReqID != 1 {
		t.Fatalf("handover out %q (%v): want the first reply alone", h.State.Out, err)
	}
}

// A pass for output alone (the socket became writable) that lets input
// resume must go on to the whole requests already buffered: no other
// wake-up comes for them (the engine does not signal the connection's own
// take).
func TestPumpResumesBufferedRequests(t *testing.T) {
	const max = 4
	r := newRig(t, Config{OutLimit: 1}, func(q *store.Quotas) { q.Hard[store.QMaxOutstanding] = max })
	r.p.room = 0
	const n = 10
	for i := range n {
		r.p.toServer = append(r.p.toServer, req(wire.Read, uint32(i+1), "/tool")...)
	}
	if res := r.c.Pump(true); res.WantsInput || len(r.p.toServer) != 0 || !res.Buffered {
		t.Fatalf("result %+v, %d bytes unread: want input stopped with requests buffered", res, len(r.p.toServer))
	}
	r.p.room = -1
	r.c.Pump(false) // the peer reads: writable, nothing new to read
	if ms := r.p.replies(t); len(ms) != n {
		t.Fatalf("%d of %d replies after the pass that resumed input", len(ms), n)
	}
}

// A frozen connection takes nothing from the engine: what the engine
// queues for it after the freeze stays there, in the state a live update
// exports, not in a buffer the handover has already copied.
func TestFrozenTakesNothing(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.p.toServer = req(wire.Watch, 1, "/w", "t")
	r.c.Pump(true)
	before := len(r.p.fromServer)
	r.c.Freeze()
	other := r.e.NewConn(0, true, nil)
	other.Handle(wire.Msg{Type: wire.Write, ReqID: 1, Payload: []byte("/w\x00v")})
	if res := r.c.Pump(true); !res.Frozen {
		t.Fatal("pass not frozen")
	}
	if q := r.c.Store().PendingOutput(); q != 1 || len(r.p.fromServer) != before {
		t.Fatalf("frozen: engine holds %d messages (want 1), %d bytes written since", q, len(r.p.fromServer)-before)
	}
	r.c.mu.Lock()
	held := r.c.unsent()
	r.c.mu.Unlock()
	if held != 0 {
		t.Fatalf("frozen: %d bytes taken into out", held)
	}
}

// counting counts a core's engine calls, each one acquisition of the
// engine's lock.
type counting struct {
	*store.Conn
	calls int
}

func (c *counting) HandleTake(m wire.Msg, into func([]byte) bool) store.Status {
	c.calls++
	return c.Conn.HandleTake(m, into)
}

func (c *counting) Take(into func([]byte) bool) store.Status {
	c.calls++
	return c.Conn.Take(into)
}

// A request costs one engine call (its handling, its reply and the
// connection's state together), one after another at 1 in flight and in a
// batch; only the first pass asks for the state on its own.
func TestOneEngineCallPerRequest(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		batch   int // requests per read
		batches int
	}{
		{"socket, 1 in flight", Config{OutLimit: 64 << 10}, 1, 50},
		{"socket, 16 in flight", Config{OutLimit: 64 << 10}, 16, 10},
		{"ring, 1 in flight", Config{OutLimit: 1, Budget: 32, ReadExact: true}, 1, 50},
		{"ring, 16 in flight", Config{OutLimit: 1, Budget: 32, ReadExact: true}, 16, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.cfg, nil)
			eng := &counting{Conn: r.c.Store()}
			r.c.eng = eng
			id := uint32(0)
			for range tt.batches {
				for range tt.batch {
					id++
					if id%2 == 0 {
						r.p.toServer = append(r.p.toServer, write(id, "/k", "v")...)
					} else {
						r.p.toServer = append(r.p.toServer, req(wire.Read, id, "/tool")...)
					}
				}
				r.c.Pump(true)
			}
			n := tt.batch * tt.batches
			if got := len(r.p.replies(t)); got != n {
				t.Fatalf("%d replies to %d requests", got, n)
			}
			if eng.calls != n+1 {
				t.Errorf("%d engine calls for %d requests, want %d", eng.calls, n, n+1)
			}
		})
	}
}

// A ring's peer that writes while the server reads does not notify again
// (Linux's xb_write notifies only when the server had caught up): after a
// read that came short, the pass reads again, and stops only at a read
// that finds nothing. It stopped at the short read before, and a guest
// writing values longer than the ring stalled for good.
func TestPumpRereadsAfterShortRead(t *testing.T) {
	r := newRig(t, Config{ReadExact: true, OutLimit: 1}, nil)
	msg := write(1, "/big", strings.Repeat("v", 3000))
	r.p.toServer = bytes.Clone(msg[:1024]) // what one ring holds
	rest := msg[1024:]
	r.p.afterRead = func(p *pipe, n int) {
		if len(p.toServer) == 0 && len(rest) > 0 { // the peer adds the rest, no wake-up
			p.toServer, rest = append(p.toServer, rest...), nil
		}
	}
	if res := r.c.Pump(true); res.Err != nil {
		t.Fatal(res.Err)
	}
	if ms := r.p.replies(t); len(ms) != 1 || ms[0].Type != wire.Write || ms[0].ReqID != 1 {
		t.Fatalf("replies after one pass %+v, want the WRITE's", ms)
	}
}

// A write that finds the medium full may have raced with the peer taking
// bytes: Linux's xenbus reader notifies only a producer that left the
// ring full, which a producer that read the consumer index just before
// does not. A pass goes on writing until a write takes nothing, or a
// reply longer than the room left would wait for a notification that
// never comes.
func TestPumpRewritesAfterShortWrite(t *testing.T) {
	r := newRig(t, Config{ReadExact: true, OutLimit: 1}, nil)
	r.p.room = 10 // less than the reply
	r.p.afterWrite = func(p *pipe, n int) {
		if p.room == 0 { // the peer takes everything, no wake-up
			p.room = -1
			p.afterWrite = nil
		}
	}
	r.p.toServer = req(wire.Read, 1, "/tool")
	if res := r.c.Pump(true); res.Err != nil || res.OutPending {
		t.Fatalf("result %+v: output left waiting for a notification", res)
	}
	if ms := r.p.replies(t); len(ms) != 1 || ms[0].ReqID != 1 {
		t.Fatalf("replies after one pass %+v, want the READ's", ms)
	}
}
