package evtchn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// Device is an open /dev/xen/evtchn handle.
type Device struct {
	fd   int
	path string

	mu  sync.Mutex // serialises reads (buf) and Close
	buf []byte
}

var _ xen.EventChannel = (*Device)(nil)

// Open opens DevicePath. If the device does not exist the error matches
// xen.ErrNoDevice.
func Open() (*Device, error) { return OpenPath(DevicePath) }

// OpenPath opens an event-channel device at path (tests use it to check
// error paths).
func OpenPath(path string) (*Device, error) {
	fd, err := ioc.Open(path, unix.O_RDWR|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("evtchn: %w", err)
	}
	return &Device{fd: fd, path: path, buf: make([]byte, 4*maxPending)}, nil
}

// FromFD takes over an open event-channel device, such as one a live
// update handed over: the ports bound on it stay bound.
func FromFD(fd int) *Device {
	unix.CloseOnExec(fd)
	return &Device{fd: fd, path: DevicePath, buf: make([]byte, 4*maxPending)}
}

// Fd is the device's file descriptor, readable while ports are pending.
func (d *Device) Fd() int { return d.fd }

// BindInterdomain binds a new local port to remotePort of remoteDom.
func (d *Device) BindInterdomain(remoteDom, remotePort uint32) (uint32, error) {
	arg := bindInterdomain{RemoteDomain: remoteDom, RemotePort: remotePort}
	r, err := ioc.IoctlPtr(d.fd, ioctlBindInterdomain, &arg)
	if err != nil {
		return 0, fmt.Errorf("evtchn: bind interdomain dom%d port %d: %w", remoteDom, remotePort, err)
	}
	return uint32(r), nil
}

// BindUnboundPort allocates a new local port that remoteDom may bind to.
func (d *Device) BindUnboundPort(remoteDom uint32) (uint32, error) {
	arg := bindUnboundPort{RemoteDomain: remoteDom}
	r, err := ioc.IoctlPtr(d.fd, ioctlBindUnboundPort, &arg)
	if err != nil {
		return 0, fmt.Errorf("evtchn: bind unbound port for dom%d: %w", remoteDom, err)
	}
	return uint32(r), nil
}

// BindVIRQ binds virtual IRQ virq to a new local port.
func (d *Device) BindVIRQ(virq uint32) (uint32, error) {
	arg := bindVIRQ{VIRQ: virq}
	r, err := ioc.IoctlPtr(d.fd, ioctlBindVIRQ, &arg)
	if err != nil {
		return 0, fmt.Errorf("evtchn: bind virq %d: %w", virq, err)
	}
	return uint32(r), nil
}

// Notify signals the remote end of port.
func (d *Device) Notify(port uint32) error {
	arg := notify{Port: port}
	if _, err := ioc.IoctlPtr(d.fd, ioctlNotify, &arg); err != nil {
		return fmt.Errorf("evtchn: notify port %d: %w", port, err)
	}
	return nil
}

// Unbind closes port.
func (d *Device) Unbind(port uint32) error {
	arg := unbind{Port: port}
	if _, err := ioc.IoctlPtr(d.fd, ioctlUnbind, &arg); err != nil {
		return fmt.Errorf("evtchn: unbind port %d: %w", port, err)
	}
	return nil
}

// Reset clears the pending buffer and its overflow condition.
func (d *Device) Reset() error {
	if _, err := ioc.IoctlValue(d.fd, ioctlReset, 0); err != nil {
		return fmt.Errorf("evtchn: reset: %w", err)
	}
	return nil
}

// Unmask re-enables delivery on port by writing it to the device.
func (d *Device) Unmask(port uint32) error {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], port)
	for {
		n, err := unix.Write(d.fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("evtchn: unmask port %d: %w", port, err)
		}
		if n != len(b) {
			return fmt.Errorf("evtchn: unmask port %d: short write (%d bytes)", port, n)
		}
		return nil
	}
}

// Pending returns the ports that fired, without blocking. Each returned
// port is masked until Unmask. On kernel buffer overflow the device is
// reset and the error matches xen.ErrEventOverflow.
func (d *Device) Pending() ([]uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		n, err := unix.Read(d.fd, d.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil, nil
		case errors.Is(err, unix.EFBIG):
			if rerr := d.Reset(); rerr != nil {
				return nil, fmt.Errorf("evtchn: pending: %w; then %w", xen.ErrEventOverflow, rerr)
			}
			return nil, fmt.Errorf("evtchn: pending: %w", xen.ErrEventOverflow)
		case err != nil:
			return nil, fmt.Errorf("evtchn: read pending ports: %w", err)
		}
		return decodePorts(d.buf[:n]), nil
	}
}

// Close closes the device, unbinding every port bound through it.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ioc.Close("evtchn", d.path, &d.fd)
}
