/* xstool: dom0-side helpers for the e2e boot, built against Debian's libxen-dev.
 *
 *   xstool doms          one line per domain from XEN_SYSCTL_getdomaininfolist
 *                        (works without any xenstore); state=alive|shutdown|dying
 *   xstool alive DOMID   that domain's line; exit 0 only if it exists and is
 *                        neither shut down nor dying
 *   xstool console SECS  find the xenstore domain, map its console page
 *                        (grant ref 0, GNTTAB_RESERVED_CONSOLE, granted to
 *                        dom0 by the domain builder) and copy what it writes
 *                        to stdout for SECS seconds, consuming it so that
 *                        the stub's hvc0 never stalls on a full ring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/mman.h>
#include <xenctrl.h>
#include <xengnttab.h>
#include <xen/io/console.h>

/* xc_domain_getinfolist (XEN_SYSCTL_getdomaininfolist) exists with the same
 * signature in Xen 4.17 and 4.20 (xc_domain_getinfo is gone from 4.18), so
 * this file builds against either release's libxen-dev. */
static void line(const xc_domaininfo_t *d)
{
    uint32_t f = d->flags;
    unsigned sd = !!(f & XEN_DOMINF_shutdown), dying = !!(f & XEN_DOMINF_dying);
    printf("dom=%u xenstore=%u hvm=%u running=%u blocked=%u paused=%u shutdown=%u/%u dying=%u "
           "pages=%lu cpu_ms=%llu state=%s\n",
           d->domain, !!(f & XEN_DOMINF_xs_domain), !!(f & XEN_DOMINF_hvm_guest),
           !!(f & XEN_DOMINF_running), !!(f & XEN_DOMINF_blocked), !!(f & XEN_DOMINF_paused),
           sd, sd ? (f >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask : 0, dying,
           (unsigned long)d->tot_pages, (unsigned long long)(d->cpu_time / 1000000),
           dying ? "dying" : sd ? "shutdown" : "alive");
}

static int doms(xc_interface *xch)
{
    xc_domaininfo_t di[64];
    int n = xc_domain_getinfolist(xch, 0, 64, di);
    if (n < 0) { perror("xc_domain_getinfolist"); return 1; }
    for (int i = 0; i < n; i++)
        line(&di[i]);
    return 0;
}

/* alive DOMID: prints the domain's line; exit 0 only if it exists and is
 * neither shut down (any reason, a crash included) nor dying. */
static int alive(xc_interface *xch, uint32_t domid)
{
    xc_domaininfo_t di;
    int n = xc_domain_getinfolist(xch, domid, 1, &di);
    if (n != 1 || di.domain != domid) {
        printf("dom=%u state=gone\n", domid);
        return 1;
    }
    line(&di);
    return (di.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying)) ? 1 : 0;
}

static uint32_t find_store_domain(xc_interface *xch)
{
    xc_domaininfo_t di[64];
    int n = xc_domain_getinfolist(xch, 1, 64, di);
    for (int i = 0; i < n; i++)
        if (di[i].flags & XEN_DOMINF_xs_domain)
            return di[i].domain;
    return 0;
}

static int console(xc_interface *xch, int secs)
{
    xengnttab_handle *gt = xengnttab_open(NULL, 0);
    struct xencons_interface *ring = NULL;
    struct timespec t0, now;
    if (!gt) { perror("xengnttab_open"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= secs)
            break;
        if (!ring) {
            uint32_t d = find_store_domain(xch);
            if (d) {
                ring = xengnttab_map_grant_ref(gt, d, 0, PROT_READ | PROT_WRITE);
                if (ring)
                    fprintf(stderr, "xstool: console of dom%u mapped\n", d);
            }
        } else {
            XENCONS_RING_IDX c = ring->out_cons, p = ring->out_prod;
            __sync_synchronize();
            if (p - c > sizeof(ring->out))
                c = p - sizeof(ring->out); /* nonsense indices: resync */
            for (; c != p; c++)
                putchar(ring->out[MASK_XENCONS_IDX(c, ring->out)]);
            fflush(stdout);
            __sync_synchronize();
            ring->out_cons = c;
        }
        usleep(50 * 1000);
    }
    return 0;
}

int main(int argc, char **argv)
{
    xc_interface *xch;
    if (argc < 2) {
        fprintf(stderr, "usage: xstool doms | alive DOMID | console SECS\n");
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) { perror("xc_interface_open"); return 1; }
    if (!strcmp(argv[1], "doms"))
        return doms(xch);
    if (!strcmp(argv[1], "alive") && argc > 2)
        return alive(xch, (uint32_t)atoi(argv[2]));
    if (!strcmp(argv[1], "console"))
        return console(xch, argc > 2 ? atoi(argv[2]) : 300);
    fprintf(stderr, "xstool: unknown command %s\n", argv[1]);
    return 2;
}
