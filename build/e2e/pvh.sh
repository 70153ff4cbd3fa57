#!/usr/bin/env bash
# End-to-end test under real Xen with HVM (first half of `make e2e`): Debian's
# Xen 4.17 boots under QEMU (TCG) with `-cpu qemu64,+svm,+npt`, so Xen has
# HVM with HAP, and dom0 starts our stub domain as a PVH guest with OUR
# launcher (bin/xenstore-stubdom-launch; no xenstored in dom0). dom0's /init
# is build/e2e/pvh-dom0-init.sh: xenstore from dom0, xl list, xl create of a
# PVH domU whose kernel's xenbus talks to our store, guest-side attacks
# (huge directory, request flood) with build/e2e/xsprobe, xl destroy and
# @releaseDomain, the stub's console free of panics and errors.
#
# Packages, dom0's initramfs base, `make kernel image` come from
# `build/e2e/pv.sh` (E2E_PREPARE_ONLY=1); this script adds a per-run overlay.
#
# Environment:
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
#   E2E_STUB_MEM   stub memory in MiB (default 32)
#   E2E_STUB_PARAM extra words for the stub's kernel command line
#   E2E_TIMEOUT    seconds for the boot (default 420)
#   E2E_LOG        serial log (default images/e2e-pvh.log)
#   E2E_NOBUILD=1  skip `make kernel image`
#   E2E_DOMU_EXTRA extra words for the domU's kernel command line
#                  (e2e.rebootonce: its first boot reboots, to test the test)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e
STUB_MEM=${E2E_STUB_MEM:-32}
STUB_PARAM="sysctl.vm.overcommit_memory=1 console=hvc0 loglevel=5 ${E2E_STUB_PARAM:-}"
TIMEOUT=${E2E_TIMEOUT:-420}
LOG=${E2E_LOG:-$ROOT/images/e2e-pvh.log}
KERNEL=$ROOT/images/xenstore-stubdom.kernel
IMAGE=$ROOT/images/xenstore-stubdom.cpio.gz
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-pvh [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-pvh [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. packages, dom0 base, Xen, our kernel and image (shared with pv.sh)
say "preparing (build/e2e/pv.sh, E2E_PREPARE_ONLY=1)"
E2E_PREPARE_ONLY=1 bash "$HERE/pv.sh" || die "preparation failed"
BASE=$(ls -t "$CACHE"/dom0-*.cpio.gz 2>/dev/null | head -1 || true)
PKGROOT=$CACHE/root
[ -n "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"
KVER=$(ls "$PKGROOT/lib/modules" | sort -V | tail -1)
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
chmod +x $O/init
cp "$ROOT/bin/xenstore-stubdom-launch" $O/usr/local/bin/
for l in $(LD_LIBRARY_PATH= ldd "$ROOT/bin/xenstore-stubdom-launch" | awk '/=>/ {print $3}'); do
	mkdir -p "$O/$(dirname "$l")"
	cp -L "$l" "$O/$l"
done
cp "$W/xsprobe" $O/usr/local/bin/
cp "$KERNEL" $O/stub/kernel
cp "$IMAGE" $O/stub/image.cpio.gz
cat >$O/e2e/config <<CFG
STUB_MEM=$STUB_MEM
STUB_PARAM="$STUB_PARAM"
CFG
# The PVH domU: Debian's kernel (already in the base as /guest/vmlinuz), a
# busybox initramfs with xsprobe and build/e2e/pvh-guest-init.sh.
G=$W/g
mkdir -p $G/bin $G/proc $G/sys $G/dev
cp "$PKGROOT/bin/busybox" $G/bin/busybox
cp "$W/xsprobe" $G/bin/xsprobe
cp "$HERE/pvh-guest-init.sh" $G/init
chmod +x $G/init
(cd $G && find . | cpio -o -H newc --quiet | gzip -1) >$O/guest/pvh.cpio.gz
cat >$O/etc/xen/domupvh.cfg <<EOF
name = "domupvh"
type = "pvh"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/pvh.cpio.gz"
extra = "console=hvc0 loglevel=4 ${E2E_DOMU_EXTRA:-}"
memory = 256
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot
XEN_CMDLINE="console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=2 loglvl=all guest_loglvl=all noreboot console_timestamps=boot"
DOM0_CMDLINE="console=hvc0 earlyprintk=xen loglevel=5"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
say "booting Xen (qemu64,+svm,+npt: HVM+HAP), stub PVH ${STUB_MEM} MiB via our launcher; log $LOG"
TB=$(date +%s.%N)
timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu qemu64,+svm,+npt -m 1536 -smp 2 \
	-display none -monitor none -serial "file:$LOG" -no-reboot \
	-kernel "$CACHE/xen" -append "$XEN_CMDLINE" \
	-initrd "$PKGROOT/boot/vmlinuz-$KVER $DOM0_CMDLINE,$W/dom0.cpio.gz" </dev/null 2>"$W/qemu.err" &
QPID=$!
seen=0
host() { awk -v a="$TB" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
HOSTMARKS=$W/hostmarks
: >"$HOSTMARKS"
progress() {
	local lines n
	lines=$(tr -d '\r' <"$LOG" | grep -a -E '^@@E2E|\(XEN\) Std\. Loglevel|Linux version' || true)
	n=$(printf '%s' "$lines" | grep -c . || true)
	if ((n > seen)); then
		printf '%s\n' "$lines" | tail -n +$((seen + 1)) | while IFS= read -r l; do
			printf '   [host %6ss] %s\n' "$(host)" "$l"
			printf '%s %s\n' "$(host)" "$l" >>"$HOSTMARKS"
		done
		seen=$n
	fi
}
while kill -0 $QPID 2>/dev/null; do
	sleep 1
	progress
	if grep -aq '^@@E2E DONE' "$LOG"; then
		sleep 3
		kill $QPID 2>/dev/null || true
	fi
done
rc=0
wait $QPID || rc=$?
progress
say "qemu exited rc=$rc after $(host)s"
[ -s "$W/qemu.err" ] && { echo "qemu stderr:"; cat "$W/qemu.err"; }

# --- 5. verdict
C=$(tr -d '\r' <"$LOG")
done_line=$(grep -a '^@@E2E DONE' <<<"$C" || true)
npass=$(grep -ac '^@@E2E PASS' <<<"$C" || true)
nfail=$(grep -ac '^@@E2E FAIL' <<<"$C" || true)
ok=1
if [ -z "$done_line" ]; then
	ok=0
	if ! grep -aq 'Xen version' <<<"$C"; then
		say "Xen never printed its banner: QEMU could not boot it (rc=$rc; see qemu stderr above)"
	elif ! grep -aq '^@@E2E MARK DOM0-UP' <<<"$C"; then
		say "dom0 never reached /init (rc=$rc)"
	else
		say "no DONE line: boot timed out (${TIMEOUT}s) or crashed (rc=$rc)"
	fi
fi
((nfail == 0)) || ok=0
((npass > 0)) || ok=0
serving=$(awk '/@@E2E PASS launcher / {print $1; exit}' "$HOSTMARKS")
[ -n "$serving" ] && say "host seconds from QEMU start to our stub serving (launcher returned): ~${serving}s"
if ((ok == 0)); then
	echo "----- last 100 lines of the Xen/dom0 serial log (without the stub's console) -----"
	grep -av '^\[stub' <<<"$C" | tail -100
	echo "----- last 100 lines of the stub's console -----"
	grep -a '^\[stub' <<<"$C" | tail -100
	echo "-----"
	grep -a '^@@E2E \(PASS\|FAIL\)' <<<"$C" || true
	die "$npass passed, $nfail failed (log $LOG)"
fi
grep -a '^@@E2E \(PASS\|FAIL\)' <<<"$C"
say "passed: $npass checks (log $LOG)"
