package launcher

import (
	"errors"
	"fmt"

	"github.com/xsstub/xenstored/launcher/xc"
)

// ChooseType decides PVH (true) or PV for mode on a host with the given
// capabilities (xc.Cap*) and kernel: PVH needs HVM with HAP or shadow
// paging and the kernel's PVH entry note; by default PVH wherever the host
// offers it, as init-xenstore-domain does.
func ChooseType(mode Mode, caps uint32, ki KernelInfo, kernel string) (pvh bool, err error) {
	hvmOK := caps&xc.CapHVM != 0 && caps&(xc.CapHAP|xc.CapShadow) != 0
	switch mode {
	case ModePVH:
		if !hvmOK {
			return false, errors.New("--pvh: this Xen offers no HVM guests with HAP or shadow paging (needs VT-x/SVM with EPT/NPT); use --pv")
		}
		return true, nil
	case ModePV:
		if caps&xc.CapPV == 0 {
			return false, errors.New("--pv: this Xen was built without PV guest support")
		}
		return false, nil
	}
	if hvmOK && !ki.HasPVH {
		return false, fmt.Errorf("kernel %s (%s) has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) but this Xen would build PVH: "+
			"give an ELF vmlinux built with CONFIG_XEN_PVH, or --pv", kernel, ki.Format)
	}
	if !hvmOK && caps&xc.CapPV == 0 {
		return false, errors.New("this Xen offers neither PVH (HVM with HAP/shadow) nor PV guests")
	}
	return hvmOK, nil
}
