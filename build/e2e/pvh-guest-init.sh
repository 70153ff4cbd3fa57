#!/bin/busybox sh
# /init of the PVH domU in build/e2e/pvh.sh. Its console goes to xenconsoled
# (dom0's /var/log/xen/guest-domupvh.log); dom0 reads the GUEST lines.
# Everything here goes through the guest kernel's xenbus (/dev/xen/xenbus)
# to the stub's xenstored; paths are relative to /local/domain/<id>.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
P=/bin/xsprobe
echo "DOMU-UP uptime=$(cut -d' ' -f1 /proc/uptime) type=$(cat /sys/hypervisor/guest_type 2>&1)"
echo "GUEST /dev/xen: $(ls /dev/xen 2>&1 | tr '\n' ' ')"
# Test of the test (E2E_DOMU_EXTRA=e2e.rebootonce): the first domain reboots
# at once, as after an early crash; libxl restarts it under a new domid.
if grep -q e2e.rebootonce /proc/cmdline && [ "$($P read domid)" = 2 ]; then
	echo "GUEST rebooting once (e2e.rebootonce)"
	reboot -f
fi
echo "GUEST name=$($P read name 2>&1) domid=$($P read domid 2>&1)"

# Ring performance (issue 15): dom0 writes its Nth order to data/perf/go-N
# once it only waits: "SECS NAME:OP:DEPTH [TAG]" (each prints "GUEST PERF
# NAME [TAG] ops=N secs=S ops_per_s=R errors=E", or xsprobe's error) or
# "done" (prints "GUEST-PERF-DONE order=N"). With e2e.perfonly (perf-c.sh,
# which measures C, live-updates dom0's daemon to ours and measures again)
# the orders go on after a "done".
# Around them, the guest's own speed (a busybox loop: the host's share of
# TCG), to tell a slower boot from a slower store.
calibrate() {
	a=$(cut -d' ' -f1 /proc/uptime)
	j=0
	while [ $j -lt 50000 ]; do j=$((j + 1)); done
	echo "$a $(cut -d' ' -f1 /proc/uptime)" | awk '{printf "%.2f", $2 - $1}'
}
i=1
while :; do
	set -- $($P wait data/perf/go-$i 900 2>&1)
	case $1 in
	done)
		[ -z "$c0" ] || echo "GUEST PERF-CALIBRATE loop_s=$c0,$(calibrate)"
		c0=
		echo "GUEST-PERF-DONE order=$i uptime=$(cut -d' ' -f1 /proc/uptime)"
		i=$((i + 1))
		grep -q e2e.perfonly /proc/cmdline && continue
		break
		;;
	[0-9]*) [ -n "$c0" ] || c0=$(calibrate) ;;
	*) echo "GUEST PERF-ERROR order $i: $*" && break ;;
	esac
	k=$2
	name=${k%%:*}
	op=${k#*:}
	echo "GUEST PERF $name${3:+ $3} $($P perf ${op%:*} data/perf/$name $1 ${op#*:} 2>&1 | tail -1)"
	i=$((i + 1))
done
# The C xenstored boot (build/e2e/perf-c.sh) measures only.
if grep -q e2e.perfonly /proc/cmdline; then exec sleep 100000; fi

# Attack 1: a directory whose listing is far larger than 4096 bytes. First
# under the default node-size quota (2048 bytes: the guest runs out), then,
# once dom0 has raised this guest's quota, up to 400 children.
out=$($P mkmany data/big 0 400 2>&1)
echo "GUEST big-default-quota $out"
n=$(echo "$out" | sed -n 's/^created=\([0-9]*\).*/\1/p')
$P write data/ready "${n:-0}"
echo "GUEST waiting for dom0 to raise the quota: $($P wait data/go 300 2>&1)"
out=$($P mkmany data/big "${n:-0}" 400 2>&1)
echo "GUEST big-raised-quota $out"
$P write data/big-done "$($P dir data/big 2>&1 | tr ' ' ,)"

# Attack 2: flood xenstored with requests and never read a reply (the
# guest kernel queues replies for this file; it never reads them).
echo "GUEST waiting for the flood signal: $($P wait data/flood-go 300 2>&1)"
$P write data/flood-start 1
echo "GUEST flood-read $($P flood read name 12 300000 2>&1)"
echo "GUEST flood-write $($P flood write data/fl 8 3000 2>&1)"
echo "GUEST-FLOOD-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"

# Live update of the stub (dom0 runs xenstore-control live-update): this
# guest holds a watch on data/lu through its kernel's xenbus; each event
# prints a WATCH-EVENT line. An event after the update shows that the
# connection and its watch were carried over. Meanwhile `wait` polls a
# READ every 200 ms through the same connection, across the update.
$P watch data/lu lu 3000 &
echo "GUEST watching data/lu; waiting for the fill signal: $($P wait data/fill-go 1500 2>&1)"

# Attack 3: with quotas dom0 raised (memory, nodes, node-size), write
# 3800-byte values until the store refuses: the store-wide memory ceiling
# must answer ENOMEM before the stub runs out of memory.
echo "GUEST fill-start uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "GUEST fill $($P fill data/fill 3800 20000 2>&1 | tail -1)"
echo "GUEST reads after the fill: $($P read name 2>&1)"
echo "GUEST-FILL-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
sleep 100000
