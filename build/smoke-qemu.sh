#!/usr/bin/env bash
# Smoke boot of the stub domain kernel + initramfs under QEMU, without Xen and
# without KVM (make smoke-qemu). QEMU enters the vmlinux through its PVH note.
# Passes when the kernel runs /init, init mounts /dev, /proc and /sys, parses
# "--event 5" and starts xenstored (same program). xenstored is expected to fail
# here (no /dev/xen): its exit ends PID 1, the kernel panics and, with
# panic=-1 and -no-reboot, QEMU exits.
#
# Usage: build/smoke-qemu.sh [LOG]   (default images/smoke-qemu.log)
# Environment: KERNEL, INITRD, APPEND_EXTRA, TIMEOUT (seconds, default 120),
# MEM (guest MiB, default 256).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KERNEL=${KERNEL:-$ROOT/images/xenstore-stubdom.kernel}
INITRD=${INITRD:-$ROOT/images/xenstore-stubdom.cpio.gz}
LOG=${1:-$ROOT/images/smoke-qemu.log}
TIMEOUT=${TIMEOUT:-120}
MEM=${MEM:-256}
APPEND="console=ttyS0 panic=-1 xen_privcmd.unrestricted=1 --event 5 ${APPEND_EXTRA:-}"

say() { printf '== smoke: %s\n' "$*"; }
die() { printf '== smoke: FAIL: %s\n' "$*" >&2; exit 1; }

[ -f "$KERNEL" ] || die "no $KERNEL (make kernel)"
[ -f "$INITRD" ] || die "no $INITRD (make image)"
if ! command -v qemu-system-x86_64 >/dev/null; then
	say "installing qemu-system-x86"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null
fi

mkdir -p "$(dirname "$LOG")"
say "booting $(basename "$KERNEL") + $(basename "$INITRD"): $APPEND"
T0=$(date +%s%N)
rc=0
timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -m "$MEM" -smp 1 \
	-nographic -no-reboot -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
	</dev/null >"$LOG" 2>&1 || rc=$?
ms=$((($(date +%s%N) - T0) / 1000000))
say "qemu exited rc=$rc after $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s; log $LOG"
[ "$rc" = 124 ] && say "timed out after ${TIMEOUT}s"

tr -d '\r' <"$LOG" | grep -aE '^xsinit:|Run /init|Kernel panic|xenstored' | sed 's/^/   | /' || true

fail=0
check() { # pattern description
	if tr -d '\r' <"$LOG" | grep -aqE "$1"; then
		say "ok: $2"
	else
		say "MISSING: $2"
		fail=1
	fi
}
check 'Run /init as init process' "kernel runs /init"
check '^xsinit: mounted devtmpfs on /dev' "devtmpfs on /dev"
check '^xsinit: mounted proc on /proc' "proc on /proc"
check '^xsinit: mounted sysfs on /sys' "sysfs on /sys"
check '^xsinit: argv \["--event" "5"' "kernel passes --event 5 to init"
check '^xsinit: uptime [0-9.]+s: xenstored \["--stubdom" "--event" "5"' "init starts xenstored --stubdom --event 5"
up=$(tr -d '\r' <"$LOG" | grep -aoE '^xsinit: uptime [0-9.]+s: xenstored' | grep -oE '[0-9.]+s' || true)
[ -n "$up" ] && say "init started xenstored at guest uptime $up"
((fail == 0)) || die "see $LOG"
say "passed"
