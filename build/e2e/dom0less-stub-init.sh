#!/bin/busybox sh
# /init of the xenstore domain in the dom0less boot (build/e2e/arm-dom0less.sh):
# Debian's arm64 kernel with its Xen modules, or our small arm64 kernel
# with them built in (xen_privcmd.unrestricted=1 on the command line then
# does what the module's parameter does), then our xenstored with
# --stubdom and no --event: no control domain started us, so it finds the
# domains Xen built and introduces them. Prints the stub's memory every 10 s.
/bin/busybox mkdir -p /bin /proc /sys /dev /run/xenstored /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
echo "@@E2E MARK STUB-INIT uptime=$(up)"
for m in xen-evtchn xen-gntdev xen-privcmd; do
	[ -f /modules/$m.ko ] || continue # built in (our small kernel)
	arg=
	[ "$m" = xen-privcmd ] && arg=unrestricted=1 # hypercalls from a domU
	insmod /modules/$m.ko $arg || echo "@@E2E FAIL stub-insmod-$m"
done
echo "@@E2E INFO stub hypervisor=$(cat /sys/hypervisor/type 2>/dev/null) xen=$(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)"
echo "@@E2E MARK XENSTORED-START uptime=$(up)"
v=
# e2e.verbose=1: xenstored logs more and traces every request, which this
# script copies to the console.
grep -q 'e2e.verbose=1' /proc/cmdline && v="--verbose -T /run/xenstored/trace"
/bin/xenstored --stubdom --no-fork --socket /run/xenstored/socket $v &
pid=$!
mem() {
	rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null)
	echo "@@E2E STUB-MEM uptime=$(up) xenstored_rss_kb=${rss:-gone} $(awk '/^(MemTotal|MemFree|MemAvailable):/ {printf "%s%s ", $1, $2}' /proc/meminfo)"
}
while :; do
	sleep 10
	mem
	if [ -f /run/xenstored/trace ]; then
		t=$(wc -l </run/xenstored/trace)
		sed -n "$((${shown:-0} + 1)),${t}p" /run/xenstored/trace | sed 's/^/@@E2E TRACE /'
		shown=$t
	fi
	if ! kill -0 $pid 2>/dev/null; then
		echo "@@E2E FAIL stub-xenstored-alive (it exited)"
		sleep 100000
	fi
done
