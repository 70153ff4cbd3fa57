// Package ringtest is test support only: a minimal in-memory xenstore
// server on shared-memory rings, used to test ringclient, fake and the
// fakeguest helper before the daemon's real ring transport exists. It is
// not the store engine and must not be used outside tests.
//
// It is also a small worked example of the event loop recommended for the
// daemon: one goroutine, one poll over the event channel's Fd (plus a stop
// descriptor), Pending -> service each ring -> Notify -> Unmask, with a
// VIRQ_DOM_EXC port driving domain-death handling through DomainInfo.
//
// Supported requests: READ, WRITE, MKDIR, RM, DIRECTORY, WATCH, UNWATCH
// (watches fire once on registration and on changes at or below their
// path); anything else gets EINVAL. Protocol violations set the ring's
// error word and stop serving that ring.
package ringtest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// conn is one domain's ring connection.
type conn struct {
	domid  uint32
	port   uint32
	m      xen.Mapping
	r      *ring.Server
	rx     []byte
	tx     []byte
	dead   bool // error word set; ignored until released
	reqs   int
	notify bool
}

type watch struct {
	c           *conn
	path, token string
}

// Server serves rings of introduced domains.
type Server struct {
	ec xen.EventChannel
	gm xen.GrantMapper
	di xen.DomainInfo

	mu       sync.Mutex
	conns    map[uint32]*conn // by local port
	byDom    map[uint32]*conn
	store    map[string][]byte
	watches  []watch
	virqPort uint32
	released []uint32 // domids released, for tests
}

// New returns a server using the given hypervisor interfaces; it binds
// VIRQ_DOM_EXC if di is not nil.
func New(ec xen.EventChannel, gm xen.GrantMapper, di xen.DomainInfo) (*Server, error) {
	s := &Server{ec: ec, gm: gm, di: di, conns: map[uint32]*conn{}, byDom: map[uint32]*conn{}, store: map[string][]byte{}}
	if di != nil {
		p, err := ec.BindVIRQ(xen.VIRQDomExc)
		if err != nil {
			return nil, fmt.Errorf("ringtest: %w", err)
		}
		s.virqPort = p
	}
	return s, nil
}

// Introduce starts serving domid, whose guest event channel port is
// guestPort (what XS_INTRODUCE carries).
func (s *Server) Introduce(domid, guestPort uint32) error {
	m, err := s.gm.MapForeign(domid, xen.GrantRefXenstore)
	if err != nil {
		return fmt.Errorf("ringtest: introduce dom%d: %w", domid, err)
	}
	r, err := ring.NewServer(m.Page())
	if err != nil {
		m.Unmap()
		return fmt.Errorf("ringtest: introduce dom%d: %w", domid, err)
	}
	r.AdvertiseFeatures(ring.FeatureReconnection | ring.FeatureError)
	port, err := s.ec.BindInterdomain(domid, guestPort)
	if err != nil {
		m.Unmap()
		return fmt.Errorf("ringtest: introduce dom%d: %w", domid, err)
	}
	c := &conn{domid: domid, port: port, m: m, r: r}
	s.mu.Lock()
	s.conns[port] = c
	s.byDom[domid] = c
	s.mu.Unlock()
	// Serve anything the guest queued before we bound.
	s.service(c)
	return nil
}

// Released returns the domains released so far after VIRQ_DOM_EXC.
func (s *Server) Released() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.released...)
}

// Connections is the number of rings being served.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Requests reports how many requests domid's ring has had served.
func (s *Server) Requests(domid uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byDom[domid]; ok {
		return c.reqs
	}
	return -1
}

// HandleEvents processes whatever is pending now. Call it when Fd polls
// readable.
func (s *Server) HandleEvents() error {
	ports, err := s.ec.Pending()
	if errors.Is(err, xen.ErrEventOverflow) {
		s.mu.Lock()
		for p := range s.conns {
			ports = append(ports, p)
		}
		s.mu.Unlock()
	} else if err != nil {
		return err
	}
	for _, p := range ports {
		if p == s.virqPort && s.virqPort != 0 {
			if err := s.checkDomains(); err != nil {
				return err
			}
		} else {
			s.mu.Lock()
			c := s.conns[p]
			s.mu.Unlock()
			if c != nil {
				s.service(c)
			}
		}
		if err := s.ec.Unmask(p); err != nil && !errors.Is(err, syscall.EINVAL) {
			return err // EINVAL: port was unbound while handling it
		}
	}
	return nil
}

// checkDomains releases connections of domains that are gone, dying or
// shut down.
func (s *Server) checkDomains() error {
	s.mu.Lock()
	known := make([]uint32, 0, len(s.byDom))
	for id := range s.byDom {
		known = append(known, id)
	}
	s.mu.Unlock()
	changes, err := s.di.Changes(known)
	if err != nil {
		return err
	}
	var gone []*conn
	s.mu.Lock()
	for _, d := range changes {
		if c := s.byDom[d.ID]; c != nil && (d.Gone || d.Dying || d.Shutdown) {
			gone = append(gone, c)
		}
	}
	s.mu.Unlock()
	sort.Slice(gone, func(i, j int) bool { return gone[i].domid < gone[j].domid })
	for _, c := range gone {
		s.release(c)
	}
	if len(gone) > 0 {
		s.fire("@releaseDomain")
	}
	return nil
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.port)
	delete(s.byDom, c.domid)
	kept := s.watches[:0]
	for _, w := range s.watches {
		if w.c != c {
			kept = append(kept, w)
		}
	}
	s.watches = kept
	s.released = append(s.released, c.domid)
	s.mu.Unlock()
	s.ec.Unbind(c.port)
	c.m.Unmap()
}

