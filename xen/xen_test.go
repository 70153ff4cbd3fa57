package xen

import (
	"errors"
	"fmt"
	"testing"

	"github.com/xsstub/xenstored/xen/internal/ctest"
)

// Hand-copied from xen/include/public: grant_table.h, xen.h, sched.h.
var constants = []struct {
	name string
	got  uint64
	want uint64
	c    string
}{
	{"GrantRefXenstore", uint64(GrantRefXenstore), 1, "GNTTAB_RESERVED_XENSTORE"},
	{"VIRQDomExc", uint64(VIRQDomExc), 3, "VIRQ_DOM_EXC"},
	{"DomIDFirstReserved", uint64(DomIDFirstReserved), 0x7ff0, "DOMID_FIRST_RESERVED"},
	{"ShutdownPoweroff", uint64(ShutdownPoweroff), 0, "SHUTDOWN_poweroff"},
	{"ShutdownReboot", uint64(ShutdownReboot), 1, "SHUTDOWN_reboot"},
	{"ShutdownSuspend", uint64(ShutdownSuspend), 2, "SHUTDOWN_suspend"},
	{"ShutdownCrash", uint64(ShutdownCrash), 3, "SHUTDOWN_crash"},
	{"ShutdownWatchdog", uint64(ShutdownWatchdog), 4, "SHUTDOWN_watchdog"},
	{"ShutdownSoftReset", uint64(ShutdownSoftReset), 5, "SHUTDOWN_soft_reset"},
	{"PageSize", PageSize, 4096, "XEN_PAGE_SIZE"},
}

func TestConstants(t *testing.T) {
	for _, tt := range constants {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestAgainstC(t *testing.T) {
	exprs := map[string]string{}
	for i, tt := range constants {
		exprs[fmt.Sprintf("v%d", i)] = tt.c
	}
	v := ctest.Values(t, []string{"xen/xen.h", "xen/grant_table.h", "xen/sched.h"},
		"#define __XEN_TOOLS__ 1\n#include <stdint.h>\n#include <xen/xen.h>\n#include <xen/grant_table.h>\n#include <xen/sched.h>\n#define XEN_PAGE_SIZE 4096\n",
		exprs)
	for i, tt := range constants {
		if c := v[fmt.Sprintf("v%d", i)]; c != tt.got {
			t.Errorf("%s: Go %#x, C %#x", tt.c, tt.got, c)
		}
	}
}

func TestErrors(t *testing.T) {
	wrapped := fmt.Errorf("evtchn: open /dev/xen/evtchn: %w", ErrNoDevice)
	if !errors.Is(wrapped, ErrNoDevice) || errors.Is(wrapped, ErrEventOverflow) {
		t.Error("sentinel errors do not discriminate")
	}
}
