#!/bin/busybox sh
# /init of dom0 in the e2e boot (build/e2e/pv.sh). Starts our stub domain
# with Xen's init-xenstore-domain, then checks xenstore from dom0 step by
# step. Lines for the host script:
#   @@E2E MARK <name> t=<dom0 uptime>
#   @@E2E PASS <check> [detail] / @@E2E FAIL <check> [detail]
#   @@E2E DONE pass=<n> fail=<n>
#   [stub] <line>       the stub's console (drained via its grant ref 0)
#   [watch] <line>      xenstore-watch @releaseDomain output
# Settings come from /e2e/config (written by the host script).
. /e2e/dom0-lib.sh # the preamble and helpers every dom0 /init shares
STUB_MEM=64
STUB_PARAM="xen_privcmd.unrestricted=1 console=hvc0"
IXD_TIMEOUT=120
DOMU=1
LIVE_UPDATE=0
. /e2e/config
. /e2e/stubinfo.sh
. /e2e/xen422-lib.sh # Xen 4.22's toolstack features (no-ops on other releases)
finish_hook() {
	[ -n "$CONS_PID" ] && kill "$CONS_PID" 2>/dev/null
	if [ -f /var/log/xen/guest-Xenstore.log ]; then
		sed 's/^/[stub] /' /var/log/xen/guest-Xenstore.log
	fi
}

mark DOM0-UP
xen_modules
mark MODULES

# The stub's console, until xenconsoled can take over. CONS_PID is xstool's
# own pid: killing it stops the draining (the reader ends at EOF).
mkfifo /tmp/stubcons
(while IFS= read -r l; do
	echo "[stub] $l"
	echo "$l" >>/tmp/stubcons.log
done </tmp/stubcons) &
xstool console 100000 >/tmp/stubcons 2>&1 &
CONS_PID=$!

# --- 1. start our stub domain
ls -l /stub/
mark IXD-START
T0=$(up)
timeout $IXD_TIMEOUT init-xenstore-domain --kernel /stub/kernel --ramdisk /stub/image.cpio.gz \
	--memory $STUB_MEM --param "$STUB_PARAM" >/tmp/ixd.log 2>&1 &
IXD_PID=$!
# It returns only once the stub serves; a stub that crashed (its kernel
# panicked, say) would keep it waiting until the timeout: give up early.
# A panicked PV Linux stops its vcpus: neither running nor blocked.
down=0
while [ -d /proc/$IXD_PID ]; do
	st=$(xstool doms | grep '^dom=[1-9][0-9]* xenstore=1 ')
	case "$st" in
	*" shutdown=1/"*) down=9 ;;
	*" running=0 blocked=0 paused=0 "*) down=$((down + 1)) ;;
	*) down=0 ;;
	esac
	if [ $down -ge 5 ]; then
		echo "the stub domain shut down, crashed or stopped: $st"
		sleep 2
		kill $IXD_PID
		break
	fi
	sleep 1
done
wait $IXD_PID
rc=$?
T1=$(up)
mark IXD-END
grep -v -E 'xc: detail|xencall|domainbuilder' /tmp/ixd.log | tail -15
xstool doms
STUBID=$(xstool doms | sed -n 's/^dom=\([1-9][0-9]*\) xenstore=1 .*/\1/p' | head -1)
# Alive: the stub exists and is neither shut down nor dying (xstool alive).
if [ $rc = 0 ] && [ -n "$STUBID" ] && l=$(xstool alive $STUBID); then
	pass init-xenstore-domain "rc=0 serving_after=$(dt $T1 $T0)s $l"
	# Xen's tool builds PV what has no PVH note, also on an HVM host.
	if echo "$l" | grep -q " hvm=0 "; then pass stub-is-pv "$l"; else fail stub-is-pv "$l"; fi
else
	echo "@@E2E INFO stub-console-last-line '$(tail -1 /tmp/stubcons.log 2>/dev/null)'"
	fail init-xenstore-domain "rc=$rc after $(dt $T1 $T0)s; $(xstool alive ${STUBID:-1})"
	sleep 3
	finish
fi

# --- 2. basic xenstore operations from dom0 (through dom0's ring)
out=$(T xenstore-ls / 2>&1)
rc=$?
echo "$out" | head -40
if [ $rc = 0 ] && echo "$out" | grep -q '^tool'; then pass xenstore-ls; else fail xenstore-ls "rc=$rc"; fi

T xenstore-write /e2e/x y
rc=$?
v=$(T xenstore-read /e2e/x 2>&1)
if [ $rc = 0 ] && [ "$v" = y ]; then pass write-read; else fail write-read "write rc=$rc read='$v'"; fi

out=$(T xenstore-control help 2>&1)
rc=$?
echo "$out" | head -20
if [ $rc = 0 ]; then pass xenstore-control-help; else fail xenstore-control-help "rc=$rc"; fi

v=$(T xenstore-read /tool/xenstored/domid 2>&1)
echo "/tool/xenstored/domid = $v"
if [ "$v" = "$STUBID" ] && xstool alive $v | grep -q "^dom=$v xenstore=1 .*state=alive"; then
	pass tool-xenstored-domid "dom$STUBID is the xenstore domain"
