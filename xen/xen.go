// Package xen holds the small interfaces through which the daemon talks to
// the hypervisor, and the values they share. The real Linux devices
// (packages evtchn, gntdev, privcmd, xenbus) and the test double (package
// fake) implement them; the daemon programs against these interfaces only,
// so it runs unchanged on Xen and in tests.
//
// Everything here is plain data and interfaces; no OS calls.
package xen

import (
	"errors"
	"fmt"
)

// Well-known numbers from Xen's public headers.
const (
	// GrantRefXenstore is GNTTAB_RESERVED_XENSTORE: the grant reference
	// under which every domain grants its xenstore ring page.
	GrantRefXenstore uint32 = 1
	// VIRQDomExc is VIRQ_DOM_EXC: raised when some domain dies or shuts
	// down. Only the xenstore domain (or dom0) may bind it.
	VIRQDomExc uint32 = 3
	// DomIDFirstReserved is DOMID_FIRST_RESERVED; real domain ids are below.
	DomIDFirstReserved uint32 = 0x7ff0
	// PageSize is the Xen page size on every architecture we support.
	PageSize = 4096
)

// Shutdown reasons (SHUTDOWN_* in sched.h), reported in
// DomInfo.ShutdownReason when DomInfo.Shutdown is set.
const (
	ShutdownPoweroff  uint32 = 0
	ShutdownReboot    uint32 = 1
	ShutdownSuspend   uint32 = 2
	ShutdownCrash     uint32 = 3
	ShutdownWatchdog  uint32 = 4
	ShutdownSoftReset uint32 = 5
)

// ErrNoDevice is matched (errors.Is) by the error of every Open of a real
// device when the device node or /dev/xen itself is missing, i.e. when not
// running on Xen. The daemon uses it to fall back to serving its socket only.
var ErrNoDevice = errors.New("xen device not present")

// ErrEventOverflow is returned by EventChannel.Pending when the kernel's
// pending-event buffer overflowed and events were lost. The channel has
// already been reset; the caller must treat every bound port as possibly
// pending (check every ring) and carry on.
var ErrEventOverflow = errors.New("event channel buffer overflow: events lost")

// EventChannel is an event channel handle (/dev/xen/evtchn). Ports are local
// port numbers of this domain. A port returned by Pending is masked until
// Unmask is called for it; a notification arriving meanwhile is delivered
// after the unmask.
type EventChannel interface {
	// BindInterdomain connects a local port to remotePort of remoteDom
	// (the port the guest allocated for xenstore and passed in
	// XS_INTRODUCE).
	BindInterdomain(remoteDom, remotePort uint32) (localPort uint32, err error)
	// BindVIRQ binds a virtual IRQ such as VIRQDomExc to a new local port.
	BindVIRQ(virq uint32) (localPort uint32, err error)
	// Notify signals the remote end of port.
	Notify(port uint32) error
	// Unmask re-enables delivery for a port returned by Pending.
	Unmask(port uint32) error
	// Unbind closes port.
	Unbind(port uint32) error
	// Pending returns the ports that fired since the last call, possibly
	// none. It never blocks: wait for Fd to become readable (poll/epoll)
	// before calling it.
	Pending() ([]uint32, error)
	// Fd is a file descriptor that polls readable while events are pending.
	Fd() int
	// Close releases the handle and every port bound through it.
	Close() error
}

// Mapping is a foreign page mapped into our address space.
type Mapping interface {
	// Page is the PageSize-byte shared page. It is shared with the foreign
	// domain, which may write it concurrently: use package ring on it.
	// It must not be used after Unmap.
	Page() []byte
	// Unmap releases the mapping.
	Unmap() error
}

// GrantMapper maps pages other domains granted us (/dev/xen/gntdev).
type GrantMapper interface {
	// MapForeign maps grant ref of domain domid read-write. For xenstore
	// rings ref is GrantRefXenstore.
	MapForeign(domid, ref uint32) (Mapping, error)
	// Close releases the handle; existing mappings stay valid until
	// unmapped.
	Close() error
}

