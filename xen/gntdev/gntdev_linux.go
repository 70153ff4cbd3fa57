package gntdev

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// Device is an open /dev/xen/gntdev handle.
type Device struct {
	mu   sync.RWMutex // guards fd against Close
	fd   int
	path string
}

var _ xen.GrantMapper = (*Device)(nil)

// Open opens DevicePath; a missing device gives an error matching
// xen.ErrNoDevice.
func Open() (*Device, error) { return OpenPath(DevicePath) }

// OpenPath opens a grant-mapping device at path.
func OpenPath(path string) (*Device, error) {
	fd, err := ioc.Open(path, unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("gntdev: %w", err)
	}
	return &Device{fd: fd, path: path}, nil
}

// Mapping is one mapped foreign page.
type Mapping struct {
	d     *Device
	page  []byte
	index uint64
	domid uint32
	ref   uint32
}

var _ xen.Mapping = (*Mapping)(nil)

// MapForeign maps grant ref of domain domid read-write.
func (d *Device) MapForeign(domid, ref uint32) (xen.Mapping, error) {
	m, err := d.Map(domid, ref)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Map is MapForeign returning the concrete type.
func (d *Device) Map(domid, ref uint32) (*Mapping, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fd < 0 {
		return nil, fmt.Errorf("gntdev: map dom%d ref %d: device closed", domid, ref)
	}
	arg := mapGrantRef{Count: 1, Refs: [1]grantRef{{DomID: domid, Ref: ref}}}
	if _, err := ioc.IoctlPtr(d.fd, ioctlMapGrantRef, &arg); err != nil {
		return nil, fmt.Errorf("gntdev: map dom%d ref %d: %w", domid, ref, err)
	}
	page, err := unix.Mmap(d.fd, int64(arg.Index), xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		uerr := d.unmapIndex(arg.Index)
		return nil, errors.Join(fmt.Errorf("gntdev: mmap dom%d ref %d at index %#x: %w", domid, ref, arg.Index, err), uerr)
	}
	return &Mapping{d: d, page: page, index: arg.Index, domid: domid, ref: ref}, nil
}

// unmapIndex releases the device's reservation of index. Caller holds mu.
func (d *Device) unmapIndex(index uint64) error {
	arg := unmapGrantRef{Index: index, Count: 1}
	if _, err := ioc.IoctlPtr(d.fd, ioctlUnmapGrantRef, &arg); err != nil {
		return fmt.Errorf("gntdev: unmap index %#x: %w", index, err)
	}
	return nil
}

// Page returns the mapped page; nil after Unmap.
func (m *Mapping) Page() []byte { return m.page }

// Unmap unmaps the page and releases the grant. Calling it twice is a no-op.
// If the device was closed in between, munmap alone releases the grant.
func (m *Mapping) Unmap() error {
	if m.page == nil {
		return nil
	}
	if err := unix.Munmap(m.page); err != nil {
		return fmt.Errorf("gntdev: munmap dom%d ref %d: %w", m.domid, m.ref, err)
	}
	m.page = nil
	m.d.mu.RLock()
	defer m.d.mu.RUnlock()
	if m.d.fd < 0 {
		return nil
	}
	if err := m.d.unmapIndex(m.index); err != nil {
		return fmt.Errorf("gntdev: unmap dom%d ref %d: %w", m.domid, m.ref, err)
	}
	return nil
}

// Close closes the device. Existing mappings stay valid until unmapped.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ioc.Close("gntdev", d.path, &d.fd)
}
