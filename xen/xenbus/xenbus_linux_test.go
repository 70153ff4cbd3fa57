package xenbus

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
)

func TestErrorPaths(t *testing.T) {
	b, err := OpenBackendPath("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.StoreEvtchn(); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("StoreEvtchn: %v", err)
	}
	if _, err := b.Setup(4); !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), "dom4") {
		t.Errorf("Setup: %v", err)
	}
	if _, err := b.Setup(0x7ff0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Setup(reserved): %v", err)
	}
	// /dev/null cannot be mmap'ed shared read-write... or can it: either
	// way the call must not panic, and a mapping must unmap.
	if m, err := b.MapStorePage(); err == nil {
		if len(m.Page()) != xen.PageSize {
			t.Errorf("page is %d bytes", len(m.Page()))
		}
		if err := m.Unmap(); err != nil {
			t.Error(err)
		}
	} else if !strings.Contains(err.Error(), "map store page") {
		t.Errorf("MapStorePage: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StoreEvtchn(); err == nil {
		t.Error("StoreEvtchn after Close succeeded")
	}
}

func TestRealDevice(t *testing.T) {
	if _, err := os.Stat(BackendPath); err != nil {
		t.Skip("no " + BackendPath + ": not dom0 on Xen")
	}
	b, err := OpenBackend()
	if err != nil {
		t.Skipf("cannot open: %v", err)
	}
	defer b.Close()
	if _, err := b.StoreEvtchn(); err != nil && !errors.Is(err, syscall.ENODEV) {
		t.Errorf("StoreEvtchn: %v", err)
	}
}
