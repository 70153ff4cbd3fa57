//go:build linux && cgo

// Package xc wraps the parts of Xen's libxenctrl, libxenguest (the xc_dom_*
// domain builder) and libxenlight that the xenstore stub launcher needs, as
// Xen's own init-xenstore-domain uses them.
//
// Scope and limits: the launcher is one binary for Xen 4.17–4.22 on x86_64.
// It links no Xen library: dl.go loads the host's own (libxenctrl.so.4.NN
// etc.) with dlopen and calls them through C trampolines; layout.go holds,
// per release, the offsets of the few struct fields it touches (checked
// against real headers by layout_test.go), cmem.go reads and writes them.
// A release outside 4.17–4.22 is refused with an error naming it. Every
// call returns an error that names the call, errno and libxc's last error
// message. unsafe and cgo stay in dl.go, cmem.go and this file.
package xc

// #include "dl.h"
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Handle is an open libxenctrl interface.
type Handle struct {
	xch, logger unsafe.Pointer
	libs        *Libs
	lay         *Layout
	// Hypervisor is the running Xen's release (xc_version).
	Hypervisor Version
}

// Open loads the host's Xen libraries and opens the hypervisor interface
// (privcmd). verbose 0 logs progress and worse from the builder, each step
// below goes one level further down.
func Open(verbose int) (*Handle, error) {
	libs, err := Load()
	if err != nil {
		return nil, err
	}
	lay, err := LayoutFor(libs.Version)
	if err != nil {
		return nil, err
	}
	lg := C.xs_createlogger(C.int(max(xtlProgress-verbose, xtlDebug)))
	xch, err := C.xs_interface_open(lg)
	if xch == nil {
		if lg != nil {
			C.xs_logger_destroy(lg)
		}
		return nil, fmt.Errorf("xc_interface_open (%s): %w (is this dom0 on Xen, with /dev/xen/privcmd and root?)", libs.Files[C.L_CTRL], errnoOr(err))
	}
	h := &Handle{xch: xch, logger: lg, libs: libs, lay: lay}
	v, err := C.xs_version(xch, xenverVersion)
	if v < 0 {
		h.Close()
		return nil, h.fail("xc_version(XENVER_version)", err)
	}
	h.Hypervisor = Version{int(v) >> 16, int(v) & 0xffff}
	return h, nil
}

// Describe says which Xen and which libraries are in use, with a warning
// when they are of different releases.
func (h *Handle) Describe() string {
	s := fmt.Sprintf("Xen %s, libraries %s (%s)", h.Hypervisor, h.libs.Version, h.libs.Files[C.L_CTRL])
	if h.Hypervisor != h.libs.Version {
		s += fmt.Sprintf("; WARNING: the tools are %s but the hypervisor is %s, domain calls may be refused", h.libs.Version, h.Hypervisor)
	}
	return s
}

// Close closes the interface.
func (h *Handle) Close() {
	if h.xch != nil {
		C.xs_interface_close(h.xch)
		h.xch = nil
	}
	if h.logger != nil {
		C.xs_logger_destroy(h.logger)
		h.logger = nil
	}
}

func errnoOr(err error) error {
	if err == nil {
		return syscall.EIO
	}
	return err
}

// lastError is libxc's message for the last failed call, "" if none.
func (h *Handle) lastError() string {
	p := C.xs_get_last_error(h.xch)
	if p == nil {
		return ""
	}
	e := cmem{unsafe.Pointer(p), h.lay.Err.Message.Off + h.lay.Err.Message.Size}
	if e.get32(h.lay.Err.Code) == xcErrorNone {
		return ""
	}
	msg := e.at(h.lay.Err.Message, h.lay.Err.Message.Size)
	return C.GoStringN((*C.char)(msg), C.int(C.strnlen((*C.char)(msg), C.size_t(h.lay.Err.Message.Size))))
}

