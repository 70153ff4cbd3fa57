// Package domains follows domains' lives on every Xen release from 4.17 to
// 4.22, over the raw hypercalls of xen.Hypercalls. It picks the domctl
// interface of the running release (XENVER_version) and the way that
// release lets a xenstore domain learn which domains exist and which died:
//
//   - 4.17: getdomaininfo of id n answers the first domain with id >= n, so
//     the domains are enumerated (one call per domain, plus one).
//   - 4.18-4.20: getdomaininfo answers exactly domid or ESRCH; the
//     enumerating sysctl is for the control domain only, so after
//     VIRQ_DOM_EXC every domain the store knows is asked about in turn.
//   - 4.21 and later: get_domain_state (a stable domctl) reports, for
//     DOMID_INVALID, the next domain whose state changed; its 64-bit unique
//     id tells a new domain from an old one with the same domid.
//
// What each release answers, call by call, and where in Xen's tree it was
// read: xen/README.md.
//
// Scope and limits: an unknown release is refused unless the caller names
// the release to assume. A failed query is an unknown answer, never a
// death. On 4.18-4.20 a domid destroyed and reused between two
// VIRQ_DOM_EXC scans cannot be told from the old domain (no unique ids).
// Nothing here holds database logic; the tracker's only state is the
// unique id last seen per domid.
package domains

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/xsstub/xenstored/xen"
)

// Method is how a release tells domains' existence and death.
type Method int

const (
	Enumerate   Method = iota // getdomaininfo returns the next domain (<= 4.17)
	PerDomain                 // getdomaininfo per domid, ESRCH when absent (4.18-4.20)
	DomainState               // get_domain_state with unique ids (>= 4.21)
)

func (m Method) String() string {
	switch m {
	case Enumerate:
		return "getdomaininfo enumeration"
	case PerDomain:
		return "getdomaininfo per known domain"
	case DomainState:
		return "get_domain_state with unique ids"
	}
	return "method(" + strconv.Itoa(int(m)) + ")"
}

// Release is one Xen release's domctl interface.
type Release struct {
	Version xen.Version
	Domctl  uint32 // XEN_DOMCTL_INTERFACE_VERSION
	Method  Method
}

// Releases are the ones this package knows, oldest first (values from
// each release's xen/include/public/domctl.h and xen/common/domctl.c).
var Releases = []Release{
	{xen.Version{Major: 4, Minor: 17}, 0x15, Enumerate},
	{xen.Version{Major: 4, Minor: 18}, 0x16, PerDomain},
	{xen.Version{Major: 4, Minor: 19}, 0x17, PerDomain},
	{xen.Version{Major: 4, Minor: 20}, 0x17, PerDomain},
	{xen.Version{Major: 4, Minor: 21}, 0x17, DomainState},
	{xen.Version{Major: 4, Minor: 22}, 0x18, DomainState},
}

// Lookup finds a known release.
func Lookup(v xen.Version) (Release, bool) {
	for _, r := range Releases {
		if r.Version == v {
			return r, true
		}
	}
	return Release{}, false
}

// ParseVersion reads "4.20".
func ParseVersion(s string) (xen.Version, error) {
	maj, min, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseUint(maj, 10, 16)
	b, err2 := strconv.ParseUint(min, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return xen.Version{}, fmt.Errorf("xen release %q: want MAJOR.MINOR, e.g. 4.20", s)
	}
	return xen.Version{Major: uint32(a), Minor: uint32(b)}, nil
}

func known() string {
	return Releases[0].Version.String() + "-" + Releases[len(Releases)-1].Version.String()
}

// ErrUnknownRelease is matched by Open's error for a release not in
// Releases when no release to assume was given.
var ErrUnknownRelease = errors.New("unknown Xen release")

// Tracker implements xen.DomainInfo for one release.
type Tracker struct {
	hc      xen.Hypercalls
	rel     Release
	running xen.Version // what the hypervisor reported

	mu   sync.Mutex
	uids map[uint32]uint64 // DomainState: unique id last seen per domid
}

