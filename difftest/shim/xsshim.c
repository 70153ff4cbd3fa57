/*
 * xsshim.c - LD_PRELOAD library for the differential tests in difftest/.
 *
 * Debian's C xenstored (Xen 4.17) expects a Xen host: it opens Xen's
 * control, event-channel and grant-table interfaces and maps dom0's ring
 * through /proc/xen. The differential tests only talk to it over its Unix
 * socket, so this library stands in for those interfaces with inert
 * equivalents that let it start and serve the socket on plain Linux:
 *
 *   libxenctrl    xc_interface_open/close; xc_domain_getinfo reports every
 *                 domid below DOMID_FIRST_RESERVED (0x7ff0) as an existing,
 *                 running domain, and none from there up, as on a real host
 *                 (our Go daemon, run without Xen, treats every domain as
 *                 existing).
 *   libxenevtchn  the event-channel handle is an idle pipe that never
 *                 becomes readable; binds hand out fresh port numbers
 *                 (ESRCH for a domid that cannot exist); notify/unbind/
 *                 unmask succeed and do nothing.
 *   libxengnttab  grant mappings are private zero-filled pages (ESRCH for
 *                 a domid that cannot exist), so INTRODUCE works.
 *   open()        /proc/xen/xsd_port reads as "1" and /proc/xen/xsd_kva is
 *                 one zero-filled page (dom0's ring, which nobody writes),
 *                 both backed by memfds.
 *
 * Nothing here emulates a domain or a ring: only the socket is meant to be
 * used. Built by the test harness with:
 *   gcc -O2 -fPIC -shared -o xsshim.so xsshim.c -ldl
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

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define PAGE 4096

/* Opaque handles: the daemon only compares them with NULL. */
static char ctrl_handle, evtchn_handle, gnttab_handle;

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

/* libxenctrl */

xc_interface *xc_interface_open(xentoollog_logger *l, xentoollog_logger *dl,
				unsigned flags)
{
	(void)l; (void)dl; (void)flags;
	return (xc_interface *)&ctrl_handle;
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

/* libxenevtchn */

xenevtchn_handle *xenevtchn_open(xentoollog_logger *l, unsigned flags)
{
	(void)l; (void)flags;
	if (idle_pipe() < 0)
		return NULL;
	return (xenevtchn_handle *)&evtchn_handle;
}

xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *l, int fd,
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

xengnttab_handle *xengnttab_open(xentoollog_logger *l, unsigned flags)
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
