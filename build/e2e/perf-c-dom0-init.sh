#!/bin/busybox sh
# dom0's /init in build/e2e/perf-c.sh: Debian's C xenstored 4.17 (from
# xen-utils-4.17) runs as the dom0 daemon; dom0 creates the same PVH domU as
# build/e2e/pvh.sh (same kernel, xsprobe and /init, with e2e.perfonly) and
# the domU measures reads and writes through its kernel's /dev/xen/xenbus
# (perf_step in build/e2e/dom0-lib.sh). Then `xenstore-control live-update
# -f` turns the same daemon process into OUR xenstored (C's state, sockets
# and rings adopted; as lu-c-dom0-init.sh) and the same domU measures again,
# and back to C for the next round: C and ours-dom0 side by side in one
# boot, on one domU and one ring, in turn.
#   @@E2E MARK/PASS/FAIL/INFO/STEP/PERF-RESULT-c/-ours-dom0/DONE lines for
#   the host script; [domu] the domU's console; [syslog] our daemon's log
#   after the update (C's daemonize left its stderr on /dev/null).
. /e2e/dom0-lib.sh
PERF_SECS=3
PERF_ROUNDS=3
CXSD=/usr/lib/xen-4.17/bin/xenstored
OURS=/usr/sbin/xsstub-xenstored
. /e2e/config
syslogd -O /var/log/messages

mark DOM0-UP
follow $DOMUCONS "[domu]"
xen_modules
if pidof xenstored oxenstored >/dev/null; then fail no-other-xenstored "a xenstored already runs"; fi

# --- 1. Debian's C xenstored as the dom0 daemon (it forks)
step "1: the dom0 daemon $CXSD"
mkdir -p /var/run/xenstored /var/lib/xenstored
T0=$(up)
timeout 60 $CXSD --pid-file /run/xenstored.pid >/tmp/xsd.log 2>&1
rc=$?
i=0
while [ $i -lt 30 ] && ! T xenstore-read -s / >/dev/null 2>&1; do sleep 1; i=$((i + 1)); done
T1=$(up)
cat /tmp/xsd.log
pid=$(cat /run/xenstored.pid 2>/dev/null)
xsd_runs() { [ -n "$pid" ] && [ "$(readlink /proc/$pid/exe)" = "$1" ]; } # xsd_runs BINARY
if [ $rc = 0 ] && xsd_runs $CXSD && T xenstore-read -s / >/dev/null 2>&1; then
	pass dom0-xenstored "rc=0, pid $pid ($(readlink /proc/$pid/exe)) serves after $(dt $T1 $T0)s"
else
	fail dom0-xenstored "rc=$rc pid '$pid' after $(dt $T1 $T0)s"
	finish
fi
T xen-init-dom0
v=$(T xenstore-read /local/domain/0/name 2>&1)
if [ "$v" = Domain-0 ]; then pass xen-init-dom0 "/local/domain/0/name = $v"; else fail xen-init-dom0 "'$v'"; fi
xen_version
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen

# --- 2. the PVH domU of pvh.sh; its kernel's xenbus talks to C xenstored
step "2: xl create of the PVH domU (as in pvh.sh; e2e.perfonly)"
pvh_domu_create

# switch_to NAME BINARY: `xenstore-control live-update -f BINARY` turns the
# running dom0 daemon into BINARY (the same pid; the domU keeps its ring and
# waits, polling for its next order); checks live-update-NAME.
NSW=0
switch_to() {
	NSW=$((NSW + 1))
	live_update $1 $2
	v=$(T xenstore-read /local/domain/0/name 2>&1)
	if [ $LU_RC = 0 ] && [ "$(cat /run/xenstored.pid 2>/dev/null)" = "$pid" ] && xsd_runs $2 && [ "$v" = Domain-0 ]; then
		pass live-update-$1 "rc=0 took=${LU_TOOK}s; pid $pid now runs $(readlink /proc/$pid/exe); dom0 reads '$v'"
	else
		fail live-update-$1 "rc=$LU_RC after ${LU_TOOK}s; pid file '$(cat /run/xenstored.pid 2>/dev/null)' (was $pid), exe '$(readlink /proc/$pid/exe)'; read '$v'; $(tail -3 /tmp/lu.out | tr '\n' ' ')"
		syslog_tail 30
		finish
	fi
	perf_warmup w$NSW # the new daemon's first requests are not measured
}

# --- 3. the ring measurements, C and ours in turn: each round measures
# every kind against C, switches to ours, measures them again, and switches
# back, so a slow spell of the shared host hits both daemons alike (they
# share the domU's PERF-CALIBRATE line)
step "3p: ring performance, C xenstored and ours (live update between them) in turn: the domU's reads and writes through /dev/xen/xenbus, $PERF_ROUNDS rounds of ${PERF_SECS}s per kind and daemon (issue 15, issue 22)"
perf_begin
r=1
while [ $r -le $PERF_ROUNDS ]; do
	perf_round $PERF_SECS $r c
	switch_to c-to-ours-r$r $OURS
	perf_round $PERF_SECS $r ours-dom0
	[ $r = $PERF_ROUNDS ] || switch_to ours-to-c-r$r $CXSD
	r=$((r + 1))
done
perf_end
perf_report $PERF_ROUNDS c
perf_report $PERF_ROUNDS ours-dom0

v=$(T xenstore-read /local/domain/0/name 2>&1)
if xsd_runs $OURS && [ "$v" = Domain-0 ] && l=$(xstool alive $ID); then
	pass dom0-xenstored-alive-at-end "pid $pid (ours) serves; the domU: $l"
else
	fail dom0-xenstored-alive-at-end "pid '$pid' runs ours: $(xsd_runs $OURS && echo yes || echo no); read '$v'; domU: $l"
fi
syslog_tail 15
mark ALL-DONE
finish
