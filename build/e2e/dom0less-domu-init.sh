#!/bin/busybox sh
# /init of the two xen,enhanced domUs in the dom0less boot
# (build/e2e/arm-dom0less.sh), Debian's arm64 kernel and busybox; xsprobe
# talks to the store through the kernel's /dev/xen/xenbus. The kernel
# command line says the role (e2e.role=writer|reader) and the peer's domid
# (e2e.peer=N).
#   writer, the control domain (capabilities 0x1): writes data/secret (its
#     own) and data/hello, which it lets every domain read (r32757:
#     DOMID_ANY, Xen 4.22), watches @releaseDomain/<reader>; once the reader
#     has read, live-updates the store (xsprobe liveupdate: the new arm64
#     xenstored sent as to a xenstore domain), checks it is still the
#     control domain (IS_DOMAIN_INTRODUCED), tells the reader, and sees the
#     reader's release fire through the new daemon.
#   reader: reads the writer's data/hello (retrying until allowed), is
#     refused data/secret and IS_DOMAIN_INTRODUCED, reads again after the
#     update, then powers off.
/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^e2e\.$1=//p"; }
role=$(arg role)
peer=$(arg peer)
pass() { echo "@@E2E PASS $*"; }
fail() { echo "@@E2E FAIL $*"; }
echo "@@E2E MARK DOMU-INIT role=$role uptime=$(up)"
# The first request waits in the kernel until the store connects the ring;
# if that takes long, show what the kernel's xenbus is doing.
xsprobe wait domid 600 >/tmp/domid &
n=0
while kill -0 $! 2>/dev/null; do
	n=$((n + 1))
	if [ $n = 150 ]; then
		echo "@@E2E INFO xenbus-waiting role=$role: $(grep -i -E 'xen|store' /proc/interrupts | tr -s ' ' | tr '\n' ';')"
		echo "@@E2E INFO xenbus-threads: $(ps | grep -i -E 'xenbus|xenwatch' | grep -v grep | tr -s ' ' | tr '\n' ';')"
	fi
	sleep 0.2
done
id=$(cat /tmp/domid)
case "$id" in
'' | ERROR*) fail "domu-xenbus-$role (domid: $id)"; sleep 100000 ;;
esac
echo "@@E2E MARK DOMU-XENBUS role=$role domid=$id uptime=$(up)"
pass "domu-xenbus-$role domid=$id home=$(xsprobe getperms /local/domain/$id)"
# The home the store made (init-dom0less's nodes, libxl's permissions): the
# nodes its drivers read, readable and not writable; its own directories.
name=$(xsprobe read name)
tgt=$(xsprobe read memory/target)
max=$(xsprobe read memory/static-max)
rw=$(xsprobe read control/platform-feature-xs_reset_watches)
renamed="ERROR EACCES" # the control domain may write anywhere: only the reader tries
[ "$role" = reader ] && renamed=$(xsprobe write name other)
case "$tgt" in '' | *[!0-9]*) tgt="not a number: $tgt" ;; esac
if [ "$name" = "dom0less-$id" ] && [ "${tgt#not}" = "$tgt" ] && [ "$rw" = 1 ] &&
	[ "$renamed" = "ERROR EACCES" ] && xsprobe write control/feature-poweroff 1 && xsprobe write data/mine 1; then
	pass "domu-home-$role name=$name memory/target=$tgt static-max=$max kernel_total_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
else
	fail "domu-home-$role (name=$name target=$tgt reset_watches=$rw rename=$renamed)"
fi

if [ "$role" = writer ]; then # the control domain (capabilities 0x1)
	xsprobe write data/secret "only-$id" && xsprobe write data/hello "from-$id" &&
		xsprobe setperms /local/domain/$id/data/hello n$id r32757 &&
		pass "writer-sets-domid-any perms=$(xsprobe getperms /local/domain/$id/data/hello)" ||
		fail writer-sets-domid-any
	xsprobe watch @releaseDomain/$peer peer 600 >/tmp/watch 2>&1 &
	xsprobe wait /local/domain/$peer/data/read-done 600 >/dev/null
	# The live update of the store, asked through this domain's ring: the
	# new daemon (the same arm64 xenstored) sent in -b/-d chunks; "OK"
	# comes from the new one.
	echo "@@E2E MARK LIVE-UPDATE-START uptime=$(up)"
	t0=$(up)
	r=$(xsprobe liveupdate /bin/xenstored-new 2>&1)
	t1=$(up)
	[ "$r" = OK ] && pass "control-live-update secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') bytes=$(wc -c </bin/xenstored-new)" ||
		fail "control-live-update ($r)"
	i=$(xsprobe introduced $peer)
	[ "$i" = T ] && pass "control-kept-after-update (IS_DOMAIN_INTRODUCED $peer: $i)" ||
		fail "control-kept-after-update (IS_DOMAIN_INTRODUCED $peer: $i)"
	xsprobe write data/updated yes && xsprobe setperms /local/domain/$id/data/updated n$id r32757
	n=0
	until [ "$(grep -c WATCH-EVENT /tmp/watch)" -ge 2 ]; do
		n=$((n + 1))
		[ $n -gt 3000 ] && break
		sleep 0.2
	done
	cat /tmp/watch
	if [ "$(grep -c WATCH-EVENT /tmp/watch)" -ge 2 ]; then
		pass "control-sees-peer-release $(grep WATCH-EVENT /tmp/watch | tail -1)"
	else
		fail "control-sees-peer-release (no event after the first)"
	fi
	echo "@@E2E MARK CONTROL-DONE uptime=$(up)"
	echo "@@E2E DONE"
	sleep 100000
fi

v=$(xsprobe wait /local/domain/$peer/data/hello 600)
[ "$v" = "from-$peer" ] && pass "reader-reads-peer value=$v" || fail "reader-reads-peer (got $v)"
s=$(xsprobe read /local/domain/$peer/data/secret)
[ "$s" = "ERROR EACCES" ] && pass "reader-refused-secret ($s)" || fail "reader-refused-secret (got $s)"
i=$(xsprobe introduced $peer)
[ "$i" = "ERROR EACCES" ] && pass "reader-unprivileged (IS_DOMAIN_INTRODUCED: $i)" || fail "reader-unprivileged (got $i)"
xsprobe write data/read-done yes && xsprobe setperms /local/domain/$id/data/read-done n$id r32757
u=$(xsprobe wait /local/domain/$peer/data/updated 600)
v=$(xsprobe read /local/domain/$peer/data/hello)
[ "$u" = yes ] && [ "$v" = "from-$peer" ] && pass "reader-reads-after-update value=$v" ||
	fail "reader-reads-after-update (updated=$u value=$v)"
echo "@@E2E MARK READER-POWEROFF uptime=$(up)"
sleep 1
poweroff -f