func (h *Handle) fail(call string, err error) error {
	if msg := h.lastError(); msg != "" {
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
	l := &h.lay.Phys
	p := calloc(l.Size)
	defer p.free()
	if r, err := C.xs_physinfo(h.xch, p.p); r != 0 {
		return Physinfo{}, h.fail("xc_physinfo", err)
	}
	return Physinfo{Capabilities: p.get32(l.Capabilities), TotalPages: p.get64(l.TotalPages), FreePages: p.get64(l.FreePage)}, nil
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

// domains lists up to n domains with ids from first on
// (xc_domain_getinfolist, the same call in every release).
func (h *Handle) domains(first uint32, n int) ([]DomInfo, error) {
	l := &h.lay.DomInfo
	buf := calloc(l.Size * uintptr(n))
	defer buf.free()
	r, err := C.xs_getinfolist(h.xch, C.uint32_t(first), C.uint(n), buf.p)
	if r < 0 {
		return nil, h.fail("xc_domain_getinfolist", err)
	}
	out := make([]DomInfo, 0, int(r))
	for i := uintptr(0); i < uintptr(r); i++ {
		d := buf.slice(i*l.Size, l.Size)
		f := d.get32(l.Flags)
		out = append(out, DomInfo{
			DomID: uint32(d.get16(l.Domain)), Dying: f&dominfDying != 0, Shutdown: f&dominfShutdown != 0,
			ShutdownReason: int(f>>dominfShutdownShift) & dominfShutdownMask, Xenstore: f&dominfXSDomain != 0,
			HVM: f&dominfHVM != 0, Paused: f&dominfPaused != 0, Pages: d.get64(l.TotPages),
		})
	}
	return out, nil
}

// Domains lists all domains.
func (h *Handle) Domains() ([]DomInfo, error) {
	var out []DomInfo
	next := uint32(0)
	for {
		ds, err := h.domains(next, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
		if len(ds) < 64 {
			return out, nil
		}
		next = ds[len(ds)-1].DomID + 1
	}
}

// Domain returns one domain's state, ok false when it does not exist.
func (h *Handle) Domain(domid uint32) (DomInfo, bool, error) {
	ds, err := h.domains(domid, 1)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return DomInfo{}, false, nil
		}
		return DomInfo{}, false, err
	}
	if len(ds) == 0 || ds[0].DomID != domid {
		return DomInfo{}, false, nil
	}
	return ds[0], true, nil
}

// FlaskSID resolves a FLASK label.
func (h *Handle) FlaskSID(label string) (uint32, error) {
	cs := C.CString(label)
	defer C.free(unsafe.Pointer(cs))
	var sid C.uint32_t
	if r, err := C.xs_flask_sid(h.xch, cs, C.uint32_t(len(label)), &sid); r != 0 {
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

// createdomain fills struct xen_domctl_createdomain.
func (h *Handle) createdomain(c CreateConfig) cmem {
	l := &h.lay.Create
	m := calloc(l.Size)
	flags := uint32(cdfXSDomain)
	if c.PVH {
		flags |= cdfHVM
		if c.HAP {
			flags |= cdfHAP
		}
		m.put32(l.EmuFlg, x86EmuLAPIC)
	}
	m.put32(l.SSIDRef, c.SSIDRef)
	m.put32(l.Flags, flags)
	m.put32(l.MaxVcpus, 1)
	m.put32(l.MaxEvtchnPort, ^uint32(0))
	m.put32(l.MaxGrantFrames, c.MaxGrantFrames)
	m.put32(l.MaxMaptrackFrames, c.MaxMaptrackFrames)
	m.put32(l.GrantOpts, 1) // XEN_DOMCTL_GRANT_version(1)
	return m
}

// CreateDomain creates a paused domain flagged as the xenstore domain
// (XEN_DOMCTL_CDF_xs_domain) with one vCPU, letting Xen choose its domid.
func (h *Handle) CreateDomain(c CreateConfig) (uint32, error) {
	m := h.createdomain(c)
	defer m.free()
	domid := C.uint32_t(RequestAnyDomid)
	if r, err := C.xs_domain_create(h.xch, &domid, m.p); r != 0 {
		return 0, h.fail("xc_domain_create", err)
	}
	return uint32(domid), nil
}

func (h *Handle) check(call string, r C.int, err error) error {
	if r != 0 {
		return h.fail(call, err)
	}
	return nil
}

// MaxVcpus sets the domain's vCPU count.
func (h *Handle) MaxVcpus(domid uint32, n int) error {
	r, err := C.xs_max_vcpus(h.xch, C.uint32_t(domid), C.uint(n))
	return h.check("xc_domain_max_vcpus", r, err)
}

// SetMaxMem sets the domain's page limit in KiB.
func (h *Handle) SetMaxMem(domid uint32, kib uint64) error {
	r, err := C.xs_setmaxmem(h.xch, C.uint32_t(domid), C.uint64_t(kib))
	return h.check("xc_domain_setmaxmem", r, err)
}

// SetMemmapLimit sets a PV domain's memory map limit in KiB.
func (h *Handle) SetMemmapLimit(domid uint32, kib uint64) error {
	r, err := C.xs_memmap_limit(h.xch, C.uint32_t(domid), C.ulong(kib))
	return h.check("xc_domain_set_memmap_limit", r, err)
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
	l := &h.lay.E820
	buf := calloc(l.Size * uintptr(len(m)))
	defer buf.free()
	for i, e := range m {
		b := buf.slice(uintptr(i)*l.Size, l.Size)
		b.put64(l.Addr, e.Addr)
		b.put64(l.Len, e.Size)
		b.put32(l.Type, e.Type)
	}
	r, err := C.xs_memory_map(h.xch, C.uint32_t(domid), buf.p, C.uint32_t(len(m)))
	return h.check("xc_domain_set_memory_map", r, err)
}

// EvtchnAllocUnbound allocates an unbound port in domid for remote.
func (h *Handle) EvtchnAllocUnbound(domid, remote uint32) (uint32, error) {
	r, err := C.xs_alloc_unbound(h.xch, C.uint32_t(domid), C.uint32_t(remote))
	if r < 0 {
		return 0, h.fail("xc_evtchn_alloc_unbound", err)
	}
	return uint32(r), nil
}

// EvtchnStatus returns a port's state (EVTCHNSTAT_*) and, when it is
// interdomain, the remote domain.
func (h *Handle) EvtchnStatus(domid, port uint32) (int, uint32, error) {
	l := &h.lay.Evtchn
	s := calloc(l.Size)
	defer s.free()
	s.put16(l.Dom, uint16(domid))
	s.put32(l.Port, port)
	if r, err := C.xs_evtchn_status(h.xch, s.p); r != 0 {
		return 0, 0, h.fail("xc_evtchn_status", err)
	}
	st := int(s.get32(l.Status))
	if st != EvtchnStatInterdomain {
		return st, 0, nil
	}
	return st, uint32(s.get16(l.InterdomainDom)), nil
}

// SetVirqHandler makes domid the handler of a global virq.
func (h *Handle) SetVirqHandler(domid uint32, virq int) error {
	r, err := C.xs_virq_handler(h.xch, C.uint32_t(domid), C.int(virq))
	return h.check("xc_domain_set_virq_handler", r, err)
}

// HVMParamSet sets an HVM parameter.
func (h *Handle) HVMParamSet(domid uint32, param int, v uint64) error {
	r, err := C.xs_hvm_param_set(h.xch, C.uint32_t(domid), C.uint32_t(param), C.uint64_t(v))
	return h.check(fmt.Sprintf("xc_hvm_param_set(%d)", param), r, err)
}

// Unpause starts the domain.
func (h *Handle) Unpause(domid uint32) error {
	r, err := C.xs_unpause(h.xch, C.uint32_t(domid))
	return h.check("xc_domain_unpause", r, err)
}

// Destroy destroys the domain.
func (h *Handle) Destroy(domid uint32) error {
	r, err := C.xs_destroy(h.xch, C.uint32_t(domid))
	return h.check("xc_domain_destroy", r, err)
}
