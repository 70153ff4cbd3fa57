#!/bin/busybox sh
# dom0's /init in build/e2e/lu-c.sh: Debian's /etc/init.d/xen starts the
# release's C xenstored (XENSTORED= in /etc/default/xen); a PV domU holds a
# watch and polls its name through its ring; `xenstore-control live-update
# -f` switches the running daemon to OURS (C's state_dump, C's sockets,
# /dev/xen/evtchn handle and ring mappings adopted), then back to C. After
# each switch: the same pid, dom0's socket and kernel ring, the domU's watch,
# xl create / xl destroy of a second domU with @introduceDomain and
# @releaseDomain. At the end the domU's poll loop reports its counts.
#   @@E2E MARK/PASS/FAIL/INFO/STEP/DONE lines for the host script;
#   [syslog] both daemons' syslog lines (busybox syslogd).
. /e2e/dom0-lib.sh
var_run_is_run # as on Debian (libxenstore and both daemons' state_dump)
. /e2e/config
DOMUCONS=/var/log/xen/guest-domud.log
OURS=/usr/sbin/xsstub-xenstored
CXSD=/usr/lib/xen-$XENV/bin/xenstored
TRACE=/var/log/xen/xenstored-trace.log
# Both daemons log to syslog once detached.
syslogd -O /var/log/messages
# the daemon's pid (Debian's pid file) and the binary it runs
dpid() { cat /run/xenstore.pid 2>/dev/null; }
dexe() { readlink /proc/$(dpid)/exe 2>/dev/null; }
lu_finish() {
	syslog_tail 30
	[ -f $TRACE ] && echo "daemon trace: $(wc -l <$TRACE) lines"
	finish
}
gcons() { tr -d '\r' </var/log/xen/guest-$1.log 2>/dev/null; }

mark DOM0-UP
xen_modules nomount # Debian's script mounts xenfs

# --- 1. Debian's script starts C xenstored
step "1: /etc/init.d/xen start with C xenstored ($CXSD)"
grep -E '^XENSTORED' /etc/default/xen
timeout 60 dash /etc/init.d/xen start >/tmp/initd.log 2>&1
rc=$?
cat /tmp/initd.log
PID=$(dpid)
if [ $rc = 0 ] && [ -n "$PID" ] && [ "$(dexe)" = $CXSD ]; then
	pass initd-start-c "rc=0; C xenstored runs as pid $PID ($(dexe))"
else
	fail initd-start-c "rc=$rc pid '$PID' exe '$(dexe)'"
	lu_finish
fi
xen_version
T xenstore-write /e2e/sock y
XENSTORED_PATH=/dev/xen/xenbus T xenstore-write /e2e/ring z
(xenstore-watch @releaseDomain 2>&1 | while IFS= read -r l; do echo "$l" >>/tmp/watch.log; done) &
(xenstore-watch @introduceDomain 2>&1 | while IFS= read -r l; do echo "$l" >>/tmp/watchi.log; done) &
sleep 2

# --- 2. the domU that lives through both switches
step "2: xl create of the PV domU that holds a watch and polls (served by C)"
timeout 150 xl create /etc/xen/domud.cfg >/tmp/xl.log 2>&1
rc=$?
ID=$(xl domid domud 2>/dev/null)
gwait '^GUEST name=' 120
l=$(dcons | grep '^GUEST name=' | tail -1)
if [ $rc = 0 ] && [ "$l" = "GUEST name=domud domid=$ID" ]; then
	pass domu-up-on-c "'$l'"
else
	fail domu-up-on-c "rc=$rc domid '$ID' '$l'"
	tail -20 /tmp/xl.log
	dcons | tail -20
	lu_finish
