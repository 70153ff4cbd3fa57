//go:build linux

package privcmd

import "unsafe"

// domctlBuf views the start of the locked page as the domctl argument. The
// page is page-aligned mmap memory outside the Go heap, so the cast is
// aligned and the memory never moves.
func (d *Device) domctlBuf() *domctl {
	return (*domctl)(unsafe.Pointer(unsafe.SliceData(d.buf)))
}

// bufAddr is the virtual address of the locked page, as the hypercall's
// pointer argument.
func (d *Device) bufAddr() uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(d.buf))))
}
