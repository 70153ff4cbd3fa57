// Package xenring serves store connections over Xen xenstore rings: each
// introduced domain's ring page is grant-mapped (grant ref 1) and signalled
// through an interdomain event channel. It implements store.Platform.
//
// One goroutine (Serve) runs the event loop for every ring: it polls the
// event-channel descriptor and a wake pipe that the engine signals, only
// while the loop sleeps, when a connection has output or may read again
// (conn.Loop). There is no goroutine per ring, and nothing busy-polls: a
// ring whose connection may not read (bounded queues) is simply not read
// until the engine wakes it. Each ring's buffers, framing and live-update
// state are the shared connection core (transport/conn) over the ring page
// as its endpoint; this package keeps the page, the event channel,
// reconnection and the domains' lives.
//
// The ring page is written by a possibly hostile guest. Package ring reads
// each index once and bound-checks it; this package never trusts a length:
// a header announcing more than 4096 bytes, or inconsistent indices, marks
// that one connection broken (error word set, no longer served) while the
// domain stays introduced until it really dies (XSA-325). No guest can stop
// the loop from serving the others: each service pass moves a bounded
// amount of data per ring.
package xenring

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// maxMessagesPerPass bounds the requests taken from one ring per service
// pass, so one busy guest cannot starve the rest.
const maxMessagesPerPass = 32

// ringConn is the connection core's configuration for a ring: one message
// at a time leaves the engine (the rest stays counted there), and is
// written to the ring before the next request; a read takes only the
// request at hand, so that nothing after a bad header is consumed; the
// requests per pass are bounded.
var ringConn = conn.Config{OutLimit: 1, Budget: maxMessagesPerPass, ReadExact: true}

// Server is the ring transport. Create it with New, pass it as the engine's
// Platform, then run Serve.
type Server struct {
	e   *store.Engine // set by SetEngine before Serve
	ev  xen.EventChannel
	gm  xen.GrantMapper
	di  xen.DomainInfo // nil: no domain exists but those introduced
	log *slog.Logger

	// answers holds each domain's existence as last asked by
	// ResolveDomains (outside the engine lock), for DomainExists (under
	// it). Deaths clear their entries; a domain never asked about
	// exists for nobody (fail closed).
	answersMu sync.Mutex
	answers   map[uint32]bool

	loop *conn.Loop // the rings with work; wakes Serve through the pipe

	mu       sync.Mutex // guards the maps; taken inside the engine lock
	byPort   map[uint32]*rconn
	byConn   map[*store.Conn]*rconn
	virqPort uint32
	local    map[uint32]xen.Mapping // rings not reached by grant mapping
	// prepared holds ring pages mapped by PrepareRing, outside the
	// engine lock, for the INTRODUCE that follows; one per domid.
	prepared map[uint32]xen.Mapping
	// fresh are domains whose ring no server has used (KeepQueued): their
	// queued requests are served, not dropped, when they are introduced.
	fresh map[uint32]bool
	// released rings wait here until the loop goroutine, the only one that
	// touches ring pages, unbinds and unmaps them (XSA-425: a RELEASE may
	// come while the loop is serving that very ring).
	released   []*rconn
	wakeR      int // pipe: the loop's wake-ups (conn.Loop's kick)
	wakeW      int
	wakeWrites atomic.Uint64 // pipe writes, for tests
}

// rconn is one served ring: the endpoint of its connection core, whose
// lock guards every access to the page (so that none happens once a live
// update froze it). broken and closed are the loop goroutine's.
type rconn struct {
	core    *conn.Conn
	conn    *store.Conn
	domid   uint32
	port    uint32 // local port
	mapping xen.Mapping
	r       *ring.Server
	// features are the ring features its domain may use (SET_FEATURE):
	// without reconnection its requests to reconnect are ignored, without
	// error its error word is never set, as C xenstored does.
	features uint32

	broken bool
	closed bool // detached; under Server.mu
	// moved: bytes went through the ring in this service pass; the loop
	// goroutine's.
	moved bool
}

// Read and Write make the ring page the connection core's endpoint; the
// core calls them under its lock. Bytes read free ring space (the guest
// may be waiting to write the rest of a message longer than the ring),
// bytes written are replies: either way the guest is notified at the end
// of the pass.
func (rc *rconn) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.moved = rc.moved || n > 0
	return n, err
}