fi
gwait '^WATCH-EVENT path=data/lu ' 60
gwait '^POLL-START' 60
NW=0 # the domU's watch events asked for so far
# watch_fires WHAT: dom0 writes a node under the domU's watched path; its
# event must reach the domU's console.
watch_fires() {
	NW=$((NW + 1))
	t0=$(up)
	T xenstore-write /local/domain/$ID/data/lu/w$NW "$1"
	T xenstore-chmod /local/domain/$ID/data/lu/w$NW n$ID
	if gwait "^WATCH-EVENT path=data/lu/w$NW " 60; then
		pass domu-watch-$1 "the domU's watch (set on C before any update) fired $(dt $(up) $t0)s after dom0's write: $(dcons | grep "^WATCH-EVENT path=data/lu/w$NW " | head -1)"
	else
		fail domu-watch-$1 "no event for data/lu/w$NW in 60 s; $(dcons | grep -E '^WATCH' | tail -3 | tr '\n' ';')"
	fi
}
watch_fires on-c

# switch_to NAME BINARY: live update to BINARY; the same pid runs it and
# dom0's socket and kernel ring serve.
switch_to() {
	live_update $1 $2
	echo "@@E2E INFO live-update-$1 xenstore-control live-update -f $2 took ${LU_TOOK}s, rc=$LU_RC"
	if [ $LU_RC = 0 ] && [ "$(dpid)" = "$PID" ] && [ "$(dexe)" = $2 ]; then
		pass live-update-$1 "rc=0 took=${LU_TOOK}s; pid $PID now runs $(dexe); output '$(tr '\n' ' ' </tmp/lu.out)'"
	else
		fail live-update-$1 "rc=$LU_RC after ${LU_TOOK}s; pid file '$(dpid)' (was $PID), exe '$(dexe)'; $(tail -3 /tmp/lu.out | tr '\n' ' ')"
		ps -o pid,args | grep -E 'xenstored' | grep -v grep
		syslog_tail 30
	fi
	v=$(T xenstore-read /e2e/sock 2>&1)
	v2=$(XENSTORED_PATH=/dev/xen/xenbus T xenstore-read /e2e/ring 2>&1)
	if [ "$v" = y ] && [ "$v2" = z ] && T xl list >/dev/null 2>&1; then
		pass dom0-after-$1 "socket read '$v', kernel-ring read '$v2', xl list"
	else
		fail dom0-after-$1 "socket '$v' ring '$v2'"
	fi
	[ $2 = $OURS ] && T xenstore-control connections 2>&1 | head -6 # C has no such command
}

# second_domu WHAT: xl create of a second domU (it reads its name through
# its ring), @introduceDomain; xl destroy, @releaseDomain, its nodes gone.
second_domu() {
	int0=$(grep -c '^@introduceDomain' /tmp/watchi.log)
	rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
	rm -f /var/log/xen/guest-domu2.log
	t0=$(up)
	timeout 150 xl create /etc/xen/domu2.cfg >/tmp/xl2.log 2>&1
	rc=$?
	id2=$(xl domid domu2 2>/dev/null)
	i=0
	while [ $i -lt 120 ] && ! gcons domu2 | grep -q '^GUEST name='; do sleep 1; i=$((i + 1)); done
	l=$(gcons domu2 | grep '^GUEST name=' | tail -1)
	int1=$(grep -c '^@introduceDomain' /tmp/watchi.log)
	if [ $rc = 0 ] && [ "$l" = "GUEST name=domu2 domid=$id2" ] && [ "$int1" -gt "$int0" ]; then
		pass xl-create-$1 "domid=$id2 '$l' $(dt $(up) $t0)s; @introduceDomain fired $((int1 - int0))x"
	else
		fail xl-create-$1 "rc=$rc domid '$id2' '$l' @introduceDomain $int0 -> $int1"
		tail -10 /tmp/xl2.log
		gcons domu2 | tail -10
	fi
	timeout 60 xl destroy domu2
	rc=$?
	i=0
	while [ $i -lt 15 ] && [ "$(grep -c '^@releaseDomain' /tmp/watch.log)" -le "$rel0" ]; do sleep 1; i=$((i + 1)); done
	rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
	sleep 1
	ls=$(T xenstore-list /local/domain | tr '\n' ' ')
	if [ $rc = 0 ] && [ "$rel1" -gt "$rel0" ] && [ -n "$id2" ] && ! echo " $ls " | grep -q " $id2 "; then
		pass xl-destroy-$1 "@releaseDomain fired $((rel1 - rel0))x; /local/domain: $ls"
	else
		fail xl-destroy-$1 "rc=$rc @releaseDomain $rel0 -> $rel1; /local/domain: $ls"
	fi
}

