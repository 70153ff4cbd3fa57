// Package unixsock serves the store on a Unix stream socket, the way C
// xenstored serves dom0's tools: every client is a privileged (domain 0)
// connection speaking the xs_wire.h protocol.
//
// Each client gets a reader and a writer goroutine. The reader hands whole
// requests to the engine and stops reading, without polling, whenever the
// engine says the connection has too much unread output or parked events
// (store.Conn.WantsInput); it waits for the engine's wake signal. A header
// whose length exceeds 4096 closes that client only, as in C xenstored.
package unixsock

import (
	"bufio"
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

// Serve accepts clients until ctx is done or the listener fails, then
// closes every client and returns.
func Serve(ctx context.Context, e *store.Engine, ln *net.UnixListener, log *slog.Logger) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[*net.UnixConn]struct{}{}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		var nc *net.UnixConn
		nc, err = ln.AcceptUnix()
		if err != nil {
			break
		}
		mu.Lock()
		open[nc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, e, nc, log)
			mu.Lock()
			delete(open, nc)
			mu.Unlock()
		}()
	}
	mu.Lock()
	for nc := range open {
		nc.Close()
	}
	mu.Unlock()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}

// serveConn runs one client until it disconnects or misbehaves.
func serveConn(ctx context.Context, e *store.Engine, nc *net.UnixConn, log *slog.Logger) {
	inWake := make(chan struct{}, 1)
	outWake := make(chan struct{}, 1)
	done := make(chan struct{})
	signal := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	// While the reader runs a request it sends the reply itself afterwards,
	// so the engine's wake need not hand the reply to the writer goroutine:
	// one request in flight then costs no thread switch.
	var inHandle atomic.Bool
	c := e.NewConn(0, true, func() {
		signal(inWake)
		if !inHandle.Load() {
			signal(outWake)
		}
	})
	out := &sender{c: c, nc: nc, w: bufio.NewWriterSize(nc, 16384), failed: make(chan struct{})}
	writerDone := make(chan struct{})
	draining := make(chan struct{})
	go func() {
		defer close(writerDone)
		writeLoop(out, outWake, done, draining)
	}()
	handle := func(m wire.Msg, more bool) {
		inHandle.Store(true)
		c.Handle(m)
		inHandle.Store(false)
		if more {
			signal(outWake) // more requests are buffered: let the writer batch
		} else {
			out.send()
		}
	}
	err := readLoop(c, nc, inWake, ctx.Done(), out.failed, handle)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The client half-closed after whole requests: send what is
		// queued for them before closing, as C xenstored does, but
		// do not wait for a client that reads nothing.
		close(draining)
		signal(outWake)
		select {
		case <-writerDone:
		case <-time.After(drainTimeout):
		}
	} else if err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("closing socket client", "conn", c.ID(), "err", err)
	}
	c.Close()
	close(done)
	nc.Close()
	<-writerDone
}

// readLoop reads requests until an error or shutdown and passes each to
// handle, telling it whether more input is already buffered. done is the
// server's shutdown signal: it ends a reader waiting for the engine to let
// it read.
//
// A reader stopped by back-pressure never sees the client hang up; failed
// (closed when a write fails) ends it then.
func readLoop(c *store.Conn, nc *net.UnixConn, wake, done, failed <-chan struct{}, handle func(wire.Msg, bool)) error {
	r := bufio.NewReaderSize(nc, 8192)
	var hdr [wire.HeaderSize]byte
	for {
		for !c.WantsInput() {
			select {
			case <-wake:
			case <-done:
				return nil
			case <-failed:
				return net.ErrClosed
			}
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		h, err := wire.ParseHeader(hdr[:])
		if err != nil {
			return err // over-long: drop this client, as C xenstored does
		}
		payload := make([]byte, h.Len)
		if _, err := io.ReadFull(r, payload); err != nil {
			return fmt.Errorf("reading %d-byte payload: %w", h.Len, err)
		}
		handle(wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: payload}, r.Buffered() > 0)
	}
}

// sender writes a connection's queued output. The reader and the writer
// goroutine share it; the mutex keeps messages whole and in queue order.
type sender struct {
	mu  sync.Mutex
	c   *store.Conn
	nc  *net.UnixConn
	w   *bufio.Writer
	err error // sticky: the socket is closed after a write error
	// failed is closed with the first write error.
	failed chan struct{}
}

// send writes everything queued and flushes it.
func (s *sender) send() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for {
		msg, ok := s.c.NextOutput()
		if !ok {
			break
		}
		if _, err := s.w.Write(msg); err != nil {
			return s.fail(err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *sender) fail(err error) error {
	s.err = err
	s.nc.Close()
	close(s.failed)
	return err
}

// drainTimeout bounds how long replies are sent after a client half-closed.
const drainTimeout = 5 * time.Second

func writeLoop(out *sender, wake, done, draining <-chan struct{}) {
	for {
		if out.send() != nil {
			return
		}
		select {
		case <-draining:
			if out.c.PendingOutput() == 0 {
				return
			}
			continue
		default:
		}
		select {
		case <-wake:
		case <-done:
			return
		}
	}
}
