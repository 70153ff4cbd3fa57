// Package conn is the connection core under both transports: a Unix socket
// client (transport/unixsock) and a Xen ring (transport/xenring) are each one
// Conn here, and only the medium that moves their bytes differs.
//
// Scope. A Conn holds what the transport has of one store.Conn: the bytes
// read and not handled (in), the bytes taken from the engine and not
// written (out), the framing of whole requests out of in, the bookkeeping
// a live update needs to tell what was handled, and the frozen state of a
// live update (Freeze, Thaw, Handover). Pump does one service pass: it
// hands whole requests to the engine, writes output and reads input, with
// one engine call per request (store.Conn.HandleTake). The medium is an
// Endpoint: read some bytes, write some bytes, never block. A Loop is one
// serving goroutine's set of connections with work (dirty) and its wake-up,
// which is only sent while that goroutine sleeps.
//
// Limits. No system calls and no Xen here: accepting, epoll, ring pages,
// event channels, reconnection and domain deaths stay with the
// transports, as does what to do with an error (a socket client is
// closed, a ring gets its error word set). A request whose header announces
// more than wire.PayloadMax bytes is an error of the Conn (OpFrame); bytes
// after it are never handled (with ReadExact, never read). Output is taken
// from the engine only while out
// holds fewer than Config.OutLimit bytes, so that a peer that does not read
// leaves its replies counted in the engine, which then stops its input
// (XSA-326), instead of in out.
//
// Invariants (what live update relies on; Freeze reads them with the
// engine locked):
//   - Bytes read from the endpoint are in in at once: the read and the
//     append happen under mu.
//   - A message taken from the engine is in out at once: the take runs
//     with the engine locked and appends under mu.
//   - A request stays in in until handled: pending is its length while it
//     is with the engine, calls counts the calls that returned, and
//     store.Conn.HandledLocked tells Freeze whether the one pending was
//     handled.
//   - out holds outHead bytes that end a message partly written, then whole
//     messages.
//   - Every endpoint read and write happens under mu, after checking
//     frozen: none is in progress, and none starts, once Freeze returned;
//     nor does a frozen Conn take output from the engine.
//
// Lock order: the engine's lock, then Loop.mu or Conn.mu (never both).
// Pump holds Conn.mu for its whole pass except around its engine calls
// (one per request), which take the engine's lock first and Conn.mu
// inside it to take output. Only the loop goroutine calls Pump, Discard
// and With; Freeze and Thaw may come from any goroutine (Freeze with the
// engine locked).
package conn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/wire"
)

// Endpoint moves one connection's bytes over its medium. Both calls are
// made with the Conn's lock held and must not block.
type Endpoint interface {
	// Read copies bytes the peer sent into p and returns their number: 0
	// with a nil error when there is nothing now, io.EOF once the peer
	// closed its sending side.
	Read(p []byte) (int, error)
	// Write copies a prefix of p towards the peer and returns its length;
	// less than len(p), 0 included, means the medium is full for now.
	Write(p []byte) (int, error)
}

// Config is a transport's choice for its connections.
type Config struct {
	// OutLimit: output is taken from the engine while out holds fewer
	// bytes than this (at least one message is taken when out is empty),
	// and out is written as soon as it holds that much. 1: one message at
	// a time, written before the next request is handled (a ring).
	OutLimit int
	// Budget bounds the requests one Pump hands over (0: no bound); a
	// pass cut short reports More.
	Budget int
	// ReadExact: a read asks only for the rest of the request at the front
	// of in (its header, then its payload), so that what follows a bad
	// header, and requests the engine does not want yet, stay with the
	// peer (a ring). Otherwise a read takes what the medium has, up to
	// 8 KiB (a socket).
	ReadExact bool
}

// Op names the step that failed.
type Op string

// The steps of a pass.
const (
	OpRead  Op = "read"  // the endpoint's Read
	OpFrame Op = "frame" // a header announcing too long a payload
	OpWrite Op = "write" // the endpoint's Write
)

// Error is a failed step of Pump; the connection cannot go on.
type Error struct {
	Op  Op
	Err error
}

