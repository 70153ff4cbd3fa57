/*
 * Prints, as "key value" lines, the offsets, sizes, constants and function
 * signatures that launcher/xc's per-release tables (layout.go) assume,
 * compiled against one release's headers (TestLayoutsMatchHeaders).
 * A function whose prototype differs from the one written here fails the
 * build (static assertion naming the function).
 */
#include <stddef.h>
#include <stdio.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xentoollog.h>
#include <libxl.h>
#include <xen/hvm/params.h>
#include <xen/features.h>

#define OFF(key, type, field) printf("%s %zu %zu\n", key, offsetof(type, field), sizeof(((type *)0)->field))
#define SIZE(key, type) printf("%s %zu\n", key, sizeof(type))
#define CONST(name) printf("const.%s %lld\n", #name, (long long)(name))
#define SIG(fn, type) _Static_assert(__builtin_types_compatible_p(__typeof__(&fn), type), #fn)

/* The prototypes launcher/xc/dl.go calls through (its C trampolines). */
SIG(xtl_createlogger_stdiostream, xentoollog_logger_stdiostream *(*)(FILE *, xentoollog_level, unsigned));
SIG(xtl_logger_destroy, void (*)(struct xentoollog_logger *));
SIG(xc_interface_open, xc_interface *(*)(xentoollog_logger *, xentoollog_logger *, unsigned));
SIG(xc_interface_close, int (*)(xc_interface *));
SIG(xc_get_last_error, const xc_error *(*)(xc_interface *));
SIG(xc_version, int (*)(xc_interface *, int, void *));
SIG(xc_physinfo, int (*)(xc_interface *, xc_physinfo_t *));
SIG(xc_domain_getinfolist, int (*)(xc_interface *, uint32_t, unsigned int, xc_domaininfo_t *));
SIG(xc_flask_context_to_sid, int (*)(xc_interface *, char *, uint32_t, uint32_t *));
SIG(xc_domain_create, int (*)(xc_interface *, uint32_t *, struct xen_domctl_createdomain *));
SIG(xc_domain_max_vcpus, int (*)(xc_interface *, uint32_t, unsigned int));
SIG(xc_domain_setmaxmem, int (*)(xc_interface *, uint32_t, uint64_t));
SIG(xc_domain_set_memmap_limit, int (*)(xc_interface *, uint32_t, unsigned long));
SIG(xc_domain_set_memory_map, int (*)(xc_interface *, uint32_t, struct e820entry[], uint32_t));
SIG(xc_evtchn_alloc_unbound, xc_evtchn_port_or_error_t (*)(xc_interface *, uint32_t, uint32_t));
SIG(xc_evtchn_status, int (*)(xc_interface *, xc_evtchn_status_t *));
SIG(xc_domain_set_virq_handler, int (*)(xc_interface *, uint32_t, int));
SIG(xc_hvm_param_set, int (*)(xc_interface *, uint32_t, uint32_t, uint64_t));
SIG(xc_domain_unpause, int (*)(xc_interface *, uint32_t));
SIG(xc_domain_destroy, int (*)(xc_interface *, uint32_t));
SIG(xc_dom_allocate, struct xc_dom_image *(*)(xc_interface *, const char *, const char *));
SIG(xc_dom_release, void (*)(struct xc_dom_image *));
SIG(xc_dom_strdup, char *(*)(struct xc_dom_image *, const char *));
SIG(xc_dom_kernel_file, int (*)(struct xc_dom_image *, const char *));
SIG(xc_dom_module_file, int (*)(struct xc_dom_image *, const char *, const char *));
SIG(xc_dom_boot_xen_init, int (*)(struct xc_dom_image *, xc_interface *, uint32_t));
SIG(xc_dom_parse_image, int (*)(struct xc_dom_image *));
SIG(xc_dom_feature_get, bool (*)(struct xc_dom_image *, unsigned int));
SIG(xc_dom_translated, bool (*)(const struct xc_dom_image *));
SIG(xc_dom_mem_init, int (*)(struct xc_dom_image *, unsigned int));
SIG(xc_dom_boot_mem_init, int (*)(struct xc_dom_image *));
SIG(xc_dom_build_image, int (*)(struct xc_dom_image *));
SIG(xc_dom_boot_image, int (*)(struct xc_dom_image *));
SIG(xc_dom_gnttab_init, int (*)(struct xc_dom_image *));
SIG(libxl_ctx_alloc, int (*)(libxl_ctx **, int, unsigned, xentoollog_logger *));
SIG(libxl_ctx_free, int (*)(libxl_ctx *));
SIG(libxl_domain_config_init, void (*)(libxl_domain_config *));
SIG(libxl_domain_config_dispose, void (*)(libxl_domain_config *));
SIG(libxl_domain_build_info_init_type, void (*)(libxl_domain_build_info *, libxl_domain_type));
SIG(libxl_domain_config_to_json, char *(*)(libxl_ctx *, libxl_domain_config *));
SIG(libxl_userdata_store, int (*)(libxl_ctx *, uint32_t, const char *, const uint8_t *, int));

