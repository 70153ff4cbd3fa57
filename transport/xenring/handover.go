package xenring

import (
	"fmt"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// Freeze stops the loop from touching any ring and returns each ring's
// state; its State.FD is the ring's local port, which stays bound on the
// event channel handle handed over. The page is mapped again from the
// domain's grant (or the local ring) by the next daemon. Call it with the
// engine locked (a LiveUpdater's Exec); Thaw undoes it.
func (s *Server) Freeze() []conn.Handover {
	s.mu.Lock()
	rcs := make([]*rconn, 0, len(s.byPort))
	for _, rc := range s.byPort {
		rcs = append(rcs, rc)
	}
	s.mu.Unlock()
	out := make([]conn.Handover, 0, len(rcs))
	for _, rc := range rcs {
		h := rc.core.Freeze()
		h.State.FD = int32(rc.port)
		out = append(out, h)
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
		rc.core.Thaw()
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
	rc := s.newRconn(&rconn{conn: c, domid: c.Domid(), port: port, mapping: m, r: r, features: c.CurrentRingFeatures()})
	rc.core.Restore(in, out)
	s.mu.Lock()
	s.byPort[port] = rc
	s.byConn[c] = rc
	s.mu.Unlock()
	c.Adopt(rc.core.Wake)
	rc.core.Wake() // requests may have come meanwhile
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
