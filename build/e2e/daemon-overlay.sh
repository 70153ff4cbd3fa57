# Sourced by build/e2e/daemon.sh (x86) and build/e2e/arm-daemon.sh (arm64):
# daemon_overlay builds the per-run overlay of dom0's initramfs for the
# dom0-daemon boots: /init, the daemon Debian's /etc/init.d/xen starts
# (XENSTORED in /etc/default/xen), what that script sources, xsprobe, and
# the domU's initramfs and xl configurations; then appends it to $BASE as
# $W/dom0.cpio.gz.
#   uses: HERE W BASE PKGROOT XENV, and the boot's files:
#   INIT (dom0's /init, a script in build/e2e), XSD (the XENSTORED path),
#   XSD_BIN (our xenstored, installed as /usr/sbin/xsstub-xenstored),
#   XSPROBE, SSD (dpkg's start-stop-daemon), DASH, DOMU_TYPE (xl's type:
#   pvh on Arm, which has no PV); PKGROOT holds Debian's xen-utils-common
#   and busybox for that architecture.
#   daemon_overlay_extra, if the caller defines it, adds to $O before the
#   overlay is packed (daemon.sh's lu-c mode).
daemon_overlay() {
	O=$W/o
	mkdir -p $O/e2e $O/usr/sbin $O/usr/bin $O/usr/local/bin $O/guest $O/etc/xen $O/etc/default \
		$O/etc/init.d $O/lib/init $O/lib/lsb $O/usr/lib/xen-common/bin
	cp "$HERE/$INIT" $O/init
	cp "$HERE/xen422-lib.sh" "$HERE/dom0-lib.sh" $O/e2e/
	chmod +x $O/init
	# Our daemon, where a user would put it, and the libraries it links (glibc:
	# the base's own, host or trixie, serves it).
	cp "$XSD_BIN" $O/usr/sbin/xsstub-xenstored
	cp "$XSPROBE" $O/usr/local/bin/xsprobe
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
	cp "$SSD" $O/sbin/start-stop-daemon
	cp "$DASH" $O/usr/bin/dash
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
DOMU_TYPE=$DOMU_TYPE
CFG
	# A domU ($DOMU_TYPE): Debian's kernel (the base's /guest/vmlinuz), busybox, xsprobe,
	# and an /init that reads its own name and domid through its kernel's
	# xenbus (so through our daemon's ring for it) and writes a node back.
	G=$W/g
	mkdir -p $G/bin $G/proc $G/sys $G/dev
	cp "$(ls "$PKGROOT/bin/busybox" "$PKGROOT/usr/bin/busybox" 2>/dev/null | head -1)" $G/bin/busybox
	cp "$XSPROBE" $G/bin/xsprobe
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
	cat >$O/etc/xen/domud.cfg <<EOF
name = "domud"
type = "$DOMU_TYPE"
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
	if declare -F daemon_overlay_extra >/dev/null; then daemon_overlay_extra; fi
	(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
	cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz
}
