package xc

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Version is a Xen release, major.minor (the number in libxenctrl.so.4.NN).
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ParseVersion reads "4.20" (trailing ".0" or "-rc" parts are ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("Xen version %q: want MAJOR.MINOR", s)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("Xen version %q: want MAJOR.MINOR", s)
	}
	return Version{major, minor}, nil
}

// Field is a member of a C struct: byte offset and width (1, 2, 4 or 8).
type Field struct{ Off, Size uintptr }

// Layout is what the launcher needs to know of one release's C structs. The
// tables below are checked against real headers by layout_test.go
// (testdata/layout.c prints the same keys, named in the `c` tags).
type Layout struct {
	// struct xc_dom_image (xenguest.h), allocated by xc_dom_allocate.
	Dom struct {
		Size          uintptr `c:"dom.size"`
		Cmdline       Field   `c:"dom.cmdline"`
		ConsolePFN    Field   `c:"dom.console_pfn"`
		XenstorePFN   Field   `c:"dom.xenstore_pfn"`
		PvP2M         Field   `c:"dom.pv_p2m"`
		TotalPages    Field   `c:"dom.total_pages"`
		ConsoleEvtchn Field   `c:"dom.console_evtchn"`
		XenstoreDomid Field   `c:"dom.xenstore_domid"`
		GuestDomid    Field   `c:"dom.guest_domid"`
		ContainerType Field   `c:"dom.container_type"`
		TargetPages   Field   `c:"dom.target_pages"`
		MMIOStart     Field   `c:"dom.mmio_start"`
		MMIOSize      Field   `c:"dom.mmio_size"`
		LowmemEnd     Field   `c:"dom.lowmem_end"`
		HighmemEnd    Field   `c:"dom.highmem_end"`
		ACPIModules   Field   `c:"dom.acpi_modules"`
		MaxVcpus      Field   `c:"dom.max_vcpus"`
	}
	// struct xc_hvm_firmware_module, one of xc_dom_image.acpi_modules[].
	FW struct {
		Size         uintptr `c:"fw.size"`
		Data         Field   `c:"fw.data"`
		Length       Field   `c:"fw.length"`
		GuestAddrOut Field   `c:"fw.guest_addr_out"`
	}
	// struct xen_domctl_createdomain (domctl.h): 4.19 added altp2m_opts
	// before vmtrace_size, which moves arch.
	Create struct {
		Size              uintptr `c:"cd.size"`
		SSIDRef           Field   `c:"cd.ssidref"`
		Flags             Field   `c:"cd.flags"`
		MaxVcpus          Field   `c:"cd.max_vcpus"`
		MaxEvtchnPort     Field   `c:"cd.max_evtchn_port"`
		MaxGrantFrames    Field   `c:"cd.max_grant_frames"`
		MaxMaptrackFrames Field   `c:"cd.max_maptrack_frames"`
		GrantOpts         Field   `c:"cd.grant_opts"`
		EmuFlg            Field   `c:"cd.emulation_flags"`
	}
	// xc_physinfo_t (struct xen_sysctl_physinfo).
	Phys struct {
		Size         uintptr `c:"pi.size"`
		Capabilities Field   `c:"pi.capabilities"`
		TotalPages   Field   `c:"pi.total_pages"`
		FreePage     Field   `c:"pi.free_pages"`
	}
	// xc_domaininfo_t (struct xen_domctl_getdomaininfo), filled by
	// xc_domain_getinfolist in every release (xc_dominfo_t and
	// xc_domain_getinfo are gone since 4.18).
	DomInfo struct {
		Size     uintptr `c:"di.size"`
		Domain   Field   `c:"di.domain"`
		Flags    Field   `c:"di.flags"`
		TotPages Field   `c:"di.tot_pages"`
	}
	// xc_evtchn_status_t (struct evtchn_status).
	Evtchn struct {
		Size           uintptr `c:"es.size"`
		Dom            Field   `c:"es.dom"`
		Port           Field   `c:"es.port"`
		Status         Field   `c:"es.status"`
		InterdomainDom Field   `c:"es.interdomain_dom"`
	}
	// struct e820entry (packed).
	E820 struct {
		Size uintptr `c:"e820.size"`
		Addr Field   `c:"e820.addr"`
		Len  Field   `c:"e820.len"`
		Type Field   `c:"e820.type"`
	}
	// xc_error, as xc_get_last_error returns it.
	Err struct {
		Code    Field `c:"err.code"`
		Message Field `c:"err.message"`
	}
	Libxl LibxlLayout
}

// LibxlLayout is libxl_domain_config's: it grows in every release;
// c_info.type and b_info stay put.
type LibxlLayout struct {
	Size      uintptr `c:"lx.size"`
	CInfoType Field   `c:"lx.c_info_type"`
	BI        Field   `c:"lx.b_info"`
}

