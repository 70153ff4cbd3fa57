/*
 * launcher/xc's C side: the table of functions it resolves with dlsym
 * (dl.c) and the trampolines that call them. Only dl.go, cmem.go and xc.go
 * include this.
 */
#ifndef XS_DL_H
#define XS_DL_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The libraries, in load order (each needs the ones before it).
enum { L_LOG, L_CTRL, L_GUEST, L_LIGHT, L_N };

// Every function the launcher calls: its library and name. The prototypes
// are in dl.c's trampolines; testdata/layout.c asserts each one against
// every release's headers.
#define XS_FUNCS(X) \
	X(LOG, xtl_createlogger_stdiostream) X(LOG, xtl_logger_destroy) \
	X(CTRL, xc_interface_open) X(CTRL, xc_interface_close) X(CTRL, xc_get_last_error) \
	X(CTRL, xc_version) X(CTRL, xc_physinfo) X(CTRL, xc_domain_getinfolist) \
	X(CTRL, xc_flask_context_to_sid) X(CTRL, xc_domain_create) X(CTRL, xc_domain_max_vcpus) \
	X(CTRL, xc_domain_setmaxmem) X(CTRL, xc_domain_set_memmap_limit) \
	X(CTRL, xc_domain_set_memory_map) X(CTRL, xc_evtchn_alloc_unbound) X(CTRL, xc_evtchn_status) \
	X(CTRL, xc_domain_set_virq_handler) X(CTRL, xc_hvm_param_set) X(CTRL, xc_domain_unpause) \
	X(CTRL, xc_domain_destroy) \
	X(GUEST, xc_dom_allocate) X(GUEST, xc_dom_release) X(GUEST, xc_dom_strdup) \
	X(GUEST, xc_dom_kernel_file) X(GUEST, xc_dom_module_file) X(GUEST, xc_dom_boot_xen_init) \
	X(GUEST, xc_dom_parse_image) X(GUEST, xc_dom_feature_get) X(GUEST, xc_dom_translated) \
	X(GUEST, xc_dom_mem_init) X(GUEST, xc_dom_boot_mem_init) X(GUEST, xc_dom_build_image) \
	X(GUEST, xc_dom_boot_image) X(GUEST, xc_dom_gnttab_init) \
	X(LIGHT, libxl_ctx_alloc) X(LIGHT, libxl_ctx_free) X(LIGHT, libxl_domain_config_init) \
	X(LIGHT, libxl_domain_config_dispose) X(LIGHT, libxl_domain_build_info_init_type) \
	X(LIGHT, libxl_domain_config_to_json) X(LIGHT, libxl_userdata_store)

#define XS_ENUM(lib, name) F_##name,
enum { XS_FUNCS(XS_ENUM) F_N };
#define P void *  // libxc/libxl objects are opaque here
const char *xs_sym_name(int i);
int xs_sym_lib(int i);
void *xs_dlopen(const char *name, char *err, size_t n);
int xs_dlsym(int i, void *h, char *err, size_t n);
const char *xs_dlpath(void *h);
P xs_createlogger(int level);
void xs_logger_destroy(P lg);
P xs_interface_open(P lg);
int xs_interface_close(P x);
const void *xs_get_last_error(P x);
int xs_version(P x, int cmd);
int xs_physinfo(P x, P pi);
int xs_getinfolist(P x, uint32_t first, unsigned max, P info);
int xs_flask_sid(P x, char *label, uint32_t len, uint32_t *sid);
int xs_domain_create(P x, uint32_t *domid, P cfg);
int xs_max_vcpus(P x, uint32_t d, unsigned n);
int xs_setmaxmem(P x, uint32_t d, uint64_t kib);
int xs_memmap_limit(P x, uint32_t d, unsigned long kib);
int xs_memory_map(P x, uint32_t d, P e, uint32_t n);
int xs_alloc_unbound(P x, uint32_t d, uint32_t remote);
int xs_evtchn_status(P x, P st);
int xs_virq_handler(P x, uint32_t d, int virq);
int xs_hvm_param_set(P x, uint32_t d, uint32_t p, uint64_t v);
int xs_unpause(P x, uint32_t d);
int xs_destroy(P x, uint32_t d);
P xs_dom_allocate(P x);
void xs_dom_release(P d);
char *xs_dom_strdup(P d, const char *s);
int xs_dom_kernel_file(P d, const char *f);
int xs_dom_module_file(P d, const char *f);
int xs_dom_boot_xen_init(P d, P x, uint32_t id);
bool xs_dom_feature_get(P d, unsigned nr);
bool xs_dom_translated(P d);
int xs_dom_mem_init(P d, unsigned mib);
int xs_dom_step(int f, P d);
int xs_libxl_ctx_alloc(P *ctx, P lg);
int xs_libxl_ctx_free(P ctx);
void xs_libxl_config_init(P c);
void xs_libxl_config_dispose(P c);
void xs_libxl_build_info_init_type(P b, int type);
char *xs_libxl_config_to_json(P ctx, P c);
int xs_libxl_userdata_store(P ctx, uint32_t d, const char *id, const uint8_t *data, int len);
#endif
