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

# --- 3. the per-run overlay of dom0's initramfs
O=$W/o
mkdir -p $O/e2e $O/usr/sbin $O/usr/bin $O/usr/local/bin $O/guest $O/etc/xen $O/etc/default \
	$O/etc/init.d $O/lib/init $O/lib/lsb $O/usr/lib/xen-common/bin
cp "$HERE/$INIT" $O/init
cp "$HERE/xen422-lib.sh" "$HERE/dom0-lib.sh" $O/e2e/
chmod +x $O/init
# Our daemon, where a user would put it, and the libraries it links (glibc:
# the base's own, host or trixie, serves it).
cp "$ROOT/bin/xenstored" $O/usr/sbin/xsstub-xenstored
cp "$W/xsprobe" $O/usr/local/bin/
# lu-c: the release's C xenstored (its libraries are the toolstack's, in
# the base; 4.22's base has the binary already).
if [ $MODE = lu-c ] && [ "$XENV" != 4.22 ]; then
	[ -x "$PKGROOT$XSD" ] || die "no C xenstored at $PKGROOT$XSD"
	mkdir -p "$O$(dirname $XSD)"
	cp "$PKGROOT$XSD" "$O$XSD"
fi
[ $MODE = daemon ] || cp "$ROOT/packaging/xsstub-switch" $O/usr/sbin/xsstub-switch
# Debian's start-up script and its helpers, from xen-utils-common as shipped.
cp "$PKGROOT/etc/init.d/xen" $O/etc/init.d/xen
cp "$PKGROOT/usr/lib/xen-common/bin/xen-version" "$PKGROOT/usr/lib/xen-common/bin/xen-dir" $O/usr/lib/xen-common/bin/
# /etc/default/xen: Debian's default file with XENSTORED set, as a user does.
{
	sed 's/^XENSTORED_ARGS=.*//' "$PKGROOT/usr/share/xen-utils-common/default.xen" 2>/dev/null || true
	echo "XENSTORED=$XSD"
	echo 'XENSTORED_ARGS="--trace-file /var/log/xen/xenstored-trace.log"'
	# guests' consoles into /var/log/xen/guest-NAME.log (the script passes XENCONSOLED_ARGS)
	echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen"'
} >$O/etc/default/xen
# What the init script sources but a busybox dom0 lacks (initscripts,
# lsb-base): minimal stand-ins that print what Debian's would.
: >$O/lib/init/vars.sh
cat >$O/lib/lsb/init-functions <<'EOF'
log_daemon_msg() { echo "init.d: $*"; }
log_progress_msg() { echo "init.d: ... $*"; }
log_end_msg() { echo "init.d: end $1"; return $1; }
log_warning_msg() { echo "init.d: warning: $*"; }
log_failure_msg() { echo "init.d: failure: $*"; }
log_action_msg() { echo "init.d: $*"; }
log_success_msg() { echo "init.d: $*"; }
EOF
# dpkg's start-stop-daemon and dash (Debian's /bin/sh), the host's (they
# link only libc): the script runs under dash, as on Debian. busybox's sh
# runs its own applets before PATH, and its start-stop-daemon ignores
# --test: it started a second xenconsoled without the script's arguments.
mkdir -p $O/sbin
cp /sbin/start-stop-daemon $O/sbin/start-stop-daemon
cp /bin/dash $O/usr/bin/dash
# util-linux's choom (the script runs `choom -n -1000 XENSTORED -- ARGS`;
# choom's getopt consumes that `--`): set the OOM score, then exec.
cat >$O/usr/bin/choom <<'EOF'
#!/bin/sh
[ "$1" = -n ] && { echo "$2" >/proc/self/oom_score_adj; shift 2; }
[ "$1" = -- ] && shift
cmd=$1
shift
[ "$1" = -- ] && shift
exec "$cmd" "$@"
EOF
chmod +x $O/usr/bin/choom
cat >$O/e2e/config <<CFG
XENV=$XENV
CFG
# A PV domU: Debian's kernel (the base's /guest/vmlinuz), busybox, xsprobe,
# and an /init that reads its own name and domid through its kernel's
# xenbus (so through our daemon's ring for it) and writes a node back.
G=$W/g
mkdir -p $G/bin $G/proc $G/sys $G/dev
cp "$(ls "$PKGROOT/bin/busybox" "$PKGROOT/usr/bin/busybox" 2>/dev/null | head -1)" $G/bin/busybox
cp "$W/xsprobe" $G/bin/xsprobe
cat >$G/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "DOMU-UP uptime=$(cut -d' ' -f1 /proc/uptime) type=$(cat /sys/hypervisor/guest_type 2>&1)"
echo "GUEST name=$(xsprobe read name 2>&1) domid=$(xsprobe read domid 2>&1)"
echo "GUEST write $(xsprobe write data/hello from-the-guest 2>&1; echo rc=$?)"
echo "DOMU-DONE"
if grep -q e2e.selfoff /proc/cmdline; then sleep 2; echo "DOMU-POWEROFF"; poweroff -f; fi
if grep -q e2e.poll /proc/cmdline; then
	# lu-c: a watch and a READ of its name every 200 ms across dom0's live
	# updates, until dom0 writes data/poll-stop.
	xsprobe watch data/lu lu 3000 &
	echo "POLL-START"
	xsprobe poll name data/poll-stop 3000
	echo "POLL-EXIT rc=$?"
	sleep 100000
fi
# Across dom0's live update of our daemon: a watch on data/lu (each event a
# WATCH-EVENT line), and a READ polled every 200 ms until dom0 says go.
xsprobe watch data/lu lu 3000 &
v=$(xsprobe wait data/read-go 1500 2>&1)
echo "GUEST read-go '$v'; after the update: name=$(xsprobe read name 2>&1)"
xsprobe write data/read-done "$(xsprobe read name 2>&1)"
sleep 100000
EOF
chmod +x $G/init
(cd $G && find . | cpio -o -H newc --quiet | gzip -1) >$O/guest/xsprobe.cpio.gz
cat >$O/etc/xen/domud.cfg <<'EOF'
name = "domud"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/xsprobe.cpio.gz"
extra = "console=hvc0 loglevel=4"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
sed -e 's/^name = .*/name = "domudoff"/' -e 's/^extra = "/extra = "e2e.selfoff /' \
	-e 's/^on_poweroff = .*/on_poweroff = "preserve"/' \
	$O/etc/xen/domud.cfg >$O/etc/xen/domudoff.cfg
# Xen 4.22's domid reuse (xen422_domid_reuse): the same guest (xl save
# writes its 128 MiB into dom0's RAM; 64 MiB cannot hold its kernel).
sed -e 's/^name = .*/name = "domreuse"/' $O/etc/xen/domud.cfg >$O/etc/xen/domreuse.cfg
if [ $MODE = lu-c ]; then
	sed -e 's/^name = .*/name = "domu2"/' $O/etc/xen/domud.cfg >$O/etc/xen/domu2.cfg
	sed -i 's/^extra = "/extra = "e2e.poll /' $O/etc/xen/domud.cfg
fi
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot and verdict (build/e2e/boot.sh)
. "$HERE/boot.sh"
if [ $MODE = daemon ]; then
	boot_and_judge -svm "Xen $XENV, PV only; OUR xenstored in dom0 via Debian's /etc/init.d/xen"
else
	boot_and_judge -svm "Xen $XENV, PV only; C xenstored in dom0 via Debian's /etc/init.d/xen, live update C -> ours -> C"
fi