// DomInfo is what the daemon needs to know about one domain's life.
type DomInfo struct {
	ID             uint32
	Gone           bool   // no longer exists, or its id now names a newer domain
	Dying          bool   // being destroyed: release its connection
	Shutdown       bool   // the guest shut down; see ShutdownReason
	ShutdownReason uint32 // Shutdown* value, valid when Shutdown (not on Xen >= 4.21)
	XenstoreDomain bool   // the domain is a xenstore domain (XEN_DOMINF_xs_domain)
	Control        bool   // DOMAIN_CAPS_CONTROL (Xen >= 4.21 only; false before)
	Paused         bool
	HVM            bool
	UniqueID       uint64 // Xen >= 4.21: never reused by another domain; else 0
	// TotPages and MaxPages are the domain's memory now and its limit, in
	// 4 KiB pages: getdomaininfo's answer only (0 from get_domain_state).
	TotPages, MaxPages uint64
}

// DomainInfo answers the daemon's questions about domains' lives, whatever
// the hypervisor release (package domains implements it over Hypercalls).
type DomainInfo interface {
	// Domain returns domid's state now; ok is false when no such domain
	// exists. An error means the answer is unknown, never "gone".
	Domain(domid uint32) (info DomInfo, ok bool, err error)
	// Changes is called after VIRQ_DOM_EXC with the domains the store
	// knows. It returns the state of those of them whose state may have
	// changed; Gone marks one that no longer exists.
	Changes(known []uint32) ([]DomInfo, error)
	// Introduced tells that the store now serves the domain holding
	// domid: its later changes are judged against that domain.
	Introduced(domid uint32)
}

// Version is a Xen release as XENVER_version reports it.
type Version struct{ Major, Minor uint32 }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less orders releases.
func (v Version) Less(o Version) bool {
	return v.Major < o.Major || v.Major == o.Major && v.Minor < o.Minor
}

// DomState is XEN_DOMCTL_get_domain_state's answer (Xen >= 4.21). A domain
// reported by the changed-domain iteration with Exists false is gone.
type DomState struct {
	ID                          uint32
	Exists, Shutdown            bool
	Dying, Dead                 bool
	Control, Hardware, Xenstore bool // capabilities
	UniqueID                    uint64
}

// DomIDInvalid is DOMID_INVALID; GetDomainState(DomIDInvalid) asks for the
// next domain whose state changed.
const DomIDInvalid uint32 = 0x7ff4

// DomIDAny is DOMID_ANY (public xen.h from 4.22; the same number is simply
// a reserved id before): asked of XEN_DOMCTL_createdomain, it lets Xen
// choose the new domain's id in every release from 4.17 on.
const DomIDAny uint32 = 0x7ff5

// Hypercalls are the raw hypervisor operations domain tracking is built
// on, exactly as the hypervisor answers them: /dev/xen/privcmd
// (package privcmd) and the fake hypervisor implement them, the latter
// with each release's semantics.
type Hypercalls interface {
	// XenVersion is XENVER_version.
	XenVersion() (Version, error)
	// GetDomainInfo is XEN_DOMCTL_getdomaininfo for domid under domctl
	// interface version ifVersion. Up to Xen 4.17 a missing domid yields
	// the first domain above it; from 4.18 ESRCH (4.22 and later: EPERM
	// unless the caller is the control domain). A wrong ifVersion: EACCES.
	GetDomainInfo(ifVersion, domid uint32) (DomInfo, error)
	// GetDomainState is XEN_DOMCTL_get_domain_state (Xen >= 4.21, stable
	// interface version 0). DomIDInvalid returns the next domain whose
	// state changed since it was last reported (ENOENT: none), for the
	// VIRQ_DOM_EXC handler only.
	GetDomainState(domid uint32) (DomState, error)
}
