// Package gntdev binds the Linux grant-mapping device /dev/xen/gntdev
// (drivers/xen/gntdev.c, UAPI header xen/gntdev.h) far enough to map one
// foreign page: the xenstore ring that each domain grants under
// xen.GrantRefXenstore.
//
// A mapping is made in two steps, as the driver requires: the
// MAP_GRANT_REF ioctl reserves an offset ("index") in the device for the
// grant, then mmap of the device at that offset maps the page. Unmapping
// reverses it: munmap, then UNMAP_GRANT_REF.
//
// Invariants and limits: one page per mapping (count is always 1); the page
// is shared with the granting domain, which may change it at any time, so
// callers must treat it with package ring. A Device implements
// xen.GrantMapper.
package gntdev

import "github.com/xsstub/xenstored/xen/internal/ioc"

// DevicePath is where the grant-mapping device lives.
const DevicePath = "/dev/xen/gntdev"

// grantRef is struct ioctl_gntdev_grant_ref.
type grantRef struct {
	DomID uint32
	Ref   uint32
}

// mapGrantRef is struct ioctl_gntdev_map_grant_ref with its flexible
// refs array sized for one grant.
type mapGrantRef struct {
	Count uint32 // in
	Pad   uint32
	Index uint64 // out: mmap offset
	Refs  [1]grantRef
}

// unmapGrantRef is struct ioctl_gntdev_unmap_grant_ref.
type unmapGrantRef struct {
	Index uint64
	Count uint32
	Pad   uint32
}

const (
	sizeMapGrantRef   = 24
	sizeUnmapGrantRef = 16
)

// _IOC(_IOC_NONE, 'G', nr, sizeof(arg)).
var (
	ioctlMapGrantRef   = ioc.IOC(ioc.None, 'G', 0, sizeMapGrantRef)
	ioctlUnmapGrantRef = ioc.IOC(ioc.None, 'G', 1, sizeUnmapGrantRef)
)
