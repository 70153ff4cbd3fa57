package fake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// Hypervisor is the fake Xen of one test. Its methods are safe for
// concurrent use.
//
// Lock order: Hypervisor.mu, EventChannel.mu, Domain.mu, GuestEvents.mu,
// pagePool.mu.
type Hypervisor struct {
	mu       sync.Mutex
	domains  map[uint32]*Domain
	handles  map[*EventChannel]struct{}
	guestEvs map[*GuestEvents]struct{}
	pages    *pagePool
	nextPort uint32
	closed   bool

	// Hypercall semantics (hypercalls_linux.go); guarded by mu.
	release       xen.Version
	callerControl bool            // the daemon runs in the control domain
	domctlErr     error           // every domctl fails with it, when set
	nextUID       uint64          // unique ids handed out
	changed       map[uint32]bool // get_domain_state's changed set
	statesOn      bool            // VIRQ_DOM_EXC was bound: changes are kept
	domExcBound   int             // VIRQ_DOM_EXC ports bound, on all handles
	// notDomExcHandler: the daemon's domain is not VIRQ_DOM_EXC's handler.
	notDomExcHandler bool
	domctlCalls      int    // domctls answered, for cost tests
	lastDomid        uint32 // createdomain's last searched-for id (rover)

	hook    atomic.Pointer[func()] // SetDomctlHook; read without mu
	mapHook atomic.Pointer[func()] // SetMapHook; read without mu
}

var _ xen.Hypercalls = (*Hypervisor)(nil)

// New returns an empty fake hypervisor.
func New() *Hypervisor {
	return &Hypervisor{
		domains:  make(map[uint32]*Domain),
		handles:  make(map[*EventChannel]struct{}),
		guestEvs: make(map[*GuestEvents]struct{}),
		pages:    newPagePool(),
		nextPort: 1,
		release:  LatestRelease,
		changed:  make(map[uint32]bool),
	}
}

// Domain is one fake guest domain as the hypervisor sees it.
type Domain struct {
	h         *Hypervisor
	id        uint32
	guestPort uint32
	slot      int // its ring page in h.pages

	// Guarded by h.mu.
	dying, shutdown, xsDomain bool
	control                   bool   // DOMAIN_CAPS_CONTROL, reported by get_domain_state
	totPages, maxPages        uint64 // getdomaininfo's memory (SetMemory)
	reason                    uint32
	uid                       uint64 // get_domain_state's unique id
	destroyed                 bool
	released                  bool // destroyed and unbound: page and eventfds let go

	// bound is the server port bound to the guest's, or nil; it changes
	// with h.mu held, and an in-process guest's Notify reads it without a
	// lock.
	bound atomic.Pointer[portState]

	mu       sync.Mutex // guards what follows; written with h.mu held too
	toServer int        // separate-process guest -> server eventfd, or -1
	toGuest  int        // server -> separate-process guest eventfd, or -1
	guests   []*Guest   // in-process guests, notified by the server
}

// NewDomain creates domain domid with a zeroed ring page and its event
// channel. The id must be unused and below xen.DomIDFirstReserved.
func (h *Hypervisor) NewDomain(domid uint32) (*Domain, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fake: hypervisor closed")
	}
	if domid >= xen.DomIDFirstReserved {
		return nil, fmt.Errorf("fake: new domain %d: reserved id: %w", domid, unix.EINVAL)
	}
	if _, ok := h.domains[domid]; ok {
		return nil, fmt.Errorf("fake: new domain %d: %w", domid, unix.EEXIST)
	}
	return h.newDomainLocked(domid)
}

// newDomainLocked creates domain domid, a free id below
// xen.DomIDFirstReserved. Caller holds h.mu.
func (h *Hypervisor) newDomainLocked(domid uint32) (*Domain, error) {
	slot, err := h.pages.alloc()
	if err != nil {
		return nil, fmt.Errorf("fake: new domain %d: ring page: %w", domid, err)
	}
	// The guest's own port number. Real guests pick theirs; any stable
	// value the daemon learns "from XS_INTRODUCE" does.
	h.nextUID++
	d := &Domain{h: h, id: domid, guestPort: 1 + domid%1000, slot: slot, toServer: -1, toGuest: -1, uid: h.nextUID}
	h.domains[domid] = d
	h.stateChangedLocked(domid)
	return d, nil
}

