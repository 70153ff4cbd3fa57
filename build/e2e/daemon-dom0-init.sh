#!/bin/busybox sh
# dom0's /init in build/e2e/daemon.sh and arm-daemon.sh: Debian's /etc/init.d/xen starts OUR
# xenstored (XENSTORED=/usr/sbin/xsstub-xenstored in /etc/default/xen) in
# dom0; then checks it serves dom0's tools (Unix socket), dom0's kernel ring
# (/dev/xen/xenbus) and guests' rings, through xl create / xl destroy.
#   @@E2E MARK/PASS/FAIL/INFO/STEP/DONE lines for the host script;
#   [domu] the domU's console, [watch] dom0's watcher, [trace] our daemon's
#   trace file (--trace-file, from XENSTORED_ARGS).
DOM0_DEBIAN_RUN=1
. /e2e/dom0-lib.sh # the preamble and helpers every dom0 /init shares
XENV=4.17
DOMU_TYPE=pv
. /e2e/config

TRACE=/var/log/xen/xenstored-trace.log
tlines() { wc -l <$TRACE 2>/dev/null || echo 0; }
# xtrace FROM TO: trace lines FROM+1..TO for bench/testdata (the storm
# replay): requests, and only the replies it needs (transaction ids,
# errors, watch events); the date is dropped.
xtrace() {
	sed -n "$(($1 + 1)),$2p" $TRACE | awk '$3 == "IN" || $6 ~ /^(TRANSACTION_START|ERROR|WATCH_EVENT)$/' |
		cut -d' ' -f2- | sed 's/^/[xtrace] /'
}
. /e2e/xen422-lib.sh # Xen 4.22's toolstack features (no-ops on other releases)
finish_hook() {
	if [ -f $TRACE ]; then
		echo "our daemon's trace: $(wc -l <$TRACE) lines; the last 15:"
		tail -15 $TRACE | cut -c1-200 | sed 's/^/[trace] /'
	fi
}
# The daemon process: the pid in Debian's pid file, alive, and ours.
daemon_alive() {
	p=$(cat /run/xenstore.pid 2>/dev/null)
	[ -n "$p" ] && [ -d /proc/$p ] && [ "$(readlink /proc/$p/exe)" = /usr/sbin/xsstub-xenstored ]
}
DOMUCONS=/var/log/xen/guest-domud.log

mark DOM0-UP
xen_modules nomount
if pidof xenstored oxenstored >/dev/null; then fail no-other-xenstored "a xenstored already runs"; fi

# --- 1. Debian's start-up script, unmodified, starts OUR daemon
step "1: /etc/init.d/xen start (XENSTORED=/usr/sbin/xsstub-xenstored, Debian's script as shipped)"
grep -E '^XENSTORED' /etc/default/xen
mark INITD-START
T0=$(up)
# Under dash (Debian's /bin/sh) so that start-stop-daemon is dpkg's, not
# busybox's applet (busybox sh prefers its applets to PATH).
timeout 60 dash /etc/init.d/xen start >/tmp/initd.log 2>&1
rc=$?
T1=$(up)
mark INITD-END
cat /tmp/initd.log
pid=$(cat /run/xenstore.pid 2>/dev/null)
echo "pid file /run/xenstore.pid: '$pid'; processes: $(ps -o pid,args | grep -E 'xenstored|xenconsoled' | grep -v grep | tr -s ' ' | tr '\n' ';')"
if [ $rc = 0 ] && daemon_alive; then
	pass initd-start "rc=0 after $(dt $T1 $T0)s; our xenstored runs as pid $pid ($(readlink /proc/$pid/exe))"
else
	fail initd-start "rc=$rc after $(dt $T1 $T0)s; pid file '$pid'"
	finish
fi
if [ -S /run/xenstored/socket ]; then pass unix-socket "/run/xenstored/socket"; else fail unix-socket "$(ls -la /run/xenstored 2>&1)"; fi
n=$(pidof xenconsoled | wc -w)
if [ "$n" = 1 ]; then pass initd-xenconsoled "the script went on to start xenconsoled (needs xenstore)"; else fail initd-xenconsoled "$n xenconsoled processes"; fi

xen_version