// service moves bytes on one ring and answers complete requests.
func (s *Server) service(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.dead {
		return
	}
	if c.r.ReconnectRequested() {
		c.rx, c.tx = nil, nil
		kept := s.watches[:0]
		for _, w := range s.watches {
			if w.c != c {
				kept = append(kept, w)
			}
		}
		s.watches = kept
		c.r.CompleteReconnect()
		s.ec.Notify(c.port)
		return
	}
	buf := make([]byte, ring.RingSize)
	for {
		n, err := c.r.Read(buf)
		if err != nil {
			s.kill(c, ring.ErrorRingIdx)
			return
		}
		if n == 0 {
			break
		}
		c.rx = append(c.rx, buf[:n]...)
		c.notify = true
	}
	for len(c.rx) >= wire.HeaderSize {
		h, err := wire.ParseHeader(c.rx)
		if err != nil {
			s.kill(c, ring.ErrorProto)
			return
		}
		end := wire.HeaderSize + int(h.Len)
		if len(c.rx) < end {
			break
		}
		m := wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: bytes.Clone(c.rx[wire.HeaderSize:end])}
		c.rx = c.rx[end:]
		c.reqs++
		s.handle(c, m)
	}
	s.flushLocked(c)
}

// flushLocked writes queued output and notifies if anything moved.
func (s *Server) flushLocked(c *conn) {
	if len(c.tx) > 0 {
		n, err := c.r.Write(c.tx)
		if err != nil {
			s.kill(c, ring.ErrorRingIdx)
			return
		}
		c.tx = c.tx[n:]
		if n > 0 {
			c.notify = true
		}
	}
	if c.notify {
		c.notify = false
		s.ec.Notify(c.port)
	}
}

func (s *Server) kill(c *conn, code uint32) {
	c.r.SetError(code)
	c.dead = true
	c.rx, c.tx = nil, nil
	s.ec.Notify(c.port)
}

func (s *Server) reply(c *conn, m wire.Msg) { c.tx = append(c.tx, m.Encode()...) }

func (s *Server) handle(c *conn, m wire.Msg) {
	ok := wire.Msg{Type: m.Type, ReqID: m.ReqID, TxID: m.TxID, Payload: []byte("OK\x00")}
	fail := func(e syscall.Errno) { s.reply(c, wire.ErrorMsg(m.ReqID, m.TxID, e)) }
	parts, _ := wire.SplitStrings(m.Payload)
	switch m.Type {
	case wire.Read:
		if len(parts) < 1 {
			fail(syscall.EINVAL)
			return
		}
		v, found := s.store[parts[0]]
		if !found {
			fail(syscall.ENOENT)
			return
		}
		s.reply(c, wire.Msg{Type: m.Type, ReqID: m.ReqID, TxID: m.TxID, Payload: bytes.Clone(v)})
	case wire.Write, wire.Mkdir:
		i := bytes.IndexByte(m.Payload, 0)
		if i < 0 {
			i = len(m.Payload)
		}
		path := string(m.Payload[:i])
		var val []byte
		if m.Type == wire.Write && i < len(m.Payload) {
			val = bytes.Clone(m.Payload[i+1:])
		}
		if m.Type == wire.Mkdir {
			if _, exists := s.store[path]; exists {
				s.reply(c, ok)
				return
			}
		}
		s.store[path] = val
		s.reply(c, ok)
		s.fireLocked(path)
	case wire.Rm:
		if len(parts) < 1 {
			fail(syscall.EINVAL)
			return
		}
		if _, found := s.store[parts[0]]; !found {
			fail(syscall.ENOENT)
			return
		}
		for k := range s.store {
			if k == parts[0] || strings.HasPrefix(k, parts[0]+"/") {
				delete(s.store, k)
			}
		}
		s.reply(c, ok)
		s.fireLocked(parts[0])
	case wire.Directory:
		if len(parts) < 1 {
			fail(syscall.EINVAL)
			return
		}
		prefix := strings.TrimSuffix(parts[0], "/") + "/"
		set := map[string]bool{}
		for k := range s.store {
			if rest, found := strings.CutPrefix(k, prefix); found && rest != "" {
				name, _, _ := strings.Cut(rest, "/")
				set[name] = true
			}
		}
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		s.reply(c, wire.Msg{Type: m.Type, ReqID: m.ReqID, TxID: m.TxID, Payload: wire.JoinStrings(names...)})
	case wire.Watch:
		if len(parts) < 2 {
			fail(syscall.EINVAL)
			return
		}
		w := watch{c: c, path: parts[0], token: parts[1]}
		s.watches = append(s.watches, w)
		s.reply(c, ok)
		s.event(w, w.path)
	case wire.Unwatch:
		if len(parts) < 2 {
			fail(syscall.EINVAL)
			return
		}
		for i, w := range s.watches {
			if w.c == c && w.path == parts[0] && w.token == parts[1] {
				s.watches = append(s.watches[:i], s.watches[i+1:]...)
				s.reply(c, ok)
				return
			}
		}
		fail(syscall.ENOENT)
	default:
		fail(syscall.EINVAL)
	}
}

func (s *Server) event(w watch, path string) {
	w.c.tx = append(w.c.tx, (&wire.Msg{Type: wire.WatchEvent, Payload: wire.JoinStrings(path, w.token)}).Encode()...)
}

// fireLocked queues events for watches at or above path and flushes the
// other connections they belong to. Caller holds s.mu.
func (s *Server) fireLocked(path string) {
	touched := map[*conn]bool{}
	for _, w := range s.watches {
		if path == w.path || strings.HasPrefix(path, strings.TrimSuffix(w.path, "/")+"/") {
			s.event(w, path)
			touched[w.c] = true
		}
	}
	for c := range touched {
		if !c.dead {
			s.flushLocked(c)
		}
	}
}

func (s *Server) fire(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fireLocked(path)
}
