/* xstool: dom0-side helpers for the e2e boot, built against Debian's libxen-dev.
 *
 *   xstool doms          one line per domain from XEN_DOMCTL_getdomaininfo
 *                        (works without any xenstore)
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

static int doms(xc_interface *xch)
{
    xc_dominfo_t di[32];
    int n = xc_domain_getinfo(xch, 0, 32, di);
    if (n < 0) { perror("xc_domain_getinfo"); return 1; }
    for (int i = 0; i < n; i++)
        printf("dom=%u xenstore=%u hvm=%u running=%u blocked=%u paused=%u shutdown=%u/%u dying=%u "
               "pages=%lu cpu_ms=%llu\n",
               di[i].domid, di[i].xenstore, di[i].hvm, di[i].running, di[i].blocked, di[i].paused,
               di[i].shutdown, di[i].shutdown_reason, di[i].dying, di[i].nr_pages,
               (unsigned long long)(di[i].cpu_time / 1000000));
    return 0;
}

static uint32_t find_store_domain(xc_interface *xch)
{
    xc_dominfo_t di;
    uint32_t next = 1;
    while (xc_domain_getinfo(xch, next, 1, &di) == 1) {
        if (di.xenstore)
            return di.domid;
        next = di.domid + 1;
    }
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
        fprintf(stderr, "usage: xstool doms | console SECS\n");
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) { perror("xc_interface_open"); return 1; }
    if (!strcmp(argv[1], "doms"))
        return doms(xch);
    if (!strcmp(argv[1], "console"))
        return console(xch, argc > 2 ? atoi(argv[2]) : 300);
    fprintf(stderr, "xstool: unknown command %s\n", argv[1]);
    return 2;
}