# --- 2. dom0's tools on the socket, and dom0's kernel ring
step "2: dom0's tools (Unix socket) and dom0's kernel ring (/dev/xen/xenbus)"
out=$(T xenstore-ls / 2>&1)
rc=$?
echo "$out" | head -30
if [ $rc = 0 ] && echo "$out" | grep -q '^local'; then pass xenstore-ls "$(echo "$out" | wc -l) lines"; else fail xenstore-ls "rc=$rc"; fi
v=$(T xenstore-read /local/domain/0/name 2>&1)
if [ "$v" = Domain-0 ]; then pass xen-init-dom0 "/local/domain/0/name = $v (written by the script's xen-init-dom0)"; else fail xen-init-dom0 "'$v'"; fi
T xenstore-write /e2e/sock y
v=$(T xenstore-read /e2e/sock 2>&1)
if [ "$v" = y ]; then pass socket-write-read; else fail socket-write-read "'$v'"; fi
# libxenstore on the kernel device (XENSTORED_PATH names a non-socket:
# it opens it as the xenbus device), and the raw protocol with xsprobe.
XENSTORED_PATH=/dev/xen/xenbus T xenstore-write /e2e/ring z
v=$(T xenstore-read /e2e/ring 2>&1)
v2=$(T xsprobe read /e2e/sock 2>&1)
if [ "$v" = z ] && [ "$v2" = y ]; then
	pass dom0-kernel-ring "libxenstore through /dev/xen/xenbus wrote, the socket read it back; xsprobe READ through the ring: '$v2'"
else
	fail dom0-kernel-ring "socket read '$v', xsprobe '$v2'"
fi
out=$(T xenstore-control help 2>&1)
if echo "$out" | grep -q connections; then pass xenstore-control-help "our commands listed"; else fail xenstore-control-help "$(echo "$out" | head -3)"; fi
T xenstore-control connections 2>&1 | head -5

out=$(T xl list 2>&1)
echo "$out"
if echo "$out" | grep -q '^Domain-0 '; then pass xl-list; else fail xl-list "$(echo "$out" | head -3)"; fi

# --- 3. a domU (PV on x86, PVH on Arm): its kernel's xenbus talks to our daemon
step "3: xl create of a $DOMU_TYPE domU; the guest reads its name through its ring"
(xenstore-watch @releaseDomain 2>&1 | while IFS= read -r l; do
	echo "[watch] $l t=$(up)"
	echo "$l" >>/tmp/watch.log
done) &
(xenstore-watch @introduceDomain 2>&1 | while IFS= read -r l; do
	echo "[watch] $l t=$(up)"
	echo "$l" >>/tmp/watchi.log
done) &
sleep 2
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
int0=$(grep -c '^@introduceDomain' /tmp/watchi.log)
TC0=$(tlines)
mark CREATE-START
T0=$(up)
xen422_domu_cfg /etc/xen/domud.cfg
timeout 150 xl create /etc/xen/domud.cfg >/tmp/xl.log 2>&1
rc=$?
T1=$(up)
TC1=$(tlines)
mark CREATE-END
tail -3 /tmp/xl.log
ID=$(xl domid domud 2>/dev/null)
if [ $rc = 0 ] && [ -n "$ID" ] && l=$(xstool alive $ID); then
	pass xl-create "domid=$ID took=$(dt $T1 $T0)s $l"
else
	fail xl-create "rc=$rc domid='$ID' after $(dt $T1 $T0)s"
	cat /tmp/xl.log | tail -20
fi
sleep 1
TC2=$(tlines)
int1=$(grep -c '^@introduceDomain' /tmp/watchi.log)
if [ "$int1" -gt "$int0" ]; then pass watch-introduceDomain "fired $((int1 - int0))x"; else fail watch-introduceDomain "$int0 -> $int1"; fi
i=0
while [ $i -lt 120 ] && ! dcons $DOMUCONS | grep -q '^DOMU-DONE'; do sleep 1; i=$((i + 1)); done
dcons $DOMUCONS | grep -E '^(DOMU|GUEST)'
l=$(dcons $DOMUCONS | grep '^GUEST name=' | tail -1)
if [ "$l" = "GUEST name=domud domid=$ID" ]; then
	pass guest-ring-reads-name "'$l' ($(dt $(up) $T1)s after create returned)"
else
	fail guest-ring-reads-name "'$l'"
	dcons $DOMUCONS | tail -20
fi
v=$(T xenstore-read /local/domain/$ID/data/hello 2>&1)
if [ "$v" = from-the-guest ]; then pass guest-write-seen-by-dom0 "/local/domain/$ID/data/hello"; else fail guest-write-seen-by-dom0 "'$v'"; fi

# --- 3b. live update of our daemon while the domU runs (issue 12)
if is_xen422; then
	step "3x: Xen 4.22's toolstack against our dom0 daemon: xl info -x, xl xenstore-quota-get/-set, the domU's xenstore_quota= and xenstore_feature_mask="
	xen422_checks $ID
