package xenring

import (
	"bytes"
	"fmt"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// RingHandover is one ring connection as a live update carries it: its
// local port, which stays bound on the event channel handle handed over,
// and the bytes the transport held. The page is mapped again from the
// domain's grant (or the local ring) by the next daemon.
type RingHandover struct {
	Conn    *store.Conn
	Port    uint32
	In, Out []byte
}

// State is r as the stream carries it: Out is the rest of one message.
func (r RingHandover) State() handover.Conn {
	return handover.Conn{FD: int32(r.Port), In: r.In, Out: r.Out, Partial: len(r.Out)}
}

// Freeze stops the loop from touching any ring and returns each ring's
// state. Call it with the engine locked (a LiveUpdater's Exec); Thaw
// undoes it.
func (s *Server) Freeze() []RingHandover {
	s.mu.Lock()
	rcs := make([]*rconn, 0, len(s.byPort))
	for _, rc := range s.byPort {
		rcs = append(rcs, rc)
	}
	s.mu.Unlock()
	out := make([]RingHandover, 0, len(rcs))
	for _, rc := range rcs {
		rc.mu.Lock()
		rc.frozen = true
		in := rc.in
		if rc.pending > 0 && rc.conn.HandledLocked() > rc.calls {
			in = in[rc.pending:]
		}
		out = append(out, RingHandover{Conn: rc.conn, Port: rc.port, In: bytes.Clone(in), Out: bytes.Clone(rc.out)})
		rc.mu.Unlock()
	}
	return out
}

// Thaw resumes the rings after an update that did not happen.
func (s *Server) Thaw() {
	s.mu.Lock()
	rcs := make([]*rconn, 0, len(s.byPort))
	for _, rc := range s.byPort {
		rcs = append(rcs, rc)
	}
	s.mu.Unlock()
	for _, rc := range rcs {
		rc.mu.Lock()
		rc.frozen = false
		rc.mu.Unlock()
		s.markDirty(rc)
	}
}

// UnwatchDomains unbinds VIRQ_DOM_EXC, so that the next daemon can bind
// it on the event channel handle it inherits.
func (s *Server) UnwatchDomains() error {
	s.mu.Lock()
	p := s.virqPort
	s.virqPort = 0
	s.mu.Unlock()
	if p == 0 {
		return nil
	}
	return s.ev.Unbind(p)
}

// Adopt serves a ring connection carried by a live update: c is the
// restored engine connection of its domain, port the local port still
// bound, in and out the bytes the last daemon held. The page is mapped
// again (SetLocalRing's, else the domain's grant).
func (s *Server) Adopt(c *store.Conn, port uint32, in, out []byte) error {
	s.mu.Lock()
	m := s.local[c.Domid()]
	s.mu.Unlock()
	if m == nil {
		var err error
		if m, err = s.gm.MapForeign(c.Domid(), xen.GrantRefXenstore); err != nil {
			return fmt.Errorf("map ring of domain %d: %w", c.Domid(), err)
		}
	}
	r, err := ring.NewServer(m.Page())
	if err != nil {
		m.Unmap()
		return err
	}
	rc := &rconn{conn: c, domid: c.Domid(), port: port, mapping: m, r: r, in: in, out: out, features: c.CurrentRingFeatures()}
	s.mu.Lock()
	s.byPort[port] = rc
	s.byConn[c] = rc
	s.mu.Unlock()
	c.Adopt(func() { s.markDirty(rc) })
	s.markDirty(rc) // requests may have come meanwhile
	if err := s.ev.Unmask(port); err != nil {
		s.log.Debug("unmask after adoption", "port", port, "err", err)
	}
	return nil
}

// Recheck asks about every domain the store knows, for a daemon that may
// have missed VIRQ_DOM_EXC while it was being replaced (as C xenstored
// checks all domains after a live update).
func (s *Server) Recheck() {
	v, ok := s.di.(interface {
		Verify(known []uint32) ([]xen.DomInfo, error)
	})
	if !ok {
		s.checkDomains()
		return
	}
	changes, err := v.Verify(s.e.KnownDomains())
	if err != nil {
		s.log.Warn("domain check after live update incomplete", "err", err)
	}
	s.applyChanges(changes)
}
