// Package evtchn binds the Linux event-channel device /dev/xen/evtchn
// (drivers/xen/evtchn.c, UAPI header xen/evtchn.h).
//
// Scope: the ioctls a xenstore server needs (bind VIRQ, bind interdomain,
// bind unbound port, unbind, notify, reset), reading pending ports and
// unmasking them. A Device implements xen.EventChannel.
//
// Invariants and limits:
//   - The device is opened non-blocking; Pending never blocks. Poll Fd()
//     for readability (it works with epoll) and then call Pending.
//   - The kernel masks each port it reports as pending until Unmask writes
//     it back; the caller must Unmask after handling the port, or the port
//     stays silent forever.
//   - A kernel-side overflow of the pending buffer (EFBIG) is handled by
//     resetting the device; Pending then returns xen.ErrEventOverflow and
//     the caller must rescan every ring.
//   - Ports are the local domain's; all bindings die with Close.
//   - Structs and ioctl numbers are written from the UAPI header; tests check
//     their sizes and values by hand and, where gcc and headers exist,
//     against the C compiler.
package evtchn

import "github.com/xsstub/xenstored/xen/internal/ioc"

// DevicePath is where the event-channel device lives.
const DevicePath = "/dev/xen/evtchn"

// Argument structs, one per ioctl (all fields "unsigned int" in C).
type (
	bindVIRQ struct {
		VIRQ uint32
	}
	bindInterdomain struct {
		RemoteDomain uint32
		RemotePort   uint32
	}
	bindUnboundPort struct {
		RemoteDomain uint32
	}
	unbind struct {
		Port uint32
	}
	notify struct {
		Port uint32
	}
)

// Argument sizes as in the C header; tests assert they equal the Go
// structs' sizes.
const (
	sizeBindVIRQ        = 4
	sizeBindInterdomain = 8
	sizeBindUnboundPort = 4
	sizeUnbind          = 4
	sizeNotify          = 4
)

// ioctl request numbers: _IOC(_IOC_NONE, 'E', nr, sizeof(arg)).
var (
	ioctlBindVIRQ        = ioc.IOC(ioc.None, 'E', 0, sizeBindVIRQ)
	ioctlBindInterdomain = ioc.IOC(ioc.None, 'E', 1, sizeBindInterdomain)
	ioctlBindUnboundPort = ioc.IOC(ioc.None, 'E', 2, sizeBindUnboundPort)
	ioctlUnbind          = ioc.IOC(ioc.None, 'E', 3, sizeUnbind)
	ioctlNotify          = ioc.IOC(ioc.None, 'E', 4, sizeNotify)
	ioctlReset           = ioc.IOC(ioc.None, 'E', 5, 0)
)

// maxPending bounds one Pending read (ports per call).
const maxPending = 1024
