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
	fd   int
	path string
	buf  []byte // one mlock'ed anonymous page
}

var _ xen.DomainInfo = (*Device)(nil)

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

// DomainInfo returns the first existing domain with id >= domid (Xen 4.17
// semantics), or an error matching syscall.ESRCH if there is none.
func (d *Device) DomainInfo(domid uint32) (xen.DomInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.domainInfoLocked(domid)
}

func (d *Device) domainInfoLocked(domid uint32) (xen.DomInfo, error) {
	if d.fd < 0 {
		return xen.DomInfo{}, errors.New("privcmd: device closed")
	}
	if domid >= xen.DomIDFirstReserved {
		return xen.DomInfo{}, fmt.Errorf("privcmd: getdomaininfo dom%d: reserved id: %w", domid, syscall.EINVAL)
	}
	dc := d.domctlBuf()
	*dc = domctl{Cmd: DomctlGetDomainInfo, InterfaceVersion: DomctlInterfaceVersion, Domain: uint16(domid)}
	if _, err := d.hypercall(HypervisorDomctl, [5]uint64{d.bufAddr()}); err != nil {
		if errors.Is(err, syscall.EACCES) {
			return xen.DomInfo{}, fmt.Errorf("privcmd: getdomaininfo dom%d: domctl interface version %#x refused (hypervisor is not Xen 4.17, or no privilege): %w",
				domid, DomctlInterfaceVersion, err)
		}
		return xen.DomInfo{}, fmt.Errorf("privcmd: getdomaininfo dom%d: %w", domid, err)
	}
	return dc.Info.decode(), nil
}

// Domains lists every existing domain in ascending id order.
func (d *Device) Domains() ([]xen.DomInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return listDomains(d.domainInfoLocked)
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
