// Package privcmd binds the Linux hypercall device /dev/xen/privcmd
// (drivers/xen/privcmd.c, UAPI header xen/privcmd.h) for the one hypercall a
// xenstore domain needs: the domctl XEN_DOMCTL_getdomaininfo, used to list
// domains and learn which are dying or shut down. A Device implements
// xen.DomainInfo.
//
// Hypervisor ABI: the domctl interface is versioned and Xen rejects a
// mismatched XEN_DOMCTL_INTERFACE_VERSION with EACCES. This package speaks
// version 0x15, the one of Xen 4.17 (RELEASE-4.17.0 through 4.17.x; 4.16
// was 0x14, 4.18 is 0x16). The enumeration relies on 4.17's behaviour that
// getdomaininfo for a non-existent id returns the next existing domain
// above it; from 4.18 on that returns ESRCH and a sysctl must be used
// instead, which is not implemented here.
//
// Invariants: the domctl argument lives in one page of anonymous memory
// that is mlock'ed (and excluded from fork), as Xen requires for hypercall
// buffers; it is reused under a mutex. Layouts are checked by tests against
// values derived by hand from xen/include/public/domctl.h (4.17) and, when
// gcc and libxen-dev are present, against the C compiler.
package privcmd

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// DevicePath is where the hypercall device lives.
const DevicePath = "/dev/xen/privcmd"

// Hypercall and domctl numbers (xen.h, domctl.h of Xen 4.17).
const (
	HypervisorDomctl       = 36   // __HYPERVISOR_domctl
	DomctlGetDomainInfo    = 5    // XEN_DOMCTL_getdomaininfo
	DomctlInterfaceVersion = 0x15 // XEN_DOMCTL_INTERFACE_VERSION, Xen 4.17
)

// XEN_DOMINF_* flag bits of xen_domctl_getdomaininfo.flags.
const (
	dominfDying         = 1 << 0
	dominfHVM           = 1 << 1
	dominfShutdown      = 1 << 2
	dominfPaused        = 1 << 3
	dominfXSDomain      = 1 << 7
	dominfShutdownShift = 16
	dominfShutdownMask  = 255
)

// hypercall is struct privcmd_hypercall.
type hypercall struct {
	Op  uint64
	Arg [5]uint64
}

const sizeHypercall = 48

// _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall)).
var ioctlHypercall = ioc.IOC(ioc.None, 'P', 0, sizeHypercall)

// getDomainInfo is struct xen_domctl_getdomaininfo (4.17) up to, not
// including, the architecture-specific arch_config, which we never read.
type getDomainInfo struct {
	Domain           uint16
	Pad1             uint16
	Flags            uint32
	TotPages         uint64
	MaxPages         uint64
	OutstandingPages uint64
	ShrPages         uint64
	PagedPages       uint64
	SharedInfoFrame  uint64
	CPUTime          uint64
	NrOnlineVCPUs    uint32
	MaxVCPUID        uint32
	SSIDRef          uint32
	Handle           [16]byte
	CPUPool          uint32
	GPAddrBits       uint8
	Pad2             [7]uint8
}

// domctl is struct xen_domctl with the getdomaininfo member of its union;
// the union is padded to 128 bytes, which makes the whole 144 bytes.
type domctl struct {
	Cmd              uint32
	InterfaceVersion uint32
	Domain           uint16
	Pad              [3]uint16
	Info             getDomainInfo
	Rest             [128 - 104]byte
}

const sizeDomctl = 144

// decode turns the hypervisor's record into a xen.DomInfo.
func (g *getDomainInfo) decode() xen.DomInfo {
	return decodeFlags(uint32(g.Domain), g.Flags)
}

func decodeFlags(domid, flags uint32) xen.DomInfo {
	return xen.DomInfo{
		ID:             domid,
		Dying:          flags&dominfDying != 0,
		HVM:            flags&dominfHVM != 0,
		Shutdown:       flags&dominfShutdown != 0,
		Paused:         flags&dominfPaused != 0,
		XenstoreDomain: flags&dominfXSDomain != 0,
		ShutdownReason: flags >> dominfShutdownShift & dominfShutdownMask,
	}
}

// listDomains enumerates domains with 4.17's getdomaininfo semantics: asking
// for id n yields the first domain with id >= n, ESRCH when there is none.
// get is the single hypercall; it is a parameter so the loop is testable.
func listDomains(get func(domid uint32) (xen.DomInfo, error)) ([]xen.DomInfo, error) {
	var out []xen.DomInfo
	for next := uint32(0); next < xen.DomIDFirstReserved; {
		info, err := get(next)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("privcmd: list domains from dom%d: %w", next, err)
		}
		if info.ID < next || info.ID >= xen.DomIDFirstReserved {
			return nil, fmt.Errorf("privcmd: list domains: asked for dom%d or above, hypervisor answered dom%d", next, info.ID)
		}
		out = append(out, info)
		next = info.ID + 1
	}
	return out, nil
}
