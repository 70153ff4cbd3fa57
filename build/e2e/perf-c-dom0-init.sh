#!/bin/busybox sh
# dom0's /init in build/e2e/perf-c.sh: Debian's C xenstored 4.17 (from
# xen-utils-4.17) runs as the dom0 daemon; dom0 creates the same PVH domU as
# build/e2e/pvh.sh (same kernel, xsprobe and /init, with e2e.perfonly) and
# the domU measures reads and writes through its kernel's /dev/xen/xenbus
# (perf_step in build/e2e/dom0-lib.sh), for `@@E2E PERF ... ours= c=`.
# With E2E_PERF_DAEMON=ours, OUR xenstored is the dom0 daemon instead.
#   @@E2E MARK/PASS/FAIL/INFO/STEP/PERF-RESULT/DONE lines for the host script;
#   [domu] the domU's console.
. /e2e/dom0-lib.sh
PERF_SECS=3
PERF_ROUNDS=3
XSD=/usr/lib/xen-4.17/bin/xenstored # E2E_PERF_DAEMON=ours: /usr/sbin/xsstub-xenstored
. /e2e/config

mark DOM0-UP
follow $DOMUCONS "[domu]"
xen_modules
if pidof xenstored oxenstored >/dev/null; then fail no-other-xenstored "a xenstored already runs"; fi

# --- 1. Debian's C xenstored (or ours) as the dom0 daemon (it forks)
step "1: the dom0 daemon $XSD"
mkdir -p /var/run/xenstored /var/lib/xenstored
T0=$(up)
timeout 60 $XSD --pid-file /run/xenstored.pid >/tmp/xsd.log 2>&1
rc=$?
i=0
while [ $i -lt 30 ] && ! T xenstore-read -s / >/dev/null 2>&1; do sleep 1; i=$((i + 1)); done
T1=$(up)
cat /tmp/xsd.log
pid=$(cat /run/xenstored.pid 2>/dev/null)
xsd_alive() { [ -n "$pid" ] && [ "$(readlink /proc/$pid/exe)" = "$XSD" ]; }
if [ $rc = 0 ] && xsd_alive && T xenstore-read -s / >/dev/null 2>&1; then
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

# --- 3. the ring measurements, as in pvh.sh's step 3p
step "3p: ring performance: the domU's reads and writes through /dev/xen/xenbus, $PERF_ROUNDS rounds of ${PERF_SECS}s per kind (issue 15)"
perf_step $PERF_SECS $PERF_ROUNDS

v=$(T xenstore-read /local/domain/0/name 2>&1)
if xsd_alive && [ "$v" = Domain-0 ] && l=$(xstool alive $ID); then
	pass dom0-xenstored-alive-at-end "pid $pid serves; the domU: $l"
else
	fail dom0-xenstored-alive-at-end "pid '$pid' alive: $(xsd_alive && echo yes || echo no); read '$v'; domU: $l"
fi
mark ALL-DONE
finish
