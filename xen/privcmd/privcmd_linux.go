package privcmd

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// Device is an open /dev/xen/privcmd handle with its locked hypercall
// buffer.
type Device struct {
	mu   sync.Mutex
	fd   int // -1 once closed
	path string
	buf  []byte // one mlock'ed anonymous page
}

var _ xen.Hypercalls = (*Device)(nil)

// Open opens DevicePath; a missing device gives an error matching
// xen.ErrNoDevice.
func Open() (*Device, error) { return OpenPath(DevicePath) }

// OpenPath opens a hypercall device at path and allocates the locked
// hypercall buffer.
func OpenPath(path string) (*Device, error) {
	fd, err := ioc.Open(path, unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("privcmd: %w", err)
	}
	buf, err := lockedPage()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("privcmd: %w", err)
	}
	return &Device{fd: fd, path: path, buf: buf}, nil
}

// lockedPage maps one anonymous page, locks it in memory and keeps it out
// of forked children, so that the hypervisor can always access it.
func lockedPage() ([]byte, error) {
	b, err := unix.Mmap(-1, 0, xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap hypercall buffer: %w", err)
	}
	if err := unix.Mlock(b); err != nil {
		unix.Munmap(b)
		return nil, fmt.Errorf("mlock hypercall buffer: %w", err)
	}
	if err := unix.Madvise(b, unix.MADV_DONTFORK); err != nil {
		unix.Munmap(b)
		return nil, fmt.Errorf("madvise hypercall buffer: %w", err)
	}
	return b, nil
}

// hypercall issues op with args through the device and returns Xen's
// non-negative result; a negative result comes back as the errno.
func (d *Device) hypercall(op uint64, args [5]uint64) (uintptr, error) {
	arg := hypercall{Op: op, Arg: args}
	return ioc.IoctlPtr(d.fd, ioctlHypercall, &arg)
}

var errClosed = errors.New("privcmd: device closed")

// XenVersion asks XENVER_version, which every domain may ask.
func (d *Device) XenVersion() (xen.Version, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return xen.Version{}, errClosed
	}
	v, err := d.hypercall(HypervisorXenVersion, [5]uint64{XenverVersion})
	if err != nil {
		return xen.Version{}, fmt.Errorf("privcmd: XENVER_version: %w", err)
	}
	return decodeVersion(v), nil
}

// domctl issues one domctl with the union zeroed except for what fill
// writes, and returns the buffer for the caller to decode. Caller holds
// d.mu.
func (d *Device) domctl(name string, cmd, ifVersion, domid uint32) (*domctl, error) {
	if d.fd < 0 {
		return nil, errClosed
	}
	dc := d.domctlBuf()
	*dc = domctl{Cmd: cmd, InterfaceVersion: ifVersion, Domain: uint16(domid)}
	if _, err := d.hypercall(HypervisorDomctl, [5]uint64{d.bufAddr()}); err != nil {
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("privcmd: %s dom%d: domctl interface version %#x refused (not this hypervisor's, or no privilege): %w",
				name, domid, ifVersion, err)
		}
		return nil, fmt.Errorf("privcmd: %s dom%d: %w", name, domid, err)
	}
	return dc, nil
}

// GetDomainInfo issues XEN_DOMCTL_getdomaininfo with the given domctl
// interface version and returns the hypervisor's answer as it is.
func (d *Device) GetDomainInfo(ifVersion, domid uint32) (xen.DomInfo, error) {
	if domid >= xen.DomIDFirstReserved {
		return xen.DomInfo{}, fmt.Errorf("privcmd: getdomaininfo dom%d: reserved id: %w", domid, syscall.EINVAL)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dc, err := d.domctl("getdomaininfo", DomctlGetDomainInfo, ifVersion, domid)
	if err != nil {
		return xen.DomInfo{}, err
	}
	return dc.info().decode(), nil
}

// GetDomainState issues XEN_DOMCTL_get_domain_state (stable, interface
// version 0); xen.DomIDInvalid asks for the next changed domain, whose id
// Xen writes back into the domctl.
func (d *Device) GetDomainState(domid uint32) (xen.DomState, error) {
	if domid >= xen.DomIDFirstReserved && domid != xen.DomIDInvalid {
		return xen.DomState{}, fmt.Errorf("privcmd: get_domain_state dom%d: reserved id: %w", domid, syscall.EINVAL)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dc, err := d.domctl("get_domain_state", DomctlGetDomainState, 0, domid)
	if err != nil {
		return xen.DomState{}, err
	}
	id := uint32(dc.Domain)
	if id >= xen.DomIDFirstReserved {
		return xen.DomState{}, fmt.Errorf("privcmd: get_domain_state dom%d: hypervisor answered reserved dom%d", domid, id)
	}
	return dc.state().decode(id), nil
}

// Close closes the device and frees the hypercall buffer.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if merr := unix.Munmap(d.buf); merr != nil && err == nil {
		err = merr
	}
	d.buf = nil
	if err != nil {
		return fmt.Errorf("privcmd: close %s: %w", d.path, err)
	}
	return nil
}