// layout417 is Xen 4.17's (compiled against Debian 12's libxen-dev).
func layout417() Layout {
	var l Layout
	d := &l.Dom
	d.Size = 1952
	d.Cmdline, d.ConsolePFN, d.XenstorePFN, d.PvP2M = Field{176, 8}, Field{384, 8}, Field{392, 8}, Field{480, 8}
	d.TotalPages, d.ConsoleEvtchn, d.XenstoreDomid = Field{504, 8}, Field{568, 4}, Field{580, 4}
	d.GuestDomid, d.ContainerType, d.TargetPages = Field{600, 4}, Field{1712, 4}, Field{1720, 8}
	d.MMIOStart, d.MMIOSize, d.LowmemEnd = Field{1728, 8}, Field{1736, 8}, Field{1744, 8}
	d.HighmemEnd, d.ACPIModules, d.MaxVcpus = Field{1752, 8}, Field{1800, 96}, Field{1944, 4}
	l.FW.Size = 24
	l.FW.Data, l.FW.Length, l.FW.GuestAddrOut = Field{0, 8}, Field{8, 4}, Field{16, 8}
	c := &l.Create
	c.Size = 64
	c.SSIDRef, c.Flags, c.MaxVcpus, c.MaxEvtchnPort = Field{0, 4}, Field{20, 4}, Field{28, 4}, Field{32, 4}
	c.MaxGrantFrames, c.MaxMaptrackFrames, c.GrantOpts, c.EmuFlg = Field{36, 4}, Field{40, 4}, Field{44, 4}, Field{56, 4}
	l.Phys.Size = 112
	l.Phys.Capabilities, l.Phys.TotalPages, l.Phys.FreePage = Field{28, 4}, Field{40, 8}, Field{48, 8}
	l.DomInfo.Size = 112
	l.DomInfo.Domain, l.DomInfo.Flags, l.DomInfo.TotPages = Field{0, 2}, Field{4, 4}, Field{8, 8}
	l.Evtchn.Size = 24
	l.Evtchn.Dom, l.Evtchn.Port, l.Evtchn.Status, l.Evtchn.InterdomainDom = Field{0, 2}, Field{4, 4}, Field{8, 4}, Field{16, 2}
	l.E820.Size = 20
	l.E820.Addr, l.E820.Len, l.E820.Type = Field{0, 8}, Field{8, 8}, Field{16, 4}
	l.Err.Code, l.Err.Message = Field{0, 4}, Field{4, 1024}
	l.Libxl.Size = 1288
	l.Libxl.CInfoType, l.Libxl.BI = Field{0, 4}, Field{104, 920}
	return l
}

// altp2mOpts is 4.19's change: uint32 altp2m_opts (4.21: struct {u16 opts,
// nr} altp2m, same size) inserted before vmtrace_size.
func altp2mOpts(l *Layout) { l.Create.Size, l.Create.EmuFlg.Off = 68, 60 }

// libxlConfig sets sizeof(libxl_domain_config) and of its b_info.
func libxlConfig(size, buildInfo uintptr) func(*Layout) {
	return func(l *Layout) { l.Libxl.Size, l.Libxl.BI.Size = size, buildInfo }
}

func with(changes ...func(*Layout)) Layout {
	l := layout417()
	for _, c := range changes {
		c(&l)
	}
	return l
}

// Layouts are the releases this package knows: each as 4.17 plus what
// changed. Every other struct the launcher touches is the same in all of
// them (layout_test.go checks each release it has headers for).
var Layouts = map[Version]Layout{
	{4, 17}: with(),
	{4, 18}: with(libxlConfig(1344, 960)),
	{4, 19}: with(altp2mOpts, libxlConfig(1352, 968)),
	{4, 20}: with(altp2mOpts, libxlConfig(1368, 984)),
	{4, 21}: with(altp2mOpts, libxlConfig(1384, 1000)),
	{4, 22}: with(altp2mOpts, libxlConfig(1400, 1016)),
}

// Oldest and Newest bound Layouts.
var (
	Oldest = Version{4, 17}
	Newest = Version{4, 22}
)

// LayoutFor returns a release's layout, or the error naming the version.
func LayoutFor(v Version) (*Layout, error) {
	l, ok := Layouts[v]
	if !ok {
		return nil, fmt.Errorf("Unknown Xen version %s: this launcher knows %s–%s", v, Oldest, Newest)
	}
	return &l, nil
}

// knownNewestFirst lists the known releases, newest first (the order in
// which libraries are looked for).
func knownNewestFirst() []Version {
	var vs []Version
	for m := Newest.Minor; m >= Oldest.Minor; m-- {
		vs = append(vs, Version{4, m})
	}
	return vs
}

// versionFromPath reads the release from a library file name such as
// /usr/lib/x86_64-linux-gnu/libxenctrl.so.4.20.0.
func versionFromPath(path string) (Version, bool) {
	_, rest, ok := strings.Cut(filepath.Base(path), ".so.")
	if !ok {
		return Version{}, false
	}
	v, err := ParseVersion(rest)
	return v, err == nil
}
