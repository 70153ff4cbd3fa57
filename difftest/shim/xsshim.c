/*
 * xsshim.c - LD_PRELOAD library for the differential tests in difftest/
 * and the benchmark in bench/.
 *
 * C xenstored expects a Xen host: it opens Xen's domain-information,
 * event-channel and grant-table interfaces and maps dom0's ring through
 * /proc/xen. The tests only talk to it over its Unix socket, so this
 * library stands in for those interfaces with inert equivalents that let it
 * start and serve the socket on plain Linux. One source, two builds:
 *
 *   Xen 4.17 (Debian's xenstored, also oxenstored with bench/shim/oxshim.c),
 *   against Debian's libxen-dev headers:
 *     gcc -O2 -fPIC -shared -o xsshim.so xsshim.c -ldl
 *   Xen 4.22 (build/xen422.sh), against that install tree's headers:
 *     gcc -O2 -fPIC -shared -DXSSHIM_XENMANAGE -I$ROOT/usr/include \
 *         -o xsshim422.so xsshim.c -ldl
 *
 * Domain information, the part that differs:
 *   4.17: libxenctrl   xc_interface_open/close; xc_domain_getinfo reports
 *                      every domid below DOMID_FIRST_RESERVED (0x7ff0) as an
 *                      existing, running domain, and none from there up, as
 *                      on a real host (our Go daemon, run without Xen, treats
 *                      every domain as existing).
 *   4.22: libxenmanage (4.21 and later, replacing libxenctrl there)
 *                      xenmanage_open/close; xenmanage_get_domain_info: the
 *                      same domids exist, dom0 with the control, hardware and
 *                      xenstore capabilities (so it is the privileged and the
 *                      store domain), each with a fixed unique id;
 *                      xenmanage_poll_changed_domain reports dom0 once, at
 *                      start, and nothing after: xenstored 4.21+ introduces
 *                      the domains reported there at start, and a host
 *                      starting its xenstored has only dom0.
 * Common to both:
 *   libxenevtchn  the event-channel handle is an idle pipe that never
 *                 becomes readable (so no VIRQ_DOM_EXC: no domain dies);
 *                 binds hand out fresh port numbers (ESRCH for a domid that
 *                 cannot exist); notify/unbind/unmask succeed and do nothing.
 *   libxengnttab  grant mappings are private zero-filled pages (ESRCH for
 *                 a domid that cannot exist), so INTRODUCE works.
 *   open()        /proc/xen/xsd_port reads as "1" and /proc/xen/xsd_kva is
 *                 one zero-filled page (dom0's ring, which nobody writes),
 *                 both backed by memfds.
 *
 * Nothing here emulates a domain or a ring: only the socket is meant to be
 * used.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef XSSHIM_XENMANAGE
#include <xen/xen.h>
#include <xenmanage.h>
#else
#include <xenctrl.h>
#endif
#include <xenevtchn.h>
#include <xengnttab.h>

#define PAGE 4096

/* Opaque handles: the daemon only compares them with NULL. */
static char info_handle, evtchn_handle, gnttab_handle;

/* Read end of a pipe whose write end is kept open and never written. */
static int idle_fd = -1;
static evtchn_port_t last_port = 100;

static int idle_pipe(void)
{
	int p[2];

	if (idle_fd < 0 && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0)
		idle_fd = p[0];
	return idle_fd;
}

/* Real domains have ids below DOMID_FIRST_RESERVED. */
static int no_such_domain(uint32_t domid)
{
	if (domid < DOMID_FIRST_RESERVED)
		return 0;
	errno = ESRCH;
	return 1;
}

static void *zero_page(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return m == MAP_FAILED ? NULL : m;
}

#ifndef XSSHIM_XENMANAGE

/* libxenctrl (4.17) */

xc_interface *xc_interface_open(xentoollog_logger *l, xentoollog_logger *dl,
				unsigned flags)
{
	(void)l; (void)dl; (void)flags;
	return (xc_interface *)&info_handle;
}

int xc_interface_close(xc_interface *x)
{
	(void)x;
	return 0;
}

int xc_domain_getinfo(xc_interface *x, uint32_t first, unsigned int max,
		      xc_dominfo_t *info)
{
	(void)x;
	if (max == 0 || first >= DOMID_FIRST_RESERVED)
		return 0;
	memset(info, 0, sizeof(*info));
	info->domid = first;
	info->running = 1;
	return 1;
}

#else

/* libxenmanage (4.21 and later) */

static int dom0_polled;

xenmanage_handle *xenmanage_open(struct xentoollog_logger *l,
				 unsigned int flags)
{
	(void)l;
	if (flags) {
		errno = EINVAL;
		return NULL;
	}
	return (xenmanage_handle *)&info_handle;
}

int xenmanage_close(xenmanage_handle *h)
{
	(void)h;
	return 0;
}

