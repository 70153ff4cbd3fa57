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
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/wire"
)

// Listen creates the socket at path (its directory too), replacing a stale
// socket file, with mode 0600 as C xenstored uses.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A live daemon would answer; a stale file would not.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
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
	c := e.NewConn(0, true, func() {
		select {
		case inWake <- struct{}{}:
		default:
		}
		select {
		case outWake <- struct{}{}:
		default:
		}
	})
	writerDone := make(chan struct{})
	draining := make(chan struct{})
	go func() {
		defer close(writerDone)
		writeLoop(c, nc, outWake, done, draining)
	}()
	err := readLoop(c, nc, inWake, ctx.Done())
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The client half-closed after whole requests: send what is
		// queued for them before closing, as C xenstored does, but
		// do not wait for a client that reads nothing.
		close(draining)
		select {
		case outWake <- struct{}{}:
		default:
		}
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

// readLoop reads requests until an error or shutdown. done is the server's
// shutdown signal: it ends a reader waiting for the engine to let it read.
func readLoop(c *store.Conn, nc *net.UnixConn, wake <-chan struct{}, done <-chan struct{}) error {
	r := bufio.NewReaderSize(nc, 8192)
	var hdr [wire.HeaderSize]byte
	for {
		for !c.WantsInput() {
			select {
			case <-wake:
			case <-done:
				return nil
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
		c.Handle(wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: payload})
	}
}

// drainTimeout bounds how long replies are sent after a client half-closed.
const drainTimeout = 5 * time.Second

func writeLoop(c *store.Conn, nc *net.UnixConn, wake, done, draining <-chan struct{}) {
	w := bufio.NewWriterSize(nc, 16384)
	for {
		msg, ok := c.NextOutput()
		if ok {
			if _, err := w.Write(msg); err != nil {
				nc.Close()
				return
			}
			continue
		}
		if err := w.Flush(); err != nil {
			nc.Close()
			return
		}
		select {
		case <-draining:
			if c.PendingOutput() == 0 {
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