func (e *Error) Error() string { return string(e.Op) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// engine is what a pass asks of the store connection (store.Conn); tests
// count the calls through it.
type engine interface {
	HandleTake(m wire.Msg, into func(msg []byte) bool) store.Status
	Take(into func(msg []byte) bool) store.Status
	HandledLocked() uint64
}

// Conn is one connection's core; see the package comment.
type Conn struct {
	sc   *store.Conn
	eng  engine // sc, but for tests
	ep   Endpoint
	loop *Loop
	cfg  Config
	take func([]byte) bool // c.appendOut, made once

	dirty bool        // in loop.dirty; under loop.mu
	woken atomic.Bool // the engine signalled since the last Status was taken

	mu      sync.Mutex
	in      []byte // read: in[inOff:] not handled yet, whole requests first
	inOff   int
	pending int    // bytes of in[inOff:] with the engine now
	calls   uint64 // engine calls for requests that returned
	out     []byte // taken from the engine: out[outOff:] not written yet
	outOff  int
	outHead int // out[outOff:]'s first bytes that end a message partly written
	frozen  bool

	// The loop goroutine's own.
	st       store.Status // the engine's last word on the connection
	known    bool         // st is from a call after the last Discard
	readable bool         // the endpoint may have bytes (set by Pump's caller, cleared by a short read)
	eof      bool
}

// New makes the core of sc over ep, served by loop. Give the engine
// c.Wake as sc's wake callback (store.Conn.Adopt, or NewConn's argument).
func New(sc *store.Conn, ep Endpoint, loop *Loop, cfg Config) *Conn {
	c := &Conn{sc: sc, eng: sc, ep: ep, loop: loop, cfg: cfg}
	c.take = c.appendOut
	return c
}

// Store is the engine connection.
func (c *Conn) Store() *store.Conn { return c.sc }

// Endpoint is the medium New was given.
func (c *Conn) Endpoint() Endpoint { return c.ep }

// Wake is the engine's wake callback: the connection's state changed, so
// the next pass asks the engine again. It only signals (the engine calls
// it with its lock held).
func (c *Conn) Wake() {
	c.woken.Store(true)
	c.loop.Mark(c)
}

// Restore gives c the bytes a live update carried: in, requests not
// handled; out, the rest of one message partly written (or nothing).
// Before the loop serves c.
func (c *Conn) Restore(in, out []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in, c.inOff = in, 0
	c.out, c.outOff, c.outHead = out, 0, len(out)
}

// Result is what a pass leaves for the transport.
type Result struct {
	store.Status      // the engine's last word (WantsInput, Queued, Closed)
	More         bool // the budget ran out with work left: pump again soon
	OutPending   bool // output waits for the medium to take it
	Buffered     bool // a whole request waits in in (or a header that is bad)
	EOF          bool // the peer closed its sending side
	Frozen       bool // a live update froze c: Thaw marks it dirty again
	Err          error
}

// Pump does what c is ready for: hands whole requests to the engine while
// it wants them, writes output until the medium is full, and reads once
// the requests buffered are handled; again while any of it moves bytes.
// readable says the medium has bytes (an event said so); a short read
// clears it. c's lock is held throughout but for the engine calls, one
// per request. Loop goroutine only.
func (c *Conn) Pump(readable bool) Result {
	var r Result
	if readable {
		c.readable = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen && (c.woken.Swap(false) || !c.known || !c.st.WantsInput || c.st.Queued > 0 || c.st.Closed) {
		// The cached word is stale or says stop: ask again (a stop
		// that ended without a wake-up, a quota raised, is seen here).
		c.takeLocked(c.takeIfRoomLocked())
	}
	handled := 0
	for !c.frozen {
		r.More = c.st.WantsInput && c.cfg.Budget > 0 && handled >= c.cfg.Budget
		if c.st.WantsInput && !r.More {
			m, n, err := c.nextLocked()
			if err != nil {
				c.writeLocked() // the replies to the requests before it still go
				r.Err = &Error{OpFrame, err}
				break
			}
			if n > 0 {
				c.handleLocked(m, n)
				handled++
				if c.takeIfRoomLocked() != nil {
					continue
				}
				// out is full: write it before the next request.
			}
		}
		wrote, err := c.writeLocked()
		if err != nil {
			r.Err = &Error{OpWrite, err}
			break
		}
		if r.More {
			break
		}
		got := false
		if c.st.WantsInput && c.readable && !c.eof {
			if got, err = c.fillLocked(); err != nil {
				r.Err = &Error{OpRead, err}
				break
			}
		}
		// A write may have let input resume (its take) with requests
		// buffered: no wake-up comes for that, so go on to them.
		if !got && !wrote && !(c.st.WantsInput && c.bufferedLocked()) {
			break
		}
	}
	r.Status, r.EOF, r.Frozen = c.st, c.eof, c.frozen
	r.OutPending, r.Buffered = c.unsent() > 0, c.bufferedLocked()
	return r
}

// takeLocked asks the engine for c's output (into take) and state,
// releasing c's lock meanwhile (the engine's lock comes first).
func (c *Conn) takeLocked(take func([]byte) bool) {
	c.mu.Unlock()
	st := c.eng.Take(take)
	c.mu.Lock()
	c.st, c.known = st, true
}

// takeIfRoomLocked is the take callback for an engine call now: none once
// out is at its limit (the engine keeps, and counts, the rest).
func (c *Conn) takeIfRoomLocked() func([]byte) bool {
	if c.cfg.OutLimit > 0 && c.unsent() >= c.cfg.OutLimit {
		return nil
	}
	return c.take
}

// appendOut takes one message, with the engine locked; it wants another
// while out has room.
func (c *Conn) appendOut(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outOff > 0 { // after a short write: drop what was written
		c.out, c.outOff = c.out[:copy(c.out, c.out[c.outOff:])], 0
	}
	c.out = append(c.out, msg...)
	return c.cfg.OutLimit <= 0 || len(c.out) < c.cfg.OutLimit
}

// unsent is how many bytes of out are not written yet. Under mu.
func (c *Conn) unsent() int { return len(c.out) - c.outOff }

// nextLocked decodes the whole request at the front of in, if there is
// one: n is its length, 0 for none.
func (c *Conn) nextLocked() (wire.Msg, int, error) {
	b := c.in[c.inOff:]
	if len(b) < wire.HeaderSize {
		return wire.Msg{}, 0, nil
	}
	h, err := wire.ParseHeader(b)
	if err != nil {
		return wire.Msg{}, 0, err
	}
	n := wire.HeaderSize + int(h.Len)
	if len(b) < n {
		return wire.Msg{}, 0, nil
	}
	payload := make([]byte, h.Len) // in is reused; the engine may keep it
	copy(payload, b[wire.HeaderSize:n])
	return wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: payload}, n, nil
}

// handleLocked runs the request of n bytes at the front of in, and takes
// its output, in one engine call (c's lock released meanwhile, the bytes
// marked pending), then drops its bytes.
func (c *Conn) handleLocked(m wire.Msg, n int) {
	take := c.takeIfRoomLocked()
	c.pending = n
	c.mu.Unlock()
	st := c.eng.HandleTake(m, take)
	c.mu.Lock()
	c.st, c.known = st, true
	c.inOff += n
	if c.inOff == len(c.in) {
		c.in, c.inOff = c.in[:0], 0
		if cap(c.in) > keptInCap {
			c.in = nil
		}
	}
	c.pending = 0
	c.calls++
}

// keptInCap is the largest emptied input buffer a connection keeps: a
// socket's read chunk and then some, a ring's largest message.
const keptInCap = 16 << 10

// keptOutCap is the largest emptied output buffer a connection keeps.
const keptOutCap = 64 << 10

// bufferedLocked: a whole request, or a header that is bad, is at the
// front of in.
func (c *Conn) bufferedLocked() bool {
	b := c.in[c.inOff:]
	if len(b) < wire.HeaderSize {
		return false
	}
	h, err := wire.ParseHeader(b)
	return err != nil || len(b) >= wire.HeaderSize+int(h.Len)
}

// writeLocked writes what the medium takes: what is in out, then what the
// engine queued, until the medium is full or nothing is left. Output the
// engine queues meanwhile signals c (Wake), so one take per emptied out
// is enough.
func (c *Conn) writeLocked() (wrote bool, err error) {
	for !c.frozen {
		if c.unsent() == 0 {
			if c.st.Queued == 0 {
				return wrote, nil
			}
			if c.takeLocked(c.take); c.frozen || c.unsent() == 0 {
				return wrote, nil
			}
		}
		n, err := c.ep.Write(c.out[c.outOff:])
		if err == nil && n > 0 {
			c.outHead = headAfter(c.out[c.outOff:], c.outHead, n)
			c.outOff += n
			wrote = true
		}
		if c.unsent() == 0 {
			c.out, c.outOff = c.out[:0], 0
			if cap(c.out) > keptOutCap {
				c.out = nil // let a large buffer go
			}
		}
		if err != nil || c.unsent() > 0 {
			// Full for now. Pump writes again after a write that took
			// bytes, and leaves it to the medium's signal only after one
			// that took nothing: a ring's peer may take bytes meanwhile
			// without notifying (Linux's reader notifies only a writer
			// that left the ring full).
			return wrote, err
		}
	}
	return wrote, nil
}

// headAfter is how much of a message partly written remains once n bytes
// of out are written: out holds head bytes of such a message, then whole
// messages. A live update hands the two kinds over differently.
func headAfter(out []byte, head, n int) int {
	for head < n {
		head += wire.HeaderSize + int(binary.LittleEndian.Uint32(out[head+12:]))
	}
	return head - n
}

// fillLocked reads from the endpoint into in, through the loop's scratch
// buffer, unless a whole request waits there already: once what the
// medium has (up to the scratch's size), or with ReadExact the rest of the
// request at the front. A read that leaves room unfilled drained the
// medium: no further read until the caller says it is readable again.
func (c *Conn) fillLocked() (got bool, err error) {
	if c.frozen || c.bufferedLocked() {
		return false, nil
	}
	if c.inOff > 0 { // only unhandled bytes from here on
		c.in, c.inOff = c.in[:copy(c.in, c.in[c.inOff:])], 0
	}
	for {
		room := c.loop.scratch
		if c.cfg.ReadExact {
			room = room[:c.needLocked()]
		}
		n, err := c.ep.Read(room)
		switch {
		case errors.Is(err, io.EOF):
			c.eof, c.readable = true, false
			return got, nil
		case err != nil:
			return got, err
		case n < 0 || n > len(room):
			return got, fmt.Errorf("endpoint read %d bytes into %d", n, len(room))
		}
		c.in = append(c.in, room[:n]...)
		got = got || n > 0
		// A short read ends the medium's bytes for a socket (epoll tells
		// when more come). A ring's peer may have written meanwhile
		// without notifying (it notifies only a consumer that had caught
		// up), so only a read that finds nothing ends it.
		if n == 0 || (n < len(room) && !c.cfg.ReadExact) {
			c.readable = false
			return got, nil
		}
		if n < len(room) {
			continue
		}
		// Exact: a header read whole goes on with its payload.
		if !c.cfg.ReadExact || c.needLocked() == 0 {
			return got, nil
		}
	}
}

// needLocked is how many bytes the request at the front of in lacks: the
// rest of its header, else of its payload; 0 once whole, or for a header
// that is bad (next reports it).
func (c *Conn) needLocked() int {
	b := c.in[c.inOff:]
	if len(b) < wire.HeaderSize {
		return wire.HeaderSize - len(b)
	}
	h, err := wire.ParseHeader(b)
	if err != nil {
		return 0
	}
	return max(wire.HeaderSize+int(h.Len)-len(b), 0)
}

// Discard drops everything c holds (in and out), for a ring reconnection;
// false while frozen, when it leaves everything as it is.
func (c *Conn) Discard() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return false
	}
	c.in, c.inOff, c.pending = nil, 0, 0
	c.out, c.outOff, c.outHead = nil, 0, 0
	c.known = false
	return true
}

