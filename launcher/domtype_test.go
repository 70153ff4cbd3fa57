package launcher

import (
	"strings"
	"testing"

	"github.com/xsstub/xenstored/launcher/xc"
)

func TestChooseType(t *testing.T) {
	const (
		hvmHAP    = xc.CapHVM | xc.CapHAP
		hvmShadow = xc.CapHVM | xc.CapShadow
		all       = hvmHAP | xc.CapPV
	)
	withNote, without := KernelInfo{Format: "elf", HasPVH: true}, KernelInfo{Format: "bzImage"}
	for _, tt := range []struct {
		name    string
		mode    Mode
		caps    uint32
		ki      KernelInfo
		wantPVH bool
		wantErr string
	}{
		{"auto on HVM+HAP builds PVH", ModeAuto, all, withNote, true, ""},
		{"auto on shadow paging builds PVH", ModeAuto, hvmShadow, withNote, true, ""},
		{"auto on a PV-only host builds PV", ModeAuto, xc.CapPV, without, false, ""},
		{"auto: HVM without HAP or shadow is PV", ModeAuto, xc.CapHVM | xc.CapPV, without, false, ""},
		{"auto refuses a kernel without the PVH note where PVH would be built", ModeAuto, all, without, false, "no PVH entry note"},
		{"auto with nothing", ModeAuto, 0, withNote, false, "neither PVH"},
		{"--pvh", ModePVH, all, withNote, true, ""},
		{"--pvh without HVM", ModePVH, xc.CapPV, withNote, false, "--pvh: this Xen offers no HVM"},
		{"--pv", ModePV, all, withNote, false, ""},
		{"--pv without PV", ModePV, hvmHAP, withNote, false, "--pv: this Xen was built without PV"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pvh, err := ChooseType(tt.mode, tt.caps, tt.ki, "vmlinux")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || pvh != tt.wantPVH {
				t.Fatalf("pvh %v, err %v; want %v", pvh, err, tt.wantPVH)
			}
		})
	}
}