func (rc *rconn) Write(p []byte) (int, error) {
	n, err := rc.r.Write(p)
	rc.moved = rc.moved || n > 0
	return n, err
}

// newRconn makes rc's connection core; the caller registers rc and gives
// the engine rc.core.Wake.
func (s *Server) newRconn(rc *rconn) *rconn {
	rc.core = conn.New(rc.conn, rc, s.loop, ringConn)
	return rc
}

// New creates the transport over the given devices. di may be nil (tests):
// then no domain but an introduced one exists and deaths are never seen.
func New(ev xen.EventChannel, gm xen.GrantMapper, di xen.DomainInfo, log *slog.Logger) (*Server, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("xenring: wake pipe: %w", err)
	}
	s := &Server{
		ev: ev, gm: gm, di: di, log: log,
		byPort: map[uint32]*rconn{}, byConn: map[*store.Conn]*rconn{},
		local: map[uint32]xen.Mapping{}, prepared: map[uint32]xen.Mapping{}, answers: map[uint32]bool{},
		fresh: map[uint32]bool{},
		wakeR: p[0], wakeW: p[1],
	}
	s.loop = conn.NewLoop(s.kick)
	return s, nil
}

// kick wakes the sleeping loop (conn.Loop sends it once per sleep).
func (s *Server) kick() {
	s.wakeWrites.Add(1)
	unix.Write(s.wakeW, []byte{1})
}

// SetEngine tells the transport which engine it serves (the engine needs
// the transport as its Platform first, hence two steps).
func (s *Server) SetEngine(e *store.Engine) { s.e = e }

// SetLocalRing supplies the ring page of domid when it cannot be grant
// mapped: dom0's own kernel ring (/proc/xen/xsd_kva) for a daemon in dom0.
func (s *Server) SetLocalRing(domid uint32, m xen.Mapping) {
	s.mu.Lock()
	s.local[domid] = m
	s.mu.Unlock()
}

// ResolveDomains implements store.DomainResolver: it asks the hypervisor
// about each domain (one hypercall each), outside the engine lock, so that
// DomainExists can answer under it without a hypercall. A failed query
// leaves the domain unknown, which DomainExists treats as absent.
func (s *Server) ResolveDomains(ids []uint32) {
	if s.di == nil {
		return
	}
	for _, id := range ids {
		info, ok, err := s.di.Domain(id)
		s.answersMu.Lock()
		if err != nil {
			delete(s.answers, id)
		} else {
			s.answers[id] = ok && !info.Dying
		}
		s.answersMu.Unlock()
		if err != nil {
			s.log.Warn("cannot tell whether a domain exists: taken as absent", "domid", id, "err", err)
		}
	}
}

// DomainExists implements store.Platform from ResolveDomains' answers; a
// domain it was not asked about does not exist, so a permission entry
// whose domain cannot be established grants nothing (XSA-417).
func (s *Server) DomainExists(domid uint32) bool {
	s.answersMu.Lock()
	defer s.answersMu.Unlock()
	return s.answers[domid]
}

// StorePort maps domid's xenstore ring for a moment and returns the event
// channel port its builder wrote into it (0: none), for a domain created
// before the store (dom0less, a restarted store). Not under the engine
// lock: it maps a page.
func (s *Server) StorePort(domid uint32) (uint32, error) {
	m, err := s.gm.MapForeign(domid, xen.GrantRefXenstore)
	if err != nil {
		return 0, fmt.Errorf("map ring of domain %d: %w", domid, err)
	}
	defer m.Unmap()
	r, err := ring.NewServer(m.Page())
	if err != nil {
		return 0, err
	}
	return r.EvtchnPort(), nil
}

// MaxProbedPort is the highest port FindStorePort tries: a dom0less domain's
// last event channel port (Xen 4.22 gives them max_evtchn_port 1023).
const MaxProbedPort = 1023

