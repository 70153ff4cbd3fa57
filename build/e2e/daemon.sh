#!/usr/bin/env bash
# End-to-end test of the dom0-daemon mode (make e2e-daemon): OUR xenstored
# (bin/xenstored) runs in dom0 the way Debian's /etc/init.d/xen runs
# whatever /etc/default/xen's XENSTORED names — Debian's own init script
# (xen-utils-common) runs unmodified, under dash and dpkg's start-stop-daemon —
# and serves dom0's tools on its Unix socket, dom0's kernel ring, and the
# guests' rings. Xen 4.17 under QEMU (TCG), PV-only (-cpu qemu64,-svm: the
# cheapest boot; no stub domain here). dom0's /init is
# build/e2e/daemon-dom0-init.sh.
#
# Packages and dom0's initramfs base come from build/e2e/pv.sh
# (E2E_PREPARE_ONLY=1, E2E_NOSTUB=1); this script adds a per-run overlay:
# /init, our xenstored as /usr/sbin/xsstub-xenstored, /etc/default/xen,
# what Debian's init script sources (/lib/lsb/init-functions, stubs),
# xsprobe, and a PV domU whose /init reads its name through its kernel's
# xenbus with xsprobe, holds a watch and polls a node across a live update.
#
# With E2E_MODE=lu-c (build/e2e/lu-c.sh) the same overlay starts the
# release's C xenstored instead, dom0's /init is build/e2e/lu-c-dom0-init.sh,
# and the domU polls (xsprobe poll) across live updates C -> ours -> C.
#
# Environment:
#   E2E_MODE       daemon (default) or lu-c
#   E2E_XEN        4.17 (default) or 4.20 (see pv.sh)
#   E2E_TIMEOUT    seconds for the boot (default 420)
#   E2E_LOG        serial log (default images/e2e-daemon[-4.20].log)
#   E2E_NOBUILD=1  skip `make build`
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
XENV=${E2E_XEN:-4.17}
MODE=${E2E_MODE:-daemon}
case $MODE in
daemon) INIT=daemon-dom0-init.sh XSD=/usr/sbin/xsstub-xenstored ;;
lu-c) INIT=lu-c-dom0-init.sh XSD=/usr/lib/xen-$XENV/bin/xenstored ;;
*) echo "E2E_MODE=$MODE: want daemon or lu-c" >&2; exit 2 ;;
esac
TIMEOUT=${E2E_TIMEOUT:-$([ $MODE = daemon ] && echo 420 || echo 720)}
LOG=${E2E_LOG:-$ROOT/images/e2e-$MODE$([ "$XENV" = 4.17 ] || echo "-$XENV").log}
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-%s [%ss]: %s\n' "$MODE" "$(since)" "$*"; }
die() { printf '== e2e-%s [%ss]: FAIL: %s\n' "$MODE" "$(since)" "$*" >&2; exit 1; }

# --- 1. packages, dom0 base, Xen (shared with pv.sh; no stub needed)
say "preparing (build/e2e/pv.sh, E2E_PREPARE_ONLY=1 E2E_NOSTUB=1, Xen $XENV)"
PREP=$(mktemp)
E2E_XEN=$XENV E2E_PREPARE_ONLY=1 E2E_NOSTUB=1 E2E_PREPARED=$PREP bash "$HERE/pv.sh" || die "preparation failed"
. "$PREP"
rm -f "$PREP"
[ -n "${BASE:-}" ] && [ -f "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"

# --- 2. our daemon and the raw wire client
if [ -z "${E2E_NOBUILD:-}" ]; then
	say "make build; xsprobe (static)"
	make -s -C "$ROOT" build
fi
[ -x "$ROOT/bin/xenstored" ] || die "no $ROOT/bin/xenstored (make build)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
CGO_ENABLED=0 go build -C "$ROOT" -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe

# --- 3. the per-run overlay of dom0's initramfs (build/e2e/daemon-overlay.sh,
# shared with arm-daemon.sh), plus what lu-c adds: the release's C
# xenstored (its libraries are the toolstack's, in the base; 4.22's base has
# the binary already), xsstub-switch, a second domU, the polling domU.
daemon_overlay_extra() {
	[ $MODE = lu-c ] || return 0
	if [ "$XENV" != 4.22 ]; then
		[ -x "$PKGROOT$XSD" ] || die "no C xenstored at $PKGROOT$XSD"
		mkdir -p "$O$(dirname $XSD)"
		cp "$PKGROOT$XSD" "$O$XSD"
	fi
	cp "$ROOT/packaging/xsstub-switch" $O/usr/sbin/xsstub-switch
	sed -e 's/^name = .*/name = "domu2"/' $O/etc/xen/domud.cfg >$O/etc/xen/domu2.cfg
	sed -i 's/^extra = "/extra = "e2e.poll /' $O/etc/xen/domud.cfg
}
. "$HERE/daemon-overlay.sh"
XSD_BIN=$ROOT/bin/xenstored XSPROBE=$W/xsprobe SSD=/sbin/start-stop-daemon DASH=/bin/dash DOMU_TYPE=pv daemon_overlay

# --- 4. boot and verdict (build/e2e/boot.sh)
. "$HERE/boot.sh"
if [ $MODE = daemon ]; then
	boot_and_judge -svm "Xen $XENV, PV only; OUR xenstored in dom0 via Debian's /etc/init.d/xen"
else
	boot_and_judge -svm "Xen $XENV, PV only; C xenstored in dom0 via Debian's /etc/init.d/xen, live update C -> ours -> C"
fi