int main(void)
{
	SIZE("dom.size", struct xc_dom_image);
	OFF("dom.cmdline", struct xc_dom_image, cmdline);
	OFF("dom.console_pfn", struct xc_dom_image, console_pfn);
	OFF("dom.xenstore_pfn", struct xc_dom_image, xenstore_pfn);
	OFF("dom.pv_p2m", struct xc_dom_image, pv_p2m);
	OFF("dom.total_pages", struct xc_dom_image, total_pages);
	OFF("dom.console_evtchn", struct xc_dom_image, console_evtchn);
	OFF("dom.xenstore_domid", struct xc_dom_image, xenstore_domid);
	OFF("dom.guest_domid", struct xc_dom_image, guest_domid);
	OFF("dom.container_type", struct xc_dom_image, container_type);
	OFF("dom.target_pages", struct xc_dom_image, target_pages);
	OFF("dom.mmio_start", struct xc_dom_image, mmio_start);
	OFF("dom.mmio_size", struct xc_dom_image, mmio_size);
	OFF("dom.lowmem_end", struct xc_dom_image, lowmem_end);
	OFF("dom.highmem_end", struct xc_dom_image, highmem_end);
	OFF("dom.acpi_modules", struct xc_dom_image, acpi_modules);
	OFF("dom.max_vcpus", struct xc_dom_image, max_vcpus);
	SIZE("fw.size", struct xc_hvm_firmware_module);
	OFF("fw.data", struct xc_hvm_firmware_module, data);
	OFF("fw.length", struct xc_hvm_firmware_module, length);
	OFF("fw.guest_addr_out", struct xc_hvm_firmware_module, guest_addr_out);

	SIZE("cd.size", struct xen_domctl_createdomain);
	OFF("cd.ssidref", struct xen_domctl_createdomain, ssidref);
	OFF("cd.flags", struct xen_domctl_createdomain, flags);
	OFF("cd.max_vcpus", struct xen_domctl_createdomain, max_vcpus);
	OFF("cd.max_evtchn_port", struct xen_domctl_createdomain, max_evtchn_port);
	OFF("cd.max_grant_frames", struct xen_domctl_createdomain, max_grant_frames);
	OFF("cd.max_maptrack_frames", struct xen_domctl_createdomain, max_maptrack_frames);
	OFF("cd.grant_opts", struct xen_domctl_createdomain, grant_opts);
	OFF("cd.emulation_flags", struct xen_domctl_createdomain, arch.emulation_flags);

	SIZE("pi.size", xc_physinfo_t);
	OFF("pi.capabilities", xc_physinfo_t, capabilities);
	OFF("pi.total_pages", xc_physinfo_t, total_pages);
	OFF("pi.free_pages", xc_physinfo_t, free_pages);

	SIZE("di.size", xc_domaininfo_t);
	OFF("di.domain", xc_domaininfo_t, domain);
	OFF("di.flags", xc_domaininfo_t, flags);
	OFF("di.tot_pages", xc_domaininfo_t, tot_pages);

	SIZE("es.size", xc_evtchn_status_t);
	OFF("es.dom", xc_evtchn_status_t, dom);
	OFF("es.port", xc_evtchn_status_t, port);
	OFF("es.status", xc_evtchn_status_t, status);
	OFF("es.interdomain_dom", xc_evtchn_status_t, u.interdomain.dom);

	SIZE("e820.size", struct e820entry);
	OFF("e820.addr", struct e820entry, addr);
	OFF("e820.len", struct e820entry, size);
	OFF("e820.type", struct e820entry, type);

	OFF("err.code", xc_error, code);
	OFF("err.message", xc_error, message);

	SIZE("lx.size", libxl_domain_config);
	OFF("lx.c_info_type", libxl_domain_config, c_info.type);
	OFF("lx.b_info", libxl_domain_config, b_info);

	CONST(XTL_DEBUG); CONST(XTL_PROGRESS); CONST(XTL_ERROR);
	CONST(XENVER_version);
	CONST(XEN_SYSCTL_PHYSCAP_hvm); CONST(XEN_SYSCTL_PHYSCAP_pv);
	CONST(XEN_SYSCTL_PHYSCAP_hap); CONST(XEN_SYSCTL_PHYSCAP_shadow);
	CONST(XEN_DOMINF_dying); CONST(XEN_DOMINF_hvm_guest); CONST(XEN_DOMINF_shutdown);
	CONST(XEN_DOMINF_paused); CONST(XEN_DOMINF_xs_domain);
	CONST(XEN_DOMINF_shutdownshift); CONST(XEN_DOMINF_shutdownmask);
	CONST(XEN_DOMCTL_CDF_hvm); CONST(XEN_DOMCTL_CDF_hap); CONST(XEN_DOMCTL_CDF_xs_domain);
	CONST(XEN_X86_EMU_LAPIC);
	CONST(XC_DOM_PV_CONTAINER); CONST(XC_DOM_HVM_CONTAINER);
	CONST(VIRQ_DOM_EXC); CONST(HVM_PARAM_STORE_PFN);
	CONST(EVTCHNSTAT_unbound); CONST(EVTCHNSTAT_interdomain);
	CONST(XENFEAT_linux_rsdp_unrestricted);
	CONST(XC_ERROR_NONE);
	CONST(LIBXL_VERSION); CONST(LIBXL_DOMAIN_TYPE_PV); CONST(LIBXL_DOMAIN_TYPE_PVH);
	return 0;
}