else
	fail tool-xenstored-domid "'$v' (Xen's xenstore domain: $STUBID)"
fi

T xen-init-dom0
echo "xen-init-dom0 rc=$?"
xen_version
out=$(T xl list 2>&1)
rc=$?
echo "$out"
if [ $rc = 0 ] && echo "$out" | grep -q '^Xenstore ' && xl_state_ok Xenstore; then
	pass xl-list "$(echo "$out" | grep '^Xenstore ' | tr -s ' ')"
else
	fail xl-list "rc=$rc"
fi
stub_memory_and_boot /tmp/stubcons.log
mark BASIC-DONE

# --- 3. a PV domU: introduce, watches, release
if [ "$DOMU" = 1 ]; then
	# The stub's console moves to xenconsoled (which needs xenstore).
	kill $CONS_PID 2>/dev/null
	wait $CONS_PID 2>/dev/null
	CONS_PID=
	xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen
	echo "xenconsoled rc=$?"
	for w in @releaseDomain @introduceDomain; do
		(xenstore-watch $w 2>&1 | while IFS= read -r l; do
			echo "[watch] $l t=$(up)"
			echo "$l" >>/tmp/watch.log
		done) &
	done
	sleep 2
	rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
	int0=$(grep -c '^@introduceDomain' /tmp/watch.log)
	mark CREATE-START
	T0=$(up)
	# xl's debug log, each line stamped with dom0's uptime, shows where a
	# slow create spends its time.
	xen422_domu_cfg /etc/xen/domu.cfg
	(timeout 120 xl -vvv create /etc/xen/domu.cfg 2>&1
		echo "xl-rc=$?") | while IFS= read -r l; do echo "$(up) $l"; done >/tmp/xl-create.log
	rc=$(sed -n 's/^[0-9.]* xl-rc=//p' /tmp/xl-create.log)
	T1=$(up)
	mark CREATE-END
	grep -v 'xl-rc=' /tmp/xl-create.log | grep -E -v 'debug|detail' | tail -5
	echo "xl create: the 6 longest gaps between debug lines (seconds, line after the gap):"
	awk '{ if (NR > 1) printf "%.2f %s\n", $1 - p, $0; p = $1 }' /tmp/xl-create.log | sort -rn | head -6 | cut -c1-200
	ID=$(xl domid domu 2>/dev/null)
	if [ $rc = 0 ] && [ -n "$ID" ] && xstool alive $ID >/dev/null; then
		pass xl-create "domid=$ID took=$(dt $T1 $T0)s"
	else
		fail xl-create "rc=$rc after $(dt $T1 $T0)s"
	fi
	xl list
	sleep 1
	int1=$(grep -c '^@introduceDomain' /tmp/watch.log)
	if [ "$int1" -gt "$int0" ]; then pass watch-introduceDomain "fired $((int1 - int0))x"; else fail watch-introduceDomain "$int0 -> $int1"; fi
	if [ -n "$ID" ] && is_xen422; then
		step "3x: Xen 4.22's toolstack against the stub started by Xen's own init-xenstore-domain"
		xen422_checks $ID
	fi
	if [ -n "$ID" ] && T xenstore-list /local/domain | grep -qx "$ID"; then
		pass local-domain-appears "/local/domain/$ID"
		T xenstore-ls /local/domain/$ID | head -30
	else
		fail local-domain-appears "/local/domain: $(T xenstore-list /local/domain | tr '\n' ' ')"
	fi
	i=0
	while [ $i -lt 90 ] && ! grep -q DOMU-DONE /var/log/xen/guest-domu.log 2>/dev/null; do sleep 1; i=$((i + 1)); done
	if grep -q DOMU-DONE /var/log/xen/guest-domu.log 2>/dev/null && l=$(xstool alive $ID) && xl_state_ok domu; then
		pass domu-userspace "after ${i}s; $l"
	else
		fail domu-userspace "no DOMU-DONE in 90s"
	fi
	grep -a DOMU /var/log/xen/guest-domu.log
	mark DESTROY-START
	T0=$(up)
	timeout 60 xl destroy domu
	rc=$?
	T1=$(up)
	mark DESTROY-END
	if [ $rc = 0 ]; then pass xl-destroy "took=$(dt $T1 $T0)s"; else fail xl-destroy "rc=$rc"; fi
	sleep 3
	rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
	if [ "$rel1" -gt "$rel0" ]; then pass watch-releaseDomain "fired $((rel1 - rel0))x"; else fail watch-releaseDomain "$rel0 -> $rel1"; fi
	echo "/local/domain after destroy: $(T xenstore-list /local/domain | tr '\n' ' ')"
	if [ -n "$ID" ] && ! T xenstore-list /local/domain | grep -qx "$ID"; then
		pass local-domain-gone
	else
		fail local-domain-gone
	fi
	# A domU that powers itself off: the stub sees it shut down
	# (VIRQ_DOM_EXC), fires @releaseDomain, and xl's monitor destroys it.
	rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
	mark CREATE2-START
	timeout 120 xl create /etc/xen/domuoff.cfg
	rc=$?
	mark CREATE2-END
	ID=$(xl domid domuoff 2>/dev/null)
	echo "domuoff: rc=$rc domid=$ID"
	i=0
	while [ $i -lt 90 ] && xl domid domuoff >/dev/null 2>&1; do sleep 1; i=$((i + 1)); done
	grep -a DOMU /var/log/xen/guest-domuoff.log
	if xl domid domuoff >/dev/null 2>&1; then
		fail selfoff-gone "domuoff still there after 90s"
		xl list
	else
		pass selfoff-gone "domuoff (dom$ID) gone ${i}s after create returned"
	fi
	sleep 2
	rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
	if [ "$rel1" -gt "$rel0" ]; then pass selfoff-releaseDomain "fired $((rel1 - rel0))x"; else fail selfoff-releaseDomain "$rel0 -> $rel1"; fi
	if [ -n "$ID" ] && ! T xenstore-list /local/domain | grep -qx "$ID"; then
		pass selfoff-local-domain-gone
	else
		fail selfoff-local-domain-gone "/local/domain: $(T xenstore-list /local/domain | tr '\n' ' ')"
	fi
	xl list
	xstool doms
