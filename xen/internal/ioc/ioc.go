// Package ioc encodes Linux ioctl request numbers (the _IOC macro of
// asm-generic/ioctl.h) and opens Xen device nodes with errors the daemon can
// classify.
//
// Limits: only the asm-generic encoding is implemented (x86, arm, arm64,
// riscv: 8-bit nr, 8-bit type, 14-bit size, 2-bit dir with _IOC_NONE=0).
// Architectures with their own encoding (powerpc, mips, sparc) are not
// supported; Xen does not run there.
package ioc

// Directions (_IOC_NONE, _IOC_WRITE, _IOC_READ).
const (
	None  = 0
	Write = 1
	Read  = 2
)

const (
	nrShift   = 0
	typeShift = 8
	sizeShift = 16
	dirShift  = 30
	sizeMask  = 1<<14 - 1
)

// IOC is _IOC(dir, typ, nr, size). It panics if size does not fit the
// 14-bit field, which can only be a programming error in a constant.
func IOC(dir, typ, nr, size uintptr) uintptr {
	if size > sizeMask || nr > 0xff || typ > 0xff || dir > 3 {
		panic("ioc: field out of range")
	}
	return dir<<dirShift | size<<sizeShift | typ<<typeShift | nr<<nrShift
}