/*
 * The state of an existing, running domain. Unique ids tell a domain from
 * a later one reusing its domid; no domain is ever replaced here, so each
 * domid keeps one (non-zero: 0 means "unknown" to xenstored).
 */
static void running(unsigned int domid, unsigned int *state,
		    unsigned int *caps, uint64_t *unique_id)
{
	if (state)
		*state = XENMANAGE_GETDOMSTATE_STATE_EXIST;
	if (caps)
		*caps = domid == 0 ? XENMANAGE_GETDOMSTATE_CAP_CONTROL |
				     XENMANAGE_GETDOMSTATE_CAP_HARDWARE |
				     XENMANAGE_GETDOMSTATE_CAP_XENSTORE : 0;
	if (unique_id)
		*unique_id = (uint64_t)domid + 1;
}

int xenmanage_get_domain_info(xenmanage_handle *h, unsigned int domid,
			      unsigned int *state, unsigned int *caps,
			      uint64_t *unique_id)
{
	/* As the real library: reserved ids are refused before asking Xen. */
	if (!h || domid >= DOMID_FIRST_RESERVED) {
		errno = EINVAL;
		return -1;
	}
	running(domid, state, caps, unique_id);
	return 0;
}

int xenmanage_poll_changed_domain(xenmanage_handle *h, unsigned int *domid,
				  unsigned int *state, unsigned int *caps,
				  uint64_t *unique_id)
{
	if (!h || !domid) {
		errno = EINVAL;
		return -1;
	}
	if (dom0_polled) {
		errno = ENOENT; /* Xen's answer when nothing changed */
		return -1;
	}
	dom0_polled = 1;
	*domid = 0;
	running(0, state, caps, unique_id);
	return 0;
}

#endif

/* libxenevtchn */

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *l, unsigned flags)
{
	(void)l; (void)flags;
	if (idle_pipe() < 0)
		return NULL;
	return (xenevtchn_handle *)&evtchn_handle;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *l, int fd,
				   unsigned flags)
{
	(void)fd;
	return xenevtchn_open(l, flags);
}

int xenevtchn_close(xenevtchn_handle *h)
{
	(void)h;
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *h)
{
	(void)h;
	return idle_pipe();
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
	(void)h; (void)port;
	return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h,
						     uint32_t domid,
						     evtchn_port_t remote)
{
	(void)h; (void)remote;
	if (no_such_domain(domid))
		return -1;
	return ++last_port;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *h,
						      uint32_t domid)
{
	(void)h; (void)domid;
	return ++last_port;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *h,
					      unsigned int virq)
{
	(void)h; (void)virq;
	return ++last_port;
}

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
	(void)h; (void)port;
	return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
	/* Never reached in practice: the idle pipe is never readable. */
	(void)h;
	errno = EAGAIN;
	return -1;
}

int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
	(void)h; (void)port;
	return 0;
}

/* libxengnttab */

xengnttab_handle *xengnttab_open(struct xentoollog_logger *l, unsigned flags)
{
	(void)l; (void)flags;
	return (xengnttab_handle *)&gnttab_handle;
}

int xengnttab_close(xengnttab_handle *h)
{
	(void)h;
	return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *h, uint32_t n)
{
	(void)h; (void)n;
	return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *h, uint32_t domid,
			      uint32_t ref, int prot)
{
	(void)h; (void)ref; (void)prot;
	if (no_such_domain(domid))
		return NULL;
	return zero_page(PAGE);
}

int xengnttab_unmap(xengnttab_handle *h, void *addr, uint32_t count)
{
	(void)h;
	return munmap(addr, (size_t)count * PAGE);
}

/* libc: the two /proc/xen files C xenstored reads for dom0's ring. */

static int memfd_with(const char *name, const void *data, size_t len,
		      size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, size) != 0 ||
	    (len && pwrite(fd, data, len, 0) != (ssize_t)len)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Returns a descriptor for a faked path, or -2 when path is not faked. */
static int fake_open(const char *path)
{
	if (path && strcmp(path, "/proc/xen/xsd_port") == 0)
		return memfd_with("xsd_port", "1", 1, 1);
	if (path && strcmp(path, "/proc/xen/xsd_kva") == 0)
		return memfd_with("xsd_kva", NULL, 0, PAGE);
	return -2;
}

typedef int (*open_func)(const char *, int, ...);

static int pass_open(const char *sym, const char *path, int flags,
		     mode_t mode)
{
	open_func real = (open_func)dlsym(RTLD_NEXT, sym);

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(path, flags, mode);
}

static mode_t open_mode(int flags, va_list ap)
{
	if (flags & (O_CREAT | O_TMPFILE))
		return va_arg(ap, mode_t);
	return 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd = fake_open(path);

	if (fd != -2)
		return fd;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return pass_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd = fake_open(path);

	if (fd != -2)
		return fd;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return pass_open("open64", path, flags, mode);
}
