package xenbus

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// Backend is an open /dev/xen/xenbus_backend handle.
type Backend struct {
	mu   sync.RWMutex
	fd   int
	path string
}

// OpenBackend opens BackendPath; a missing device (not dom0, or not on
// Xen) gives an error matching xen.ErrNoDevice.
func OpenBackend() (*Backend, error) { return OpenBackendPath(BackendPath) }

// OpenBackendPath opens a backend device at path.
func OpenBackendPath(path string) (*Backend, error) {
	fd, err := ioc.Open(path, unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("xenbus: %w", err)
	}
	return &Backend{fd: fd, path: path}, nil
}

// StoreEvtchn returns the local port of this domain's own xenstore event
// channel (IOCTL_XENBUS_BACKEND_EVTCHN). ENODEV means there is none yet.
func (b *Backend) StoreEvtchn() (uint32, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.fd < 0 {
		return 0, errors.New("xenbus: store evtchn: device closed")
	}
	r, err := ioc.IoctlValue(b.fd, ioctlBackendEvtchn, 0)
	if err != nil {
		return 0, fmt.Errorf("xenbus: store evtchn: %w", err)
	}
	return uint32(r), nil
}

// Setup hands this domain's xenstore connection to xenstore domain domid
// (IOCTL_XENBUS_BACKEND_SETUP): the kernel grants its ring page to domid
// under xen.GrantRefXenstore, allocates an unbound event channel for domid
// and returns that port.
func (b *Backend) Setup(domid uint32) (uint32, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.fd < 0 {
		return 0, errors.New("xenbus: setup: device closed")
	}
	if domid >= xen.DomIDFirstReserved {
		return 0, fmt.Errorf("xenbus: setup for dom%d: reserved domain id: %w", domid, unix.EINVAL)
	}
	r, err := ioc.IoctlValue(b.fd, ioctlBackendSetup, uintptr(domid))
	if err != nil {
		return 0, fmt.Errorf("xenbus: setup for dom%d: %w", domid, err)
	}
	return uint32(r), nil
}

// storePage is this domain's own ring page mapped through the device.
type storePage struct{ page []byte }

func (s *storePage) Page() []byte { return s.page }

func (s *storePage) Unmap() error {
	if s.page == nil {
		return nil
	}
	if err := unix.Munmap(s.page); err != nil {
		return fmt.Errorf("xenbus: munmap store page: %w", err)
	}
	s.page = nil
	return nil
}

// MapStorePage maps this domain's own xenstore ring page (the device allows
// exactly one page at offset 0).
func (b *Backend) MapStorePage() (xen.Mapping, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.fd < 0 {
		return nil, errors.New("xenbus: map store page: device closed")
	}
	p, err := unix.Mmap(b.fd, 0, xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("xenbus: map store page: %w", err)
	}
	return &storePage{page: p}, nil
}

// Close closes the device; a mapped store page stays valid until unmapped.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return ioc.Close("xenbus", b.path, &b.fd)
}