// With runs f under c's lock unless c is frozen, for endpoint work outside
// Pump (a ring's reconnection, its error word): it reports whether f ran.
func (c *Conn) With(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return false
	}
	f()
	return true
}

// Handover is one connection as a live update carries it, whichever the
// transport: its engine connection and its transport state as the stream
// carries it (handover.Conn: the bytes the transport held and what names
// its endpoint to the next daemon, which the transport fills in: a
// socket's descriptor, a ring's local event channel port).
type Handover struct {
	Store *store.Conn // nil: a socket accepted without an engine connection yet
	State handover.Conn
}

// Freeze stops c's I/O and returns its bytes. Call it with the engine
// locked (a LiveUpdater's Exec): no request is handled and no output taken
// meanwhile, so the engine's state and these bytes fit together. The
// request with the engine, if any, is left out if the engine handled it.
func (c *Conn) Freeze() Handover {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	in := c.in[c.inOff:]
	if c.pending > 0 && c.eng.HandledLocked() > c.calls {
		in = in[c.pending:]
	}
	return Handover{Store: c.sc, State: handover.Conn{FD: -1, In: bytes.Clone(in), Out: bytes.Clone(c.out[c.outOff:]), Partial: c.outHead}}
}

// Hold freezes c without a handover: a connection made while its
// transport is frozen.
func (c *Conn) Hold() { c.setFrozen(true) }

// Thaw resumes c after a live update that did not happen.
func (c *Conn) Thaw() {
	c.setFrozen(false)
	c.Wake()
}

func (c *Conn) setFrozen(f bool) {
	c.mu.Lock()
	c.frozen = f
	c.mu.Unlock()
}