// FindStorePort finds domid's store event channel port when its ring does
// not name it. Xen 4.22 on Arm allocates a dom0less domain's store event
// channel unbound for the xenstore domain and only tells the domain itself
// (HVM_PARAM_STORE_EVTCHN, which a xenstore domain may not read), and
// leaves the ring's evtchn_port 0. A port bound for us is the only one we
// can bind to, so the ports are tried in turn from 1; the one that binds is
// closed again (its other end is then unbound for us again) and returned.
// A domain that opened more ports for us than its store's is served on
// the lowest of them: its own loss. The cost is one failed hypercall per
// lower port (Xen allocates the store's first, so 1 in practice).
func (s *Server) FindStorePort(domid uint32) (uint32, error) {
	for p := uint32(1); p <= MaxProbedPort; p++ {
		local, err := s.ev.BindInterdomain(domid, p)
		if errors.Is(err, unix.EINVAL) {
			continue // not unbound for us, or no such port
		}
		if err != nil {
			return 0, fmt.Errorf("looking for the store event channel of domain %d at port %d: %w", domid, p, err)
		}
		if err := s.ev.Unbind(local); err != nil {
			return 0, fmt.Errorf("domain %d's store event channel %d: closing the probe: %w", domid, p, err)
		}
		return p, nil
	}
	return 0, fmt.Errorf("domain %d has no port 1-%d bound for us: no store event channel", domid, MaxProbedPort)
}

// KeepQueued says that domid's ring was set up by its builder and never
// served (the dom0less domains a xenstore domain introduces at start): at
// its introduction the requests the guest queued meanwhile are kept and
// served, as C xenstored's start-up introduction does, rather than
// dropped by a reconnection.
func (s *Server) KeepQueued(domid uint32) {
	s.mu.Lock()
	s.fresh[domid] = true
	s.mu.Unlock()
}

// PrepareRing implements store.RingPreparer: it maps domid's ring page
// before the engine lock is taken for its INTRODUCE. A mapping left over
// (the INTRODUCE failed) is replaced by the next one or dropped when the
// domain dies.
func (s *Server) PrepareRing(domid uint32) {
	if s.di != nil {
		s.di.Introduced(domid) // judge its death against this domain
	}
	s.mu.Lock()
	_, local := s.local[domid]
	s.mu.Unlock()
	if local {
		return
	}
	m, err := s.gm.MapForeign(domid, xen.GrantRefXenstore)
	if err != nil {
		return // AttachRing will try again and report it
	}
	s.mu.Lock()
	old := s.prepared[domid]
	s.prepared[domid] = m
	s.mu.Unlock()
	if old != nil {
		old.Unmap()
	}
}

// dropPrepared unmaps a prepared ring that no INTRODUCE took.
func (s *Server) dropPrepared(domid uint32) {
	s.mu.Lock()
	m := s.prepared[domid]
	delete(s.prepared, domid)
	s.mu.Unlock()
	if m != nil {
		m.Unmap()
	}
}

// AttachRing implements store.Platform: map the domain's ring (unless
// PrepareRing did), bind its event channel and start serving. Called with
// the engine locked.
func (s *Server) AttachRing(c *store.Conn, port uint32, gfn uint64) (func(), error) {
	s.mu.Lock()
	m := s.local[c.Domid()]
	if m == nil {
		m = s.prepared[c.Domid()]
		delete(s.prepared, c.Domid())
	}
	s.mu.Unlock()
	if m == nil {
		var err error
		if m, err = s.gm.MapForeign(c.Domid(), xen.GrantRefXenstore); err != nil {
			return nil, fmt.Errorf("map ring of domain %d: %w", c.Domid(), err)
		}
	}
	r, err := ring.NewServer(m.Page())
	if err != nil {
		m.Unmap()
		return nil, err
	}
	if p := r.EvtchnPort(); p != 0 { // dom0less: Xen filled the port in
		port = p
	}
	local, err := s.ev.BindInterdomain(c.Domid(), port)
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("bind event channel %d of domain %d: %w", port, c.Domid(), err)
	}
	// The domain's features, as SET_FEATURE restricted them (C xenstored
	// copies them at INTRODUCE).
	features := c.RingFeatures()
	r.SetFeatures(features)
	rc := s.newRconn(&rconn{conn: c, domid: c.Domid(), port: local, mapping: m, r: r, features: features})
	s.mu.Lock()
	fresh := s.fresh[c.Domid()]
	delete(s.fresh, c.Domid())
	s.mu.Unlock()
	switch {
	case r.ReconnectRequested() && fresh:
		r.MarkConnected() // keep what the guest queued before we came
	case r.ReconnectRequested():
		r.CompleteReconnect() // a new connection: no state of ours to drop
	}
	s.mu.Lock()
	s.byPort[local] = rc
	s.byConn[c] = rc
	s.mu.Unlock()
	wake := rc.core.Wake
	wake() // there may be requests already
	if err := s.ev.Notify(local); err != nil {
		s.log.Warn("notify failed", "domid", rc.domid, "err", err)
	}
	return wake, nil
}