# --- 3. C -> ours
step "3: xenstore-control live-update -f $OURS (C -> ours) while the domU holds a watch and polls"
switch_to c-to-ours $OURS
watch_fires on-ours
second_domu on-ours

# --- 4. ours -> C
step "4: xenstore-control live-update -f $CXSD (ours -> C)"
switch_to ours-to-c $CXSD
watch_fires on-c-again
second_domu on-c-again

# --- 4b. the package's xsstub-switch (packaging/xsstub-switch): the same
# two switches as an operator runs them
step "4b: xsstub-switch to-ours, then to-c (the package's command)"
sw() { # sw ARG WANT-EXE
	out=$(timeout 120 xsstub-switch $1 2>&1)
	rc=$?
	echo "$out" | sed 's/^/[xsstub-switch] /'
	if [ $rc = 0 ] && [ "$(dpid)" = "$PID" ] && [ "$(dexe)" = $2 ] && [ "$(T xenstore-read /e2e/sock 2>&1)" = y ]; then
		pass xsstub-switch-$1 "exit 0; pid $PID runs $(dexe); $(echo "$out" | tail -1)"
	else
		fail xsstub-switch-$1 "exit $rc; pid file '$(dpid)' exe '$(dexe)'"
	fi
}
sw status $CXSD
sw to-ours $OURS
watch_fires on-ours-by-switch
sw to-c $CXSD
watch_fires on-c-by-switch

# --- 5. the domU's poll loop across all switches
step "5: the domU's poll loop: no error across all four switches"
T xenstore-write /local/domain/$ID/data/poll-stop 1
T xenstore-chmod /local/domain/$ID/data/poll-stop n$ID
gwait '^POLL-EXIT' 60
dcons | grep -E '^(POLL|WATCH)'
l=$(dcons | grep '^POLL-DONE' | tail -1)
echo "@@E2E INFO domu-poll-counts ${l#POLL-DONE }"
if echo "$l" | grep -q '^POLL-DONE reads=[1-9][0-9]* errors=0 .*stopped=true' && dcons | grep -q '^POLL-EXIT rc=0'; then
	pass domu-poll-no-error "${l#POLL-DONE }"
else
	fail domu-poll-no-error "'$l' $(dcons | grep -E '^POLL-(LOST|EXIT)' | tr '\n' ' ')"
fi
if dcons | grep -q '^WATCH-LOST'; then fail domu-watch-kept "$(dcons | grep '^WATCH-LOST')"; fi

# --- 6. the domU goes, on C
step "6: xl destroy of the domU (C serves)"
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
timeout 60 xl destroy domud
rc=$?
i=0
while [ $i -lt 15 ] && [ "$(grep -c '^@releaseDomain' /tmp/watch.log)" -le "$rel0" ]; do sleep 1; i=$((i + 1)); done
rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
if [ $rc = 0 ] && [ "$rel1" -gt "$rel0" ] && [ "$(dexe)" = $CXSD ]; then
	pass xl-destroy-domud "@releaseDomain fired $((rel1 - rel0))x; C ($(dexe)) serves pid $(dpid)"
else
	fail xl-destroy-domud "rc=$rc @releaseDomain $rel0 -> $rel1; exe '$(dexe)'"
fi
n=$(pidof xenstore-watch | wc -w)
if [ "$n" = 2 ]; then pass dom0-watchers-kept "dom0's two xenstore-watch clients (socket) lived through both switches"; else fail dom0-watchers-kept "$n xenstore-watch processes left of 2"; fi
lu_finish
