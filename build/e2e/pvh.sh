#!/usr/bin/env bash
# End-to-end test under real Xen with HVM (make e2e-pvh, e2e-pvh-4.20): Debian's
# Xen 4.17 (or Debian 13's 4.20, E2E_XEN=4.20) boots under QEMU (TCG) with
# `-cpu qemu64,+svm,+npt`, so Xen has
# HVM with HAP, and dom0 starts our stub domain as a PVH guest with OUR
# launcher (bin/xenstore-stubdom-launch; no xenstored in dom0). dom0's /init
# is build/e2e/pvh-dom0-init.sh: xenstore from dom0, xl list, xl create of a
# PVH domU whose kernel's xenbus talks to our store, guest-side attacks
# (huge directory, request flood) with build/e2e/xsprobe, a live update of
# the stub with Xen's xenstore-control while the domU holds a watch, the
# domU filling the store up to the memory ceiling, xl destroy and
# @releaseDomain, the stub's console free of panics and errors.
#
# Packages, dom0's initramfs base, `make kernel image` come from
# `build/e2e/pv.sh` (E2E_PREPARE_ONLY=1); this script adds a per-run overlay.
#
# Environment:
#   E2E_XEN        4.17 (default) or 4.20 (Debian 13; see pv.sh). On 4.20
#                  the launcher must not link libxen*.so.4.17 (it dlopens).
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
#   E2E_STUB_MEM   stub memory in MiB (default 32)
#   E2E_STUB_PARAM extra words for the stub's kernel command line
#   E2E_TIMEOUT    seconds for the boot (default 1200: with the fill and step 3p
#                  a loaded host took 592 s; at load 6-11, beside four other
#                  engineers' QEMU boots and tests, 937 s was not enough)
#   E2E_LOG        serial log (default images/e2e-pvh.log)
#   E2E_NOBUILD=1  skip `make kernel image`
#   E2E_LIVE_UPDATE=0  skip step 3c (the stub's live update), e.g. to tell
#                  the update's share of the stub's memory from the fill's
#   E2E_FILL       1: run step 3d (the domU fills the store to the memory
#                  ceiling; the stub must survive it and the `xl destroy`
#                  after); 0: skip it. Default 1 on Xen 4.17, 0 on 4.20 (CI
#                  time: the fill takes ~2 min of emulated guest time)
#   E2E_PERF=0|1   step 3p, the domU's ring measurements (default 1 on 4.17,
#                  0 on 4.20), saved in E2E_PERF_OUT (default
#                  images/e2e-perf-ours.txt) for build/e2e/perf-c.sh
#   E2E_PERF_SECS, E2E_PERF_ROUNDS  seconds per measured kind and round
#                  (default 3), rounds over all kinds (default 3)
#   E2E_DOMU_EXTRA extra words for the domU's kernel command line
#                  (e2e.rebootonce: its first boot reboots, to test the test)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e
STUB_MEM=${E2E_STUB_MEM:-32}
STUB_PARAM="sysctl.vm.overcommit_memory=1 console=hvc0 loglevel=5 ${E2E_STUB_PARAM:-}"
TIMEOUT=${E2E_TIMEOUT:-1200}
XENV=${E2E_XEN:-4.17}
LOG=${E2E_LOG:-$ROOT/images/e2e-pvh$([ "$XENV" = 4.17 ] || echo "-$XENV").log}
# The ring measurements (step 3p) and where they are saved for perf-c.sh.
PERF=${E2E_PERF:-$([ "$XENV" = 4.17 ] && echo 1 || echo 0)}
PERFOUT=${E2E_PERF_OUT:-$ROOT/images/e2e-perf-ours$([ "$XENV" = 4.17 ] || echo "-$XENV").txt}
KERNEL=$ROOT/images/xenstore-stubdom.kernel
IMAGE=$ROOT/images/xenstore-stubdom.cpio.gz
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-pvh [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-pvh [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. packages, dom0 base, Xen, our kernel and image (shared with pv.sh)
say "preparing (build/e2e/pv.sh, E2E_PREPARE_ONLY=1)"
PREP=$(mktemp)
E2E_PREPARE_ONLY=1 E2E_PREPARED=$PREP bash "$HERE/pv.sh" || die "preparation failed"
. "$PREP"
rm -f "$PREP"
[ -n "${BASE:-}" ] && [ -f "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"
[ -f "$KERNEL" ] && [ -f "$IMAGE" ] || die "no $KERNEL or $IMAGE"

# QEMU must exist and accept the CPU model; say so plainly if not.
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
qemu-system-x86_64 -accel help 2>/dev/null | grep -qw tcg || die "qemu-system-x86_64 has no TCG: $(qemu-system-x86_64 -accel help 2>&1 | head -3)"
qemu-system-x86_64 -cpu help 2>/dev/null | grep -qw qemu64 || die "qemu-system-x86_64 has no qemu64 CPU model: $(qemu-system-x86_64 -version 2>&1 | head -1)"

# --- 2. our launcher and the raw wire client
say "make build; xsprobe (static)"
make -s -C "$ROOT" build
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
CGO_ENABLED=0 go build -C "$ROOT" -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe

# --- 3. the per-run overlay of dom0's initramfs
O=$W/o
mkdir -p $O/stub $O/e2e $O/usr/local/bin $O/guest $O/etc/xen
cp "$HERE/pvh-dom0-init.sh" $O/init
mkdir -p $O/e2e && cp "$HERE/stubinfo.sh" $O/e2e/stubinfo.sh
chmod +x $O/init
cp "$ROOT/bin/xenstore-stubdom-launch" $O/usr/local/bin/
for l in $(LD_LIBRARY_PATH= ldd "$ROOT/bin/xenstore-stubdom-launch" | awk '/=>/ {print $3}'); do
	if [ -n "${LIBROOT:-}" ]; then
		# dom0 runs trixie's glibc and Xen libraries: take none of the
		# host's; a launcher bound to 4.17's libraries cannot run here.
		n=$(basename "$l")
		case $n in libxen*.so.4.17) die "the launcher links $n: Xen $XENV needs the version-independent launcher" ;; esac
		[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/$n" ] && continue
		mkdir -p "$O/usr/lib/x86_64-linux-gnu"
		cp -L "$l" "$O/usr/lib/x86_64-linux-gnu/$n"
		continue
	fi
	mkdir -p "$O/$(dirname "$l")"
	cp -L "$l" "$O/$l"
done
cp "$W/xsprobe" $O/usr/local/bin/
cp "$KERNEL" $O/stub/kernel
cp "$IMAGE" $O/stub/image.cpio.gz
# The live update's payload (xenstore-control live-update FILE, stub mode:
# sent in chunks): the new xenstored binary itself, here the very binary
# in the stub's image (static, CGO_ENABLED=0, as build/image.sh builds it).
mkdir -p $W/img
gzip -dc "$IMAGE" | (cd $W/img && cpio -id --quiet init)
[ -x $W/img/init ] || die "no /init (xenstored) in $IMAGE"
cp $W/img/init $O/stub/xenstored-new
cat >$O/e2e/config <<CFG
STUB_MEM=$STUB_MEM
STUB_PARAM="$STUB_PARAM"
LIVE_UPDATE=${E2E_LIVE_UPDATE:-1}
FILL=${E2E_FILL:-$([ "$XENV" = 4.17 ] && echo 1 || echo 0)}
PERF=$PERF
PERF_SECS=${E2E_PERF_SECS:-3}
PERF_ROUNDS=${E2E_PERF_ROUNDS:-3}
CFG
cp "$HERE/dom0-lib.sh" "$HERE/xen422-lib.sh" $O/e2e/
# The PVH domU (build/e2e/pvh-domu.sh): Debian's kernel (already in the
# base as /guest/vmlinuz), a busybox initramfs with xsprobe and
# build/e2e/pvh-guest-init.sh.
. "$HERE/pvh-domu.sh"
pvh_domu_image $O "${E2E_DOMU_EXTRA:-}"
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot and verdict (build/e2e/boot.sh)
. "$(dirname "$0")/boot.sh"
rm -f "$PERFOUT" # only this boot's measurements may be found there
after_boot() {
	local serving
	serving=$(awk '/@@E2E PASS launcher / {print $1; exit}' "$HOSTMARKS")
	[ -n "$serving" ] && say "host seconds from QEMU start to our stub serving (launcher returned): ~${serving}s"
	# The ring measurements, for the C xenstored boot (perf-c.sh) to print
	# beside its own; only those that succeeded (perf_step).
	if [ "$PERF" = 1 ] && [ -n "$(perf_results "$LOG")" ]; then
		{
			echo "# our PVH stub, ring measurements by the domU (pvh.sh, Xen $XENV, $(date -u +%FT%TZ), log $LOG)"
			echo "# calibrate $(perf_calibration "$LOG")"
			perf_cpu "$LOG" | sed 's/^/# cpu /'
			perf_results "$LOG"
		} >"$PERFOUT"
		say "ring measurements (ours) saved in $PERFOUT:"
		sed 's/^/   /' "$PERFOUT"
	fi
	return 0
}
boot_and_judge +svm,+npt "Xen $XENV, HVM+HAP; stub PVH ${STUB_MEM} MiB via our launcher"
