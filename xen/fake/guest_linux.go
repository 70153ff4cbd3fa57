package fake

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// Guest is the guest end of a fake domain: the mapped ring page and its
// event channel. It satisfies ringclient's Port interface (Notify, Fd, Ack)
// unless it was attached through a GuestEvents handle.
//
// A guest is one of three kinds: in-process with an eventfd of its own
// (Domain.Attach), in-process on a GuestEvents handle (GuestEvents.Attach),
// or in another process (AttachGuest, AttachGuestFromEnv).
type Guest struct {
	DomID uint32
	Port  uint32

	page []byte
	d    *Domain      // in-process guests
	ge   *GuestEvents // guests on a GuestEvents handle
	// notifyFD is the eventfd a separate-process guest writes to notify
	// the server (-1 in-process); eventFD the one the server's
	// notifications arrive on (-1 on a GuestEvents handle).
	notifyFD, eventFD int

	closed atomic.Bool
}

// AttachGuest maps the ring page described by spec, closes spec.PageFD,
// and takes ownership of the two eventfds (Close closes them). It is how a
// guest in another process attaches.
func AttachGuest(spec GuestSpec) (*Guest, error) {
	for _, fd := range []int{spec.PageFD, spec.NotifyFD, spec.EventFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("fake: attach guest %v: descriptor %d: %w", spec, fd, err)
		}
	}
	if spec.Offset%uint64(os.Getpagesize()) != 0 {
		return nil, fmt.Errorf("fake: attach guest %v: offset not page-aligned: %w", spec, unix.EINVAL)
	}
	p, err := unix.Mmap(spec.PageFD, int64(spec.Offset), xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("fake: attach guest %v: mmap: %w", spec, err)
	}
	// Inherited descriptors may have lost O_NONBLOCK; the guest only reads
	// after poll, but keep them non-blocking regardless.
	for _, fd := range []int{spec.NotifyFD, spec.EventFD} {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Munmap(p)
			return nil, fmt.Errorf("fake: attach guest %v: %w", spec, err)
		}
	}
	unix.Close(spec.PageFD) // the mapping keeps the page
	return &Guest{DomID: spec.DomID, Port: spec.Port, page: p, notifyFD: spec.NotifyFD, eventFD: spec.EventFD}, nil
}

// AttachGuestFromEnv attaches using the GuestSpec in GuestEnv, as set by
// Domain.ConfigureCmd.
func AttachGuestFromEnv() (*Guest, error) {
	s, ok := os.LookupEnv(GuestEnv)
	if !ok {
		return nil, fmt.Errorf("fake: attach guest: %s not set", GuestEnv)
	}
	spec, err := ParseGuestSpec(s)
	if err != nil {
		return nil, err
	}
	return AttachGuest(spec)
}

// Page is the shared ring page.
func (g *Guest) Page() []byte { return g.page }

// Notify signals the server.
func (g *Guest) Notify() error {
	if g.d != nil {
		if g.closed.Load() {
			return fmt.Errorf("fake guest dom%d: notify: guest closed", g.DomID)
		}
		g.d.notifyServer()
		return nil
	}
	if err := signalFD(g.notifyFD); err != nil {
		return fmt.Errorf("fake guest dom%d: notify: %w", g.DomID, err)
	}
	return nil
}

// Fd polls readable when the server has notified the guest. It is -1 for a
// guest on a GuestEvents handle, whose Fd is the handle's.
func (g *Guest) Fd() int { return g.eventFD }

// Ack consumes the server's notifications. On a GuestEvents handle there
// is nothing to do: the handle's Pending consumed them.
func (g *Guest) Ack() error {
	if g.eventFD < 0 {
		return nil
	}
	if err := drainFD(g.eventFD); err != nil {
		return fmt.Errorf("fake guest dom%d: ack: %w", g.DomID, err)
	}
	return nil
}

// Wait blocks until the server notifies or timeout passes (negative: no
// timeout) and reports whether a notification came; it consumes it. A
// guest on a GuestEvents handle cannot wait on its own.
func (g *Guest) Wait(timeout time.Duration) (bool, error) {
	if g.eventFD < 0 {
		return false, fmt.Errorf("fake guest dom%d: wait: events go to a GuestEvents handle", g.DomID)
	}
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	fds := []unix.PollFd{{Fd: int32(g.eventFD), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("fake guest dom%d: wait: %w", g.DomID, err)
		}
		if n == 0 {
			return false, nil
		}
		return true, g.Ack()
	}
}

