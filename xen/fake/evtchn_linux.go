package fake

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// wakeKey is the epoll user datum of the internal wake eventfd; ports start
// at 1 so it never collides with one.
const wakeKey = 0

// EventChannel is one handle onto the fake event channels of the xenstore
// domain, the counterpart of opening /dev/xen/evtchn: one descriptor for
// any number of ports.
//
// Guests raise ports without taking mu (which the server holds across
// system calls): only softMu, around the list of raised ports.
type EventChannel struct {
	h    *Hypervisor
	epfd int
	wake int // eventfd: signalled when soft becomes non-empty

	mu     sync.Mutex
	ports  map[uint32]*portState
	closed bool
	evbuf  []unix.EpollEvent
	// ringSize and overflowNext model the overflow of Linux's evtchn
	// ring (see SetRingSize, OverflowNext); guarded by mu.
	ringSize     int
	overflowNext bool
	failure      error // see FailPending; guarded by mu

	// wakeMu is held shared while signalling wake, exclusively to close
	// it (closing set).
	wakeMu     sync.RWMutex
	wakeClosed bool
	soft       raisedSet[*portState]
}

type portState struct {
	ec      *EventChannel
	port    uint32
	dom     *Domain // interdomain ports
	virq    uint32  // VIRQ ports (dom == nil)
	masked  bool    // guarded by ec.mu
	pending bool    // fired while masked; guarded by ec.mu
}

var _ xen.EventChannel = (*EventChannel)(nil)

// OpenEventChannel opens a new handle.
func (h *Hypervisor) OpenEventChannel() (*EventChannel, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fake evtchn: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("fake evtchn: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeKey}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("fake evtchn: epoll_ctl: %w", err)
	}
	ec := &EventChannel{h: h, epfd: epfd, wake: wake, ports: make(map[uint32]*portState), evbuf: make([]unix.EpollEvent, 256)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, errors.New("fake evtchn: hypervisor closed")
	}
	h.handles[ec] = struct{}{}
	return ec, nil
}

// Fd is the epoll descriptor: readable while events may be pending.
func (ec *EventChannel) Fd() int { return ec.epfd }

// allocPort returns a fresh local port. Caller holds h.mu.
func (h *Hypervisor) allocPort() uint32 {
	p := h.nextPort
	h.nextPort++
	return p
}

// watchFD adds a separate-process guest's toServer eventfd to the epoll
// set under port. A notification the guest sent while its port was
// unbound is dropped first, as Xen drops it.
func (ec *EventChannel) watchFD(fd int, port uint32) error {
	if err := drainFD(fd); err != nil {
		return fmt.Errorf("fake evtchn: %w", err)
	}
	if err := unix.EpollCtl(ec.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(port)}); err != nil {
		return fmt.Errorf("fake evtchn: epoll_ctl: %w", err)
	}
	return nil
}

