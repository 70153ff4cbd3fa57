#!/usr/bin/env bash
# End-to-end test of live update between Xen's C xenstored and ours on real
# Xen (make e2e-lu-c, e2e-lu-c-4.20, e2e-lu-c-4.22): Debian's unmodified
# /etc/init.d/xen starts the release's C xenstored in dom0 (PV-only Xen in
# QEMU, as build/e2e/daemon.sh, whose overlay this is with E2E_MODE=lu-c); a
# PV domU holds a watch and polls; `xenstore-control live-update -f` switches
# to our xenstored and back to C. dom0's /init: build/e2e/lu-c-dom0-init.sh.
# Environment as daemon.sh (E2E_XEN 4.17, 4.20 or 4.22; E2E_TIMEOUT default
# 720; E2E_LOG default images/e2e-lu-c[-XEN].log).
exec env E2E_MODE=lu-c bash "$(dirname "$0")/daemon.sh" "$@"
