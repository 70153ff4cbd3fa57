// Package unixsock serves the store on a Unix stream socket, the way C
// xenstored serves dom0's tools: every client is a privileged (domain 0)
// connection speaking the xs_wire.h protocol.
//
// One poller goroutine serves every client, as C xenstored's main loop
// does: its own epoll set (level-triggered) over the clients' raw,
// non-blocking descriptors, which are not in the Go runtime's network
// poller. Per ready client it reads once, hands every whole request to the
// engine (one engine call each, which hands its reply back) and writes the
// replies with one write. At one request
// in flight that is epoll_wait, read and write per request, with no
// goroutine hand-off, no read that finds nothing and no poll of the
// runtime's own netpoller (they cost the Go netpoller path about twice the
// CPU per request of a C epoll server on this machine; bench/README.md).
// The poller keeps one OS thread (the kernel then keeps it next to its
// client), reads and writes with raw system calls (they never block) and
// passes through the scheduler every few ms so that the runtime's sysmon
// does not take it for a stuck goroutine.
//
// Each client's buffers, framing and live-update state are the shared
// connection core (transport/conn) over its socket as the endpoint. Output
// the engine queues for a client outside its own requests (watch events,
// replies unblocked elsewhere) reaches the poller through the connection's
// wake callback: the core's list of dirty clients (conn.Loop), and an
// eventfd written only when the poller sleeps in epoll_wait.
//
// The poller stops reading a client, by dropping EPOLLIN from its
// interest, whenever the engine says the connection has too much unread
// output or parked events (store.Status.WantsInput), and resumes when the
// engine's wake marks the client dirty or its own take of output lets it. A write that would block arms
// EPOLLOUT. A header whose length exceeds 4096 closes that client only, as
// in C xenstored. A client that half-closes gets the replies to its whole
// requests, for at most drainTimeout.
//
// Running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
// fails only the connections it meets: the accept loop waits a delay
// doubling from 5 ms to 1 s between attempts (the listener stays ready
// while its backlog is not empty), logs once per burst, and the connected
// clients are served throughout.
//
// Live update (handover.go): a Server can be frozen with the engine
// locked. Every client's core then holds exactly the bytes read but not
// handled and the bytes taken from the engine but not written (the
// invariants are conn's); with the listener and the sockets these go to
// the next daemon, which adopts them.
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
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/conn"
)

// sockConn is the connection core's configuration for a socket client:
// output leaves the engine, and is written, up to 64 KiB at a time (what a
// client does not read beyond that stays counted in the engine, which then
// stops its input); reads take what the socket has, requests per pass are
// not bounded (a pass ends when the socket is drained).
var sockConn = conn.Config{OutLimit: 64 << 10}

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
	stopping  bool
	wg        sync.WaitGroup

	ep, evfd int               // the poller's epoll set and wake-up eventfd (-1: not made)
	byFD     map[int32]*client // under mu
	draining map[*client]bool  // the poller's: half-closed clients with a deadline
	loop     *conn.Loop        // clients to pump: output queued, input may resume, thawed
}

// NewServer prepares a server; Serve runs it.
func NewServer(e *store.Engine, ln *net.UnixListener, log *slog.Logger) *Server {
	s := &Server{e: e, ln: ln, log: log, clients: map[*client]struct{}{}, accepted: map[*net.UnixConn]struct{}{},
		ep: -1, evfd: -1, byFD: map[int32]*client{}, draining: map[*client]bool{}}
	s.cond = sync.NewCond(&s.mu)
	s.loop = conn.NewLoop(s.wakePoller)
	return s
}

// Serve accepts clients until ctx is done or the listener fails, then
// closes every client and returns.
func Serve(ctx context.Context, e *store.Engine, ln *net.UnixListener, log *slog.Logger) error {
	return NewServer(e, ln, log).Serve(ctx)
}

