package fake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// Hypervisor is the fake Xen of one test. Its methods are safe for
// concurrent use.
type Hypervisor struct {
	mu       sync.Mutex
	domains  map[uint32]*Domain
	handles  map[*EventChannel]struct{}
	nextPort uint32
	closed   bool
}

var _ xen.DomainInfo = (*Hypervisor)(nil)

// New returns an empty fake hypervisor.
func New() *Hypervisor {
	return &Hypervisor{
		domains:  make(map[uint32]*Domain),
		handles:  make(map[*EventChannel]struct{}),
		nextPort: 1,
	}
}

// Domain is one fake guest domain as the hypervisor sees it.
type Domain struct {
	h         *Hypervisor
	id        uint32
	guestPort uint32

	memfd    int
	toServer int // guest -> server eventfd
	toGuest  int // server -> guest eventfd

	// Guarded by h.mu.
	dying, shutdown, xsDomain bool
	reason                    uint32
	destroyed                 bool
	fdsClosed                 bool
	boundBy                   *EventChannel
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
	d := &Domain{h: h, id: domid, memfd: -1, toServer: -1, toGuest: -1}
	var err error
	if d.memfd, err = unix.MemfdCreate(fmt.Sprintf("xsfake-dom%d", domid), unix.MFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("fake: new domain %d: memfd_create: %w", domid, err)
	}
	if err = unix.Ftruncate(d.memfd, xen.PageSize); err != nil {
		d.closeFDs()
		return nil, fmt.Errorf("fake: new domain %d: ftruncate: %w", domid, err)
	}
	if d.toServer, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		d.closeFDs()
		return nil, fmt.Errorf("fake: new domain %d: eventfd: %w", domid, err)
	}
	if d.toGuest, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		d.closeFDs()
		return nil, fmt.Errorf("fake: new domain %d: eventfd: %w", domid, err)
	}
	// The guest's own port number. Real guests pick theirs; any stable
	// value the daemon learns "from XS_INTRODUCE" does.
	d.guestPort = 1 + domid%1000
	h.domains[domid] = d
	return d, nil
}

func (d *Domain) closeFDs() {
	for _, fd := range []*int{&d.memfd, &d.toServer, &d.toGuest} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	d.fdsClosed = true
}

// ID is the domain id.
func (d *Domain) ID() uint32 { return d.id }

// GuestPort is the guest's event channel port: the remotePort to pass to
// BindInterdomain, as the toolstack would in XS_INTRODUCE.
func (d *Domain) GuestPort() uint32 { return d.guestPort }

// Spec describes the domain's guest-side file descriptors as numbered in
// this process.
func (d *Domain) Spec() GuestSpec {
	return GuestSpec{DomID: d.id, Port: d.guestPort, PageFD: d.memfd, NotifyFD: d.toServer, EventFD: d.toGuest}
}

// Attach attaches an in-process guest (e.g. a goroutine-driven client) to
// the domain, on duplicates of the domain's descriptors.
func (d *Domain) Attach() (*Guest, error) {
	d.h.mu.Lock()
	if d.fdsClosed {
		d.h.mu.Unlock()
		return nil, fmt.Errorf("fake: attach dom%d: domain destroyed", d.id)
	}
	spec := d.Spec()
	var dups []int
	for _, fd := range []int{spec.PageFD, spec.NotifyFD, spec.EventFD} {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			d.h.mu.Unlock()
			for _, x := range dups {
				unix.Close(x)
			}
			return nil, fmt.Errorf("fake: attach dom%d: dup: %w", d.id, err)
		}
		dups = append(dups, nfd)
	}
	d.h.mu.Unlock()
	spec.PageFD, spec.NotifyFD, spec.EventFD = dups[0], dups[1], dups[2]
	return AttachGuest(spec)
}

// ConfigureCmd prepares cmd to run as this domain's guest: it appends the
// three guest descriptors to cmd.ExtraFiles and sets GuestEnv in cmd.Env
// (starting from os.Environ if cmd.Env is nil). The child calls
// AttachGuestFromEnv. Call done after cmd.Start to close this process's
// copies of the passed descriptors.
func (d *Domain) ConfigureCmd(cmd *exec.Cmd) (done func(), err error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if d.fdsClosed {
		return nil, fmt.Errorf("fake: configure guest of dom%d: domain destroyed", d.id)
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, fd := range []int{d.memfd, d.toServer, d.toGuest} {
		f, err := passableFile(fd, fmt.Sprintf("xsfake-dom%d", d.id))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("fake: configure guest of dom%d: %w", d.id, err)
		}
		files = append(files, f)
	}
	first := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	spec := GuestSpec{DomID: d.id, Port: d.guestPort, PageFD: first, NotifyFD: first + 1, EventFD: first + 2}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, GuestEnv+"="+spec.String())
	return closeAll, nil
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

// Destroy removes domid: it disappears from Domains, VIRQ_DOM_EXC is
// raised, and its descriptors are closed once no port is bound to it.
// Mappings already made stay valid.
func (h *Hypervisor) Destroy(domid uint32) error {
	return h.change(domid, func(d *Domain) {
		d.destroyed = true
		delete(h.domains, domid)
		if d.boundBy == nil {
			d.closeFDs()
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
	for ec := range h.handles {
		ec.raiseVIRQ(virq)
	}
}

// Domains lists live domains in ascending id order.
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

type mapping struct{ page []byte }

func (m *mapping) Page() []byte { return m.page }

func (m *mapping) Unmap() error {
	if m.page == nil {
		return nil
	}
	if err := unix.Munmap(m.page); err != nil {
		return fmt.Errorf("fake: munmap: %w", err)
	}
	m.page = nil
	return nil
}

// MapForeign maps domain domid's ring page; ref must be
// xen.GrantRefXenstore.
func (g *grantMapper) MapForeign(domid, ref uint32) (xen.Mapping, error) {
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
	p, err := unix.Mmap(d.memfd, 0, xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("fake: map dom%d ref %d: mmap: %w", domid, ref, err)
	}
	return &mapping{page: p}, nil
}

func (g *grantMapper) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// Close destroys every domain and closes every event channel handle.
func (h *Hypervisor) Close() error {
	h.mu.Lock()
	handles := make([]*EventChannel, 0, len(h.handles))
	for ec := range h.handles {
		handles = append(handles, ec)
	}
	h.mu.Unlock()
	var errs []error
	for _, ec := range handles {
		errs = append(errs, ec.Close())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, d := range h.domains {
		d.destroyed = true
		d.closeFDs()
		delete(h.domains, id)
	}
	h.closed = true
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