fi
step "3b: xenstore-control live-update -f /usr/sbin/xsstub-xenstored while the domU holds a watch and polls"
i=0
while [ $i -lt 60 ] && ! dcons $DOMUCONS | grep -q '^WATCH-EVENT path=data/lu '; do sleep 1; i=$((i + 1)); done
T xenstore-write /local/domain/$ID/data/lu/before 1
T xenstore-chmod /local/domain/$ID/data/lu/before n$ID
i=0
while [ $i -lt 30 ] && ! dcons $DOMUCONS | grep -q '^WATCH-EVENT path=data/lu/before '; do sleep 1; i=$((i + 1)); done
if dcons $DOMUCONS | grep -q '^WATCH-EVENT path=data/lu/before '; then
	pass domu-watch-before-update "$(dcons $DOMUCONS | grep '^WATCH-EVENT path=data/lu/before ' | head -1)"
else
	fail domu-watch-before-update "$(dcons $DOMUCONS | grep '^WATCH' | tr '\n' ';')"
fi
pid0=$(cat /run/xenstore.pid 2>/dev/null)
mark LIVE-UPDATE-START
T0=$(up)
timeout 300 xenstore-control live-update -f /usr/sbin/xsstub-xenstored >/tmp/lu.out 2>&1
rc=$?
T1=$(up)
mark LIVE-UPDATE-END
sed 's/^/xenstore-control: /' /tmp/lu.out
echo "@@E2E INFO live-update-daemon xenstore-control live-update -f took $(dt $T1 $T0)s (dom0 time), rc=$rc"
if [ $rc = 0 ]; then
	pass live-update-daemon "xenstore-control rc=0 took=$(dt $T1 $T0)s output: '$(tr '\n' ' ' </tmp/lu.out)'"
else
	fail live-update-daemon "rc=$rc after $(dt $T1 $T0)s: $(tail -3 /tmp/lu.out | tr '\n' ' ')"
fi
pid1=$(cat /run/xenstore.pid 2>/dev/null)
if [ -n "$pid0" ] && [ "$pid1" = "$pid0" ] && daemon_alive; then
	pass daemon-same-pid "pid file $pid0 before and $pid1 after; /proc/$pid1/exe $(readlink /proc/$pid1/exe)"
else
	fail daemon-same-pid "pid $pid0 -> '$pid1'; alive: $(daemon_alive && echo yes || echo no)"
fi
v=$(T xenstore-read /e2e/sock 2>&1)
v2=$(XENSTORED_PATH=/dev/xen/xenbus T xenstore-read /e2e/ring 2>&1)
out=$(T xenstore-control connections 2>&1)
crc=$?
echo "$out" | head -8
if [ "$v" = y ] && [ "$v2" = z ] && [ $crc = 0 ] && T xl list >/dev/null 2>&1; then
	pass dom0-works-after-update "socket read '$v', kernel-ring read '$v2', xenstore-control connections rc=0 ($(echo "$out" | grep -c '^conn') connections), xl list"
else
	fail dom0-works-after-update "socket '$v' ring '$v2' connections rc=$crc"
fi
T0=$(up)
T xenstore-write /local/domain/$ID/data/lu/after 1
T xenstore-chmod /local/domain/$ID/data/lu/after n$ID
i=0
while [ $i -lt 60 ] && ! dcons $DOMUCONS | grep -q '^WATCH-EVENT path=data/lu/after '; do sleep 1; i=$((i + 1)); done
if dcons $DOMUCONS | grep -q '^WATCH-EVENT path=data/lu/after '; then
	pass domu-watch-after-update "the domU's watch (set before the update) fired $(dt $(up) $T0)s after dom0's write: $(dcons $DOMUCONS | grep '^WATCH-EVENT path=data/lu/after ' | head -1)"
else
	fail domu-watch-after-update "no event in 60 s; $(dcons $DOMUCONS | grep -E '^WATCH' | tail -3 | tr '\n' ';')"
fi
xen422_after_update $ID
T xenstore-write /local/domain/$ID/data/read-go 1
T xenstore-chmod /local/domain/$ID/data/read-go n$ID
v=$(xwait /local/domain/$ID/data/read-done 60 2>&1)
dcons $DOMUCONS | grep -E '^(GUEST read-go|WATCH)'
if [ "$v" = domud ]; then
	pass domu-ring-after-update "the domU's READ poll ran across the update; it read its name after it and wrote data/read-done='$v'"
else
	fail domu-ring-after-update "data/read-done '$v'; $(dcons $DOMUCONS | grep '^GUEST read-go')"
fi
[ -f $TRACE ] && grep -a -i 'live.update' $TRACE | tail -5 | cut -c1-200 | sed 's/^/[trace] /'