// Serve runs the server until ctx is done or the listener fails.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.initPoller(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	s.mu.Lock()
	failed := map[*client]error{}
	for cl := range s.clients { // adopted ones
		if err := s.register(cl); err != nil {
			failed[cl] = err
		}
	}
	s.mu.Unlock()
	for cl, err := range failed {
		s.log.Warn("adopted socket client dropped", "conn", cl.core.Store().ID(), "err", err)
		s.abandon(cl)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.poll()
	}()
	err := s.acceptLoop(ctx)
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.loop.Poke()
	s.wg.Wait() // the poller closed every client
	unix.Close(s.ep)
	unix.Close(s.evfd)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}

func (s *Server) initPoller() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(ep)
		unix.Close(evfd)
		return fmt.Errorf("epoll: %w", err)
	}
	s.ep, s.evfd = ep, evfd
	return nil
}

// rawFD takes nc's socket out of the Go runtime's poller: a duplicate,
// non-blocking descriptor. The caller closes nc.
func rawFD(nc *net.UnixConn) (int, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// register adds cl to the poller and has it pumped once (adopted clients
// may hold whole requests and unsent output). Caller holds s.mu.
func (s *Server) register(cl *client) error {
	cl.events = unix.EPOLLIN
	if err := epollAdd(s.ep, cl.fd, &unix.EpollEvent{Events: cl.events, Fd: int32(cl.fd)}); err != nil {
		return fmt.Errorf("adding socket client to the poller: %w", err)
	}
	s.byFD[int32(cl.fd)] = cl
	s.loop.Mark(cl.core)
	return nil
}

// epollAdd is EPOLL_CTL_ADD; a variable so that tests can make it fail.
var epollAdd = func(ep, fd int, ev *unix.EpollEvent) error {
	return unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, ev)
}

// abandon undoes a client that never reached the poller (register failed):
// it is in no poller structure, so only the server's maps, its engine
// connection and its descriptor are left to release. Called without s.mu.
func (s *Server) abandon(cl *client) {
	s.mu.Lock()
	delete(s.clients, cl)
	s.mu.Unlock()
	cl.closed = true
	cl.core.Store().Close()
	unix.Close(cl.fd)
	cl.fd = -1
}

// acceptLoop accepts clients until ctx is done or the listener fails. A
// shortage of descriptors or memory fails only the connections it meets
// (they wait in the listener's backlog, or are closed when the shortage
// hits after accept): the loop backs off and retries while the connected
// clients go on being served, as C xenstored stays up.
func (s *Server) acceptLoop(ctx context.Context) error {
	var b acceptBackoff
	for {
		nc, err := s.accept()
		switch {
		case err != nil && !isShortage(err):
			return err
		case err == nil && nc == nil:
			continue // woken by a freeze
		case err == nil:
			err = s.admit(nc)
		}
		switch {
		case err == nil:
			b.succeeded(s.log)
		case isShortage(err):
			sleep(ctx, b.failed(s.log, err))
		default:
			s.log.Warn("socket client dropped", "err", err)
		}
	}
}

// admit makes nc a client: its engine connection and its descriptor in
// the poller.
func (s *Server) admit(nc *net.UnixConn) error {
	c := s.e.NewConn(0, true, nil)
	fd, err := rawFD(nc)
	s.mu.Lock()
	delete(s.accepted, nc)
	nc.Close()
	if err != nil {
		s.mu.Unlock()
		c.Close()
		return err
	}
	cl := newClient(s, c, fd)
	s.clients[cl] = struct{}{}
	err = s.register(cl)
	s.mu.Unlock()
	if err != nil {
		s.abandon(cl)
		return err
	}
	return nil
}

