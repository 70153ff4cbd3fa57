//go:build linux

package ioc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ioctl issues ioctl(fd, req, arg) and returns the kernel's non-negative
// result. arg points to the request's argument struct (or is nil); the
// conversion to uintptr happens inside the system call expression so the
// pointed-to memory stays live and in place for the call.
func Ioctl(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
}

// IoctlValue issues ioctl(fd, req, v) with a plain integer argument.
func IoctlValue(fd int, req uintptr, v uintptr) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, v)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
}

// IoctlPtr issues ioctl(fd, req, arg) for a pointer to an argument struct.
func IoctlPtr[T any](fd int, req uintptr, arg *T) (uintptr, error) {
	return Ioctl(fd, req, unsafe.Pointer(arg))
}