var _ xen.DomainInfo = (*Tracker)(nil)

// Open asks the hypervisor its release and checks that it accepts that
// release's interface. assume, when not zero, is the release whose
// interface to use whatever the hypervisor reports (for a release newer
// than this package). Every failure means the daemon cannot know which
// domains exist, and says why.
func Open(hc xen.Hypercalls, assume xen.Version) (*Tracker, error) {
	running, err := hc.XenVersion()
	if err != nil {
		return nil, fmt.Errorf("asking the Xen version: %w", err)
	}
	want := running
	if assume != (xen.Version{}) {
		want = assume
	}
	rel, ok := Lookup(want)
	if !ok {
		if assume != (xen.Version{}) {
			return nil, fmt.Errorf("Xen %v, assumed %v: %w (this build knows %s)", running, assume, ErrUnknownRelease, known())
		}
		return nil, fmt.Errorf("Xen %v: %w (this build knows %s; --xen-interface RELEASE assumes one of those)", running, ErrUnknownRelease, known())
	}
	t := &Tracker{hc: hc, rel: rel, running: running, uids: map[uint32]uint64{}}
	if err := t.probe(); err != nil {
		return nil, fmt.Errorf("Xen %v (using the %v interface, %v): %w", running, rel.Version, rel.Method, err)
	}
	return t, nil
}

// probe makes one query whose only failure can be the interface itself:
// a missing dom0 answers ESRCH (4.22: EPERM), which proves acceptance too.
func (t *Tracker) probe() error {
	var err error
	if t.rel.Method == DomainState {
		_, err = t.hc.GetDomainState(0)
	} else {
		_, err = t.hc.GetDomainInfo(t.rel.Domctl, 0)
	}
	if t.absent(err) {
		return nil
	}
	return err
}

// absent reports an answer meaning "no such domain": ESRCH, or from 4.22
// on EPERM, which Xen then gives a caller that is not the control domain
// instead (domctl.c, do_domctl). Before 4.22 a missing domain is always
// ESRCH and EPERM is a refusal (XSM): an unknown answer, not a death.
func (t *Tracker) absent(err error) bool {
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	return errors.Is(err, syscall.EPERM) && !t.running.Less(xen.Version{Major: 4, Minor: 22})
}

// Release is the interface in use.
func (t *Tracker) Release() Release { return t.rel }

// Running is the release the hypervisor reported.
func (t *Tracker) Running() xen.Version { return t.running }

// Domain implements xen.DomainInfo with one hypercall. It reports the
// domain holding domid now; on 4.21+ it remembers that domain's unique id
// unless one is remembered already (the death of the domain the store
// knew is Changes' to report, not this answer's).
func (t *Tracker) Domain(domid uint32) (xen.DomInfo, bool, error) {
	if domid >= xen.DomIDFirstReserved {
		return xen.DomInfo{}, false, nil
	}
	if t.rel.Method == DomainState {
		st, err := t.hc.GetDomainState(domid)
		if t.absent(err) {
			t.forget(domid)
			return xen.DomInfo{}, false, nil
		}
		if err != nil {
			return xen.DomInfo{}, false, err
		}
		if !st.Exists {
			t.forget(domid)
			return xen.DomInfo{}, false, nil
		}
		t.mu.Lock()
		if _, seen := t.uids[domid]; !seen {
			t.uids[domid] = st.UniqueID
		}
		t.mu.Unlock()
		return stateInfo(st), true, nil
	}
	info, err := t.hc.GetDomainInfo(t.rel.Domctl, domid)
	if t.absent(err) {
		return xen.DomInfo{}, false, nil
	}
	if err != nil {
		return xen.DomInfo{}, false, err
	}
	if info.ID != domid { // 4.17: the next domain above a missing one
		return xen.DomInfo{}, false, nil
	}
	return info, true, nil
}

