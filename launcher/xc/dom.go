//go:build linux && cgo

package xc

// #include "dl.h"
import "C"

import (
	"fmt"
	"unsafe"
)

// Dom is a domain under construction with libxenguest's xc_dom builder.
// Its struct xc_dom_image is libxenguest's; fields are set through the
// release's Layout.
type Dom struct {
	h    *Handle
	dom  cmem
	acpi unsafe.Pointer
}

// NewDom allocates a builder.
func (h *Handle) NewDom() (*Dom, error) {
	d, err := C.xs_dom_allocate(h.xch)
	if d == nil {
		return nil, h.fail("xc_dom_allocate", err)
	}
	return &Dom{h: h, dom: cmem{d, h.lay.Dom.Size}}, nil
}

// Release frees the builder.
func (d *Dom) Release() {
	if d.dom.p != nil {
		C.xs_dom_release(d.dom.p)
		d.dom.p = nil
	}
	if d.acpi != nil {
		C.free(d.acpi)
		d.acpi = nil
	}
}

func (d *Dom) check(call string, r C.int, err error) error { return d.h.check(call, r, err) }

// KernelFile loads the kernel (gzip'd or not).
func (d *Dom) KernelFile(path string) error {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	r, err := C.xs_dom_kernel_file(d.dom.p, cs)
	return d.check("xc_dom_kernel_file("+path+")", r, err)
}

// ModuleFile loads the ramdisk.
func (d *Dom) ModuleFile(path string) error {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	r, err := C.xs_dom_module_file(d.dom.p, cs)
	return d.check("xc_dom_module_file("+path+")", r, err)
}

// BootXenInit ties the builder to the hypervisor and a domain id (which may
// still be unknown: ^0).
func (d *Dom) BootXenInit(domid uint32) error {
	r, err := C.xs_dom_boot_xen_init(d.dom.p, d.h.xch, C.uint32_t(domid))
	return d.check("xc_dom_boot_xen_init", r, err)
}

// ParseImage parses the kernel for an HVM (PVH) or PV container.
func (d *Dom) ParseImage(hvm bool) error {
	kind, container := "PV", uint32(containerPV)
	if hvm {
		kind, container = "PVH", containerHVM
	}
	d.dom.put32(d.h.lay.Dom.ContainerType, container)
	return d.step("xc_dom_parse_image ("+kind+")", C.F_xc_dom_parse_image)
}

// step runs one of the builder's calls that take only the image.
func (d *Dom) step(call string, f C.int) error {
	r, err := C.xs_dom_step(f, d.dom.p)
	return d.check(call, r, err)
}

// Feature reports a XENFEAT_* the kernel supports (after ParseImage).
func (d *Dom) Feature(nr int) bool { return bool(C.xs_dom_feature_get(d.dom.p, C.uint(nr))) }

// SetPVHLayout sets the HVM container's memory layout: memMiB of RAM below
// mmioStart (the local APIC), RAM above 4 GiB for the rest, one vCPU.
func (d *Dom) SetPVHLayout(memMiB int, mmioStart uint64) {
	l, m := &d.h.lay.Dom, d.dom
	mem := uint64(memMiB) << 20
	m.put64(l.TargetPages, mem>>12)
	m.put64(l.MMIOStart, mmioStart)
	m.put64(l.MMIOSize, (1<<32)-mmioStart)
	m.put64(l.LowmemEnd, min(mem, mmioStart))
	high := uint64(0)
	if mem > mmioStart {
		high = (1 << 32) + mem - mmioStart
	}
	m.put64(l.HighmemEnd, high)
	m.put32(l.MaxVcpus, 1)
}

// SetGuest sets the domain id, command line, console port, and makes the
// domain its own xenstore domain (its own store page is granted to itself).
func (d *Dom) SetGuest(domid uint32, cmdline string, consolePort uint32) {
	l, m := &d.h.lay.Dom, d.dom
	cs := C.CString(cmdline)
	defer C.free(unsafe.Pointer(cs))
	m.put32(l.GuestDomid, domid)
	m.putPtr(l.Cmdline, unsafe.Pointer(C.xs_dom_strdup(m.p, cs)))
	m.put32(l.XenstoreDomid, domid)
	m.put32(l.ConsoleEvtchn, consolePort)
}

// SetACPI hands the builder one ACPI module (module 0: its address becomes
// hvm_start_info.rsdp_paddr, so the page must start with the RSDP).
func (d *Dom) SetACPI(page []byte, addr uint64) {
	if d.acpi != nil {
		C.free(d.acpi)
	}
	d.acpi = C.CBytes(page)
	fw := &d.h.lay.FW
	mod := d.dom.elem(d.h.lay.Dom.ACPIModules, 0, fw.Size)
	mod.putPtr(fw.Data, d.acpi)
	mod.put32(fw.Length, uint32(len(page)))
	mod.put64(fw.GuestAddrOut, addr)
}

