package fake

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
)

// LatestRelease is the release a new fake hypervisor behaves as.
var LatestRelease = xen.Version{Major: 4, Minor: 22}

// domctl interface versions per release, as the hypervisors check them.
var domctlVersions = map[xen.Version]uint32{
	{Major: 4, Minor: 16}: 0x14, {Major: 4, Minor: 17}: 0x15, {Major: 4, Minor: 18}: 0x16,
	{Major: 4, Minor: 19}: 0x17, {Major: 4, Minor: 20}: 0x17, {Major: 4, Minor: 21}: 0x17,
	{Major: 4, Minor: 22}: 0x18, {Major: 4, Minor: 23}: 0x19,
}

// SetRelease makes the hypercalls behave as release v does: its
// XENVER_version, the domctl interface version it accepts, getdomaininfo's
// "next domain" (<= 4.17) or ESRCH (>= 4.18; EPERM from 4.22 for a caller
// that is not the control domain), get_domain_state from 4.21 on.
func (h *Hypervisor) SetRelease(v xen.Version) {
	h.mu.Lock()
	h.release = v
	h.mu.Unlock()
}

// SetDomExcHandler says whether the daemon's domain is VIRQ_DOM_EXC's
// handler (the default: dom0 is, until set_virq_handler names the stub,
// as the launcher does before the stub runs). A domain that is not: from
// 4.21 binding the VIRQ fails with EBUSY (event_channel.c
// evtchn_bind_virq); before, the binding succeeds and never fires. Either
// way get_domain_state's changed-domain iteration answers it EACCES.
func (h *Hypervisor) SetDomExcHandler(on bool) {
	h.mu.Lock()
	h.notDomExcHandler = !on
	h.mu.Unlock()
}

// SetCallerControl says whether the daemon runs in the control domain
// (dom0 daemon) rather than in a stub domain (the default).
func (h *Hypervisor) SetCallerControl(on bool) {
	h.mu.Lock()
	h.callerControl = on
	h.mu.Unlock()
}

// SetDomctlError makes every domctl fail with err (nil: answer again), as
// a hypervisor that refuses us would.
func (h *Hypervisor) SetDomctlError(err error) {
	h.mu.Lock()
	h.domctlErr = err
	h.mu.Unlock()
}

// DomctlCalls counts the domctls answered so far.
func (h *Hypervisor) DomctlCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.domctlCalls
}

// SetDomctlHook makes every domctl call f first, outside the fake's
// locks (nil: none): a test can hold a hypercall in flight.
func (h *Hypervisor) SetDomctlHook(f func()) {
	if f == nil {
		h.hook.Store(nil)
		return
	}
	h.hook.Store(&f)
}

// SetMapHook makes every grant mapping call f first, outside the fake's
// locks (nil: none).
func (h *Hypervisor) SetMapHook(f func()) {
	if f == nil {
		h.mapHook.Store(nil)
		return
	}
	h.mapHook.Store(&f)
}

func (h *Hypervisor) runHook() {
	if f := h.hook.Load(); f != nil {
		(*f)()
	}
}

// XenVersion implements xen.Hypercalls.
func (h *Hypervisor) XenVersion() (xen.Version, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.release, nil
}

func (h *Hypervisor) atLeast(major, minor uint32) bool {
	return !h.release.Less(xen.Version{Major: major, Minor: minor})
}

// domctlLocked does the checks every domctl starts with.
func (h *Hypervisor) domctlLocked(ifVersion uint32, stable bool) error {
	h.domctlCalls++
	if h.domctlErr != nil {
		return h.domctlErr
	}
	want := domctlVersions[h.release]
	if stable && h.atLeast(4, 21) {
		want = 0
	}
	if ifVersion != want {
		return unix.EACCES
	}
	return nil
}

// missingLocked is the error for a domid that names no domain.
func (h *Hypervisor) missingLocked() error {
	if h.atLeast(4, 22) && !h.callerControl {
		return unix.EPERM
	}
	return unix.ESRCH
}

