package privcmd

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
		t.Skipf("cannot set up (mlock limit?): %v", err)
	}
	if _, err := d.GetDomainInfo(0x17, 3); !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), "getdomaininfo dom3") {
		t.Errorf("GetDomainInfo on /dev/null: %v", err)
	}
	// The hypercall argument must have been laid out in the locked page.
	dc := d.domctlBuf()
	if dc.Cmd != DomctlGetDomainInfo || dc.InterfaceVersion != 0x17 || dc.Domain != 3 {
		t.Errorf("domctl buffer = %+v", *dc)
	}
	if _, err := d.GetDomainState(xen.DomIDInvalid); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("GetDomainState on /dev/null: %v", err)
	}
	if dc.Cmd != DomctlGetDomainState || dc.InterfaceVersion != 0 || uint32(dc.Domain) != xen.DomIDInvalid {
		t.Errorf("domctl buffer = %+v", *dc)
	}
	if _, err := d.GetDomainInfo(0x17, 0x7ff0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("GetDomainInfo(reserved): %v", err)
	}
	if _, err := d.XenVersion(); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("XenVersion on /dev/null: %v", err)
	}
	if d.bufAddr()%xen.PageSize != 0 {
		t.Errorf("hypercall buffer %#x not page aligned", d.bufAddr())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetDomainInfo(0x15, 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("GetDomainInfo after Close: %v", err)
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
	v, err := d.XenVersion()
	if err != nil {
		t.Fatalf("XenVersion: %v", err)
	}
	if v.Major < 4 {
		t.Errorf("Xen %v", v)
	}
}
