// Package fake is a test double for the hypervisor: it implements
// xen.EventChannel, xen.GrantMapper and xen.DomainInfo in the server
// process, and lets a guest attach from the same process or from a
// separate one, so that the daemon's real ring code can be exercised
// without Xen.
//
// Model:
//   - Ring pages: every domain's 4 KiB ring page (the "grant" under
//     xen.GrantRefXenstore) is one page-aligned slot of a single memfd per
//     Hypervisor, grown with ftruncate 1024 slots at a time (the file is
//     sparse: untouched pages cost no memory). A grant mapping and a guest
//     mapping are each an mmap MAP_SHARED of that slot. A slot is reused
//     (zeroed) only when the domain is gone and no mapping of it is left.
//   - Guest -> server events: an in-process guest's Notify goes straight to
//     the EventChannel handle the domain's port is bound on, which keeps a
//     list of pending ports and one wake eventfd, as /dev/xen/evtchn keeps
//     one descriptor for many ports. A notification while the guest's port
//     is not bound is dropped, as Xen drops a send on an unbound port.
//   - Server -> guest events: an in-process guest attached with
//     Domain.Attach has one eventfd of its own (its Fd); guests attached
//     through a GuestEvents handle (Hypervisor.OpenGuestEvents) share that
//     handle's one eventfd and list of pending guests, for drivers that run
//     thousands of guests on one thread.
//   - A guest in a separate process gets a duplicate of the page memfd, its
//     page's offset, and two eventfds, one per direction, created for the
//     domain on the first Domain.ConfigureCmd: the child writes toServer
//     (registered on the bound handle's epoll set) and polls toGuest. The
//     descriptors go through exec.Cmd.ExtraFiles and are described by a
//     GuestSpec in the environment (GuestEnv). The child could map any
//     other fake domain's page from that memfd; a test double may allow it.
//   - An EventChannel handle (Hypervisor.OpenEventChannel) owns one epoll
//     fd, exposed as Fd(), holding its wake eventfd and the toServer
//     eventfds of separate-process guests; Pending is a zero-timeout
//     epoll_wait plus the list of pending ports. There is no goroutine per
//     domain.
//   - Cost: one memfd per Hypervisor, two descriptors per EventChannel
//     handle, one per GuestEvents handle; per domain nothing, plus one
//     eventfd per Domain.Attach guest and two eventfds once it has had a
//     separate-process guest. Thousands of domains driven through one
//     GuestEvents handle fit in a few descriptors.
//   - Masking follows the Linux evtchn driver: a port reported by Pending is
//     masked until Unmask; an event arriving meanwhile is remembered and
//     reported after the Unmask. A daemon that forgets to Unmask stalls here
//     as it would on Xen.
//   - Domain life: SetShutdown, SetDying and Destroy change what Domains
//     reports and raise xen.VIRQDomExc on every handle that bound it, as Xen
//     does. FireVIRQ raises any VIRQ by hand.
//   - Releases (SetRelease; hypercalls_linux.go, createdomain_linux.go):
//     the domctl version, getdomaininfo's and get_domain_state's answers,
//     createdomain's choice of domid, and VIRQ_DOM_EXC's handler rules as
//     each release has them (table in xen/README.md).
//
// Limits: one interdomain binding per domain at a time (as on Xen, the
// guest's port must be unbound to be bound); only ref xen.GrantRefXenstore
// can be mapped; the fake does not model foreign-page revocation, so a
// mapping stays usable after Destroy (its slot is not reused while mapped
// in this process; a separate process's mapping is not tracked). Several
// guests may attach to one domain: each is notified. Linux only (memfd,
// eventfd, epoll).
package fake

import (
	"fmt"
	"strconv"
	"strings"
)

// GuestEnv is the environment variable through which ConfigureCmd passes
// the GuestSpec to a child process.
const GuestEnv = "XSFAKE_GUEST"

// GuestSpec is what a guest in another process needs to attach: its domain
// id, the event channel port it "allocated" (what a real guest passes in
// XS_INTRODUCE), the memfd holding the ring pages with its page's offset,
// and its two eventfds.
type GuestSpec struct {
	DomID    uint32
	Port     uint32
	PageFD   int    // memfd holding the ring pages (of every fake domain)
	Offset   uint64 // byte offset of this domain's page in PageFD
	NotifyFD int    // eventfd the guest writes to notify the server
	EventFD  int    // eventfd the server writes to notify the guest
}

// String encodes the spec as
// "dom=D,port=P,page=F,offset=O,notify=F,event=F".
func (s GuestSpec) String() string {
	return fmt.Sprintf("dom=%d,port=%d,page=%d,offset=%d,notify=%d,event=%d", s.DomID, s.Port, s.PageFD, s.Offset, s.NotifyFD, s.EventFD)
}

// specFields are String's fields, all required by ParseGuestSpec.
var specFields = []string{"dom", "port", "page", "offset", "notify", "event"}

// ParseGuestSpec decodes String's format; every field is required.
func ParseGuestSpec(str string) (GuestSpec, error) {
	var s GuestSpec
	seen := map[string]bool{}
	for _, kv := range strings.Split(str, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return GuestSpec{}, fmt.Errorf("fake: guest spec %q: field %q has no '='", str, kv)
		}
		bits := 32
		if k == "offset" {
			bits = 64
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return GuestSpec{}, fmt.Errorf("fake: guest spec %q: field %s: %w", str, k, err)
		}
		switch k {
		case "dom":
			s.DomID = uint32(n)
		case "port":
			s.Port = uint32(n)
		case "page":
			s.PageFD = int(n)
		case "offset":
			s.Offset = n
		case "notify":
			s.NotifyFD = int(n)
		case "event":
			s.EventFD = int(n)
		default:
			return GuestSpec{}, fmt.Errorf("fake: guest spec %q: unknown field %q", str, k)
		}
		if seen[k] {
			return GuestSpec{}, fmt.Errorf("fake: guest spec %q: duplicate field %q", str, k)
		}
		seen[k] = true
	}
	if len(seen) != len(specFields) {
		return GuestSpec{}, fmt.Errorf("fake: guest spec %q: want fields %s", str, strings.Join(specFields, ", "))
	}
	return s, nil
}
