// Package xenbus binds the Linux xenbus backend device
// /dev/xen/xenbus_backend (drivers/xen/xenbus/xenbus_dev_backend.c, header
// xenbus_dev.h). It serves a xenstored that runs in the initial domain:
// its own xenstore ring page (mapped by mmap of the device) and event
// channel, and the set-up of a separate xenstore domain (SETUP).
//
// Limits: the Linux driver registers the device only in the initial domain
// (dom0) and every operation needs CAP_SYS_ADMIN. Inside a xenstore stub
// domain the device is normally absent; Open then fails with an error
// matching xen.ErrNoDevice and the daemon must get its rings via gntdev and
// XS_INTRODUCE instead. The ioctls take no argument struct: SETUP takes the
// domain id as the ioctl argument and both return a port number.
package xenbus

import "github.com/xsstub/xenstored/xen/internal/ioc"

// BackendPath is where the backend device lives.
const BackendPath = "/dev/xen/xenbus_backend"

// _IOC(_IOC_NONE, 'B', nr, 0).
var (
	ioctlBackendEvtchn = ioc.IOC(ioc.None, 'B', 0, 0)
	ioctlBackendSetup  = ioc.IOC(ioc.None, 'B', 1, 0)
)