// DetachRing implements store.Platform. Called with the engine locked. The
// ring is unbound and unmapped by the loop goroutine, never under it.
func (s *Server) DetachRing(c *store.Conn) {
	s.mu.Lock()
	rc := s.byConn[c]
	if rc == nil {
		s.mu.Unlock()
		return
	}
	delete(s.byConn, c)
	delete(s.byPort, rc.port)
	rc.closed = true
	s.released = append(s.released, rc)
	s.mu.Unlock()
	s.loop.Poke()
}

// releaseDetached unbinds and unmaps detached rings; loop goroutine only.
func (s *Server) releaseDetached() {
	s.mu.Lock()
	list := s.released
	s.released = nil
	s.mu.Unlock()
	for _, rc := range list {
		if err := s.ev.Unbind(rc.port); err != nil {
			s.log.Warn("unbind failed", "domid", rc.domid, "port", rc.port, "err", err)
		}
		if err := rc.mapping.Unmap(); err != nil {
			s.log.Warn("unmap failed", "domid", rc.domid, "err", err)
		}
	}
}

// WatchDomains binds VIRQ_DOM_EXC so that domain deaths and shutdowns are
// noticed. Once bound it does nothing: a dom0less start binds it before
// listing the domains (Xen 4.21+ marks every domain changed at the bind).
func (s *Server) WatchDomains() error {
	s.mu.Lock()
	bound := s.virqPort != 0
	s.mu.Unlock()
	if bound {
		return nil
	}
	p, err := s.ev.BindVIRQ(xen.VIRQDomExc)
	if err != nil {
		return fmt.Errorf("bind VIRQ_DOM_EXC: %w", err)
	}
	s.mu.Lock()
	s.virqPort = p
	s.mu.Unlock()
	return nil
}

// Serve runs the event loop until stop is closed (or forever). It returns
// an error when it cannot go on: polling or reading the event channel
// failed, so no ring would be served again.
func (s *Server) Serve(stop <-chan struct{}) error {
	var stopR, stopW int = -1, -1
	if stop != nil {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("xenring: stop pipe: %w", err)
		}
		stopR, stopW = p[0], p[1]
		defer unix.Close(stopR)
		go func() { <-stop; unix.Write(stopW, []byte{1}); unix.Close(stopW) }()
	}
	fds := []unix.PollFd{{Fd: int32(s.ev.Fd()), Events: unix.POLLIN}, {Fd: int32(s.wakeR), Events: unix.POLLIN}}
	if stopR >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(stopR), Events: unix.POLLIN})
	}
	buf := make([]byte, 64)
	var batch []*conn.Conn
	served := false
	for {
		// After a pass that served rings, look once more without
		// sleeping: a guest often answers the pass's notification with
		// its next requests at once, and catching them then saves the
		// loop a sleep and a wake-up (on the fake hypervisor: nearly every
		// batch at 16 in flight, three requests of four at 1). The loop
		// did this by accident before the connection core: its own
		// replies marked the ring dirty again. Work that came while
		// serving is looked at the same way.
		timeout := 0
		if !served && s.loop.Sleep() {
			timeout = -1
		}
		for i := range fds {
			fds[i].Revents = 0
		}
		_, err := unix.Poll(fds, timeout)
		s.loop.Awake()
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("xenring: poll: %w", err)
		}
		if len(fds) > 2 && fds[2].Revents != 0 {
			s.releaseDetached()
			return nil
		}
		if fds[1].Revents != 0 {
			for {
				if n, _ := unix.Read(s.wakeR, buf); n <= 0 {
					break
				}
			}
		}
		if fds[0].Revents != 0 {
			if err := s.handleEvents(); err != nil {
				return err
			}
		}
		// Every ring with work gets one pass. A ring with more to do
		// marks itself again, and the loop reads the event channel
		// before the next pass: looping here would keep a flooding guest
		// served while other guests' notifications went unread.
		batch = s.loop.Take(batch[:0])
		for _, c := range batch {
			s.service(c.Endpoint().(*rconn))
		}
		served = len(batch) > 0
		clear(batch)
		s.releaseDetached()
	}
}

