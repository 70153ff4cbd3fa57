package unixsock

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/transport/conn"
)

// past is a deadline that cuts short a system call in progress.
var past = time.Unix(1, 0)

// Freeze stops every client's I/O and returns the listener and each
// client's state, whose State.FD is a duplicate of its socket for the next
// daemon (a client accepted without an engine connection yet has a nil
// Store). Call it with the engine locked (from a LiveUpdater's Exec): no
// request is handled and no output taken meanwhile, so the engine's state
// and these bytes fit together. Thaw undoes it.
func (s *Server) Freeze() (*os.File, []conn.Handover, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	s.ln.SetDeadline(past)
	for s.accepting {
		s.cond.Wait()
	}
	var out []conn.Handover
	var err error
	for cl := range s.clients {
		h := cl.core.Freeze()
		if h.State.FD, err = dupFD(uintptr(cl.fd)); err != nil {
			break
		}
		out = append(out, h)
	}
	for nc := range s.accepted {
		if err != nil {
			break
		}
		h := conn.Handover{State: handover.Conn{FD: -1}}
		if h.State.FD, err = dupConn(nc); err == nil {
			out = append(out, h)
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

func closeHandovers(hs []conn.Handover) {
	for _, h := range hs {
		if h.State.FD >= 0 {
			unix.Close(int(h.State.FD))
		}
	}
}

// Thaw resumes a frozen server after an update that did not happen; the
// handovers' duplicate descriptors are closed.
func (s *Server) Thaw(hs []conn.Handover) {
	closeHandovers(hs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
}

func (s *Server) thawLocked() {
	s.frozen = false
	s.ln.SetDeadline(time.Time{})
	for cl := range s.clients {
		cl.core.Thaw()
	}
	s.cond.Broadcast()
}

// dupFD duplicates a socket for the next daemon (close-on-exec until the
// exec keeps it). Caller holds s.mu (the socket is open).
func dupFD(fd uintptr) (int32, error) {
	d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	return int32(d), err
}

// dupConn is dupFD for a socket still in the Go runtime's poller.
func dupConn(nc *net.UnixConn) (int32, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return -1, err
	}
	d, derr := int32(-1), error(nil)
	if err := rc.Control(func(fd uintptr) { d, derr = dupFD(fd) }); err != nil {
		return -1, err
	}
	return d, derr
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
	cl.core.Restore(in, out)
	s.mu.Lock()
	s.clients[cl] = struct{}{}
	s.mu.Unlock()
}