// BindInterdomain binds a local port to the guest port of remoteDom.
func (ec *EventChannel) BindInterdomain(remoteDom, remotePort uint32) (uint32, error) {
	h := ec.h
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.lookup(remoteDom)
	if err != nil {
		return 0, fmt.Errorf("fake evtchn: bind interdomain dom%d port %d: %w", remoteDom, remotePort, err)
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closed {
		return 0, errors.New("fake evtchn: bind interdomain: handle closed")
	}
	if remotePort != d.guestPort || d.bound.Load() != nil {
		return 0, fmt.Errorf("fake evtchn: bind interdomain dom%d port %d: port not unbound: %w", remoteDom, remotePort, unix.EINVAL)
	}
	port := h.allocPort()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.toServer >= 0 {
		if err := ec.watchFD(d.toServer, port); err != nil {
			return 0, fmt.Errorf("bind interdomain dom%d port %d: %w", remoteDom, remotePort, err)
		}
	}
	ps := &portState{ec: ec, port: port, dom: d}
	ec.ports[port] = ps
	d.bound.Store(ps)
	return port, nil
}

// BindVIRQ binds virq to a new local port.
func (ec *EventChannel) BindVIRQ(virq uint32) (uint32, error) {
	h := ec.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closed {
		return 0, errors.New("fake evtchn: bind virq: handle closed")
	}
	for _, ps := range ec.ports {
		if ps.dom == nil && ps.virq == virq {
			return 0, fmt.Errorf("fake evtchn: bind virq %d: already bound: %w", virq, unix.EEXIST)
		}
	}
	if virq == xen.VIRQDomExc && h.notDomExcHandler && h.atLeast(4, 21) {
		return 0, fmt.Errorf("fake evtchn: bind virq %d: not its handler: %w", virq, unix.EBUSY)
	}
	port := h.allocPort()
	ec.ports[port] = &portState{ec: ec, port: port, virq: virq}
	if virq == xen.VIRQDomExc {
		h.domExcBound++
		h.initStatesLocked()
	}
	return port, nil
}

// raise puts ps on the list of raised ports (once) and, if the list was
// empty, wakes the handle's descriptor. Pending drains the descriptor before
// it takes the list, so a wake-up is never lost, at worst spurious.
func (ec *EventChannel) raise(ps *portState) {
	ec.wakeMu.RLock()
	defer ec.wakeMu.RUnlock()
	if ec.wakeClosed {
		return
	}
	if ec.soft.add(ps) {
		signalFD(ec.wake)
	}
}

// raiseVIRQ delivers virq if bound here. Caller holds h.mu.
func (ec *EventChannel) raiseVIRQ(virq uint32) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closed {
		return
	}
	for _, ps := range ec.ports {
		if ps.dom == nil && ps.virq == virq {
			ec.raise(ps)
		}
	}
}

// Notify signals the guest at the other end of an interdomain port.
func (ec *EventChannel) Notify(port uint32) error {
	ec.mu.Lock()
	ps, ok := ec.ports[port]
	ec.mu.Unlock()
	if !ok || ps.dom == nil {
		return fmt.Errorf("fake evtchn: notify port %d: not an interdomain port: %w", port, unix.EINVAL)
	}
	if err := ps.dom.notifyGuests(); err != nil {
		return fmt.Errorf("fake evtchn: notify port %d (dom%d): %w", port, ps.dom.id, err)
	}
	return nil
}

// Unmask re-enables a port and re-delivers an event that arrived while it
// was masked.
func (ec *EventChannel) Unmask(port uint32) error {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ps, ok := ec.ports[port]
	if !ok {
		return fmt.Errorf("fake evtchn: unmask port %d: %w", port, unix.EINVAL)
	}
	ps.masked = false
	if ps.pending {
		ps.pending = false
		ec.raise(ps)
	}
	return nil
}

// Unbind closes port. Unbinding the last port of a destroyed domain lets
// go of its page and eventfds.
func (ec *EventChannel) Unbind(port uint32) error {
	h := ec.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ps, ok := ec.ports[port]
	if !ok {
		return fmt.Errorf("fake evtchn: unbind port %d: %w", port, unix.EINVAL)
	}
	delete(ec.ports, port)
	return ec.releaseLocked(ps)
}

// releaseLocked detaches an interdomain port from its domain. Caller holds
// h.mu and ec.mu.
func (ec *EventChannel) releaseLocked(ps *portState) error {
	d := ps.dom
	if d == nil {
		if ps.virq == xen.VIRQDomExc {
			ec.h.domExcUnboundLocked()
		}
		return nil
	}
	var err error
	d.mu.Lock()
	if d.toServer >= 0 {
		if e := unix.EpollCtl(ec.epfd, unix.EPOLL_CTL_DEL, d.toServer, nil); e != nil {
			err = fmt.Errorf("fake evtchn: unbind port %d: epoll_ctl: %w", ps.port, e)
		}
	}
	d.bound.Store(nil)
	d.mu.Unlock()
	if d.destroyed {
		d.release()
	}
	return err
}