fi
# --- 4. live update of the stub (started by Xen's own tool) while a domU
# holds a watch: the new xenstored binary goes in chunks (stub mode).
if [ "$DOMU" = 1 ] && [ "$LIVE_UPDATE" = 1 ]; then
	step "4: live update of the stub with xenstore-control while a domU holds a watch"
	DC=/var/log/xen/guest-domulu.log
	# luwait WHAT SECS: wait for the domU's WATCH-EVENT line for data/WHAT
	# (waited seconds in $i); true if it came.
	luwait() {
		i=0
		while [ $i -lt $2 ] && ! grep -q "^WATCH-EVENT path=data/$1 " $DC 2>/dev/null; do sleep 1; i=$((i + 1)); done
		grep -q "^WATCH-EVENT path=data/$1 " $DC 2>/dev/null
	}
	# luwrite WHAT: dom0 writes the domU's data/WHAT, readable by it.
	luwrite() {
		T xenstore-write /local/domain/$LID/data/$1 1
		T xenstore-chmod /local/domain/$LID/data/$1 n$LID
	}
	timeout 120 xl create /etc/xen/domulu.cfg >/tmp/xl-lu.log 2>&1
	LID=$(xl domid domulu 2>/dev/null)
	luwait lu 90
	luwrite lu/before
	if luwait lu/before 30; then
		pass domu-watch-before-update "dom$LID: $(grep '^WATCH-EVENT path=data/lu/before ' $DC | head -1 | tr -d '\r')"
	else
		fail domu-watch-before-update "dom$LID '$(tail -3 $DC 2>/dev/null | tr '\n' ' ')' xl: $(tail -2 /tmp/xl-lu.log | tr '\n' ' ')"
	fi
	mark LIVE-UPDATE-START
	T0=$(up)
	timeout 600 xenstore-control live-update /stub/xenstored-new >/tmp/lu.out 2>&1
	rc=$?
	T1=$(up)
	mark LIVE-UPDATE-END
	if [ $rc = 0 ] && l=$(xstool alive $STUBID); then
		pass live-update-stub "rc=0 took=$(dt $T1 $T0)s; $l"
	else
		fail live-update-stub "rc=$rc: $(tail -3 /tmp/lu.out | tr '\n' ' '); $(xstool alive $STUBID)"
	fi
	luwrite lu/after
	if luwait lu/after 60; then
		pass domu-watch-after-update "the watch set before the update fired ${i}s after dom0's write"
	else
		fail domu-watch-after-update "no event in 60 s: $(grep '^WATCH' $DC 2>/dev/null | tail -3 | tr '\n' ' ')"
	fi
	timeout 60 xl destroy domulu
fi
# Our stub is still alive at the end (never retried: a crash fails here).
if [ -n "$STUBID" ] && l=$(xstool alive $STUBID); then pass stub-alive-at-end "$l"; else fail stub-alive-at-end "$l"; fi
# The stub's console (xstool's drain, then xenconsoled): no panic, no error.
sleep 1
cat /tmp/stubcons.log /var/log/xen/guest-Xenstore.log >/tmp/stubcons.all 2>/dev/null
nl=$(wc -l </tmp/stubcons.all)
bad=$(grep -i -E 'panic|level=ERROR' /tmp/stubcons.all)
if [ "$nl" -gt 5 ] && grep -q 'serving the control domain' /tmp/stubcons.all && [ -z "$bad" ]; then
	pass stub-console-clean "$nl lines, no panic, no level=ERROR; $(grep -c 'level=WARN' /tmp/stubcons.all) WARN lines"
else
	fail stub-console-clean "$nl lines; $(echo "$bad" | head -5)"
fi
mark ALL-DONE
finish
