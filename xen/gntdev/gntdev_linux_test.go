package gntdev

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
)

func TestErrorPaths(t *testing.T) {
	d, err := OpenPath("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.MapForeign(7, xen.GrantRefXenstore)
	if !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), "map dom7 ref 1") {
		t.Errorf("MapForeign on /dev/null: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.MapForeign(7, 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("MapForeign after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRealDevice(t *testing.T) {
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skip("no " + DevicePath + ": not on Xen")
	}
	d, err := Open()
	if err != nil {
		t.Skipf("cannot open %s: %v", DevicePath, err)
	}
	defer d.Close()
	// Domain 0x7ff0 is reserved and never grants anything.
	if m, err := d.MapForeign(xen.DomIDFirstReserved, xen.GrantRefXenstore); err == nil {
		m.Unmap()
		t.Error("mapping a grant of a reserved domain id succeeded")
	}
}
