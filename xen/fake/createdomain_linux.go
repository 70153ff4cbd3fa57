package fake

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// CreateDomain plays XEN_DOMCTL_createdomain for the domid a toolstack
// passes in (the launcher's xc_domain_create), with the id allocation of
// the release set by SetRelease, and returns the new domain:
//
//   - 4.17-4.20 (domctl.c, createdomain): an id in 1..0x7fef is taken as
//     asked (EEXIST when in use); 0 or any reserved id makes Xen search
//     from the id after its rover, wrapping to 1, the rover itself last
//     never (ENOMEM when nothing is free).
//   - 4.21 (domid.c domid_alloc, called with 0 turned into DOMID_INVALID):
//     any id below 0x7ff0 but 0 is taken as asked; 0 and every reserved id
//     search from the id after the last one searched for, then from 1 up
//     to and including it. Every failure is EEXIST.
//   - 4.22 (domid.c domid_alloc): only DOMID_ANY searches; 0 is an exact
//     request like any other id below 0x7ff0 (EEXIST while dom0 exists);
//     other reserved ids are refused with EEXIST.
//
// The fake's "in use" is "in Domains": Destroy frees the id at once, where
// Xen frees it when the last reference to the dead domain goes.
func (h *Hypervisor) CreateDomain(requested uint32) (*Domain, error) {
	h.runHook()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fake: createdomain: hypervisor closed")
	}
	h.domctlCalls++
	if h.domctlErr != nil {
		return nil, fmt.Errorf("fake: createdomain dom%d: %w", requested, h.domctlErr)
	}
	id, err := h.allocDomidLocked(requested)
	if err != nil {
		return nil, fmt.Errorf("fake: createdomain dom%d (Xen %v): %w", requested, h.release, err)
	}
	return h.newDomainLocked(id)
}

// allocDomidLocked picks the id createdomain gives for requested.
func (h *Hypervisor) allocDomidLocked(requested uint32) (uint32, error) {
	exact := requested < xen.DomIDFirstReserved
	switch {
	case h.atLeast(4, 22):
		if !exact && requested != xen.DomIDAny {
			return 0, unix.EEXIST
		}
	case h.atLeast(4, 21):
		exact = exact && requested != 0
	default:
		exact = exact && requested != 0
		if !exact {
			return h.roverLocked()
		}
	}
	if exact {
		if _, used := h.domains[requested]; used {
			return 0, unix.EEXIST
		}
		return requested, nil
	}
	return h.domidSearchLocked()
}

func (h *Hypervisor) free(id uint32) bool {
	_, used := h.domains[id]
	return !used
}

// roverLocked is 4.17-4.20's search: from rover+1 up, past 0x7fef back to
// 1, stopping short of the rover. (With the rover still 0 and every id
// taken, Xen would search forever; the fake says ENOMEM.)
func (h *Hypervisor) roverLocked() (uint32, error) {
	id := h.lastDomid
	for range xen.DomIDFirstReserved - 1 {
		id++
		if id == xen.DomIDFirstReserved {
			id = 1
		}
		if id == h.lastDomid {
			break
		}
		if h.free(id) {
			h.lastDomid = id
			return id, nil
		}
	}
	return 0, unix.ENOMEM
}

// domidSearchLocked is 4.21's and 4.22's round robin: the first free id
// after the last one given, else (once one was given) the first free id
// from 1 up to and including it.
func (h *Hypervisor) domidSearchLocked() (uint32, error) {
	for id := h.lastDomid + 1; id < xen.DomIDFirstReserved; id++ {
		if h.free(id) {
			h.lastDomid = id
			return id, nil
		}
	}
	if h.lastDomid != 0 {
		for id := uint32(1); id <= h.lastDomid; id++ {
			if h.free(id) {
				h.lastDomid = id
				return id, nil
			}
		}
	}
	return 0, unix.EEXIST
}
