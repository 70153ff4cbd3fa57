package privcmd

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
)

func TestOpenMissing(t *testing.T) {
	_, err := OpenPath(t.TempDir() + "/privcmd")
	if !errors.Is(err, xen.ErrNoDevice) || !strings.HasPrefix(err.Error(), "privcmd: open ") {
		t.Fatalf("err = %v, want ErrNoDevice with context", err)
	}
}

func TestErrorPaths(t *testing.T) {
	d, err := OpenPath("/dev/null")
	if err != nil {
		t.Skipf("cannot set up (mlock limit?): %v", err)
	}
	if _, err := d.Domains(); !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), "getdomaininfo dom0") {
		t.Errorf("Domains on /dev/null: %v", err)
	}
	if _, err := d.DomainInfo(0x7ff0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("DomainInfo(reserved): %v", err)
	}
	// The hypercall argument must have been laid out in the locked page.
	dc := d.domctlBuf()
	if dc.Cmd != DomctlGetDomainInfo || dc.InterfaceVersion != DomctlInterfaceVersion || dc.Domain != 0 {
		t.Errorf("domctl buffer = %+v", *dc)
	}
	if d.bufAddr()%xen.PageSize != 0 {
		t.Errorf("hypercall buffer %#x not page aligned", d.bufAddr())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Domains(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Domains after Close: %v", err)
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
	doms, err := d.Domains()
	if err != nil {
		t.Skipf("Domains: %v (not a 4.17 hypervisor or no privilege)", err)
	}
	for i := 1; i < len(doms); i++ {
		if doms[i].ID <= doms[i-1].ID {
			t.Errorf("domains not ascending: %+v", doms)
		}
	}
}