// MemInit sizes the domain (xc_dom_mem_init).
func (d *Dom) MemInit(memMiB int) error {
	r, err := C.xs_dom_mem_init(d.dom.p, C.uint(memMiB))
	return d.check("xc_dom_mem_init", r, err)
}

// BootMemInit allocates the domain's memory.
func (d *Dom) BootMemInit() error {
	return d.step("xc_dom_boot_mem_init", C.F_xc_dom_boot_mem_init)
}

// BuildImage loads kernel, ramdisk and ACPI modules into the domain.
func (d *Dom) BuildImage() error { return d.step("xc_dom_build_image", C.F_xc_dom_build_image) }

// BootImage sets up the boot vCPU's state.
func (d *Dom) BootImage() error { return d.step("xc_dom_boot_image", C.F_xc_dom_boot_image) }

// GnttabInit seeds the reserved grant entries: the console page for dom0
// (ref 0) and the store page for the xenstore domain (ref 1).
func (d *Dom) GnttabInit() error { return d.step("xc_dom_gnttab_init", C.F_xc_dom_gnttab_init) }

// ConsoleGFN is the console page's frame as xenconsoled wants it in
// xenstore (MFN for PV, GFN for PVH); valid after BuildImage. It is
// xenguest.h's inline xc_dom_p2m.
func (d *Dom) ConsoleGFN() uint64 {
	l, m := &d.h.lay.Dom, d.dom
	pfn := m.get64(l.ConsolePFN)
	if C.xs_dom_translated(m.p) {
		return pfn
	}
	p2m := m.getPtr(l.PvP2M)
	if p2m == nil || pfn >= m.get64(l.TotalPages) {
		return ^uint64(0) // INVALID_MFN
	}
	return *(*uint64)(unsafe.Add(p2m, pfn*8))
}

// StorePFN is the domain's own store page frame.
func (d *Dom) StorePFN() uint64 { return d.dom.get64(d.h.lay.Dom.XenstorePFN) }

// StoreStubJSON stores libxl's userdata for the domain so that xl treats it
// as a domain it knows (type PVH or PV), as init-xenstore-domain's
// gen_stub_json_config does.
func StoreStubJSON(domid uint32, pvh bool) error {
	libs, err := Load()
	if err != nil {
		return err
	}
	lay, err := LayoutFor(libs.Version)
	if err != nil {
		return err
	}
	lg := C.xs_createlogger(xtlError)
	if lg == nil {
		return fmt.Errorf("libxl json config for dom%d: cannot create logger", domid)
	}
	defer C.xs_logger_destroy(lg)
	var ctx unsafe.Pointer
	if r, err := C.xs_libxl_ctx_alloc(&ctx, lg); r != 0 {
		return fmt.Errorf("libxl json config for dom%d: libxl_ctx_alloc: %w", domid, errnoOr(err))
	}
	defer C.xs_libxl_ctx_free(ctx)
	return storeJSON(ctx, &lay.Libxl, domid, pvh)
}

// storeJSON makes libxl's default config of the type and stores it.
func storeJSON(ctx unsafe.Pointer, l *LibxlLayout, domid uint32, pvh bool) error {
	typ := uint32(libxlTypePV)
	if pvh {
		typ = libxlTypePVH
	}
	cfg := calloc(l.Size)
	defer cfg.free()
	C.xs_libxl_config_init(cfg.p)
	defer C.xs_libxl_config_dispose(cfg.p)
	cfg.put32(l.CInfoType, typ)
	C.xs_libxl_build_info_init_type(cfg.at(l.BI, l.BI.Size), C.int(typ))
	json := C.xs_libxl_config_to_json(ctx, cfg.p)
	if json == nil {
		return fmt.Errorf("libxl json config for dom%d: libxl_domain_config_to_json failed", domid)
	}
	defer C.free(unsafe.Pointer(json))
	id := C.CString("libxl-json")
	defer C.free(unsafe.Pointer(id))
	if r, err := C.xs_libxl_userdata_store(ctx, C.uint32_t(domid), id, (*C.uint8_t)(unsafe.Pointer(json)), C.int(C.strlen(json)+1)); r != 0 {
		return fmt.Errorf("libxl json config for dom%d: libxl_userdata_store: %w", domid, errnoOr(err))
	}
	return nil
}