# --- 4. xl destroy: @releaseDomain, the nodes go
step "4: xl destroy fires @releaseDomain; the guest's nodes are gone"
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
TD0=$(tlines)
mark DESTROY-START
T0=$(up)
timeout 60 xl destroy domud
rc=$?
T1=$(up)
TD1=$(tlines)
mark DESTROY-END
if [ $rc = 0 ]; then pass xl-destroy "took=$(dt $T1 $T0)s"; else fail xl-destroy "rc=$rc"; fi
i=0
while [ $i -lt 10 ] && [ "$(grep -c '^@releaseDomain' /tmp/watch.log)" -le "$rel0" ]; do sleep 1; i=$((i + 1)); done
rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
if [ "$rel1" -gt "$rel0" ]; then pass watch-releaseDomain "fired $((rel1 - rel0))x"; else fail watch-releaseDomain "$rel0 -> $rel1"; fi
sleep 1
TD2=$(tlines)
# The xenstore traffic of xl create and xl destroy of domud (bench/testdata/xl-create-destroy.trace).
echo "@@E2E XTRACE-BEGIN domid=$ID xen=$XENV create=$TC0-$TC1-$TC2 destroy=$TD0-$TD1-$TD2"
xtrace $TC0 $TC1
echo "[xtrace] # create returned; until 1 s later:"
xtrace $TC1 $TC2
echo "[xtrace] # destroy:"
xtrace $TD0 $TD1
echo "[xtrace] # destroy returned; until @releaseDomain + 1 s:"
xtrace $TD1 $TD2
echo "@@E2E XTRACE-END"
l=$(T xenstore-list /local/domain | tr '\n' ' ')
if [ -n "$ID" ] && ! echo " $l " | grep -q " $ID "; then pass domu-nodes-gone "/local/domain: $l"; else fail domu-nodes-gone "/local/domain: $l"; fi

# --- 5. a domU that powers itself off and is preserved (on_poweroff =
# "preserve"): our daemon sees it shut down (VIRQ_DOM_EXC) and fires
# @releaseDomain before anyone destroys it; the alive checks of these
# scripts must call it dead (a test of the test: issue 13); then xl destroy.
step "5: a domU powers itself off (preserved): @releaseDomain from the daemon's own detection; alive checks fail on it"
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
timeout 150 xl create /etc/xen/domudoff.cfg >/tmp/xl2.log 2>&1
rc=$?
ID2=$(xl domid domudoff 2>/dev/null)
echo "domudoff: rc=$rc domid=$ID2"
i=0
while [ $i -lt 120 ] && [ -n "$ID2" ] && xstool alive $ID2 >/dev/null; do sleep 1; i=$((i + 1)); done
sleep 2
dcons /var/log/xen/guest-domudoff.log | grep -E '^(DOMU|GUEST)'
l=$(xstool alive $ID2)
arc=$?
st=$(T xl list domudoff 2>/dev/null | awk '$1 == "domudoff" {print $5}')
if [ -n "$ID2" ] && [ $arc != 0 ] && echo "$l" | grep -q 'shutdown=1/0 .*state=shutdown' && ! xl_state_ok domudoff; then
	pass selfoff-alive-checks-fail "shut down ${i}s after create returned: xstool alive exit $arc ($l); xl state '$st'"
else
	fail selfoff-alive-checks-fail "rc=$rc domid='$ID2' alive-exit=$arc '$l' xl state '$st'"
fi
rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
if [ "$rel1" -gt "$rel0" ]; then pass selfoff-releaseDomain "fired $((rel1 - rel0))x on the shutdown, before any destroy"; else fail selfoff-releaseDomain "$rel0 -> $rel1"; fi
timeout 60 xl destroy domudoff
rc=$?
sleep 2
l=$(xstool alive ${ID2:-0})
if [ $rc = 0 ] && ! xl domid domudoff >/dev/null 2>&1 && echo "$l" | grep -q 'state=gone'; then
	pass selfoff-destroyed "$l"
else
	fail selfoff-destroyed "rc=$rc $l"
fi
l=$(T xenstore-list /local/domain | tr '\n' ' ')
if [ -n "$ID2" ] && ! echo " $l " | grep -q " $ID2 "; then pass selfoff-nodes-gone "/local/domain: $l"; else fail selfoff-nodes-gone "/local/domain: $l"; fi

# --- 6. still the same daemon, still serving
v=$(T xenstore-read /e2e/sock 2>&1)
if daemon_alive && [ "$(cat /run/xenstore.pid)" = "$pid" ] && [ "$v" = y ]; then
	pass daemon-alive-at-end "pid $pid serves"
else
	fail daemon-alive-at-end "pid file '$(cat /run/xenstore.pid 2>&1)' (was $pid), read '$v'"
fi
xl list
mark ALL-DONE
if is_xen422; then
	step "6: domid reuse on the real hypervisor: xl save -D + xl restore gives a new domain the old domid; it inherits nothing"
	xen422_domid_reuse /etc/xen/domreuse.cfg domreuse
fi
finish
