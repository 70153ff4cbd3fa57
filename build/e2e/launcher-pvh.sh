#!/usr/bin/env bash
# End-to-end test of the launcher (bin/xenstore-stubdom-launch, installed in dom0 as
# xenstore-stubdom-launch) under real Xen 4.17 in QEMU (TCG). Reuses the
# dom0 initramfs base and the unpacked Debian packages that build/e2e/pv.sh
# caches (it runs pv.sh with E2E_PREPARE_ONLY=1 first), and adds the launcher, its shared
# libraries and build/e2e/launcher-dom0-init.sh as dom0's /init.
#
# Environment:
#   LAUNCH_MODE    pvh (default: -cpu qemu64,+svm,+npt, Xen has HVM+HAP) or
#                  pv (-cpu qemu64,-svm; the launcher gets --pv too)
#   E2E_STUB_MEM   stub memory in MiB (default 64)
#   E2E_STUB_PARAM extra --param words
#   E2E_DOMU       1 (default) to create/destroy a PV domU
#   E2E_TIMEOUT    seconds for the whole boot (default 400)
#   E2E_LOG        serial log (default images/e2e-launcher-$LAUNCH_MODE.log)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e
MODE=${LAUNCH_MODE:-pvh}
STUB_MEM=${E2E_STUB_MEM:-64}
STUB_PARAM="sysctl.vm.overcommit_memory=1 console=hvc0 loglevel=5 ${E2E_STUB_PARAM:-}"
DOMU=${E2E_DOMU:-1}
TIMEOUT=${E2E_TIMEOUT:-400}
LOG=${E2E_LOG:-$ROOT/images/e2e-launcher-$MODE.log}
KERNEL=$ROOT/images/xenstore-stubdom.kernel
IMAGE=$ROOT/images/xenstore-stubdom.cpio.gz
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-launcher [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-launcher [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

case $MODE in
pvh) CPU=qemu64,+svm,+npt LFLAGS= ;;
pv) CPU=qemu64,-svm LFLAGS=--pv ;;
*) die "LAUNCH_MODE=$MODE: want pvh or pv" ;;
esac
# The shared preparation (packages, dom0 base, Xen, make kernel image).
PREP=$(mktemp)
E2E_PREPARE_ONLY=1 E2E_PREPARED=$PREP bash "$HERE/pv.sh" || die "preparation (build/e2e/pv.sh) failed"
. "$PREP"
rm -f "$PREP"
[ -n "${BASE:-}" ] && [ -f "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"
[ -f "$KERNEL" ] && [ -f "$IMAGE" ] || die "no $KERNEL or $IMAGE (make kernel image)"

say "make build"
make -s -C "$ROOT" build
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
O=$W/o
mkdir -p $O/stub $O/e2e $O/usr/local/bin
cp "$HERE/launcher-dom0-init.sh" $O/init
cp "$HERE/dom0-lib.sh" $O/e2e/
chmod +x $O/init
cp "$ROOT/bin/xenstore-stubdom-launch" $O/usr/local/bin/xenstore-stubdom-launch
for l in $(LD_LIBRARY_PATH= ldd "$ROOT/bin/xenstore-stubdom-launch" | awk '/=>/ {print $3}'); do
	mkdir -p "$O/$(dirname "$l")"
	cp -L "$l" "$O/$l"
done
cp "$KERNEL" $O/stub/kernel
cp "$IMAGE" $O/stub/image.cpio.gz
cat >$O/e2e/config <<CFG
STUB_MEM=$STUB_MEM
STUB_PARAM="$STUB_PARAM"
LFLAGS="$LFLAGS"
DOMU=$DOMU
CFG
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# One emulated CPU: see build/e2e/boot.sh (with -smp 2, PVH guests, ours
# included, triple-faulted under TCG; -smp 1 passed 5 of 5).
E2E_SMP=${E2E_SMP:-1}
XEN_CMDLINE="console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=$E2E_SMP loglvl=all guest_loglvl=all noreboot console_timestamps=boot"
DOM0_CMDLINE="console=hvc0 earlyprintk=xen loglevel=5"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
say "booting Xen (-cpu $CPU), stub ${STUB_MEM} MiB; log $LOG"
timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu $CPU -m 1536 -smp $E2E_SMP \
	-display none -monitor none -serial "file:$LOG" -no-reboot \
	-kernel "$CACHE/xen" -append "$XEN_CMDLINE" \
	-initrd "$PKGROOT/boot/vmlinuz-$KVER $DOM0_CMDLINE,$W/dom0.cpio.gz" </dev/null &
QPID=$!
seen=0
while kill -0 $QPID 2>/dev/null; do
	sleep 2
	n=$(grep -ac '^@@E2E' "$LOG" || true)
	if ((n > seen)); then
		grep -a '^@@E2E' "$LOG" | tail -n +$((seen + 1)) | sed "s/^/   [$(since)s] /"
		seen=$n
	fi
	if grep -aq '^@@E2E DONE' "$LOG"; then
		sleep 3
		kill $QPID 2>/dev/null || true
	fi
done
wait $QPID || true
C=$(tr -d '\r' <"$LOG")
npass=$(grep -ac '^@@E2E PASS' <<<"$C" || true)
nfail=$(grep -ac '^@@E2E FAIL' <<<"$C" || true)
if ! grep -aq '^@@E2E DONE' <<<"$C" || ((nfail > 0)) || ((npass == 0)); then
	grep -av '^\[stub\]' <<<"$C" | tail -80
	echo "----- stub console -----"
	grep -a '^\[stub\]' <<<"$C" | tail -60
	die "$npass passed, $nfail failed (log $LOG)"
fi
grep -a '^@@E2E \(PASS\|FAIL\)' <<<"$C"
say "passed: $npass checks (log $LOG)"
