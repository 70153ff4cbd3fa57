package unixsock

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
)

// Handover is one socket client as a live update carries it: its socket
// and the bytes its transport held.
type Handover struct {
	Conn *store.Conn // nil: accepted, but no engine connection yet
	File *os.File    // a duplicate of the socket, for the next daemon
	In   []byte      // read but not handled, whole requests first
	Out  []byte      // taken from the engine but not written
	// OutPartial bytes of Out end a message partly written; whole
	// messages follow.
	OutPartial int
}

// past is a deadline that cuts short a system call in progress.
var past = time.Unix(1, 0)

// Freeze stops every client's I/O and returns the listener and each
// client's state. Call it with the engine locked (from a LiveUpdater's
// Exec): no request is handled and no output taken meanwhile, so the
// engine's state and these bytes fit together. Thaw undoes it.
func (s *Server) Freeze() (*os.File, []Handover, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	s.ln.SetDeadline(past)
	for s.accepting {
		s.cond.Wait()
	}
	var out []Handover
	var err error
	for cl := range s.clients {
		h := cl.freeze()
		if h.File, err = cl.file(); err != nil {
			break
		}
		out = append(out, h)
	}
	for nc := range s.accepted {
		if err != nil {
			break
		}
		var f *os.File
		if f, err = nc.File(); err == nil {
			out = append(out, Handover{File: f})
		}
	}
	var lf *os.File
	if err == nil {
		lf, err = s.ln.File()
	}
	if err != nil {
		closeHandovers(out)
		s.thawLocked()
		return nil, nil, fmt.Errorf("socket handover: %w", err)
	}
	return lf, out, nil
}

func closeHandovers(hs []Handover) {
	for _, h := range hs {
		if h.File != nil {
			h.File.Close()
		}
	}
}

// Thaw resumes a frozen server after an update that did not happen; the
// handovers' duplicate descriptors are closed.
func (s *Server) Thaw(hs []Handover) {
	closeHandovers(hs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
}

func (s *Server) thawLocked() {
	s.frozen = false
	s.ln.SetDeadline(time.Time{})
	for cl := range s.clients {
		cl.thaw()
	}
	s.cond.Broadcast()
}

// freeze stops cl's I/O (every read and write happens under cl.mu) and
// copies its bytes. The request being handled is left out if the engine
// took it already.
func (cl *client) freeze() Handover {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.frozen = true
	in := cl.in
	if cl.inflight > 0 && cl.c.HandledLocked() > cl.calls {
		in = in[cl.inflight:]
	}
	return Handover{Conn: cl.c, In: bytes.Clone(in), Out: bytes.Clone(cl.out), OutPartial: cl.outHead}
}

// file duplicates cl's socket for the next daemon. Caller holds s.mu (the
// client is open).
func (cl *client) file() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(cl.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "unixsock-client"), nil
}

func (cl *client) thaw() {
	cl.mu.Lock()
	cl.frozen = false
	cl.mu.Unlock()
	cl.s.markDirty(cl)
}

// Adopt takes over a client carried by a live update, before Serve: c is
// its restored engine connection (nil: a new one), in and out the bytes
// the last daemon held for it (out: the rest of one message partly
// written, or nothing).
func (s *Server) Adopt(c *store.Conn, nc *net.UnixConn, in, out []byte) {
	fd, err := rawFD(nc)
	nc.Close()
	if err != nil {
		s.log.Warn("live-update: a socket client was not adopted", "err", err)
		if c != nil {
			c.Close()
		}
		return
	}
	if c == nil {
		c = s.e.NewConn(0, true, nil)
	}
	cl := newClient(s, c, fd)
	cl.in, cl.out, cl.outHead = in, out, len(out)
	s.mu.Lock()
	s.clients[cl] = struct{}{}
	s.mu.Unlock()
}
