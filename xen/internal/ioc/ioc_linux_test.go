package ioc

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

func TestOpenMissing(t *testing.T) {
	_, err := Open("/nonexistent-xen-dir/evtchn", unix.O_RDWR)
	if !errors.Is(err, xen.ErrNoDevice) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err = %v, want ErrNoDevice and ENOENT", err)
	}
	if !strings.Contains(err.Error(), "/nonexistent-xen-dir/evtchn") {
		t.Errorf("error does not name the path: %v", err)
	}
	// A present but unsuitable file is not "no device".
	_, err = Open("/", unix.O_RDWR)
	if err == nil || errors.Is(err, xen.ErrNoDevice) {
		t.Fatalf("opening / read-write: err = %v", err)
	}
	fd, err := Open("/dev/null", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// /dev/null has no ioctls: the errno must come through.
	if _, err := IoctlValue(fd, IOC(None, 'E', 5, 0), 0); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("ioctl on /dev/null: %v, want ENOTTY", err)
	}
}

func TestClose(t *testing.T) {
	fd, err := Open("/dev/null", unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := Close("dev", "/dev/null", &fd); err != nil || fd != -1 {
		t.Fatalf("Close: %v, fd %d", err, fd)
	}
	if err := Close("dev", "/dev/null", &fd); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	bad := 1 << 20 // no such descriptor
	if err := Close("dev", "/x", &bad); err == nil || bad != -1 || !strings.Contains(err.Error(), "dev: close /x") {
		t.Fatalf("Close of a bad descriptor: %v, fd %d", err, bad)
	}
}
