# End-to-end boots under real Xen in QEMU (TCG); see build/e2e/README.md.
#   make e2e        every boot that passes today, each run even when an
#                   earlier one failed; fails if any did:
#                   e2e-pvh, e2e-perf-c, e2e-deb (Xen 4.17), e2e-pvh-4.20,
#                   e2e-daemon-4.20, e2e-pv-4.20, e2e-pvh-4.22, e2e-daemon-4.22,
#                   e2e-pv-4.22, e2e-arm, e2e-arm-dom0less, e2e-lu-c-4.20 (e2e-daemon and e2e-pv
#                   on 4.17 left out for CI time: Xen's own init-xenstore-domain
#                   runs on 4.20 and 4.22; build/e2e/README.md, "CI time")
#   make e2e-pvh    4.17, HVM: our launcher starts a PVH stub; PVH domU,
#                   guest attacks (~3-4 minutes)
#   make e2e-perf-c 4.17, HVM: Debian's C xenstored and OUR xenstored in dom0
#                   in turn, round by round (xenstore-control live-update -f
#                   between them); the PVH domU of e2e-pvh measures the ring
#                   against each; prints @@E2E PERF KIND
#                   stub= ours-dom0= c= with stub from e2e-pvh's step 3p of the
#                   same run, and the goals (~6-8 min)
#   make e2e-perf   e2e-pvh, then e2e-perf-c, as one run
#   make e2e-pv     4.17, PV only: Xen's init-xenstore-domain starts our stub
#                   as PV (~2-3 minutes)
#   make e2e-daemon 4.17, PV only: our xenstored in dom0, started by Debian's
#                   /etc/init.d/xen; xl create/destroy (~1.5-3 minutes)
#   make e2e-lu-c   4.17, PV only: Debian's C xenstored in dom0 (Debian's
#                   /etc/init.d/xen), a domU that holds a watch and polls;
#                   xenstore-control live-update -f to ours and back to C,
#                   xl create/destroy after each (~3 minutes)
#   make e2e-lu-c-4.20, e2e-lu-c-4.22   the same on Xen 4.20 (Debian 13) and
#                   4.22 (build/xen422.sh's C xenstored)
#   make e2e-deb-switch  4.17, PV only: C xenstored serves; dpkg -i of make
#                   deb's package, xsstub-switch to-ours, dpkg -r back to C
#   make e2e-pvh-4.20     e2e-pvh on Debian 13's Xen 4.20 (trixie dom0 and
#                   domU kernel 6.12; the launcher dlopens 4.20's libraries)
#   make e2e-daemon-4.20  e2e-daemon on Debian 13's Xen 4.20
#   make e2e-deb    4.17, HVM: dpkg -i of `make deb`'s package in dom0, then
#                   Debian's unmodified /etc/init.d/xen starts our PVH stub;
#                   PV domU, dpkg -r (~1.5-2 minutes warm)
#   make e2e-deb-4.20     the same on Debian 13's Xen 4.20
#   make e2e-pv-4.20      HVM host: Xen 4.20's own init-xenstore-domain
#                   starts the PV-only stub kernel (no PVH note) as PV
#   make e2e-pv E2E_HOST=hvm E2E_XEN=4.20   the same, spelt out
#   make e2e-pv E2E_STUB_MEM=48       stub memory in MiB
#   make e2e-arm    Xen 4.17 on arm64 (qemu-system-aarch64, TCG): the arm64
#                   build of our xenstored in dom0, started by Debian's
#                   /etc/init.d/xen; xl create/destroy of a domU, live
#                   update (~1.5 min warm; arm64 packages fetched once
#                   through a private apt configuration)
#   make e2e-arm-dom0less  Xen 4.22 (cross-built) dom0less on arm64, no dom0:
#                   our stub is the xenstore domain (capabilities 0x4) and
#                   introduces two xen,enhanced domUs, which talk through it;
#                   the stub boots make image-arm64's initramfs; the control
#                   domU live-updates it (~50 s warm; cold: the arm64 kernel
#                   and Xen 4.22 for arm64 are built first, ~9 min)
.PHONY: e2e e2e-pvh e2e-pv e2e-daemon e2e-daemon-4.20 e2e-pv-4.20
e2e:
	@rc=0; t0=$$(date +%s); export E2E_RUN_START=$$t0; \
	for b in "pvh.sh" "perf-c.sh" "deb.sh" "pvh.sh 4.20" "daemon.sh 4.20" "pv.sh 4.20 hvm" \
		"pvh.sh 4.22" "daemon.sh 4.22" "pv.sh 4.22 hvm" "arm-daemon.sh" "arm-dom0less.sh" "lu-c.sh 4.20"; do \
		set -- $$b; t=$$(date +%s); \
		E2E_XEN=$${2:-4.17} E2E_HOST=$${3:-pv} E2E_NOBUILD=$$(case $$1 in pvh.sh | deb.sh | arm-daemon.sh | arm-dom0less.sh) ;; *) echo 1 ;; esac) bash build/e2e/$$1 || { rc=1; failed="$$failed $$b"; }; \
		echo "== make e2e: $$b took $$(( $$(date +%s) - t )) s"; \
	done; \
	echo "== make e2e: all boots took $$(( $$(date +%s) - t0 )) s"; \
	if [ $$rc != 0 ]; then echo "== make e2e: FAILED:$$failed (see above)" >&2; exit 1; fi; \
	echo "== make e2e: every boot passed"

