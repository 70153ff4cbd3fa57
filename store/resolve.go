package store

import "github.com/xsstub/xenstored/wire"

// DomainResolver is an optional Platform extension. Asking the hypervisor
// whether a domain exists is a hypercall, too slow for the engine's lock,
// which every connection waits on. So before a request that may ask,
// Conn.Handle passes the domids it names to ResolveDomains outside the
// lock; DomainExists then answers from what was resolved. A domain not
// resolved counts as absent (fail closed: its permission entries grant
// nothing).
type DomainResolver interface {
	ResolveDomains(ids []uint32)
}

// RingPreparer is an optional Platform extension: mapping a guest's ring
// page is slow too, so before a privileged INTRODUCE, Conn.Handle lets the
// platform map it outside the lock (and note which domain now holds the
// id); AttachRing then uses that mapping.
type RingPreparer interface {
	PrepareRing(domid uint32)
}

// maxResolve bounds the domids resolved for one request, hence the
// hypercalls a request can cause. It is above the default permissions
// quota (5); entries past it are checked against earlier answers only.
const maxResolve = 8

// domidsNamed lists the domids whose existence handling m may ask about:
// the permission entries of SET_PERMS, the domain argument of the feature
// and quota requests. At most maxResolve, each once, none reserved.
func domidsNamed(m *wire.Msg) []uint32 {
	var args []string
	switch m.Type {
	case wire.SetPerms:
		args = splitArgs(m.Payload)
		if len(args) < 2 {
			return nil
		}
		args = args[1:]
		for i, a := range args {
			if a == "" {
				return nil
			}
			args[i] = a[1:] // the permission letter
		}
	case wire.GetFeature, wire.SetFeature, wire.GetQuota, wire.SetQuota:
		args = splitArgs(m.Payload)
		if len(args) == 0 {
			return nil
		}
		args = args[:1]
	default:
		return nil
	}
	var ids []uint32
	for _, a := range args {
		id, err := parseDomid(a)
		if err != nil || id >= 0x7ff0 || contains(ids, id) {
			continue
		}
		if ids = append(ids, id); len(ids) == maxResolve {
			break
		}
	}
	return ids
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// prepare runs, outside e.mu, the platform's slow work that handling m
// will need: existence answers, and for a privileged INTRODUCE the ring
// mapping (c.priv never changes, so it is read without the lock).
func (c *Conn) prepare(m *wire.Msg) {
	e := c.e
	if r, ok := e.cfg.Platform.(DomainResolver); ok {
		if ids := domidsNamed(m); len(ids) > 0 {
			r.ResolveDomains(ids)
		}
	}
	if p, ok := e.cfg.Platform.(RingPreparer); ok && c.priv && m.Type == wire.Introduce {
		if args := splitArgs(m.Payload); len(args) >= 3 {
			if domid, err := parseDomid(args[0]); err == nil && domid < 0x7ff0 {
				p.PrepareRing(domid)
			}
		}
	}
}

// KnownDomains lists the domains the store knows other than the control
// domain and itself: introduced ones, ones with a record (quota, feature
// settings) and ones named in permissions, never a reserved id (DOMID_ANY).
// The platform watches these for death.
func (e *Engine) KnownDomains() []uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]uint32, 0, len(e.domains)+len(e.mentions))
	for id := range e.domains {
		ids = append(ids, id)
	}
	for id := range e.mentions {
		if e.domains[id] == nil {
			ids = append(ids, id)
		}
	}
	kept := ids[:0]
	for _, id := range ids {
		// Reserved ids (DOMID_ANY in a permission) are no domains: a
		// scan would report them missing and their entries would go.
		if id != e.cfg.PrivDomid && id != e.cfg.StoreDomid && id < 0x7ff0 {
			kept = append(kept, id)
		}
	}
	return kept
}
