package privcmd

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
	"github.com/xsstub/xenstored/xen/internal/ctest"
)

// Hand-derived from xen/include/public/domctl.h (identical for these
// structures from RELEASE-4.17.0 to RELEASE-4.22.0) and xen/privcmd.h:
// every offset below is the running sum of the C field sizes with natural
// alignment (uint64_aligned_t is 8-aligned).
var layout = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"IOCTL_PRIVCMD_HYPERCALL", ioctlHypercall, 0x00305000, "IOCTL_PRIVCMD_HYPERCALL"},
	{"sizeof privcmd_hypercall", unsafe.Sizeof(hypercall{}), sizeHypercall, "sizeof(struct privcmd_hypercall)"},
	{"sizeof privcmd_hypercall (hand)", sizeHypercall, 48, "sizeof(struct privcmd_hypercall)"},
	{"hypercall.op", unsafe.Offsetof(hypercall{}.Op), 0, "offsetof(struct privcmd_hypercall, op)"},
	{"hypercall.arg", unsafe.Offsetof(hypercall{}.Arg), 8, "offsetof(struct privcmd_hypercall, arg)"},

	{"sizeof xen_domctl", unsafe.Sizeof(domctl{}), sizeDomctl, "sizeof(struct xen_domctl)"},
	{"sizeof xen_domctl (hand)", sizeDomctl, 144, "sizeof(struct xen_domctl)"},
	{"domctl.cmd", unsafe.Offsetof(domctl{}.Cmd), 0, "offsetof(struct xen_domctl, cmd)"},
	{"domctl.interface_version", unsafe.Offsetof(domctl{}.InterfaceVersion), 4, "offsetof(struct xen_domctl, interface_version)"},
	{"domctl.domain", unsafe.Offsetof(domctl{}.Domain), 8, "offsetof(struct xen_domctl, domain)"},
	{"domctl.u", unsafe.Offsetof(domctl{}.U), 16, "offsetof(struct xen_domctl, u)"},

	{"getdomaininfo.domain", unsafe.Offsetof(getDomainInfo{}.Domain), 0, "offsetof(struct xen_domctl_getdomaininfo, domain)"},
	{"getdomaininfo.flags", unsafe.Offsetof(getDomainInfo{}.Flags), 4, "offsetof(struct xen_domctl_getdomaininfo, flags)"},
	{"getdomaininfo.tot_pages", unsafe.Offsetof(getDomainInfo{}.TotPages), 8, "offsetof(struct xen_domctl_getdomaininfo, tot_pages)"},
	{"getdomaininfo.cpu_time", unsafe.Offsetof(getDomainInfo{}.CPUTime), 56, "offsetof(struct xen_domctl_getdomaininfo, cpu_time)"},
	{"getdomaininfo.nr_online_vcpus", unsafe.Offsetof(getDomainInfo{}.NrOnlineVCPUs), 64, "offsetof(struct xen_domctl_getdomaininfo, nr_online_vcpus)"},
	{"getdomaininfo.ssidref", unsafe.Offsetof(getDomainInfo{}.SSIDRef), 72, "offsetof(struct xen_domctl_getdomaininfo, ssidref)"},
	{"getdomaininfo.handle", unsafe.Offsetof(getDomainInfo{}.Handle), 76, "offsetof(struct xen_domctl_getdomaininfo, handle)"},
	{"getdomaininfo.cpupool", unsafe.Offsetof(getDomainInfo{}.CPUPool), 92, "offsetof(struct xen_domctl_getdomaininfo, cpupool)"},
	{"getdomaininfo.gpaddr_bits", unsafe.Offsetof(getDomainInfo{}.GPAddrBits), 96, "offsetof(struct xen_domctl_getdomaininfo, gpaddr_bits)"},
	{"getdomaininfo.arch_config", unsafe.Sizeof(getDomainInfo{}), 104, "offsetof(struct xen_domctl_getdomaininfo, arch_config)"},

	{"XEN_DOMINF_dying", dominfDying, 1, "XEN_DOMINF_dying"},
	{"XEN_DOMINF_hvm_guest", dominfHVM, 2, "XEN_DOMINF_hvm_guest"},
	{"XEN_DOMINF_shutdown", dominfShutdown, 4, "XEN_DOMINF_shutdown"},
	{"XEN_DOMINF_paused", dominfPaused, 8, "XEN_DOMINF_paused"},
	{"XEN_DOMINF_xs_domain", dominfXSDomain, 0x80, "XEN_DOMINF_xs_domain"},
	{"XEN_DOMINF_shutdownshift", dominfShutdownShift, 16, "XEN_DOMINF_shutdownshift"},
	{"XEN_DOMINF_shutdownmask", dominfShutdownMask, 255, "XEN_DOMINF_shutdownmask"},
	{"__HYPERVISOR_domctl", HypervisorDomctl, 36, "__HYPERVISOR_domctl"},
	{"XEN_DOMCTL_getdomaininfo", DomctlGetDomainInfo, 5, "XEN_DOMCTL_getdomaininfo"},
	{"__HYPERVISOR_xen_version", HypervisorXenVersion, 17, "__HYPERVISOR_xen_version"},
	{"XENVER_version", XenverVersion, 0, "XENVER_version"},
}