e2e-pvh:
	@bash build/e2e/pvh.sh

.PHONY: e2e-arm e2e-arm-dom0less
e2e-arm:
	@bash build/e2e/arm-daemon.sh

# Xen 4.22 dom0less on arm64, our stub the xenstore domain, two
# xen,enhanced domUs (build/e2e/arm-dom0less.sh); in make e2e.
e2e-arm-dom0less:
	@bash build/e2e/arm-dom0less.sh

e2e-pv:
	@bash build/e2e/pv.sh

e2e-daemon:
	@bash build/e2e/daemon.sh

e2e-daemon-4.20:
	@E2E_XEN=4.20 bash build/e2e/daemon.sh

.PHONY: e2e-lu-c e2e-lu-c-4.20 e2e-lu-c-4.22
e2e-lu-c:
	@bash build/e2e/lu-c.sh

e2e-lu-c-4.20:
	@E2E_XEN=4.20 bash build/e2e/lu-c.sh

e2e-lu-c-4.22:
	@E2E_XEN=4.22 bash build/e2e/lu-c.sh

e2e-pv-4.20:
	@E2E_XEN=4.20 E2E_HOST=hvm bash build/e2e/pv.sh

.PHONY: e2e-pvh-4.20
e2e-pvh-4.20:
	@E2E_XEN=4.20 bash build/e2e/pvh.sh

.PHONY: e2e-deb e2e-deb-4.20
e2e-deb:
	@bash build/e2e/deb.sh

e2e-deb-4.20:
	@E2E_XEN=4.20 bash build/e2e/deb.sh

# The operator's switch without a reboot (packaging/README.md): Debian's C
# xenstored serves, dpkg -i, xsstub-switch to-ours, dpkg -r hands back to C.
.PHONY: e2e-deb-switch
e2e-deb-switch:
	@E2E_DEB_MODE=switch bash build/e2e/deb.sh

.PHONY: e2e-perf-c e2e-perf
e2e-perf-c:
	@bash build/e2e/perf-c.sh

e2e-perf:
	@rc=0; export E2E_RUN_START=$$(date +%s); \
	bash build/e2e/pvh.sh || rc=1; \
	E2E_NOBUILD=1 bash build/e2e/perf-c.sh || rc=1; \
	exit $$rc

# Xen 4.22.0 built from ../shared/xen-src (build/xen422.sh; cached in
# $XSSTUB_CACHE/xen-4.22, ~2.5 min cold).
.PHONY: xen-4.22
xen-4.22:
	@bash build/xen422.sh >/dev/null

# Xen 4.22.0's hypervisor for arm64, cross-built from the same tarball
# (build/xen422-arm64.sh; cached in $XSSTUB_CACHE/xen-4.22-arm64; 142 s
# cold under load, 0.1 s warm), for the dom0less boot.
.PHONY: xen-4.22-arm64
xen-4.22-arm64:
	@bash build/xen422-arm64.sh >/dev/null

# Xen 4.22.0 built from source (build/xen422.sh): the PVH stub through our
# launcher, our xenstored as the dom0 daemon, Xen 4.22's own
# init-xenstore-domain starting the PV-only stub kernel on an HVM host.
.PHONY: e2e-pvh-4.22 e2e-daemon-4.22 e2e-pv-4.22
e2e-pvh-4.22:
	@E2E_XEN=4.22 bash build/e2e/pvh.sh

e2e-daemon-4.22:
	@E2E_XEN=4.22 bash build/e2e/daemon.sh

e2e-pv-4.22:
	@E2E_XEN=4.22 E2E_HOST=hvm bash build/e2e/pv.sh
