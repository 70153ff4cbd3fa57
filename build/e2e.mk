# End-to-end boot under real Xen 4.17 in QEMU (TCG): Xen's own
# init-xenstore-domain starts our stub domain as a PV guest and dom0 checks
# xenstore through it (build/e2e/README.md).
#   make e2e-pv                       full run (~2-4 minutes)
#   make e2e-pv E2E_STUB_MEM=48       stub memory in MiB
.PHONY: e2e-pv
e2e-pv:
	@bash build/e2e/pv.sh
