// Package unixsock serves the store on a Unix stream socket, the way C
// xenstored serves dom0's tools: every client is a privileged (domain 0)
// connection speaking the xs_wire.h protocol.
//
// Each client gets a reader and a writer goroutine. The reader hands whole
// requests to the engine and stops reading, without polling, whenever the
// engine says the connection has too much unread output or parked events
// (store.Conn.WantsInput); it waits for the engine's wake signal. A header
// whose length exceeds 4096 closes that client only, as in C xenstored.
//
// Live update (handover.go): a Server can be frozen with the engine
// locked. Every client then holds, under its own lock, exactly the bytes
// read but not handled and the bytes taken from the engine but not
// written; with the listener and the sockets these go to the next daemon,
// which adopts them. Invariants: a client's in starts with the request
// being handled, if any (inflight bytes); out only grows inside
// store.Conn.TakeOutput, i.e. with the engine locked; no client is in a
// read or write system call while frozen.
package unixsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/wire"
)

// Serving reports whether a server answers on the socket at path.
func Serving(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Listen creates the socket at path (its directory too), replacing a stale
// socket file, with mode 0600 as C xenstored uses.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A live daemon would answer; a stale file would not.
		if Serving(path) {
			return nil, fmt.Errorf("a xenstored is already serving %s", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// Server serves one engine on one listening socket.
type Server struct {
	e   *store.Engine
	ln  *net.UnixListener
	log *slog.Logger

	mu        sync.Mutex
	cond      *sync.Cond
	clients   map[*client]struct{}
	accepted  map[*net.UnixConn]struct{} // accepted, engine connection not made yet
	accepting bool                       // in accept(2)
	frozen    bool
	wg        sync.WaitGroup
}

// NewServer prepares a server; Serve runs it.
func NewServer(e *store.Engine, ln *net.UnixListener, log *slog.Logger) *Server {
	s := &Server{e: e, ln: ln, log: log, clients: map[*client]struct{}{}, accepted: map[*net.UnixConn]struct{}{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Serve accepts clients until ctx is done or the listener fails, then
// closes every client and returns.
func Serve(ctx context.Context, e *store.Engine, ln *net.UnixListener, log *slog.Logger) error {
	return NewServer(e, ln, log).Serve(ctx)
}

// Serve runs the server until ctx is done or the listener fails.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	s.mu.Lock()
	for cl := range s.clients { // adopted ones
		s.start(ctx, cl)
	}
	s.mu.Unlock()
	var err error
	for {
		var nc *net.UnixConn
		nc, err = s.accept()
		if err != nil {
			break
		}
		if nc == nil {
			continue // woken by a freeze
		}
		c := s.e.NewConn(0, true, nil)
		s.mu.Lock()
		delete(s.accepted, nc)
		cl := newClient(s, c, nc)
		s.clients[cl] = struct{}{}
		s.start(ctx, cl)
		s.mu.Unlock()
	}
	s.mu.Lock()
	for cl := range s.clients {
		cl.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}

// accept takes the next client, marking it accepted before its engine
// connection exists (a freeze then hands it over as a new client). It
// returns nil, nil when a freeze woke it.
func (s *Server) accept() (*net.UnixConn, error) {
	s.mu.Lock()
	for s.frozen {
		s.cond.Wait()
	}
	s.accepting = true
	s.mu.Unlock()
	nc, err := s.ln.AcceptUnix()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepting = false
	s.cond.Broadcast()
	if nc != nil {
		s.accepted[nc] = struct{}{}
		return nc, nil
	}
	if s.frozen && isTimeout(err) {
		return nil, nil
	}
	return nil, err
}

// start runs cl's goroutines. Caller holds s.mu.
func (s *Server) start(ctx context.Context, cl *client) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		cl.serve(ctx, s.log)
		s.mu.Lock()
		delete(s.clients, cl)
		s.mu.Unlock()
	}()
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// client is one socket client; see the package comment for its
// invariants. Lock order: the engine's lock, then mu.
type client struct {
	c  *store.Conn
	nc *net.UnixConn

	wmu sync.Mutex // one writer at a time (the reader replies itself too)

	mu       sync.Mutex
	cond     *sync.Cond
	in       []byte // read, not handled yet
	inflight int    // bytes of in being handled now
	calls    uint64 // Handle calls completed
	out      []byte // taken from the engine, not written yet
	reading  bool   // in read(2)
	writing  bool   // in write(2)
	frozen   bool
	failed   chan struct{} // closed by the first write error
	failOnce sync.Once

	inWake, outWake chan struct{}
	inHandle        atomic.Bool
}

func newClient(s *Server, c *store.Conn, nc *net.UnixConn) *client {
	cl := &client{c: c, nc: nc, failed: make(chan struct{}),
		inWake: make(chan struct{}, 1), outWake: make(chan struct{}, 1), frozen: s.frozen}
	cl.cond = sync.NewCond(&cl.mu)
	c.Adopt(func() {
		signal(cl.inWake)
		// While the reader runs a request it sends the reply itself
		// afterwards: one request in flight costs no thread switch.
		if !cl.inHandle.Load() {
			signal(cl.outWake)
		}
	})
	return cl
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// serve runs one client until it disconnects or misbehaves.
func (cl *client) serve(ctx context.Context, log *slog.Logger) {
	done := make(chan struct{})
	writerDone := make(chan struct{})
	draining := make(chan struct{})
	go func() {
		defer close(writerDone)
		cl.writeLoop(done, draining)
	}()
	err := cl.readLoop(ctx.Done())
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The client half-closed after whole requests: send what is
		// queued for them before closing, as C xenstored does, but
		// do not wait for a client that reads nothing.
		close(draining)
		signal(cl.outWake)
		select {
		case <-writerDone:
		case <-time.After(drainTimeout):
		}
	} else if err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("closing socket client", "conn", cl.c.ID(), "err", err)
	}
	cl.c.Close()
	close(done)
	cl.nc.Close()
	<-writerDone
}

// readLoop reads requests until an error or shutdown and hands each to
// the engine. done is the server's shutdown signal: it ends a reader
// waiting for the engine to let it read.
//
// A reader stopped by back-pressure never sees the client hang up; failed
// (closed when a write fails) ends it then.
func (cl *client) readLoop(done <-chan struct{}) error {
	for {
		for !cl.c.WantsInput() {
			select {
			case <-cl.inWake:
			case <-done:
				return nil
			case <-cl.failed:
				return net.ErrClosed
			}
		}
		m, n, err := cl.nextRequest()
		if err != nil {
			return err // over-long: drop this client, as C xenstored does
		}
		if n > 0 {
			cl.handle(m, n)
			continue
		}
		if err := cl.fill(); err != nil {
			return err
		}
	}
}

// nextRequest decodes the whole request at the front of in, if there is
// one, and marks its n bytes in flight. It waits while frozen.
func (cl *client) nextRequest() (wire.Msg, int, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for cl.frozen {
		cl.cond.Wait()
	}
	if len(cl.in) < wire.HeaderSize {
		return wire.Msg{}, 0, nil
	}
	h, err := wire.ParseHeader(cl.in)
	if err != nil {
		return wire.Msg{}, 0, err
	}
	n := wire.HeaderSize + int(h.Len)
	if len(cl.in) < n {
		return wire.Msg{}, 0, nil
	}
	payload := make([]byte, h.Len)
	copy(payload, cl.in[wire.HeaderSize:n])
	cl.inflight = n
	return wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: payload}, n, nil
}

// handle runs one request, then drops its bytes and sends the reply,
// unless more requests are buffered (the writer batches them then).
func (cl *client) handle(m wire.Msg, n int) {
	cl.inHandle.Store(true)
	cl.c.Handle(m)
	cl.inHandle.Store(false)
	cl.mu.Lock()
	cl.in = cl.in[:copy(cl.in, cl.in[n:])] // keep the buffer
	cl.inflight = 0
	cl.calls++
	more := len(cl.in) > 0
	cl.mu.Unlock()
	if more {
		signal(cl.outWake)
	} else {
		cl.send()
	}
}

// fill reads once from the socket into in's spare room (only this
// goroutine changes in, so the room is its own while it reads). A read cut
// short by a freeze is no error.
func (cl *client) fill() error {
	cl.mu.Lock()
	for cl.frozen {
		cl.cond.Wait()
	}
	if cap(cl.in)-len(cl.in) < readChunk/2 {
		grown := make([]byte, len(cl.in), len(cl.in)+readChunk)
		copy(grown, cl.in)
		cl.in = grown
	}
	room := cl.in[len(cl.in):cap(cl.in)]
	cl.reading = true
	cl.mu.Unlock()
	n, err := cl.nc.Read(room)
	cl.mu.Lock()
	cl.in = cl.in[:len(cl.in)+n]
	cl.reading = false
	frozen := cl.frozen
	cl.cond.Broadcast()
	cl.mu.Unlock()
	if err != nil && frozen && isTimeout(err) {
		return nil
	}
	if err == io.EOF && len(cl.in) > 0 {
		return io.ErrUnexpectedEOF // a partial request: still answer the whole ones
	}
	return err
}

// readChunk is the room a read is given.
const readChunk = 8192

// send takes everything the engine queued and writes it.
func (cl *client) send() error {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	cl.c.TakeOutput(func(msg []byte) {
		cl.mu.Lock()
		cl.out = append(cl.out, msg...)
		cl.mu.Unlock()
	})
	for {
		cl.mu.Lock()
		for cl.frozen {
			cl.cond.Wait()
		}
		b := cl.out
		if len(b) == 0 {
			cl.out = nil
			cl.mu.Unlock()
			return nil
		}
		cl.writing = true
		cl.mu.Unlock()
		n, err := cl.nc.Write(b)
		cl.mu.Lock()
		cl.out = cl.out[n:]
		cl.writing = false
		frozen := cl.frozen
		cl.cond.Broadcast()
		cl.mu.Unlock()
		if err != nil && !(frozen && isTimeout(err)) {
			cl.failOnce.Do(func() { cl.nc.Close(); close(cl.failed) })
			return err
		}
	}
}

// drainTimeout bounds how long replies are sent after a client half-closed.
const drainTimeout = 5 * time.Second

func (cl *client) writeLoop(done, draining <-chan struct{}) {
	for {
		if cl.send() != nil {
			return
		}
		select {
		case <-draining:
			if cl.c.PendingOutput() == 0 {
				return
			}
			continue
		default:
		}
		select {
		case <-cl.outWake:
		case <-done:
			return
		}
	}
}
