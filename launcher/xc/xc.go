//go:build linux && cgo

// Package xc wraps the parts of Xen's libxenctrl, libxenguest (the xc_dom_*
// domain builder) and libxenlight that the xenstore stub launcher needs, as
// Xen's own init-xenstore-domain uses them. It links against Debian's
// libxen-dev. Every call returns an error that names the call, errno and
// libxc's last error message.
package xc

/*
#cgo LDFLAGS: -lxenguest -lxenctrl -lxenlight -lxentoollog
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xentoollog.h>
#include <libxl.h>
#include <xen/hvm/params.h>

static xentoollog_logger *xs_logger(int level) {
	return (xentoollog_logger *)xtl_createlogger_stdiostream(stderr, (xentoollog_level)level, 0);
}

static const char *xs_last_error(xc_interface *xch) {
	const xc_error *e = xc_get_last_error(xch);
	return (e && e->code != XC_ERROR_NONE) ? e->message : "";
}

// One domain from the hypervisor's list, bitfields flattened.
struct xs_dom {
	uint32_t domid;
	int dying, shutdown, shutdown_reason, xenstore, hvm, paused;
	unsigned long nr_pages;
};

// xs_domains lists up to n domains from first on; it returns the count or
// -1 (errno set).
static int xs_domains(xc_interface *xch, uint32_t first, struct xs_dom *out, int n) {
	xc_dominfo_t *di = calloc(n, sizeof(*di));
	int r, i;
	if (!di)
		return -1;
	r = xc_domain_getinfo(xch, first, n, di);
	for (i = 0; i < r; i++) {
		out[i].domid = di[i].domid;
		out[i].dying = di[i].dying;
		out[i].shutdown = di[i].shutdown;
		out[i].shutdown_reason = di[i].shutdown_reason;
		out[i].xenstore = di[i].xenstore;
		out[i].hvm = di[i].hvm;
		out[i].paused = di[i].paused;
		out[i].nr_pages = di[i].nr_pages;
	}
	free(di);
	return r;
}

static int xs_create(xc_interface *xch, uint32_t *domid, int pvh, int hap, uint32_t ssidref,
		     uint32_t grant_frames, uint32_t maptrack_frames) {
	struct xen_domctl_createdomain c;
	memset(&c, 0, sizeof(c));
	c.ssidref = ssidref;
	c.flags = XEN_DOMCTL_CDF_xs_domain;
	if (pvh) {
		c.flags |= XEN_DOMCTL_CDF_hvm;
		if (hap)
			c.flags |= XEN_DOMCTL_CDF_hap;
		c.arch.emulation_flags = XEN_X86_EMU_LAPIC;
	}
	c.max_vcpus = 1;
	c.max_evtchn_port = -1;
	c.max_grant_frames = grant_frames;
	c.max_maptrack_frames = maptrack_frames;
	c.grant_opts = XEN_DOMCTL_GRANT_version(1);
	return xc_domain_create(xch, domid, &c);
}

static int xs_evtchn_status(xc_interface *xch, uint32_t dom, uint32_t port, int *st, uint32_t *rdom) {
	xc_evtchn_status_t s;
	int r;
	memset(&s, 0, sizeof(s));
	s.dom = dom;
	s.port = port;
	r = xc_evtchn_status(xch, &s);
	if (r == 0) {
		*st = s.status;
		*rdom = (s.status == EVTCHNSTAT_interdomain) ? s.u.interdomain.dom : 0;
	}
	return r;
}

static int xs_set_memory_map(xc_interface *xch, uint32_t domid, uint64_t *v, int n) {
	struct e820entry e[8];
	int i;
	if (n > 8)
		return -1;
	for (i = 0; i < n; i++) {
		e[i].addr = v[3 * i];
		e[i].size = v[3 * i + 1];
		e[i].type = (uint32_t)v[3 * i + 2];
	}
	return xc_domain_set_memory_map(xch, domid, e, n);
}

static xen_pfn_t xs_console_gfn(struct xc_dom_image *dom) {
	if (dom->container_type == XC_DOM_PV_CONTAINER)
		return xc_dom_p2m(dom, dom->console_pfn);
	return dom->console_pfn;
}

static void xs_dom_container(struct xc_dom_image *dom, int hvm) {
	dom->container_type = hvm ? XC_DOM_HVM_CONTAINER : XC_DOM_PV_CONTAINER;
}

// A stub domain config for libxl, so that xl treats the domain as its own
// (as init-xenstore-domain's gen_stub_json_config does).
static int xs_store_json(uint32_t domid, int pvh, char *err, size_t errlen) {
	xentoollog_logger_stdiostream *lg = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
	libxl_ctx *ctx = NULL;
	libxl_domain_config cfg;
	char *json = NULL;
	int rc = -1;
	if (!lg) {
		snprintf(err, errlen, "cannot create logger");
		return -1;
	}
	if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, (xentoollog_logger *)lg)) {
		snprintf(err, errlen, "libxl_ctx_alloc failed");
		goto out;
	}
	libxl_domain_config_init(&cfg);
	cfg.c_info.type = pvh ? LIBXL_DOMAIN_TYPE_PVH : LIBXL_DOMAIN_TYPE_PV;
	libxl_domain_build_info_init_type(&cfg.b_info, cfg.c_info.type);
	json = libxl_domain_config_to_json(ctx, &cfg);
	if (!json)
		snprintf(err, errlen, "libxl_domain_config_to_json failed");
	else if (libxl_userdata_store(ctx, domid, "libxl-json", (const uint8_t *)json, strlen(json) + 1))
		snprintf(err, errlen, "libxl_userdata_store failed");
	else
		rc = 0;
	free(json);
	libxl_domain_config_dispose(&cfg);
	libxl_ctx_free(ctx);
out:
	xtl_logger_destroy((xentoollog_logger *)lg);
	return rc;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Physical capabilities (XEN_SYSCTL_PHYSCAP_*).
const (
	CapHVM    = C.XEN_SYSCTL_PHYSCAP_hvm
	CapPV     = C.XEN_SYSCTL_PHYSCAP_pv
	CapHAP    = C.XEN_SYSCTL_PHYSCAP_hap
	CapShadow = C.XEN_SYSCTL_PHYSCAP_shadow
)

// Constants the launcher uses.
const (
	VirqDomExc              = C.VIRQ_DOM_EXC
	HVMParamStorePFN        = C.HVM_PARAM_STORE_PFN
	EvtchnStatUnbound       = C.EVTCHNSTAT_unbound
	EvtchnStatInterdomain   = C.EVTCHNSTAT_interdomain
	XenfeatRSDPUnrestricted = C.XENFEAT_linux_rsdp_unrestricted
	// SIDDomU is FLASK's SECINITSID_DOMU, the default ssidref.
	SIDDomU = 12
)

// Handle is an open libxenctrl interface.
type Handle struct {
	xch    *C.xc_interface
	logger *C.xentoollog_logger
}

// Open opens the hypervisor interface (privcmd). verbose 0 logs progress
// and worse from the builder, each step below goes one level further down.
func Open(verbose int) (*Handle, error) {
	level := C.XTL_PROGRESS - verbose
	if level < C.XTL_DEBUG {
		level = C.XTL_DEBUG
	}
	lg := C.xs_logger(C.int(level))
	xch, err := C.xc_interface_open(lg, lg, 0)
	if xch == nil {
		if lg != nil {
			C.xtl_logger_destroy(lg)
		}
		return nil, fmt.Errorf("xc_interface_open: %w (is this dom0 on Xen, with /dev/xen/privcmd and root?)", errnoOr(err))
	}
	return &Handle{xch: xch, logger: lg}, nil
}

// Close closes the interface.
func (h *Handle) Close() {
	if h.xch != nil {
		C.xc_interface_close(h.xch)
		h.xch = nil
	}
	if h.logger != nil {
		C.xtl_logger_destroy(h.logger)
		h.logger = nil
	}
}

func errnoOr(err error) error {
	if err == nil {
		return syscall.EIO
	}
	return err
}

func (h *Handle) fail(call string, err error) error {
	msg := C.GoString(C.xs_last_error(h.xch))
	if msg != "" {
		return fmt.Errorf("%s: %w (%s)", call, errnoOr(err), msg)
	}
	return fmt.Errorf("%s: %w", call, errnoOr(err))
}

// Physinfo is the part of xc_physinfo the launcher uses.
type Physinfo struct {
	Capabilities uint32
	TotalPages   uint64
	FreePages    uint64
}

// Physinfo asks Xen about the host.
func (h *Handle) Physinfo() (Physinfo, error) {
	var p C.xc_physinfo_t
	if r, err := C.xc_physinfo(h.xch, &p); r != 0 {
		return Physinfo{}, h.fail("xc_physinfo", err)
	}
	return Physinfo{Capabilities: uint32(p.capabilities), TotalPages: uint64(p.total_pages), FreePages: uint64(p.free_pages)}, nil
}

// DomInfo is one domain's state.
type DomInfo struct {
	DomID          uint32
	Dying          bool
	Shutdown       bool
	ShutdownReason int
	Xenstore       bool
	HVM            bool
	Paused         bool
	Pages          uint64
}

// Domains lists all domains.
func (h *Handle) Domains() ([]DomInfo, error) {
	var out []DomInfo
	buf := make([]C.struct_xs_dom, 64)
	next := C.uint32_t(0)
	for {
		r, err := C.xs_domains(h.xch, next, &buf[0], C.int(len(buf)))
		if r < 0 {
			return nil, h.fail("xc_domain_getinfo", err)
		}
		for _, d := range buf[:r] {
			out = append(out, DomInfo{
				DomID: uint32(d.domid), Dying: d.dying != 0, Shutdown: d.shutdown != 0,
				ShutdownReason: int(d.shutdown_reason), Xenstore: d.xenstore != 0, HVM: d.hvm != 0,
				Paused: d.paused != 0, Pages: uint64(d.nr_pages),
			})
		}
		if int(r) < len(buf) {
			return out, nil
		}
		next = buf[r-1].domid + 1
	}
}

// Domain returns one domain's state, ok false when it does not exist.
func (h *Handle) Domain(domid uint32) (DomInfo, bool, error) {
	buf := make([]C.struct_xs_dom, 1)
	r, err := C.xs_domains(h.xch, C.uint32_t(domid), &buf[0], 1)
	if r < 0 {
		if errors.Is(err, syscall.ESRCH) {
			return DomInfo{}, false, nil
		}
		return DomInfo{}, false, h.fail("xc_domain_getinfo", err)
	}
	if r == 0 || uint32(buf[0].domid) != domid {
		return DomInfo{}, false, nil
	}
	d := buf[0]
	return DomInfo{DomID: domid, Dying: d.dying != 0, Shutdown: d.shutdown != 0, ShutdownReason: int(d.shutdown_reason),
		Xenstore: d.xenstore != 0, HVM: d.hvm != 0, Paused: d.paused != 0, Pages: uint64(d.nr_pages)}, true, nil
}

// FlaskSID resolves a FLASK label.
func (h *Handle) FlaskSID(label string) (uint32, error) {
	cs := C.CString(label)
	defer C.free(unsafe.Pointer(cs))
	var sid C.uint32_t
	if r, err := C.xc_flask_context_to_sid(h.xch, cs, C.uint32_t(len(label)), &sid); r != 0 {
		return 0, h.fail("xc_flask_context_to_sid("+label+")", err)
	}
	return uint32(sid), nil
}

// CreateConfig is the new domain's creation settings.
type CreateConfig struct {
	PVH, HAP          bool
	SSIDRef           uint32
	MaxGrantFrames    uint32
	MaxMaptrackFrames uint32
}

// CreateDomain creates a paused domain flagged as the xenstore domain
// (XEN_DOMCTL_CDF_xs_domain) with one vCPU.
func (h *Handle) CreateDomain(c CreateConfig) (uint32, error) {
	domid := C.uint32_t(0)
	r, err := C.xs_create(h.xch, &domid, b2i(c.PVH), b2i(c.HAP), C.uint32_t(c.SSIDRef),
		C.uint32_t(c.MaxGrantFrames), C.uint32_t(c.MaxMaptrackFrames))
	if r != 0 {
		return 0, h.fail("xc_domain_create", err)
	}
	return uint32(domid), nil
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// MaxVcpus sets the domain's vCPU count.
func (h *Handle) MaxVcpus(domid uint32, n int) error {
	if r, err := C.xc_domain_max_vcpus(h.xch, C.uint32_t(domid), C.uint(n)); r != 0 {
		return h.fail("xc_domain_max_vcpus", err)
	}
	return nil
}

// SetMaxMem sets the domain's page limit in KiB.
func (h *Handle) SetMaxMem(domid uint32, kib uint64) error {
	if r, err := C.xc_domain_setmaxmem(h.xch, C.uint32_t(domid), C.uint64_t(kib)); r != 0 {
		return h.fail("xc_domain_setmaxmem", err)
	}
	return nil
}

// SetMemmapLimit sets a PV domain's memory map limit in KiB.
func (h *Handle) SetMemmapLimit(domid uint32, kib uint64) error {
	if r, err := C.xc_domain_set_memmap_limit(h.xch, C.uint32_t(domid), C.ulong(kib)); r != 0 {
		return h.fail("xc_domain_set_memmap_limit", err)
	}
	return nil
}

// E820 is one memory map entry.
type E820 struct {
	Addr, Size uint64
	Type       uint32
}

// SetMemoryMap sets an HVM/PVH domain's E820 map (at most 8 entries).
func (h *Handle) SetMemoryMap(domid uint32, m []E820) error {
	if len(m) == 0 || len(m) > 8 {
		return fmt.Errorf("xc_domain_set_memory_map: %d entries (want 1..8)", len(m))
	}
	v := make([]C.uint64_t, 0, 3*len(m))
	for _, e := range m {
		v = append(v, C.uint64_t(e.Addr), C.uint64_t(e.Size), C.uint64_t(e.Type))
	}
	if r, err := C.xs_set_memory_map(h.xch, C.uint32_t(domid), &v[0], C.int(len(m))); r != 0 {
		return h.fail("xc_domain_set_memory_map", err)
	}
	return nil
}

// EvtchnAllocUnbound allocates an unbound port in domid for remote.
func (h *Handle) EvtchnAllocUnbound(domid, remote uint32) (uint32, error) {
	r, err := C.xc_evtchn_alloc_unbound(h.xch, C.uint32_t(domid), C.uint32_t(remote))
	if r < 0 {
		return 0, h.fail("xc_evtchn_alloc_unbound", err)
	}
	return uint32(r), nil
}

// EvtchnStatus returns a port's state (EVTCHNSTAT_*) and, when it is
// interdomain, the remote domain.
func (h *Handle) EvtchnStatus(domid, port uint32) (int, uint32, error) {
	var st C.int
	var rdom C.uint32_t
	if r, err := C.xs_evtchn_status(h.xch, C.uint32_t(domid), C.uint32_t(port), &st, &rdom); r != 0 {
		return 0, 0, h.fail("xc_evtchn_status", err)
	}
	return int(st), uint32(rdom), nil
}

// SetVirqHandler makes domid the handler of a global virq.
func (h *Handle) SetVirqHandler(domid uint32, virq int) error {
	if r, err := C.xc_domain_set_virq_handler(h.xch, C.uint32_t(domid), C.int(virq)); r != 0 {
		return h.fail("xc_domain_set_virq_handler", err)
	}
	return nil
}

// HVMParamSet sets an HVM parameter.
func (h *Handle) HVMParamSet(domid uint32, param int, v uint64) error {
	if r, err := C.xc_hvm_param_set(h.xch, C.uint32_t(domid), C.uint32_t(param), C.uint64_t(v)); r != 0 {
		return h.fail(fmt.Sprintf("xc_hvm_param_set(%d)", param), err)
	}
	return nil
}

// Unpause starts the domain.
func (h *Handle) Unpause(domid uint32) error {
	if r, err := C.xc_domain_unpause(h.xch, C.uint32_t(domid)); r != 0 {
		return h.fail("xc_domain_unpause", err)
	}
	return nil
}

// Destroy destroys the domain.
func (h *Handle) Destroy(domid uint32) error {
	if r, err := C.xc_domain_destroy(h.xch, C.uint32_t(domid)); r != 0 {
		return h.fail("xc_domain_destroy", err)
	}
	return nil
}

// StoreStubJSON stores libxl's userdata for the domain so that xl treats it
// as a domain it knows (type PVH or PV).
func StoreStubJSON(domid uint32, pvh bool) error {
	buf := make([]byte, 256)
	if C.xs_store_json(C.uint32_t(domid), b2i(pvh), (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))) != 0 {
		return fmt.Errorf("libxl json config for dom%d: %s", domid, C.GoString((*C.char)(unsafe.Pointer(&buf[0]))))
	}
	return nil
}

// Dom is a domain under construction with libxenguest's xc_dom builder.
type Dom struct {
	h    *Handle
	dom  *C.struct_xc_dom_image
	acpi unsafe.Pointer
}

// NewDom allocates a builder.
func (h *Handle) NewDom() (*Dom, error) {
	d, err := C.xc_dom_allocate(h.xch, nil, nil)
	if d == nil {
		return nil, h.fail("xc_dom_allocate", err)
	}
	return &Dom{h: h, dom: d}, nil
}

// Release frees the builder.
func (d *Dom) Release() {
	if d.dom != nil {
		C.xc_dom_release(d.dom)
		d.dom = nil
	}
	if d.acpi != nil {
		C.free(d.acpi)
		d.acpi = nil
	}
}

func (d *Dom) call(name string, f func() (C.int, error)) error {
	if r, err := f(); r != 0 {
		return d.h.fail(name, err)
	}
	return nil
}

// KernelFile loads the kernel (gzip'd or not).
func (d *Dom) KernelFile(path string) error {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return d.call("xc_dom_kernel_file("+path+")", func() (C.int, error) { r, err := C.xc_dom_kernel_file(d.dom, cs); return r, err })
}

// ModuleFile loads the ramdisk.
func (d *Dom) ModuleFile(path string) error {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return d.call("xc_dom_module_file("+path+")", func() (C.int, error) { r, err := C.xc_dom_module_file(d.dom, cs, nil); return r, err })
}

// BootXenInit ties the builder to the hypervisor and a domain id (which may
// still be unknown: ^0).
func (d *Dom) BootXenInit(domid uint32) error {
	return d.call("xc_dom_boot_xen_init", func() (C.int, error) {
		r, err := C.xc_dom_boot_xen_init(d.dom, d.h.xch, C.uint32_t(domid))
		return r, err
	})
}

// ParseImage parses the kernel for an HVM (PVH) or PV container.
func (d *Dom) ParseImage(hvm bool) error {
	C.xs_dom_container(d.dom, b2i(hvm))
	kind := "PV"
	if hvm {
		kind = "PVH"
	}
	return d.call("xc_dom_parse_image ("+kind+")", func() (C.int, error) { r, err := C.xc_dom_parse_image(d.dom); return r, err })
}

// Feature reports a XENFEAT_* the kernel supports (after ParseImage).
func (d *Dom) Feature(nr int) bool { return bool(C.xc_dom_feature_get(d.dom, C.uint(nr))) }

// SetPVHLayout sets the HVM container's memory layout: memMiB of RAM below
// mmioStart (the local APIC), RAM above 4 GiB for the rest, one vCPU.
func (d *Dom) SetPVHLayout(memMiB int, mmioStart uint64) {
	mem := uint64(memMiB) << 20
	d.dom.target_pages = C.xen_pfn_t(mem >> 12)
	d.dom.mmio_start = C.xen_paddr_t(mmioStart)
	d.dom.mmio_size = C.xen_paddr_t((1 << 32) - mmioStart)
	d.dom.lowmem_end = C.xen_paddr_t(min(mem, mmioStart))
	if mem > mmioStart {
		d.dom.highmem_end = C.xen_paddr_t((1 << 32) + mem - mmioStart)
	} else {
		d.dom.highmem_end = 0
	}
	d.dom.max_vcpus = 1
}

// SetGuest sets the domain id, command line, console port, and makes the
// domain its own xenstore domain (its own store page is granted to itself).
func (d *Dom) SetGuest(domid uint32, cmdline string, consolePort uint32) {
	cs := C.CString(cmdline)
	defer C.free(unsafe.Pointer(cs))
	d.dom.guest_domid = C.uint32_t(domid)
	d.dom.cmdline = C.xc_dom_strdup(d.dom, cs)
	d.dom.xenstore_domid = C.uint32_t(domid)
	d.dom.console_evtchn = C.uint(consolePort)
}

// SetACPI hands the builder one ACPI module (module 0: its address becomes
// hvm_start_info.rsdp_paddr, so the page must start with the RSDP).
func (d *Dom) SetACPI(page []byte, addr uint64) {
	if d.acpi != nil {
		C.free(d.acpi)
	}
	d.acpi = C.CBytes(page)
	d.dom.acpi_modules[0].data = (*C.uint8_t)(d.acpi)
	d.dom.acpi_modules[0].length = C.uint32_t(len(page))
	d.dom.acpi_modules[0].guest_addr_out = C.uint64_t(addr)
}

// MemInit sizes the domain (xc_dom_mem_init).
func (d *Dom) MemInit(memMiB int) error {
	return d.call("xc_dom_mem_init", func() (C.int, error) { r, err := C.xc_dom_mem_init(d.dom, C.uint(memMiB)); return r, err })
}

// BootMemInit allocates the domain's memory.
func (d *Dom) BootMemInit() error {
	return d.call("xc_dom_boot_mem_init", func() (C.int, error) { r, err := C.xc_dom_boot_mem_init(d.dom); return r, err })
}

// BuildImage loads kernel, ramdisk and ACPI modules into the domain.
func (d *Dom) BuildImage() error {
	return d.call("xc_dom_build_image", func() (C.int, error) { r, err := C.xc_dom_build_image(d.dom); return r, err })
}

// BootImage sets up the boot vCPU's state.
func (d *Dom) BootImage() error {
	return d.call("xc_dom_boot_image", func() (C.int, error) { r, err := C.xc_dom_boot_image(d.dom); return r, err })
}

// GnttabInit seeds the reserved grant entries: the console page for dom0
// (ref 0) and the store page for the xenstore domain (ref 1).
func (d *Dom) GnttabInit() error {
	return d.call("xc_dom_gnttab_init", func() (C.int, error) { r, err := C.xc_dom_gnttab_init(d.dom); return r, err })
}

// ConsoleGFN is the console page's frame as xenconsoled wants it in
// xenstore (MFN for PV, GFN for PVH); valid after BuildImage.
func (d *Dom) ConsoleGFN() uint64 { return uint64(C.xs_console_gfn(d.dom)) }

// StorePFN is the domain's own store page frame.
func (d *Dom) StorePFN() uint64 { return uint64(d.dom.xenstore_pfn) }