// The get_domain_state domctl exists from RELEASE-4.21.0 on.
var layout421 = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"sizeof get_domain_state", unsafe.Sizeof(getDomainState{}), 16, "sizeof(struct xen_domctl_get_domain_state)"},
	{"get_domain_state.caps", unsafe.Offsetof(getDomainState{}.Caps), 2, "offsetof(struct xen_domctl_get_domain_state, caps)"},
	{"get_domain_state.unique_id", unsafe.Offsetof(getDomainState{}.UniqueID), 8, "offsetof(struct xen_domctl_get_domain_state, unique_id)"},
	{"XEN_DOMCTL_get_domain_state", DomctlGetDomainState, 90, "XEN_DOMCTL_get_domain_state"},
	{"STATE_EXIST", stateExist, 1, "XEN_DOMCTL_GETDOMSTATE_STATE_EXIST"},
	{"STATE_SHUTDOWN", stateShutdown, 2, "XEN_DOMCTL_GETDOMSTATE_STATE_SHUTDOWN"},
	{"STATE_DYING", stateDying, 4, "XEN_DOMCTL_GETDOMSTATE_STATE_DYING"},
	{"STATE_DEAD", stateDead, 8, "XEN_DOMCTL_GETDOMSTATE_STATE_DEAD"},
	{"CAP_CONTROL", capControl, 1, "XEN_DOMCTL_GETDOMSTATE_CAP_CONTROL"},
	{"CAP_HARDWARE", capHardware, 2, "XEN_DOMCTL_GETDOMSTATE_CAP_HARDWARE"},
	{"CAP_XENSTORE", capXenstore, 4, "XEN_DOMCTL_GETDOMSTATE_CAP_XENSTORE"},
}

func TestLayout(t *testing.T) {
	for _, tt := range append(layout, layout421...) {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

// TestAgainstC compares with libxen-dev's headers when they are installed
// (Debian 12's are 4.17's: get_domain_state is checked only by hand there).
func TestAgainstC(t *testing.T) {
	checkAgainstC(t, "/usr/include", release(t, 17))
}

// TestAgainstC420 checks the same layouts against Debian 13's Xen 4.20
// headers, which build/test-deps.sh unpacks into the cache, and that the
// domctl interface version the daemon uses for 4.20 is theirs.
func TestAgainstC420(t *testing.T) {
	cache := os.Getenv("XSSTUB_CACHE")
	if cache == "" {
		cache = "/var/cache/xsstub"
	}
	checkAgainstC(t, filepath.Join(cache, "xen-4.20/usr/include"), release(t, 20))
}

// release is the domctl interface version package domains uses for 4.minor.
func release(t *testing.T, minor uint32) uint64 {
	r, ok := domains.Lookup(xen.Version{Major: 4, Minor: minor})
	if !ok {
		t.Fatalf("no release 4.%d", minor)
	}
	return uint64(r.Domctl)
}

func checkAgainstC(t *testing.T, include string, ifVersion uint64) {
	exprs := map[string]string{"ifversion": "XEN_DOMCTL_INTERFACE_VERSION"}
	for i, tt := range layout {
		exprs[fmt.Sprintf("v%d", i)] = tt.c
	}
	v := ctest.ValuesIn(t, include, []string{"xen/domctl.h", "xen/sys/privcmd.h", "xen/xen.h", "xen/version.h"},
		"#define __XEN_TOOLS__ 1\n#include <stdint.h>\n#include <linux/ioctl.h>\n#include <xen/xen.h>\n#include <xen/domctl.h>\n#include <xen/version.h>\n#include <xen/sys/privcmd.h>\n",
		exprs)
	for i, tt := range layout {
		if c := v[fmt.Sprintf("v%d", i)]; uint64(tt.got) != c {
			t.Errorf("%s (%s): Go %#x, C %#x", tt.name, tt.c, tt.got, c)
		}
	}
	if v["ifversion"] != ifVersion {
		t.Errorf("%s: XEN_DOMCTL_INTERFACE_VERSION %#x, the daemon uses %#x", include, v["ifversion"], ifVersion)
	}
}
