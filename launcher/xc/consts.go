package xc

// Constants from Xen's public headers, libxenctrl, libxenguest, libxentoollog
// and libxl; the same in 4.17–4.22 (layout_test.go checks them per release).

// Physical capabilities (XEN_SYSCTL_PHYSCAP_*).
const (
	CapHVM    = 1
	CapPV     = 2
	CapHAP    = 8
	CapShadow = 16
)

// Constants the launcher uses.
const (
	// RequestAnyDomid is the domid the launcher asks XEN_DOMCTL_createdomain
	// for: DOMID_ANY (0x7FF5). Xen 4.22 allocates only for DOMID_ANY and
	// refuses 0 (dom0's) with EEXIST; 4.17-4.21 allocate for 0 or any id
	// at or above DOMID_FIRST_RESERVED, so DOMID_ANY works on every release.
	RequestAnyDomid         = 0x7FF5
	VirqDomExc              = 3  // VIRQ_DOM_EXC
	HVMParamStorePFN        = 1  // HVM_PARAM_STORE_PFN
	EvtchnStatUnbound       = 1  // EVTCHNSTAT_unbound
	EvtchnStatInterdomain   = 2  // EVTCHNSTAT_interdomain
	XenfeatRSDPUnrestricted = 15 // XENFEAT_linux_rsdp_unrestricted
	// SIDDomU is FLASK's SECINITSID_DOMU, the default ssidref.
	SIDDomU = 12
)

const (
	xtlDebug    = 1 // XTL_DEBUG
	xtlProgress = 4 // XTL_PROGRESS
	xtlError    = 8 // XTL_ERROR

	xenverVersion = 0 // XENVER_version

	dominfDying         = 1   // XEN_DOMINF_dying
	dominfHVM           = 2   // XEN_DOMINF_hvm_guest
	dominfShutdown      = 4   // XEN_DOMINF_shutdown
	dominfPaused        = 8   // XEN_DOMINF_paused
	dominfXSDomain      = 128 // XEN_DOMINF_xs_domain
	dominfShutdownShift = 16  // XEN_DOMINF_shutdownshift
	dominfShutdownMask  = 255 // XEN_DOMINF_shutdownmask

	cdfHVM      = 1  // XEN_DOMCTL_CDF_hvm
	cdfHAP      = 2  // XEN_DOMCTL_CDF_hap
	cdfXSDomain = 16 // XEN_DOMCTL_CDF_xs_domain
	x86EmuLAPIC = 1  // XEN_X86_EMU_LAPIC

	containerPV  = 0 // XC_DOM_PV_CONTAINER
	containerHVM = 1 // XC_DOM_HVM_CONTAINER
	xcErrorNone  = 0 // XC_ERROR_NONE

	libxlVersion = 0 // LIBXL_VERSION
	libxlTypePV  = 2 // LIBXL_DOMAIN_TYPE_PV
	libxlTypePVH = 3 // LIBXL_DOMAIN_TYPE_PVH
)

// cConsts maps testdata/layout.c's "const.NAME" keys to the values above.
var cConsts = map[string]int64{
	"XTL_DEBUG": xtlDebug, "XTL_PROGRESS": xtlProgress, "XTL_ERROR": xtlError,
	"XENVER_version":         xenverVersion,
	"XEN_SYSCTL_PHYSCAP_hvm": CapHVM, "XEN_SYSCTL_PHYSCAP_pv": CapPV,
	"XEN_SYSCTL_PHYSCAP_hap": CapHAP, "XEN_SYSCTL_PHYSCAP_shadow": CapShadow,
	"XEN_DOMINF_dying": dominfDying, "XEN_DOMINF_hvm_guest": dominfHVM, "XEN_DOMINF_shutdown": dominfShutdown,
	"XEN_DOMINF_paused": dominfPaused, "XEN_DOMINF_xs_domain": dominfXSDomain,
	"XEN_DOMINF_shutdownshift": dominfShutdownShift, "XEN_DOMINF_shutdownmask": dominfShutdownMask,
	"XEN_DOMCTL_CDF_hvm": cdfHVM, "XEN_DOMCTL_CDF_hap": cdfHAP, "XEN_DOMCTL_CDF_xs_domain": cdfXSDomain,
	"XEN_X86_EMU_LAPIC":   x86EmuLAPIC,
	"XC_DOM_PV_CONTAINER": containerPV, "XC_DOM_HVM_CONTAINER": containerHVM,
	"VIRQ_DOM_EXC": VirqDomExc, "HVM_PARAM_STORE_PFN": HVMParamStorePFN,
	"EVTCHNSTAT_unbound": EvtchnStatUnbound, "EVTCHNSTAT_interdomain": EvtchnStatInterdomain,
	"XENFEAT_linux_rsdp_unrestricted": XenfeatRSDPUnrestricted,
	"XC_ERROR_NONE":                   xcErrorNone,
	"LIBXL_VERSION":                   libxlVersion, "LIBXL_DOMAIN_TYPE_PV": libxlTypePV, "LIBXL_DOMAIN_TYPE_PVH": libxlTypePVH,
}