// Memory reports domid's memory now and its limit in KiB, from
// getdomaininfo on every release (a xenstore domain may ask it: XSM's
// XS_PRIV): what a toolstack writes to the domain's memory/target and
// memory/static-max.
func (t *Tracker) Memory(domid uint32) (currentKiB, maxKiB uint64, err error) {
	if domid >= xen.DomIDFirstReserved {
		return 0, 0, fmt.Errorf("memory of dom%d: reserved id", domid)
	}
	info, err := t.hc.GetDomainInfo(t.rel.Domctl, domid)
	if err != nil {
		return 0, 0, fmt.Errorf("memory of dom%d: %w", domid, err)
	}
	if info.ID != domid { // 4.17: the next domain above a missing one
		return 0, 0, fmt.Errorf("memory of dom%d: no such domain", domid)
	}
	const kibPerPage = 4 // Xen's page, on x86 and Arm
	return info.TotPages * kibPerPage, info.MaxPages * kibPerPage, nil
}

// Introduced implements xen.DomainInfo: from now on the store serves the
// domain holding domid, and later changes are judged against its unique
// id (4.21+; one hypercall). A failed query keeps what was known.
func (t *Tracker) Introduced(domid uint32) {
	if t.rel.Method != DomainState || domid >= xen.DomIDFirstReserved {
		return
	}
	st, err := t.hc.GetDomainState(domid)
	if err != nil || !st.Exists {
		return
	}
	t.mu.Lock()
	t.uids[domid] = st.UniqueID
	t.mu.Unlock()
}

func stateInfo(st xen.DomState) xen.DomInfo {
	return xen.DomInfo{ID: st.ID, Dying: st.Dying || st.Dead, Shutdown: st.Shutdown,
		XenstoreDomain: st.Xenstore, Control: st.Control, UniqueID: st.UniqueID}
}

// changed converts a report of the changed-domain iteration, judged
// against the unique id remembered for its domid: Gone when the domain
// no longer exists or is newer than the one remembered (which then died
// unseen). The new one is remembered from then on.
func (t *Tracker) changed(st xen.DomState) xen.DomInfo {
	info := stateInfo(st)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !st.Exists {
		delete(t.uids, st.ID)
		info.Gone = true
		return info
	}
	old, seen := t.uids[st.ID]
	t.uids[st.ID] = st.UniqueID
	info.Gone = seen && old != st.UniqueID
	return info
}

func (t *Tracker) forget(domid uint32) {
	t.mu.Lock()
	delete(t.uids, domid)
	t.mu.Unlock()
}

// Changes implements xen.DomainInfo.
func (t *Tracker) Changes(known []uint32) ([]xen.DomInfo, error) {
	switch t.rel.Method {
	case Enumerate:
		return t.changesByList(known)
	case DomainState:
		return t.changesByState(known)
	}
	return t.changesPerDomain(known)
}

// changesByList reports every known domain from one enumeration.
func (t *Tracker) changesByList(known []uint32) ([]xen.DomInfo, error) {
	doms, err := t.list()
	if err != nil {
		return nil, err
	}
	byID := make(map[uint32]xen.DomInfo, len(doms))
	for _, d := range doms {
		byID[d.ID] = d
	}
	out := make([]xen.DomInfo, 0, len(known))
	for _, id := range known {
		d, ok := byID[id]
		if !ok {
			d = xen.DomInfo{ID: id, Gone: true}
		}
		out = append(out, d)
	}
	return out, nil
}

// Verify asks about every known domain in turn, whatever the release: for
// a daemon that may have missed VIRQ_DOM_EXC (after a live update).
func (t *Tracker) Verify(known []uint32) ([]xen.DomInfo, error) {
	if t.rel.Method == Enumerate {
		return t.changesByList(known)
	}
	return t.changesPerDomain(known)
}