// release lets go of a destroyed, unbound domain's page and eventfds.
// Caller holds h.mu.
func (d *Domain) release() {
	if d.released {
		return
	}
	d.released = true
	d.mu.Lock()
	for _, fd := range []*int{&d.toServer, &d.toGuest} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	d.mu.Unlock()
	d.h.pages.unref(d.slot)
}

// ID is the domain id.
func (d *Domain) ID() uint32 { return d.id }

// GuestPort is the guest's event channel port: the remotePort to pass to
// BindInterdomain, as the toolstack would in XS_INTRODUCE.
func (d *Domain) GuestPort() uint32 { return d.guestPort }

// Attach attaches an in-process guest (e.g. a goroutine-driven client) to
// the domain: it maps the ring page, and the server's notifications go to
// an eventfd of the guest's own (Guest.Fd). Close the guest when done.
func (d *Domain) Attach() (*Guest, error) { return d.attach(nil) }

// attach makes an in-process guest whose server notifications go to ge,
// or to an eventfd of its own if ge is nil.
func (d *Domain) attach(ge *GuestEvents) (*Guest, error) {
	h := d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.released || h.closed {
		return nil, fmt.Errorf("fake: attach dom%d: domain destroyed", d.id)
	}
	g := &Guest{DomID: d.id, Port: d.guestPort, d: d, ge: ge, notifyFD: -1, eventFD: -1}
	if ge == nil {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("fake: attach dom%d: eventfd: %w", d.id, err)
		}
		g.eventFD = fd
	} else if !ge.add() {
		return nil, fmt.Errorf("fake: attach dom%d: guest event handle closed", d.id)
	}
	page, err := h.pages.mmap(d.slot)
	if err != nil {
		g.dropEvents()
		return nil, fmt.Errorf("fake: attach dom%d: %w", d.id, err)
	}
	g.page = page
	d.mu.Lock()
	d.guests = append(d.guests, g)
	d.mu.Unlock()
	return g, nil
}

// detach removes an in-process guest from the domain's notification list.
func (d *Domain) detach(g *Guest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.guests {
		if x == g {
			d.guests = append(d.guests[:i], d.guests[i+1:]...)
			return
		}
	}
}

// notifyGuests delivers a server notification to every guest of the
// domain.
func (d *Domain) notifyGuests() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if d.toGuest >= 0 {
		err = signalFD(d.toGuest)
	}
	for _, g := range d.guests {
		if e := g.deliver(); err == nil {
			err = e
		}
	}
	return err
}

// notifyServer raises the server's port bound to the domain, if any: what
// an in-process guest's Notify does.
func (d *Domain) notifyServer() {
	if ps := d.bound.Load(); ps != nil {
		ps.ec.raise(ps)
	}
}

// ConfigureCmd prepares cmd to run as this domain's guest: it appends the
// guest's three descriptors (the page memfd and two eventfds, created for
// the domain on first use) to cmd.ExtraFiles and sets GuestEnv in cmd.Env
// (starting from os.Environ if cmd.Env is nil). The child calls
// AttachGuestFromEnv. Call done after cmd.Start to close this process's
// copies of the passed descriptors.
func (d *Domain) ConfigureCmd(cmd *exec.Cmd) (done func(), err error) {
	h := d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.released || h.closed {
		return nil, fmt.Errorf("fake: configure guest of dom%d: domain destroyed", d.id)
	}
	if err := d.makeEventFDs(); err != nil {
		return nil, fmt.Errorf("fake: configure guest of dom%d: %w", d.id, err)
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	name := fmt.Sprintf("xsfake-dom%d", d.id)
	pfd, err := h.pages.dupFD()
	if err != nil {
		return nil, fmt.Errorf("fake: configure guest of dom%d: %w", d.id, err)
	}
	files = append(files, os.NewFile(uintptr(pfd), name+"-page"))
	for _, fd := range []int{d.toServer, d.toGuest} {
		f, err := passableFile(fd, name)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("fake: configure guest of dom%d: %w", d.id, err)
		}
		files = append(files, f)
	}
	first := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	spec := GuestSpec{DomID: d.id, Port: d.guestPort, PageFD: first, Offset: uint64(h.pages.offset(d.slot)),
		NotifyFD: first + 1, EventFD: first + 2}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, GuestEnv+"="+spec.String())
	return closeAll, nil
}

