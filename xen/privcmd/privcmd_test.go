package privcmd

import (
	"testing"

	"github.com/xsstub/xenstored/xen"
)

func TestDecodeFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags uint32
		want  xen.DomInfo
	}{
		{"running", 1 << 5, xen.DomInfo{ID: 3}},
		{"dying", 1, xen.DomInfo{ID: 3, Dying: true}},
		{"hvm paused", 2 | 8, xen.DomInfo{ID: 3, HVM: true, Paused: true}},
		{"crashed", 4 | 3<<16, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: xen.ShutdownCrash}},
		{"poweroff", 4, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: xen.ShutdownPoweroff}},
		{"xenstore domain", 0x80, xen.DomInfo{ID: 3, XenstoreDomain: true}},
		{"reason bits above mask ignored", 4 | 0xff05<<16, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: 5}},
	}
	for _, tt := range tests {
		if got := decodeFlags(3, tt.flags); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	g := getDomainInfo{Domain: 9, Flags: 1, TotPages: 7, MaxPages: 8}
	if got := g.decode(); got.ID != 9 || !got.Dying || got.TotPages != 7 || got.MaxPages != 8 {
		t.Errorf("decode = %+v", got)
	}
}

func TestDecodeState(t *testing.T) {
	tests := []struct {
		name string
		g    getDomainState
		want xen.DomState
	}{
		{"gone", getDomainState{}, xen.DomState{ID: 4}},
		{"running", getDomainState{State: 1, UniqueID: 77}, xen.DomState{ID: 4, Exists: true, UniqueID: 77}},
		{"shut down", getDomainState{State: 3}, xen.DomState{ID: 4, Exists: true, Shutdown: true}},
		{"dying", getDomainState{State: 5}, xen.DomState{ID: 4, Exists: true, Dying: true}},
		{"dead", getDomainState{State: 9}, xen.DomState{ID: 4, Exists: true, Dead: true}},
		{"caps", getDomainState{State: 1, Caps: 7}, xen.DomState{ID: 4, Exists: true, Control: true, Hardware: true, Xenstore: true}},
	}
	for _, tt := range tests {
		if got := tt.g.decode(4); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestDecodeVersion(t *testing.T) {
	for _, tt := range []struct {
		v    uintptr
		want xen.Version
	}{{4<<16 | 17, xen.Version{Major: 4, Minor: 17}}, {4<<16 | 22, xen.Version{Major: 4, Minor: 22}}, {5 << 16, xen.Version{Major: 5}}} {
		if got := decodeVersion(tt.v); got != tt.want {
			t.Errorf("decodeVersion(%#x) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
