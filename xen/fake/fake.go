// Package fake is a test double for the hypervisor: it implements
// xen.EventChannel, xen.GrantMapper and xen.DomainInfo in the server
// process, and lets a guest attach from the same process or from a
// separate one, so that the daemon's real ring code can be exercised
// without Xen.
//
// Model:
//   - Each fake domain has one 4 KiB ring page, a memfd that both sides map
//     MAP_SHARED (the "grant" under xen.GrantRefXenstore), and two eventfds,
//     one per direction: the guest writes toServer to notify, the server
//     writes toGuest. The guest-side file descriptors are handed to a child
//     process through exec.Cmd.ExtraFiles (Domain.ConfigureCmd) and
//     described by a GuestSpec in the environment (GuestEnv).
//   - An EventChannel handle (Hypervisor.OpenEventChannel) owns one epoll
//     fd, exposed as Fd(), on which every bound domain's toServer eventfd and
//     one internal wake eventfd are registered; Pending is a zero-timeout
//     epoll_wait. There is no goroutine per domain, so thousands of domains
//     cost only file descriptors (three per domain).
//   - Masking follows the Linux evtchn driver: a port reported by Pending is
//     masked until Unmask; an event arriving meanwhile is remembered and
//     reported after the Unmask. A daemon that forgets to Unmask stalls here
//     as it would on Xen.
//   - Domain life: SetShutdown, SetDying and Destroy change what Domains
//     reports and raise xen.VIRQDomExc on every handle that bound it, as Xen
//     does. FireVIRQ raises any VIRQ by hand.
//
// Limits: one interdomain binding per domain at a time (as on Xen, the
// guest's port must be unbound to be bound); only ref xen.GrantRefXenstore
// can be mapped; the fake does not model foreign-page revocation, so a
// mapping stays usable after Destroy. Linux only (memfd, eventfd, epoll).
package fake

import (
	"fmt"
	"strconv"
	"strings"
)

// GuestEnv is the environment variable through which ConfigureCmd passes
// the GuestSpec to a child process.
const GuestEnv = "XSFAKE_GUEST"

// GuestSpec is what a guest needs to attach: its domain id, the event
// channel port it "allocated" (what a real guest passes in XS_INTRODUCE)
// and its three file descriptors.
type GuestSpec struct {
	DomID    uint32
	Port     uint32
	PageFD   int // memfd holding the ring page
	NotifyFD int // eventfd the guest writes to notify the server
	EventFD  int // eventfd the server writes to notify the guest
}

// String encodes the spec as "dom=D,port=P,page=F,notify=F,event=F".
func (s GuestSpec) String() string {
	return fmt.Sprintf("dom=%d,port=%d,page=%d,notify=%d,event=%d", s.DomID, s.Port, s.PageFD, s.NotifyFD, s.EventFD)
}

// ParseGuestSpec decodes String's format; every field is required.
func ParseGuestSpec(str string) (GuestSpec, error) {
	var s GuestSpec
	seen := map[string]bool{}
	for _, kv := range strings.Split(str, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return GuestSpec{}, fmt.Errorf("fake: guest spec %q: field %q has no '='", str, kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
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
	if len(seen) != 5 {
		return GuestSpec{}, fmt.Errorf("fake: guest spec %q: want fields dom, port, page, notify, event", str)
	}
	return s, nil
}
