/*
 * oxshim.c - extra LD_PRELOAD pieces that, together with
 * difftest/shim/xsshim.c, let Debian's oxenstored (Xen 4.17) serve a Unix
 * socket on plain Linux for the benchmark in bench/. Preload both:
 *
 *   LD_PRELOAD="xsshim.so oxshim.so" XSBENCH_SOCKET=/tmp/x/socket oxenstored ...
 *
 * xsshim.so covers what C xenstored needs (libxenctrl open/close and
 * getinfo, libxenevtchn, libxengnttab, /proc/xen files). oxenstored also
 * calls the following, faked here:
 *
 *   xc_domain_getinfolist   every domid below DOMID_FIRST_RESERVED exists
 *                           and runs (as in xsshim.so)
 *   xc_map_foreign_range    a zero-filled page (a guest ring nobody writes)
 *   xc_get_last_error,
 *   xc_error_code_to_desc   "no error"
 *   setrlimit()             RLIMIT_NOFILE above the hard limit is clamped to
 *                           it (oxenstored asks for fs.nr_open, which an
 *                           unprivileged or containerised run may not get)
 *   bind()/unlink()         oxenstored's socket path is fixed at
 *                           /var/run/xenstored/socket; when XSBENCH_SOCKET
 *                           is set, that path (and /run/xenstored/socket)
 *                           is replaced by it, so runs do not collide.
 *
 * Build: gcc -O2 -fPIC -shared -o oxshim.so oxshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenctrl.h>

int xc_domain_getinfolist(xc_interface *x, uint32_t first, unsigned int max,
			  xc_domaininfo_t *info)
{
	(void)x;
	if (max == 0 || first >= DOMID_FIRST_RESERVED)
		return 0;
	memset(info, 0, sizeof(*info));
	info->domain = first;
	info->flags = XEN_DOMINF_running;
	return 1;
}

void *xc_map_foreign_range(xc_interface *x, uint32_t dom, int size, int prot,
			   unsigned long mfn)
{
	void *m;

	(void)x; (void)prot; (void)mfn;
	if (dom >= DOMID_FIRST_RESERVED) {
		errno = ESRCH;
		return NULL;
	}
	m = mmap(NULL, size > 0 ? (size_t)size : 4096, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static xc_error no_error;

const xc_error *xc_get_last_error(xc_interface *x)
{
	(void)x;
	return &no_error;
}

const char *xc_error_code_to_desc(int code)
{
	(void)code;
	return "no error";
}

int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	int (*real)(__rlimit_resource_t, const struct rlimit *) =
		(int (*)(__rlimit_resource_t, const struct rlimit *))dlsym(RTLD_NEXT, "setrlimit");
	struct rlimit cur, want;

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	want = *rl;
	if (res == RLIMIT_NOFILE && getrlimit(RLIMIT_NOFILE, &cur) == 0 &&
	    cur.rlim_max != RLIM_INFINITY) {
		if (want.rlim_max == RLIM_INFINITY || want.rlim_max > cur.rlim_max)
			want.rlim_max = cur.rlim_max;
		if (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max)
			want.rlim_cur = want.rlim_max;
	}
	return real(res, &want);
}

/* The replacement for oxenstored's fixed socket path, or NULL. */
static const char *redirect(const char *path)
{
	const char *s = getenv("XSBENCH_SOCKET");

	if (!s || !*s || !path)
		return NULL;
	if (strcmp(path, "/var/run/xenstored/socket") == 0 ||
	    strcmp(path, "/run/xenstored/socket") == 0)
		return s;
	return NULL;
}

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
		(int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	struct sockaddr_un un;
	const char *to;

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	if (sa && sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
		const struct sockaddr_un *u = (const struct sockaddr_un *)sa;
		char p[sizeof(u->sun_path) + 1];
		size_t n = len - offsetof(struct sockaddr_un, sun_path);

		if (n > sizeof(u->sun_path))
			n = sizeof(u->sun_path);
		memcpy(p, u->sun_path, n);
		p[n] = 0;
		to = redirect(p);
		if (to && strlen(to) < sizeof(un.sun_path)) {
			memset(&un, 0, sizeof(un));
			un.sun_family = AF_UNIX;
			strcpy(un.sun_path, to);
			return real(fd, (struct sockaddr *)&un, sizeof(un));
		}
	}
	return real(fd, sa, len);
}

int unlink(const char *path)
{
	int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
	const char *to = redirect(path);

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(to ? to : path);
}
