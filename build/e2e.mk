# End-to-end boots under real Xen 4.17 in QEMU (TCG); see build/e2e/README.md.
#   make e2e        both boots: PVH (our launcher, PVH stub, PVH domU, guest
#                   attacks) then PV-only (Xen's init-xenstore-domain)
#   make e2e-pvh    the first boot only (~3-6 minutes)
#   make e2e-pv     the second boot only (~2-4 minutes)
#   make e2e-pv E2E_STUB_MEM=48       stub memory in MiB
# Both boots run even when the first fails; the target fails if either did.
.PHONY: e2e e2e-pvh e2e-pv
e2e:
	@rc=0; \
	bash build/e2e/pvh.sh || rc=1; \
	E2E_NOBUILD=1 bash build/e2e/pv.sh || rc=1; \
	if [ $$rc != 0 ]; then echo "== make e2e: FAILED (see above)" >&2; exit 1; fi; \
	echo "== make e2e: both boots passed"

e2e-pvh:
	@bash build/e2e/pvh.sh

e2e-pv:
	@bash build/e2e/pv.sh
