//go:build linux && cgo

// dlopen/dlsym of the host's Xen libraries and typed trampolines into them
// (see dl.h and dl.go).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include "dl.h"

#define XS_SYM(lib, name) { #name, L_##lib },
static const struct { const char *name; int lib; } xs_syms[F_N] = { XS_FUNCS(XS_SYM) };
static void *xs_fn[F_N];

const char *xs_sym_name(int i) { return xs_syms[i].name; }
int xs_sym_lib(int i) { return xs_syms[i].lib; }

// dlopen/dlsym with dlerror copied out on the same thread.
void *xs_dlopen(const char *name, char *err, size_t n) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(err, n, "%s", dlerror());
	return h;
}

int xs_dlsym(int i, void *h, char *err, size_t n) {
	dlerror();
	xs_fn[i] = dlsym(h, xs_syms[i].name);
	if (!xs_fn[i]) {
		const char *e = dlerror();
		snprintf(err, n, "%s", e ? e : "NULL");
		return -1;
	}
	return 0;
}

// xs_dlpath is the file a handle was loaded from.
const char *xs_dlpath(void *h) {
	struct link_map *lm = NULL;
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
		return "";
	return lm->l_name;
}

// Trampolines: pointers to libxc/libxl objects are opaque (void *) here.
#define FN(name, type) ((type)xs_fn[F_##name])

P xs_createlogger(int level) { return FN(xtl_createlogger_stdiostream, P (*)(FILE *, int, unsigned))(stderr, level, 0); }
void xs_logger_destroy(P lg) { FN(xtl_logger_destroy, void (*)(P))(lg); }

P xs_interface_open(P lg) { return FN(xc_interface_open, P (*)(P, P, unsigned))(lg, lg, 0); }
int xs_interface_close(P x) { return FN(xc_interface_close, int (*)(P))(x); }
const void *xs_get_last_error(P x) { return FN(xc_get_last_error, const void *(*)(P))(x); }
int xs_version(P x, int cmd) { return FN(xc_version, int (*)(P, int, P))(x, cmd, NULL); }
int xs_physinfo(P x, P pi) { return FN(xc_physinfo, int (*)(P, P))(x, pi); }
int xs_getinfolist(P x, uint32_t first, unsigned max, P info) { return FN(xc_domain_getinfolist, int (*)(P, uint32_t, unsigned, P))(x, first, max, info); }
int xs_flask_sid(P x, char *label, uint32_t len, uint32_t *sid) { return FN(xc_flask_context_to_sid, int (*)(P, char *, uint32_t, uint32_t *))(x, label, len, sid); }
int xs_domain_create(P x, uint32_t *domid, P cfg) { return FN(xc_domain_create, int (*)(P, uint32_t *, P))(x, domid, cfg); }
int xs_max_vcpus(P x, uint32_t d, unsigned n) { return FN(xc_domain_max_vcpus, int (*)(P, uint32_t, unsigned))(x, d, n); }
int xs_setmaxmem(P x, uint32_t d, uint64_t kib) { return FN(xc_domain_setmaxmem, int (*)(P, uint32_t, uint64_t))(x, d, kib); }
int xs_memmap_limit(P x, uint32_t d, unsigned long kib) { return FN(xc_domain_set_memmap_limit, int (*)(P, uint32_t, unsigned long))(x, d, kib); }
int xs_memory_map(P x, uint32_t d, P e, uint32_t n) { return FN(xc_domain_set_memory_map, int (*)(P, uint32_t, P, uint32_t))(x, d, e, n); }
int xs_alloc_unbound(P x, uint32_t d, uint32_t remote) { return FN(xc_evtchn_alloc_unbound, int (*)(P, uint32_t, uint32_t))(x, d, remote); }
int xs_evtchn_status(P x, P st) { return FN(xc_evtchn_status, int (*)(P, P))(x, st); }
int xs_virq_handler(P x, uint32_t d, int virq) { return FN(xc_domain_set_virq_handler, int (*)(P, uint32_t, int))(x, d, virq); }
int xs_hvm_param_set(P x, uint32_t d, uint32_t p, uint64_t v) { return FN(xc_hvm_param_set, int (*)(P, uint32_t, uint32_t, uint64_t))(x, d, p, v); }
int xs_unpause(P x, uint32_t d) { return FN(xc_domain_unpause, int (*)(P, uint32_t))(x, d); }
int xs_destroy(P x, uint32_t d) { return FN(xc_domain_destroy, int (*)(P, uint32_t))(x, d); }

P xs_dom_allocate(P x) { return FN(xc_dom_allocate, P (*)(P, const char *, const char *))(x, NULL, NULL); }
void xs_dom_release(P d) { FN(xc_dom_release, void (*)(P))(d); }
char *xs_dom_strdup(P d, const char *s) { return FN(xc_dom_strdup, char *(*)(P, const char *))(d, s); }
int xs_dom_kernel_file(P d, const char *f) { return FN(xc_dom_kernel_file, int (*)(P, const char *))(d, f); }
int xs_dom_module_file(P d, const char *f) { return FN(xc_dom_module_file, int (*)(P, const char *, const char *))(d, f, NULL); }
int xs_dom_boot_xen_init(P d, P x, uint32_t id) { return FN(xc_dom_boot_xen_init, int (*)(P, P, uint32_t))(d, x, id); }
bool xs_dom_feature_get(P d, unsigned nr) { return FN(xc_dom_feature_get, bool (*)(P, unsigned))(d, nr); }
bool xs_dom_translated(P d) { return FN(xc_dom_translated, bool (*)(P))(d); }
int xs_dom_mem_init(P d, unsigned mib) { return FN(xc_dom_mem_init, int (*)(P, unsigned))(d, mib); }

// The builder steps that take only the image: F_xc_dom_parse_image etc.
int xs_dom_step(int f, P d) { return ((int (*)(P))xs_fn[f])(d); }

int xs_libxl_ctx_alloc(P *ctx, P lg) { return FN(libxl_ctx_alloc, int (*)(P *, int, unsigned, P))(ctx, 0, 0, lg); }
int xs_libxl_ctx_free(P ctx) { return FN(libxl_ctx_free, int (*)(P))(ctx); }
void xs_libxl_config_init(P c) { FN(libxl_domain_config_init, void (*)(P))(c); }
void xs_libxl_config_dispose(P c) { FN(libxl_domain_config_dispose, void (*)(P))(c); }
void xs_libxl_build_info_init_type(P b, int type) { FN(libxl_domain_build_info_init_type, void (*)(P, int))(b, type); }
char *xs_libxl_config_to_json(P ctx, P c) { return FN(libxl_domain_config_to_json, char *(*)(P, P))(ctx, c); }
int xs_libxl_userdata_store(P ctx, uint32_t d, const char *id, const uint8_t *data, int len) {
	return FN(libxl_userdata_store, int (*)(P, uint32_t, const char *, const uint8_t *, int))(ctx, d, id, data, len);
}