// makeEventFDs creates the eventfds of a separate-process guest if the
// domain has none yet, and registers toServer with the handle the port is
// bound on. Caller holds h.mu.
func (d *Domain) makeEventFDs() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.toServer >= 0 {
		return nil
	}
	ts, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	tg, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ts)
		return fmt.Errorf("eventfd: %w", err)
	}
	if ps := d.bound.Load(); ps != nil {
		if err := ps.ec.watchFD(ts, ps.port); err != nil {
			unix.Close(ts)
			unix.Close(tg)
			return err
		}
	}
	d.toServer, d.toGuest = ts, tg
	return nil
}

// passableFile wraps a duplicate of fd in an *os.File for ExtraFiles. The
// duplicate shares the open file description, whose O_NONBLOCK flag
// os.File.Fd (called by os.StartProcess) would clear for a file it
// registered as non-blocking; creating the File while the flag is off
// keeps the os package away from it, and the flag is restored at once.
func passableFile(fd int, name string) (*os.File, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	flags, err := unix.FcntlInt(uintptr(nfd), unix.F_GETFL, 0)
	if err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("fcntl: %w", err)
	}
	nonblock := flags&unix.O_NONBLOCK != 0
	if nonblock {
		if err := unix.SetNonblock(nfd, false); err != nil {
			unix.Close(nfd)
			return nil, fmt.Errorf("fcntl: %w", err)
		}
	}
	f := os.NewFile(uintptr(nfd), name)
	if nonblock {
		if err := unix.SetNonblock(nfd, true); err != nil {
			f.Close()
			return nil, fmt.Errorf("fcntl: %w", err)
		}
	}
	return f, nil
}

// lookup returns a live domain. Caller holds h.mu.
func (h *Hypervisor) lookup(domid uint32) (*Domain, error) {
	d, ok := h.domains[domid]
	if !ok {
		return nil, fmt.Errorf("dom%d: %w", domid, unix.ESRCH)
	}
	return d, nil
}

// SetShutdown marks domid shut down with reason (xen.Shutdown*) and raises
// VIRQ_DOM_EXC.
func (h *Hypervisor) SetShutdown(domid, reason uint32) error {
	return h.change(domid, func(d *Domain) { d.shutdown, d.reason = true, reason })
}

// SetDying marks domid dying and raises VIRQ_DOM_EXC.
func (h *Hypervisor) SetDying(domid uint32) error {
	return h.change(domid, func(d *Domain) { d.dying = true })
}

// SetXenstoreDomain sets the xs_domain flag Domains reports for domid.
func (h *Hypervisor) SetXenstoreDomain(domid uint32, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.lookup(domid)
	if err != nil {
		return fmt.Errorf("fake: set xenstore domain: %w", err)
	}
	d.xsDomain = on
	return nil
}

// SetMemory sets the pages getdomaininfo reports for domid: its memory
// now and its limit (struct xen_domctl_getdomaininfo's tot_pages and
// max_pages, the same fields in public/domctl.h of 4.17 through 4.22; the
// dom0less boot reads them back from real Xen 4.22 as the domUs'
// memory/target and memory/static-max).
func (h *Hypervisor) SetMemory(domid uint32, tot, max uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.lookup(domid)
	if err != nil {
		return fmt.Errorf("fake: set memory: %w", err)
	}
	d.totPages, d.maxPages = tot, max
	return nil
}

// SetControlDomain gives or takes domid's control capability
// (DOMAIN_CAPS_CONTROL), which get_domain_state reports.
func (h *Hypervisor) SetControlDomain(domid uint32, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.lookup(domid)
	if err != nil {
		return fmt.Errorf("fake: set control domain: %w", err)
	}
	d.control = on
	return nil
}

// Destroy removes domid: it disappears from Domains, VIRQ_DOM_EXC is
// raised, and its page and eventfds are let go once no port is bound to
// it. Mappings already made stay valid.
func (h *Hypervisor) Destroy(domid uint32) error {
	return h.change(domid, func(d *Domain) {
		d.destroyed = true
		delete(h.domains, domid)
		if d.bound.Load() == nil {
			d.release()
		}
	})
}

