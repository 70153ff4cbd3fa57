package evtchn

import (
	"testing"
	"unsafe"

	"github.com/xsstub/xenstored/xen/internal/ctest"
)

// Hand-derived from xen/evtchn.h: _IOC(_IOC_NONE, 'E'=0x45, nr, size) is
// size<<16 | 0x45<<8 | nr.
var wantIoctl = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"BIND_VIRQ", ioctlBindVIRQ, 0x00044500, "IOCTL_EVTCHN_BIND_VIRQ"},
	{"BIND_INTERDOMAIN", ioctlBindInterdomain, 0x00084501, "IOCTL_EVTCHN_BIND_INTERDOMAIN"},
	{"BIND_UNBOUND_PORT", ioctlBindUnboundPort, 0x00044502, "IOCTL_EVTCHN_BIND_UNBOUND_PORT"},
	{"UNBIND", ioctlUnbind, 0x00044503, "IOCTL_EVTCHN_UNBIND"},
	{"NOTIFY", ioctlNotify, 0x00044504, "IOCTL_EVTCHN_NOTIFY"},
	{"RESET", ioctlReset, 0x00004505, "IOCTL_EVTCHN_RESET"},
}

var wantLayout = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"sizeof bind_virq", unsafe.Sizeof(bindVIRQ{}), sizeBindVIRQ, "sizeof(struct ioctl_evtchn_bind_virq)"},
	{"sizeof bind_interdomain", unsafe.Sizeof(bindInterdomain{}), sizeBindInterdomain, "sizeof(struct ioctl_evtchn_bind_interdomain)"},
	{"sizeof bind_unbound_port", unsafe.Sizeof(bindUnboundPort{}), sizeBindUnboundPort, "sizeof(struct ioctl_evtchn_bind_unbound_port)"},
	{"sizeof unbind", unsafe.Sizeof(unbind{}), sizeUnbind, "sizeof(struct ioctl_evtchn_unbind)"},
	{"sizeof notify", unsafe.Sizeof(notify{}), sizeNotify, "sizeof(struct ioctl_evtchn_notify)"},
	{"remote_domain", unsafe.Offsetof(bindInterdomain{}.RemoteDomain), 0, "offsetof(struct ioctl_evtchn_bind_interdomain, remote_domain)"},
	{"remote_port", unsafe.Offsetof(bindInterdomain{}.RemotePort), 4, "offsetof(struct ioctl_evtchn_bind_interdomain, remote_port)"},
}

func TestIoctlNumbers(t *testing.T) {
	for _, tt := range wantIoctl {
		if tt.got != tt.want {
			t.Errorf("IOCTL_EVTCHN_%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestLayout(t *testing.T) {
	for _, tt := range wantLayout {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestAgainstC cross-checks with the C compiler when gcc and the Linux UAPI
// header are installed.
func TestAgainstC(t *testing.T) {
	exprs := map[string]string{}
	for _, tt := range wantIoctl {
		exprs[tt.name] = tt.c
	}
	for i, tt := range wantLayout {
		exprs["L"+string(rune('a'+i))] = tt.c
	}
	v := ctest.Values(t, []string{"xen/evtchn.h"}, "#include <stdint.h>\n#include <linux/ioctl.h>\ntypedef uint16_t domid_t;\n#include <xen/evtchn.h>\n", exprs)
	for _, tt := range wantIoctl {
		if uint64(tt.got) != v[tt.name] {
			t.Errorf("%s: Go %#x, C %#x", tt.c, tt.got, v[tt.name])
		}
	}
	for i, tt := range wantLayout {
		if c := v["L"+string(rune('a'+i))]; uint64(tt.got) != c {
			t.Errorf("%s: Go %d, C %d", tt.c, tt.got, c)
		}
	}
}

func TestDecodePorts(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []uint32
	}{
		{"empty", nil, []uint32{}},
		{"one", []byte{7, 0, 0, 0}, []uint32{7}},
		{"two", []byte{1, 0, 0, 0, 0xff, 0xff, 0, 0}, []uint32{1, 0xffff}},
		{"partial tail ignored", []byte{3, 0, 0, 0, 9, 9}, []uint32{3}},
	}
	for _, tt := range tests {
		got := decodePorts(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			}
		}
	}
}
