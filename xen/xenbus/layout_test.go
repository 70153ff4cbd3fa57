package xenbus

import (
	"testing"

	"github.com/xsstub/xenstored/xen/internal/ctest"
)

// Hand-derived from xenbus_dev.h: _IOC(_IOC_NONE, 'B'=0x42, nr, 0).
var numbers = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"EVTCHN", ioctlBackendEvtchn, 0x4200, "IOCTL_XENBUS_BACKEND_EVTCHN"},
	{"SETUP", ioctlBackendSetup, 0x4201, "IOCTL_XENBUS_BACKEND_SETUP"},
}

func TestIoctlNumbers(t *testing.T) {
	for _, tt := range numbers {
		if tt.got != tt.want {
			t.Errorf("IOCTL_XENBUS_BACKEND_%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestAgainstC(t *testing.T) {
	exprs := map[string]string{}
	for _, tt := range numbers {
		exprs[tt.name] = tt.c
	}
	v := ctest.Values(t, []string{"xen/sys/xenbus_dev.h"}, "#include <xen/sys/xenbus_dev.h>\n", exprs)
	for _, tt := range numbers {
		if uint64(tt.got) != v[tt.name] {
			t.Errorf("%s: Go %#x, C %#x", tt.c, tt.got, v[tt.name])
		}
	}
}