func (h *Hypervisor) change(domid uint32, f func(*Domain)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.lookup(domid)
	if err != nil {
		return fmt.Errorf("fake: change dom%d: %w", domid, err)
	}
	f(d)
	h.stateChangedLocked(domid)
	h.fireLocked(xen.VIRQDomExc)
	return nil
}

// FireVIRQ raises virq on every handle that bound it.
func (h *Hypervisor) FireVIRQ(virq uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fireLocked(virq)
}

func (h *Hypervisor) fireLocked(virq uint32) {
	if virq == xen.VIRQDomExc && h.notDomExcHandler {
		return // Xen sends it to the handler only
	}
	for ec := range h.handles {
		ec.raiseVIRQ(virq)
	}
}

// Domains lists live domains in ascending id order: what the fake holds,
// for tests (the daemon asks through xen.Hypercalls).
func (h *Hypervisor) Domains() ([]xen.DomInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fake: domains: hypervisor closed")
	}
	out := make([]xen.DomInfo, 0, len(h.domains))
	for _, d := range h.domains {
		out = append(out, xen.DomInfo{
			ID: d.id, Dying: d.dying, Shutdown: d.shutdown, ShutdownReason: d.reason, XenstoreDomain: d.xsDomain,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// GrantMapper returns a xen.GrantMapper over this hypervisor's domains.
func (h *Hypervisor) GrantMapper() xen.GrantMapper { return &grantMapper{h: h} }

type grantMapper struct {
	h      *Hypervisor
	mu     sync.Mutex
	closed bool
}

type mapping struct {
	pages *pagePool
	slot  int
	page  []byte
}

func (m *mapping) Page() []byte { return m.page }

func (m *mapping) Unmap() error {
	if m.page == nil {
		return nil
	}
	err := m.pages.unmap(m.slot, m.page)
	m.page = nil
	if err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	return nil
}

// MapForeign maps domain domid's ring page; ref must be
// xen.GrantRefXenstore.
func (g *grantMapper) MapForeign(domid, ref uint32) (xen.Mapping, error) {
	if f := g.h.mapHook.Load(); f != nil {
		(*f)()
	}
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("fake: map dom%d ref %d: grant mapper closed", domid, ref)
	}
	if ref != xen.GrantRefXenstore {
		return nil, fmt.Errorf("fake: map dom%d ref %d: only ref %d is granted: %w", domid, ref, xen.GrantRefXenstore, unix.EINVAL)
	}
	g.h.mu.Lock()
	defer g.h.mu.Unlock()
	d, err := g.h.lookup(domid)
	if err != nil {
		return nil, fmt.Errorf("fake: map dom%d ref %d: %w", domid, ref, err)
	}
	p, err := g.h.pages.mmap(d.slot)
	if err != nil {
		return nil, fmt.Errorf("fake: map dom%d ref %d: %w", domid, ref, err)
	}
	return &mapping{pages: g.h.pages, slot: d.slot, page: p}, nil
}

func (g *grantMapper) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// Close destroys every domain, closes every event channel and guest event
// handle, and closes the page memfd. Mappings and guests stay usable until
// unmapped or closed.
func (h *Hypervisor) Close() error {
	h.mu.Lock()
	handles := make([]*EventChannel, 0, len(h.handles))
	for ec := range h.handles {
		handles = append(handles, ec)
	}
	ges := make([]*GuestEvents, 0, len(h.guestEvs))
	for ge := range h.guestEvs {
		ges = append(ges, ge)
	}
	h.mu.Unlock()
	var errs []error
	for _, ec := range handles {
		errs = append(errs, ec.Close())
	}
	for _, ge := range ges {
		errs = append(errs, ge.Close())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, d := range h.domains {
		d.destroyed = true
		d.release()
		delete(h.domains, id)
	}
	h.closed = true
	errs = append(errs, h.pages.close())
	return errors.Join(errs...)
}

// eventfd helpers: a signal adds 1; a drain reads and resets the counter.

func signalFD(fd int) error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	for {
		_, err := unix.Write(fd, b[:])
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.EAGAIN: // EAGAIN: counter saturated, already pending
			return nil
		}
		return err
	}
}

func drainFD(fd int) error {
	var b [8]byte
	for {
		_, err := unix.Read(fd, b[:])
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.EAGAIN:
			return nil
		}
		return err
	}
}
