// Package privcmd binds the Linux hypercall device /dev/xen/privcmd
// (drivers/xen/privcmd.c, UAPI header xen/privcmd.h) for the hypercalls a
// xenstore domain needs to follow domains' lives: XENVER_version,
// XEN_DOMCTL_getdomaininfo and XEN_DOMCTL_get_domain_state. A Device
// implements xen.Hypercalls; it issues each call exactly as asked and
// returns the hypervisor's answer. Which calls suit which Xen release is
// package domains' business, not this one's.
//
// Hypervisor ABI: the domctl interface is versioned and Xen rejects a
// mismatched XEN_DOMCTL_INTERFACE_VERSION with EACCES, so the caller passes
// the version (0x15 for Xen 4.17, 0x16 4.18, 0x17 4.19-4.21, 0x18 4.22).
// get_domain_state is a stable domctl: interface version 0. The
// xen_domctl_getdomaininfo layout and the 128-byte domctl union are the
// same in every release from 4.17 to 4.22 (checked against each release's
// xen/include/public/domctl.h).
//
// Invariants: the domctl argument lives in one page of anonymous memory
// that is mlock'ed (and excluded from fork), as Xen requires for hypercall
// buffers; it is reused under a mutex. Layouts are checked by tests against
// values derived by hand from the public headers and, when gcc and
// libxen-dev are present, against the C compiler.
package privcmd

import (
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/internal/ioc"
)

// DevicePath is where the hypercall device lives.
const DevicePath = "/dev/xen/privcmd"

// Hypercall, sub-op and domctl numbers (xen.h, version.h, domctl.h).
const (
	HypervisorXenVersion = 17 // __HYPERVISOR_xen_version
	HypervisorDomctl     = 36 // __HYPERVISOR_domctl
	XenverVersion        = 0  // XENVER_version
	DomctlGetDomainInfo  = 5  // XEN_DOMCTL_getdomaininfo
	DomctlGetDomainState = 90 // XEN_DOMCTL_get_domain_state (4.21+, stable)
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

// XEN_DOMCTL_GETDOMSTATE_* bits of xen_domctl_get_domain_state.
const (
	stateExist    = 1 << 0
	stateShutdown = 1 << 1
	stateDying    = 1 << 2
	stateDead     = 1 << 3
	capControl    = 1 << 0
	capHardware   = 1 << 1
	capXenstore   = 1 << 2
)

// hypercall is struct privcmd_hypercall.
type hypercall struct {
	Op  uint64
	Arg [5]uint64
}

const sizeHypercall = 48

// _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall)).
var ioctlHypercall = ioc.IOC(ioc.None, 'P', 0, sizeHypercall)

// getDomainInfo is struct xen_domctl_getdomaininfo up to, not including,
// the architecture-specific arch_config, which we never read.
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

// getDomainState is struct xen_domctl_get_domain_state (4.21+).
type getDomainState struct {
	State    uint16
	Caps     uint16
	Pad0     uint32
	UniqueID uint64
}

// domctl is struct xen_domctl with the union as raw bytes; the union is
// padded to 128 bytes, which makes the whole 144 bytes.
type domctl struct {
	Cmd              uint32
	InterfaceVersion uint32
	Domain           uint16
	Pad              [3]uint16
	U                [128]byte
}

const sizeDomctl = 144

// decode turns the hypervisor's record into a xen.DomInfo.
func (g *getDomainInfo) decode() xen.DomInfo {
	info := decodeFlags(uint32(g.Domain), g.Flags)
	info.TotPages, info.MaxPages = g.TotPages, g.MaxPages
	return info
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

func (g *getDomainState) decode(domid uint32) xen.DomState {
	return xen.DomState{
		ID:       domid,
		Exists:   g.State&stateExist != 0,
		Shutdown: g.State&stateShutdown != 0,
		Dying:    g.State&stateDying != 0,
		Dead:     g.State&stateDead != 0,
		Control:  g.Caps&capControl != 0,
		Hardware: g.Caps&capHardware != 0,
		Xenstore: g.Caps&capXenstore != 0,
		UniqueID: g.UniqueID,
	}
}

// decodeVersion splits XENVER_version's (major << 16) | minor.
func decodeVersion(v uintptr) xen.Version {
	return xen.Version{Major: uint32(v >> 16 & 0xffff), Minor: uint32(v & 0xffff)}
}
