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

// info and state view the domctl union as one of its members; the union
// starts 8-aligned (offset 16) and is larger than either.
func (dc *domctl) info() *getDomainInfo {
	return (*getDomainInfo)(unsafe.Pointer(&dc.U[0]))
}

func (dc *domctl) state() *getDomainState {
	return (*getDomainState)(unsafe.Pointer(&dc.U[0]))
}