// isShortage reports whether err means the process or the system ran out
// of descriptors or memory: a passing condition, not a broken listener.
func isShortage(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// acceptBackoff paces accepting during a shortage: the listener stays
// ready while its backlog holds connections, so retrying at once would
// spin. One log line per burst, another when it ends.
type acceptBackoff struct {
	delay    time.Duration // 0: no shortage
	failures int
}

const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// failed counts a failure and returns how long to wait before the next
// accept: a delay doubling from minAcceptDelay up to maxAcceptDelay.
func (b *acceptBackoff) failed(log *slog.Logger, err error) time.Duration {
	b.failures++
	if b.delay == 0 {
		log.Warn("cannot accept socket clients, out of descriptors or memory: serving the connected ones and retrying", "err", err)
		b.delay = minAcceptDelay
		return b.delay
	}
	b.delay = min(2*b.delay, maxAcceptDelay)
	return b.delay
}

// succeeded ends a burst of failures, if any.
func (b *acceptBackoff) succeeded(log *slog.Logger) {
	if b.delay == 0 {
		return
	}
	log.Info("accepting socket clients again", "failed-attempts", b.failures)
	*b = acceptBackoff{}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// wakePoller is the poller's wake-up (conn.Loop's kick): it returns from
// epoll_wait.
func (s *Server) wakePoller() {
	if s.evfd < 0 {
		return
	}
	one := [8]byte{1}
	unix.Write(s.evfd, one[:])
}

// poll is the poller: it runs until Serve stops it, then closes every
// client.
func (s *Server) poll() {
	// One thread for the poller: otherwise each yield (below) or
	// preemption may move it to another runtime thread, last run on the
	// other CPU, and the kernel's wake-up placement next to the client is
	// lost (measured: half the depth-1 rounds on a second thread, waiting
	// 18 µs on average to run once woken, against 2-4 µs).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	evs := make([]unix.EpollEvent, 64)
	var work []*conn.Conn
	lastYield := time.Now()
	for {
		// A goroutine that never passes through the scheduler looks stuck
		// to the runtime's sysmon: after 10 ms it preempts it and takes
		// its P, and every such retake resets sysmon to waking every
		// 20 µs (thousands of wake-ups per second under load). A yield
		// every few ms avoids that, for the price of handing the P to
		// another thread and back (the poller's thread is locked).
		if now := time.Now(); now.Sub(lastYield) > yieldEvery {
			runtime.Gosched()
			lastYield = now
		}
		s.mu.Lock()
		for s.frozen && !s.stopping {
			s.cond.Wait()
		}
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			break
		}
		work = s.loop.Take(work[:0])
		for _, c := range work {
			c.Endpoint().(*client).pump(false, false)
		}
		clear(work)

		if !s.loop.Sleep() {
			continue // marked meanwhile
		}
		n, err := unix.EpollWait(s.ep, evs, s.timeout())
		s.loop.Awake()
		if err != nil && err != unix.EINTR {
			s.log.Error("socket poller", "err", err)
			break
		}
		for _, ev := range evs[:max(n, 0)] {
			if int(ev.Fd) == s.evfd {
				var b [8]byte
				unix.Read(s.evfd, b[:])
				continue
			}
			s.mu.Lock()
			cl := s.byFD[ev.Fd]
			s.mu.Unlock()
			if cl != nil {
				cl.pump(ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0, ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0)
			}
		}
		s.expire()
	}
	s.mu.Lock()
	var all []*client
	for cl := range s.clients {
		all = append(all, cl)
	}
	s.mu.Unlock()
	for _, cl := range all {
		cl.drop(nil)
	}
}

// yieldEvery is how often a busy poller passes through the scheduler,
// well within sysmon's 10 ms (runtime.forcePreemptNS).
const yieldEvery = 5 * time.Millisecond

// timeout is epoll_wait's: until the earliest drain deadline, or forever.
func (s *Server) timeout() int {
	var first time.Time
	for cl := range s.draining {
		if !cl.drainBy.IsZero() && (first.IsZero() || cl.drainBy.Before(first)) {
			first = cl.drainBy
		}
	}
	if first.IsZero() {
		return -1
	}
	return max(int(time.Until(first)/time.Millisecond)+1, 0)
}

// expire closes half-closed clients whose replies were not taken in time.
func (s *Server) expire() {
	if len(s.draining) == 0 {
		return // the usual case: no clock read
	}
	now := time.Now()
	for cl := range s.draining {
		if now.After(cl.drainBy) {
			cl.drop(nil)
		}
	}
}

// client is one socket client: its socket is its connection core's
// endpoint. Only the poller reads, writes, pumps and closes it.
type client struct {
	s    *Server
	core *conn.Conn
	fd   int

	// The poller's own.
	events  uint32    // epoll interest
	drainBy time.Time // set once the client half-closed: replies sent until then at most
	closed  bool
}

func newClient(s *Server, c *store.Conn, fd int) *client {
	cl := &client{s: s, fd: fd}
	cl.core = conn.New(c, cl, s.loop, sockConn)
	if s.frozen {
		cl.core.Hold() // made during a freeze: Thaw resumes it with the rest
	}
	c.Adopt(cl.core.Wake)
	return cl
}

// Read and Write are the core's endpoint: one raw system call each (they
// never block); EAGAIN is nothing now, a read of 0 bytes the end.
func (cl *client) Read(p []byte) (int, error) {
	n, err := rawNow(rawRead, cl.fd, p)
	if err == nil && n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return max(n, 0), err
}

func (cl *client) Write(p []byte) (int, error) {
	n, err := rawNow(rawWrite, cl.fd, p)
	return max(n, 0), err
}

// rawNow runs call on fd until no signal interrupts it; it would block:
// -1, nil.
func rawNow(call func(int, []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := call(fd, p)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return -1, nil
		}
		return n, err
	}
}