// changesPerDomain asks about each known domain; a failed query leaves
// that domain out (unknown is not dead) and is reported.
func (t *Tracker) changesPerDomain(known []uint32) ([]xen.DomInfo, error) {
	out := make([]xen.DomInfo, 0, len(known))
	var errs []error
	for _, id := range known {
		d, ok, err := t.Domain(id)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			out = append(out, xen.DomInfo{ID: id, Gone: true})
		default:
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// changesByState drains the hypervisor's changed-domain iteration. Should
// the iteration be refused (we are not the VIRQ_DOM_EXC handler), each
// known domain is asked about instead, which the unique ids keep exact.
func (t *Tracker) changesByState(known []uint32) ([]xen.DomInfo, error) {
	changed, err := t.drain()
	if errors.Is(err, syscall.EACCES) {
		return t.changesPerDomain(known)
	}
	isKnown := make(map[uint32]bool, len(known))
	for _, id := range known {
		isKnown[id] = true
	}
	var out []xen.DomInfo
	for _, d := range changed {
		if isKnown[d.ID] {
			out = append(out, d)
		}
	}
	return out, err
}

// drain reads changed domains until the hypervisor has none left. A
// hypervisor that never says so is cut off after one report per domid.
func (t *Tracker) drain() ([]xen.DomInfo, error) {
	var out []xen.DomInfo
	for range xen.DomIDFirstReserved {
		st, err := t.hc.GetDomainState(xen.DomIDInvalid)
		if errors.Is(err, syscall.ENOENT) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("changed domains: %w", err)
		}
		out = append(out, t.changed(st))
	}
	return out, fmt.Errorf("changed domains: more than %d reports without an end", xen.DomIDFirstReserved)
}

// list enumerates every domain (4.17 semantics).
func (t *Tracker) list() ([]xen.DomInfo, error) {
	var out []xen.DomInfo
	for next := uint32(0); next < xen.DomIDFirstReserved; {
		info, err := t.hc.GetDomainInfo(t.rel.Domctl, next)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list domains from dom%d: %w", next, err)
		}
		if info.ID < next || info.ID >= xen.DomIDFirstReserved {
			return nil, fmt.Errorf("list domains: asked for dom%d or above, hypervisor answered dom%d", next, info.ID)
		}
		out = append(out, info)
		next = info.ID + 1
	}
	return out, nil
}

// ErrCannotEnumerate is returned by Existing on releases that give a
// xenstore domain no way to list domains (4.18-4.20).
var ErrCannotEnumerate = errors.New("this Xen release lets a xenstore domain look up domains only by id")

// Existing lists the domains that exist now, for introducing those
// created before the store. On 4.21+ it drains the changed-domain
// iteration, which right after VIRQ_DOM_EXC is bound holds every domain:
// call it before any domain is known, or pass what it returns on.
func (t *Tracker) Existing() ([]xen.DomInfo, error) {
	switch t.rel.Method {
	case Enumerate:
		return t.list()
	case DomainState:
		all, err := t.drain()
		var out []xen.DomInfo
		for _, d := range all {
			if !d.Gone {
				out = append(out, d)
			}
		}
		return out, err
	}
	return nil, ErrCannotEnumerate
}

// Self finds the xenstore domain: the lowest-numbered domain flagged as
// one that is not dying. It asks domid by domid from 1 up, so its cost is
// the stub's domid (Xen gives the first domains the low ids).
func (t *Tracker) Self() (uint32, error) {
	if t.rel.Method == Enumerate {
		doms, err := t.list()
		if err != nil {
			return 0, err
		}
		for _, d := range doms {
			if d.XenstoreDomain && !d.Dying {
				return d.ID, nil
			}
		}
		return 0, errors.New("no domain is flagged as xenstore domain")
	}
	for id := uint32(0); id < xen.DomIDFirstReserved; id++ {
		d, ok, err := t.Domain(id)
		if err != nil {
			return 0, fmt.Errorf("looking for the xenstore domain: %w", err)
		}
		if ok && d.XenstoreDomain && !d.Dying {
			return id, nil
		}
	}
	return 0, errors.New("no domain is flagged as xenstore domain")
}