// Pending returns the ports that fired since the last call, without
// blocking, and masks them.
func (ec *EventChannel) Pending() ([]uint32, error) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closed {
		return nil, errors.New("fake evtchn: pending: handle closed")
	}
	if ec.failure != nil {
		return nil, fmt.Errorf("fake evtchn: pending: %w", ec.failure)
	}
	var out []uint32
	fire := func(ps *portState) {
		if ps.masked {
			ps.pending = true
			return
		}
		ps.masked = true
		out = append(out, ps.port)
	}
	var n int
	var err error
	for {
		n, err = unix.EpollWait(ec.epfd, ec.evbuf, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fake evtchn: pending: epoll_wait: %w", err)
	}
	// Descriptors beyond evbuf stay readable and are reported next time.
	for _, ev := range ec.evbuf[:n] {
		key := uint32(ev.Fd)
		if key == wakeKey {
			if err := drainFD(ec.wake); err != nil {
				return nil, fmt.Errorf("fake evtchn: pending: %w", err)
			}
			continue
		}
		ps, ok := ec.ports[key]
		if !ok {
			continue
		}
		ps.dom.mu.Lock()
		fd := ps.dom.toServer
		ps.dom.mu.Unlock()
		if fd >= 0 {
			if err := drainFD(fd); err != nil {
				return nil, fmt.Errorf("fake evtchn: pending: port %d: %w", key, err)
			}
		}
		fire(ps)
	}
	for _, ps := range ec.soft.take() {
		if ec.ports[ps.port] == ps {
			fire(ps)
		}
	}
	if len(out) > 0 && (ec.overflowNext || ec.ringSize > 0 && len(out) > ec.ringSize) {
		// The events are lost: their ports stay masked, not pending.
		ec.overflowNext = false
		return nil, fmt.Errorf("fake evtchn: pending: %d ports fired: %w", len(out), xen.ErrEventOverflow)
	}
	return out, nil
}

// SetRingSize models Linux's per-handle ring of fired ports with room for
// n (0, the default: unbounded). When more than n ports fire between two
// Pending calls the ring overflows: every one of them is lost and stays
// masked (the kernel masked each as it fired), and Pending returns
// xen.ErrEventOverflow with the handle reset, as the real device does
// (read fails with EFBIG, then IOCTL_EVTCHN_RESET). Recent kernels size
// the ring to the bound ports, so this is mostly old kernels' behaviour:
// the transport must survive it all the same.
func (ec *EventChannel) SetRingSize(n int) {
	ec.mu.Lock()
	ec.ringSize = n
	ec.mu.Unlock()
}

// OverflowNext makes the next Pending call that finds any fired port
// overflow as SetRingSize describes, whatever the ring size: a
// deterministic way for tests to lose events.
func (ec *EventChannel) OverflowNext() {
	ec.mu.Lock()
	ec.overflowNext = true
	ec.mu.Unlock()
}

// FailPending makes Pending fail with err from now on, as the real
// device's read does when the device breaks, and wakes the handle's
// descriptor so that its reader finds out.
func (ec *EventChannel) FailPending(err error) {
	ec.mu.Lock()
	ec.failure = err
	ec.mu.Unlock()
	ec.wakeMu.RLock()
	defer ec.wakeMu.RUnlock()
	if !ec.wakeClosed {
		signalFD(ec.wake)
	}
}

// Close unbinds every port and releases the handle.
func (ec *EventChannel) Close() error {
	h := ec.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closed {
		return nil
	}
	var errs []error
	for port, ps := range ec.ports {
		errs = append(errs, ec.releaseLocked(ps))
		delete(ec.ports, port)
	}
	ec.closed = true
	delete(h.handles, ec)
	ec.wakeMu.Lock()
	ec.wakeClosed = true
	ec.soft.take()
	if err := unix.Close(ec.wake); err != nil {
		errs = append(errs, fmt.Errorf("fake evtchn: close: %w", err))
	}
	ec.wakeMu.Unlock()
	if err := unix.Close(ec.epfd); err != nil {
		errs = append(errs, fmt.Errorf("fake evtchn: close: %w", err))
	}
	return errors.Join(errs...)
}
