package fake

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// Guest is the guest end of a fake domain: the mapped ring page and its
// event channel. It satisfies ringclient's Port interface (Notify, Fd, Ack).
type Guest struct {
	DomID uint32
	Port  uint32

	page     []byte
	pageFD   int
	notifyFD int
	eventFD  int
}

// AttachGuest maps the ring page described by spec and takes ownership of
// its three descriptors (Close closes them).
func AttachGuest(spec GuestSpec) (*Guest, error) {
	for _, fd := range []int{spec.PageFD, spec.NotifyFD, spec.EventFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("fake: attach guest %v: descriptor %d: %w", spec, fd, err)
		}
	}
	p, err := unix.Mmap(spec.PageFD, 0, xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
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
	return &Guest{DomID: spec.DomID, Port: spec.Port, page: p, pageFD: spec.PageFD, notifyFD: spec.NotifyFD, eventFD: spec.EventFD}, nil
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
	if err := signalFD(g.notifyFD); err != nil {
		return fmt.Errorf("fake guest dom%d: notify: %w", g.DomID, err)
	}
	return nil
}

// Fd polls readable when the server has notified the guest.
func (g *Guest) Fd() int { return g.eventFD }

// Ack consumes the server's notifications.
func (g *Guest) Ack() error {
	if err := drainFD(g.eventFD); err != nil {
		return fmt.Errorf("fake guest dom%d: ack: %w", g.DomID, err)
	}
	return nil
}

// Wait blocks until the server notifies or timeout passes (negative: no
// timeout) and reports whether a notification came; it consumes it.
func (g *Guest) Wait(timeout time.Duration) (bool, error) {
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

// Close unmaps the page and closes the descriptors.
func (g *Guest) Close() error {
	if g.page == nil {
		return nil
	}
	var errs []error
	if err := unix.Munmap(g.page); err != nil {
		errs = append(errs, err)
	}
	g.page = nil
	for _, fd := range []int{g.pageFD, g.notifyFD, g.eventFD} {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fake guest dom%d: close: %w", g.DomID, err)
	}
	return nil
}