// handleEvents marks the rings whose ports fired dirty. An error other
// than an overflow means the event channel device is unusable: no ring
// would be served again, so the loop must end.
func (s *Server) handleEvents() error {
	ports, err := s.ev.Pending()
	if errors.Is(err, xen.ErrEventOverflow) {
		// Events were lost: look at every ring. The kernel masked each
		// port as it fired and the reset unmasks none, so a lost port
		// would stay silent for good: unmask every bound port, the VIRQ
		// one too (unmasking a port that is not masked does nothing). A
		// ring detached meanwhile is unbound by this goroutine, later.
		s.mu.Lock()
		ports := make([]uint32, 0, len(s.byPort)+1)
		rcs := make([]*rconn, 0, len(s.byPort))
		for p, rc := range s.byPort {
			rcs = append(rcs, rc)
			ports = append(ports, p)
		}
		if s.virqPort != 0 {
			ports = append(ports, s.virqPort)
		}
		s.mu.Unlock()
		for _, rc := range rcs {
			s.loop.Mark(rc.core)
		}
		s.log.Warn("event channel overflow: serving every ring", "ports", len(ports))
		s.checkDomains()
		for _, p := range ports {
			if err := s.ev.Unmask(p); err != nil {
				s.log.Warn("unmask failed", "port", p, "err", err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("xenring: reading pending events: %w", err)
	}
	for _, p := range ports {
		s.mu.Lock()
		rc := s.byPort[p]
		virq := p == s.virqPort && s.virqPort != 0
		s.mu.Unlock()
		if rc != nil {
			s.loop.Mark(rc.core)
		}
		if virq {
			s.checkDomains()
		}
		if err := s.ev.Unmask(p); err != nil {
			s.log.Warn("unmask failed", "port", p, "err", err)
		}
	}
	return nil
}

// checkDomains asks Xen which of the domains the store knows died or
// shut down; a failed query is never taken for a death.
func (s *Server) checkDomains() {
	if s.di == nil {
		return
	}
	changes, err := s.di.Changes(s.e.KnownDomains())
	if err != nil {
		s.log.Warn("domain scan incomplete; unanswered domains taken as alive", "err", err)
	}
	s.applyChanges(changes)
}

// applyChanges tells the engine of deaths and shutdowns.
func (s *Server) applyChanges(changes []xen.DomInfo) {
	for _, d := range changes {
		if d.Gone || d.Dying {
			s.answersMu.Lock()
			delete(s.answers, d.ID)
			s.answersMu.Unlock()
			s.dropPrepared(d.ID)
		}
		switch {
		case d.Gone || d.Dying:
			s.e.DomainGone(d.ID, true)
		case d.Shutdown:
			s.e.DomainGone(d.ID, false)
		}
	}
}

// service moves output to the ring and requests from it, within the
// pass's bounds, and notifies the guest if bytes moved.
func (s *Server) service(rc *rconn) {
	s.mu.Lock()
	closed := rc.closed
	s.mu.Unlock()
	if rc.broken || closed {
		return
	}
	rc.moved = false
	if !s.reconnect(rc) {
		return
	}
	res := rc.core.Pump(true)
	if res.Err != nil {
		code := uint32(ring.ErrorRingIdx)
		if errors.Is(res.Err, wire.ErrTooLong) {
			code = ring.ErrorProto
		}
		s.breakConn(rc, code, res.Err)
		return
	}
	if rc.moved {
		if err := s.ev.Notify(rc.port); err != nil {
			s.log.Warn("notify failed", "domid", rc.domid, "err", err)
		}
	}
	if res.More {
		s.loop.Mark(rc.core)
	}
}

// reconnect completes a reconnection the guest asked for: all its state
// goes, and the guest is notified. false while frozen.
func (s *Server) reconnect(rc *rconn) bool {
	asked := false
	if !rc.core.With(func() {
		asked = rc.features&store.FeatureReconnection != 0 && rc.r.ReconnectRequested()
	}) {
		return false
	}
	if !asked {
		return true
	}
	if !rc.core.Discard() {
		return false
	}
	s.e.ResetConn(rc.conn)
	rc.moved = true
	return rc.core.With(rc.r.CompleteReconnect)
}

func (s *Server) breakConn(rc *rconn, code uint32, why error) {
	rc.broken = true
	if rc.features&store.FeatureError != 0 {
		rc.core.With(func() { rc.r.SetError(code) })
	}
	s.ev.Notify(rc.port)
	s.e.MarkBroken(rc.conn, why.Error())
}