// pump has the core do everything cl is ready for (write pending output,
// read if readable, handle every whole request the engine accepts, write
// the replies), then closes cl or sets its epoll interest to what it waits
// for next. hup means the peer hung up or the socket failed.
func (cl *client) pump(readable, hup bool) {
	if cl.closed {
		return
	}
	res := cl.core.Pump(readable)
	if res.Frozen {
		return // Thaw marks it dirty
	}
	if res.Err != nil {
		if ce := (*conn.Error)(nil); errors.As(res.Err, &ce) && ce.Op == conn.OpWrite {
			cl.drop(nil) // the client went away
		} else {
			cl.drop(res.Err) // over-long: drop this client, as C xenstored does
		}
		return
	}
	want := res.WantsInput
	if !res.OutPending && res.Closed {
		cl.drop(nil) // the engine closed it (a contained failure): its reply is sent
		return
	}
	if res.EOF {
		if !res.OutPending && res.Queued == 0 && !res.Buffered {
			cl.drop(nil) // everything answered and sent
			return
		}
		if hup && !res.OutPending && !want {
			cl.drop(nil) // gone, and nothing more can be answered
			return
		}
		if cl.drainBy.IsZero() {
			cl.drainBy = time.Now().Add(drainTimeout)
			cl.s.draining[cl] = true
		}
	} else if hup && !want {
		cl.drop(nil) // hung up while stopped by back-pressure
		return
	}
	var ev uint32
	if want && !res.EOF {
		ev |= unix.EPOLLIN
	}
	if res.OutPending {
		ev |= unix.EPOLLOUT
	}
	if ev != cl.events {
		if err := unix.EpollCtl(cl.s.ep, unix.EPOLL_CTL_MOD, cl.fd, &unix.EpollEvent{Events: ev, Fd: int32(cl.fd)}); err != nil {
			cl.drop(err)
			return
		}
		cl.events = ev
	}
}

// drop closes cl: engine connection, poller entry, socket.
func (cl *client) drop(err error) {
	if cl.closed {
		return
	}
	cl.closed = true
	delete(cl.s.draining, cl)
	c := cl.core.Store()
	if err != nil {
		cl.s.log.Warn("closing socket client", "conn", c.ID(), "err", err)
	}
	c.Close()
	s := cl.s
	s.mu.Lock()
	delete(s.clients, cl)
	delete(s.byFD, int32(cl.fd))
	unix.EpollCtl(s.ep, unix.EPOLL_CTL_DEL, cl.fd, nil)
	unix.Close(cl.fd)
	cl.fd = -1
	s.mu.Unlock()
}

// drainTimeout bounds how long replies are sent after a client half-closed.
const drainTimeout = 5 * time.Second