// GetDomainInfo implements xen.Hypercalls with the release's semantics.
func (h *Hypervisor) GetDomainInfo(ifVersion, domid uint32) (xen.DomInfo, error) {
	h.runHook()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.domctlLocked(ifVersion, false); err != nil {
		return xen.DomInfo{}, fmt.Errorf("fake: getdomaininfo: %w", err)
	}
	if d := h.domains[domid]; d != nil {
		return d.infoLocked(), nil
	}
	if h.atLeast(4, 18) {
		return xen.DomInfo{}, fmt.Errorf("fake: getdomaininfo dom%d: %w", domid, h.missingLocked())
	}
	var next *Domain
	for id, d := range h.domains {
		if id > domid && (next == nil || id < next.id) {
			next = d
		}
	}
	if next == nil {
		return xen.DomInfo{}, fmt.Errorf("fake: getdomaininfo dom%d and above: %w", domid, unix.ESRCH)
	}
	return next.infoLocked(), nil
}

func (d *Domain) infoLocked() xen.DomInfo {
	return xen.DomInfo{ID: d.id, Dying: d.dying, Shutdown: d.shutdown, ShutdownReason: d.reason, XenstoreDomain: d.xsDomain,
		TotPages: d.totPages, MaxPages: d.maxPages}
}

func (d *Domain) stateLocked() xen.DomState {
	return xen.DomState{ID: d.id, Exists: true, Shutdown: d.shutdown, Dying: d.dying, Xenstore: d.xsDomain, Control: d.control, UniqueID: d.uid}
}

// GetDomainState implements xen.Hypercalls: from 4.21 on, with the
// changed-domain iteration for DOMID_INVALID once VIRQ_DOM_EXC is bound.
func (h *Hypervisor) GetDomainState(domid uint32) (xen.DomState, error) {
	h.runHook()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.domctlLocked(0, true); err != nil {
		return xen.DomState{}, fmt.Errorf("fake: get_domain_state: %w", err)
	}
	if domid != xen.DomIDInvalid {
		if d := h.domains[domid]; d != nil {
			return d.stateLocked(), nil
		}
		return xen.DomState{}, fmt.Errorf("fake: get_domain_state dom%d: %w", domid, h.missingLocked())
	}
	if h.notDomExcHandler {
		return xen.DomState{}, fmt.Errorf("fake: get_domain_state: not the VIRQ_DOM_EXC handler: %w", unix.EACCES)
	}
	if !h.statesOn { // the handler, VIRQ_DOM_EXC not bound: Xen has no bitmap
		return xen.DomState{}, fmt.Errorf("fake: get_domain_state: VIRQ_DOM_EXC not bound, no changed domain: %w", unix.ENOENT)
	}
	ids := make([]uint32, 0, len(h.changed))
	for id := range h.changed {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return xen.DomState{}, fmt.Errorf("fake: get_domain_state: no changed domain: %w", unix.ENOENT)
	}
	id := slices.Min(ids)
	delete(h.changed, id)
	if d := h.domains[id]; d != nil {
		return d.stateLocked(), nil
	}
	return xen.DomState{ID: id}, nil // gone
}

// initStatesLocked starts keeping changes, every existing domain marked,
// as Xen does when VIRQ_DOM_EXC is bound.
func (h *Hypervisor) initStatesLocked() {
	if h.statesOn {
		return
	}
	h.statesOn = true
	for id := range h.domains {
		h.changed[id] = true
	}
}

// domExcUnboundLocked: closing the last VIRQ_DOM_EXC port drops the
// changed set, as Xen 4.21+ frees its bitmap then (event_channel.c
// evtchn_close); the next bind marks every domain existing at that time,
// so a domain that went meanwhile is never reported.
func (h *Hypervisor) domExcUnboundLocked() {
	h.domExcBound--
	if h.domExcBound > 0 {
		return
	}
	h.statesOn = false
	clear(h.changed)
}

func (h *Hypervisor) stateChangedLocked(domid uint32) {
	if h.statesOn {
		h.changed[domid] = true
	}
}

// Tracker is the daemon's domain tracker over this hypervisor's
// hypercalls, as rigs and tests hand it to the ring transport.
func (h *Hypervisor) Tracker() (*domains.Tracker, error) {
	return domains.Open(h, xen.Version{})
}

// MustTracker is Tracker for test rigs, which have not configured the
// hypervisor to refuse: it panics on error.
func (h *Hypervisor) MustTracker() *domains.Tracker {
	tr, err := h.Tracker()
	if err != nil {
		panic(err)
	}
	return tr
}

// Lookup returns live domain domid.
func (h *Hypervisor) Lookup(domid uint32) (*Domain, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.domains[domid]
	return d, ok
}