// deliver hands the server's notification to an in-process guest. Caller
// holds g.d.mu.
func (g *Guest) deliver() error {
	if g.ge != nil {
		g.ge.raise(g)
		return nil
	}
	return signalFD(g.eventFD)
}

// dropEvents lets go of the guest's event delivery: its eventfd, or its
// place on the GuestEvents handle.
func (g *Guest) dropEvents() error {
	if g.ge != nil {
		g.ge.remove(g)
	}
	if g.eventFD >= 0 {
		err := unix.Close(g.eventFD)
		g.eventFD = -1
		return err
	}
	return nil
}

// Close unmaps the page and releases the guest's descriptors or its place
// on a GuestEvents handle.
func (g *Guest) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	var errs []error
	if g.d != nil {
		g.d.detach(g)
		if err := g.d.h.pages.unmap(g.d.slot, g.page); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, g.dropEvents())
	} else {
		if err := unix.Munmap(g.page); err != nil {
			errs = append(errs, err)
		}
		for _, fd := range []int{g.notifyFD, g.eventFD} {
			if err := unix.Close(fd); err != nil {
				errs = append(errs, err)
			}
		}
	}
	g.page = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fake guest dom%d: close: %w", g.DomID, err)
	}
	return nil
}

// GuestEvents is a guest-side event handle for many in-process guests:
// the server's notifications to every guest attached through it are
// collected on one list and signalled on one eventfd, so that one thread
// can drive thousands of guests with a single descriptor. A notification
// is reported once however often it was sent before the next Pending,
// like an eventfd's counter.
type GuestEvents struct {
	h    *Hypervisor
	wake int // eventfd: signalled when pending becomes non-empty

	// wakeMu is held shared while signalling wake, exclusively to close
	// it (closed set).
	wakeMu  sync.RWMutex
	closed  bool
	pending raisedSet[*Guest] // notified since the last Pending, each once
}

// OpenGuestEvents opens a guest-side event handle.
func (h *Hypervisor) OpenGuestEvents() (*GuestEvents, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("fake guest events: eventfd: %w", err)
	}
	ge := &GuestEvents{h: h, wake: wake}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		unix.Close(wake)
		return nil, errors.New("fake guest events: hypervisor closed")
	}
	h.guestEvs[ge] = struct{}{}
	return ge, nil
}

// Attach attaches an in-process guest to domain d whose server
// notifications are reported by this handle's Pending. The guest has no
// descriptor of its own: its Fd is -1 and it cannot Wait.
func (ge *GuestEvents) Attach(d *Domain) (*Guest, error) { return d.attach(ge) }

// Fd polls readable while some guest of the handle has been notified.
func (ge *GuestEvents) Fd() int { return ge.wake }

// Pending returns the guests notified since the last call, each once,
// without blocking.
func (ge *GuestEvents) Pending() ([]*Guest, error) {
	ge.wakeMu.RLock()
	defer ge.wakeMu.RUnlock()
	if ge.closed {
		return nil, errors.New("fake guest events: pending: handle closed")
	}
	// Drain first, then take the list: a guest raised in between is
	// taken now, and one raised after signals again.
	if err := drainFD(ge.wake); err != nil {
		return nil, fmt.Errorf("fake guest events: pending: %w", err)
	}
	return ge.pending.take(), nil
}

func (ge *GuestEvents) add() bool {
	ge.wakeMu.RLock()
	defer ge.wakeMu.RUnlock()
	return !ge.closed
}

func (ge *GuestEvents) remove(g *Guest) { ge.pending.remove(g) }

// raise records a server notification for g (see Pending).
func (ge *GuestEvents) raise(g *Guest) {
	ge.wakeMu.RLock()
	defer ge.wakeMu.RUnlock()
	if ge.closed || g.closed.Load() {
		return
	}
	if ge.pending.add(g) {
		signalFD(ge.wake)
	}
}

// Close closes the handle. Its guests stay attached (close them too) but
// are no longer notified.
func (ge *GuestEvents) Close() error {
	ge.h.mu.Lock()
	delete(ge.h.guestEvs, ge)
	ge.h.mu.Unlock()
	ge.wakeMu.Lock()
	defer ge.wakeMu.Unlock()
	if ge.closed {
		return nil
	}
	ge.closed = true
	ge.pending.take()
	if err := unix.Close(ge.wake); err != nil {
		return fmt.Errorf("fake guest events: close: %w", err)
	}
	return nil
}
