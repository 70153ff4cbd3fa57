package ioc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// Open opens a device node with O_CLOEXEC added to flags. A missing node
// (or missing driver: ENOENT, ENODEV, ENXIO) gives an error matching both
// xen.ErrNoDevice and the errno.
func Open(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
				return -1, fmt.Errorf("open %s: %w (not running on Xen, or driver not loaded): %w", path, xen.ErrNoDevice, err)
			}
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, nil
	}
}

// Close closes the device descriptor *fd once: it is -1 afterwards, and a
// second Close does nothing. The error names the binding and the path.
// Callers hold whatever lock keeps their calls off *fd.
func Close(binding, path string, fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	if err != nil {
		return fmt.Errorf("%s: close %s: %w", binding, path, err)
	}
	return nil
}
