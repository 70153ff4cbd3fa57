# Sourced by every dom0 /init of the e2e boots (busybox sh; deb-dom0-init.sh
# under dash): the preamble they share (busybox's applets, PATH, mounts),
# the check helpers, and the PVH domU and ring measurements of
# pvh-dom0-init.sh and perf-c-dom0-init.sh. Every host script that builds a
# dom0 overlay puts it at /e2e/dom0-lib.sh (pv.sh, pvh.sh, perf-c.sh,
# deb.sh, launcher-pvh.sh, daemon-overlay.sh for daemon.sh, lu-c.sh and
# arm-daemon.sh).
# Before sourcing, an /init may set DOM0_BUSYBOX=0 (deb: Debian's programs
# first; it links busybox's applets itself; it sets its own PATH after) and
# DOM0_DEBIAN_RUN=1 (the boots where Debian's /etc/init.d/xen starts the
# daemons: /var/run is /run, as on Debian, and nothing is made in it
# beforehand: the script and the daemons make their own directories).
# Lines for the host script:
#   @@E2E MARK <name> t=<dom0 uptime>
#   @@E2E STEP <heading>, @@E2E INFO <name> <detail>
#   @@E2E PASS <check> [detail] / @@E2E FAIL <check> [detail]
#   @@E2E PERF-RESULT[-WHO] <kind> ops_per_s=R ops=N secs=S errors=0 rounds=R1,R2,.. (perf_step)
#   @@E2E PERF-CPU[-WHO] <kind> server_ms=X domu_ms=Y dom0_ms=Z (...) (perf_step)
#   @@E2E PERF-CALIBRATE[-WHO] loop_s=B,A (the domU's speed before and after)
#   @@E2E DONE pass=<n> fail=<n>
[ "${DOM0_BUSYBOX:-1}" = 0 ] || /bin/busybox --install -s /bin
# x86_64 or aarch64 (arm-daemon.sh boots daemon-dom0-init.sh on Arm)
MA=$(uname -m)-linux-gnu
export PATH=/usr/local/bin:$(echo /usr/lib/xen-4.*/bin):/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/$MA:/usr/lib/$MA
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
# var_run_is_run: as on Debian, /var/run is /run (libxenstore looks for
# /var/run/xenstored/socket; C's and our state_dump default there).
var_run_is_run() {
	rm -rf /var/run
	ln -s /run /var/run
}
if [ "${DOM0_DEBIAN_RUN:-0}" = 1 ]; then
	var_run_is_run
	mkdir -p /var/lib/xen /var/log/xen
else
	mkdir -p /run/xen /var/run/xen /var/lib/xen /var/log/xen /run/xenstored
fi

up() { cut -d' ' -f1 /proc/uptime; }
dt() { echo "$1 $2" | awk '{printf "%.1f", $1-$2}'; }
mark() { echo "@@E2E MARK $1 t=$(up)"; }
NPASS=0
NFAIL=0
pass() { NPASS=$((NPASS + 1)); echo "@@E2E PASS $*"; }
fail() { NFAIL=$((NFAIL + 1)); echo "@@E2E FAIL $*"; }
step() { echo "@@E2E STEP $*"; }
T() { timeout 20 "$@"; }
# xwait PATH SECS: xsprobe wait with its own deadline (T's 20 s would cut it short).
xwait() { timeout $(($2 + 10)) xsprobe wait "$1" "$2"; }
DOMUCONS=/var/log/xen/guest-domupvh.log
# dcons [FILE]: a console log (default the domU's, DOMUCONS) without the
# CRs xenconsoled keeps.
dcons() { tr -d '\r' <"${1:-$DOMUCONS}" 2>/dev/null; }
gwait() { # gwait PATTERN SECS: wait for a line in the domU's console
	i=0
	while [ $i -lt $2 ] && ! dcons | grep -q "$1"; do sleep 1; i=$((i + 1)); done
	dcons | grep -q "$1"
}
# A console goes to the serial log as it comes (a hung boot still shows it).
follow() { # follow FILE PREFIX
	(tail -n +1 -F $1 2>/dev/null | while IFS= read -r l; do echo "$2 $l"; done) &
}
# finish: the verdict line, then power off. An /init's finish_hook, if it
# defines one, runs first (consoles, traces).
finish() {
	if command -v finish_hook >/dev/null; then finish_hook; fi
	sleep 1
	echo "@@E2E DONE pass=$NPASS fail=$NFAIL"
	sleep 1
	echo o >/proc/sysrq-trigger
	sleep 5
	poweroff -f
}
# xl list's state column (r b p s c d): s(hutdown), c(rashed), d(ying) fail.
xl_state_ok() { # xl_state_ok NAME: the domain is listed and its state has no s, c or d
	st=$(T xl list "$1" 2>/dev/null | awk -v n="$1" '$1 == n {print $5}')
	[ -n "$st" ] && ! echo "$st" | grep -q '[scd]'
}
# xen_modules [nomount]: Xen's modules, xenfs on /proc/xen (nomount: Debian's
# /etc/init.d/xen mounts it when /proc/xen/capabilities is missing); which
# hypervisor runs.
xen_modules() {
	for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
		insmod /modules/$m.ko* || echo "insmod $m failed"
	done
	[ "$1" = nomount ] || mount -t xenfs xenfs /proc/xen
	echo "@@E2E INFO hypervisor Xen $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra) (sysfs)"
	echo "dom0: /dev/xen: $(ls /dev/xen | tr '\n' ' '); xen caps: $(cat /sys/hypervisor/properties/capabilities 2>&1)"
}
# syslog_tail [N]: the daemons' last syslog lines (busybox syslogd -O
# /var/log/messages; C's daemon, and ours after C's live update, log there).
syslog_tail() { grep -a -E 'xenstored|live.update' /var/log/messages 2>/dev/null | tail -${1:-20} | cut -c1-220 | sed 's/^/[syslog] /'; }
# live_update NAME BINARY: `xenstore-control live-update -f BINARY` of the
# dom0 daemon (C's or ours), between @@E2E MARK LU-NAME-START and -END;
# sets LU_RC (its exit status) and LU_TOOK (seconds of dom0 time); its
# output is in /tmp/lu.out and the serial log.
live_update() {
	mark LU-$1-START
	t0=$(up)
	timeout 300 xenstore-control live-update -f $2 >/tmp/lu.out 2>&1
	LU_RC=$?
	LU_TOOK=$(dt $(up) $t0)
	mark LU-$1-END
	sed 's/^/xenstore-control: /' /tmp/lu.out
	sleep 1
}
# Which Xen runs: `xl info`'s xen_version line, as is, into the serial log.
xen_version() {
	T xl info >/tmp/xlinfo 2>&1
	grep '^xen_version' /tmp/xlinfo || echo "xen_version: (xl info failed: $(tail -1 /tmp/xlinfo))"
}

# pvh_domu_create: xl create of the PVH domU (/etc/xen/domupvh.cfg, built by
# build/e2e/pvh-guest.sh); checks xl-create-pvh and guest-xenbus-reads-name
# (its /init reads name and domid through its kernel's /dev/xen/xenbus).
# Sets ID (its domid), H (/local/domain/ID), T1 (dom0 uptime when xl
# returned). STUBID, when set, is our stub's domid (its triple fault fails;
# the caller's stub_dead_check, if any, runs).
pvh_domu_create() {
	mark CREATE-START
	T0=$(up)
	(timeout 150 xl -vvv create /etc/xen/domupvh.cfg 2>&1
		echo "xl-rc=$?") | while IFS= read -r l; do echo "$(up) $l"; done >/tmp/xl-create.log
	rc=$(sed -n 's/^[0-9.]* xl-rc=//p' /tmp/xl-create.log)
	T1=$(up)
	mark CREATE-END
	grep -v 'xl-rc=' /tmp/xl-create.log | grep -E -v 'debug|detail' | tail -5
	sort /proc/kallsyms >/tmp/ks.sorted # dom0 runs the same kernel as the domU
	sym() { awk -v A="$1" '$2 ~ /[tT]/ { if ($1 <= A) b = $3; else exit } END { print b }' /tmp/ks.sorted; }
	# The domU's kernel (Debian's, a guest we do not ship, booted PVH under TCG)
	# triple-faulted early in boot in 1 of 9 boots with -smp 2 (before it used
	# xenstore); libxl then restarts it under a new domid (on_reboot=restart).
	# That rerun is bounded to ONE and named in the log (@@E2E INFO domu-rerun);
	# a second restart fails the boot (domu-restarts). Follow the domain by name.
	ID0=$(xl domid domupvh 2>/dev/null)
	gwait '^GUEST name=' 150
	ID=$(xl domid domupvh 2>/dev/null)
	if [ -n "$ID0" ] && [ -n "$ID" ] && [ "$ID0" != "$ID" ]; then
		echo "@@E2E INFO domu-rerun the domU (Debian's kernel, not ours) rebooted: domid $ID0 -> $ID, $((ID - ID0)) restart(s) (dom$ID0's nodes: $(T xenstore-list /local/domain/$ID0 >/dev/null 2>&1 && echo still there || echo gone))"
		if [ $((ID - ID0)) -gt 1 ]; then fail domu-restarts "the domU restarted $((ID - ID0)) times (bound: 1)"; fi
	fi
	if xl dmesg | grep -q 'Triple fault'; then
		xl dmesg | grep -A3 'Triple fault' | head -8
		rip=$(xl dmesg | sed -n 's/.*RIP: *[0-9a-f]*:\[<\([0-9a-f]*\)>\].*/\1/p' | head -1)
		if [ -n "$STUBID" ] && xl dmesg | grep -q "d${STUBID}v[0-9]* Triple fault"; then
			fail stub-triple-fault "OUR stub (dom$STUBID) triple-faulted at $rip"
		else
			echo "@@E2E INFO domu-triple-fault the PVH domU's kernel triple-faulted at $rip ($(sym $rip)); libxl restarted it: domid $ID0 -> $ID"
		fi
	fi
	if command -v stub_dead_check >/dev/null; then stub_dead_check; fi
	if [ "$rc" = 0 ] && [ -n "$ID" ] && xstool alive $ID | grep -q "^dom=$ID xenstore=0 hvm=1 .*state=alive"; then
		pass xl-create-pvh "domid=$ID took=$(dt $T1 $T0)s"
	else
		fail xl-create-pvh "rc=$rc domid='$ID' after $(dt $T1 $T0)s"
		grep -v 'xl-rc=' /tmp/xl-create.log | tail -30
	fi
	xl list
	H=/local/domain/$ID
	if dcons | grep -q '^GUEST name='; then
		l=$(dcons | grep '^GUEST name=' | tail -1)
		echo "domU: $(dcons | grep -E '^(DOMU-UP|GUEST /dev)' | tr '\n' ' ')"
		if [ "$l" = "GUEST name=domupvh domid=$ID" ]; then
			pass guest-xenbus-reads-name "the guest read its name through /dev/xen/xenbus: '$l' ($(dt $(up) $T1)s after create returned)"
		else
			fail guest-xenbus-reads-name "'$l'"
		fi
	else
		fail guest-xenbus-reads-name "no GUEST line in the domU's console in 150s"
		dcons | tail -30
	fi
}

# The ring measurements (issue 15): each kind is NAME:OP:DEPTH, run in the
# domU as `xsprobe perf OP data/perf/NAME SECS DEPTH` through its kernel's
# /dev/xen/xenbus (OP txwrite: the WRITEs inside one transaction, which
# neither daemon's write rate limit charges).
PERF_KINDS="ring-read:read:1 ring-read-16:read:16 ring-write:write:1 ring-write-16:write:16 ring-write-tx:txwrite:1 ring-write-tx-16:txwrite:16"

# perf_go N VALUE: the domU's Nth order (pvh-guest-init.sh waits for it):
# "SECS NAME:OP:DEPTH", or "done".
perf_go() {
	T xenstore-write $H/data/perf/go-$1 "$2"
	T xenstore-chmod $H/data/perf/go-$1 n$ID
}
cpu_ms() { xstool doms | sed -n 's/^dom=\([0-9]*\) .*cpu_ms=\([0-9]*\) .*/\1 \2/p'; }

# The measurement, in pieces (pvh-dom0-init.sh runs them as perf_step;
# perf-c-dom0-init.sh alternates two daemons round by round in between):
#   perf_begin          fresh result files; 2 s of READs, not reported
#   perf_round SECS R [WHO]  every kind once (round R), tagged WHO; each
#                       result and the CPU time each domain spent (Xen's
#                       accounting, xstool doms around it) kept per WHO
#   perf_warmup TAG     2 s of READs, not reported (after a daemon switch)
#   perf_end            the domU's last order; its PERF-CALIBRATE line
#   perf_report ROUNDS [WHO]  per kind the median of the rounds' ops/s with
#                       their ops and seconds summed (@@E2E PERF-RESULT[-WHO])
#                       and the CPU per operation (@@E2E PERF-CPU[-WHO]); the
#                       domU's speed (@@E2E PERF-CALIBRATE[-WHO]); the check
#                       ring-perf[-WHO]: every kind measured in every round,
#                       no error. A kind that failed in any round prints no
#                       PERF-RESULT line.
# dom0 hands the domU one kind at a time and only sleeps while it measures.
# Orders to the domU are numbered on (PERF_N) and tagged, so no call reads
# another's lines.
PERF_N=0
perf_begin() {
	rm -f /tmp/perf-*.res /tmp/perf-*.cpu /tmp/perf-*.bad
	mark PERF-START
	PERF_T0=$(up)
	perf_warmup w
}
perf_warmup() { # perf_warmup TAG
	PERF_N=$((PERF_N + 1))
	perf_go $PERF_N "2 warm-up:read:1 $1"
	sleep 3
	gwait "^GUEST PERF warm-up $1 " 60
}
perf_round() { # perf_round SECS R [WHO]
	local tag=${3:+$3-}r$2 f=/tmp/perf-${3:-all}
	for k in $PERF_KINDS; do
		PERF_N=$((PERF_N + 1))
		name=${k%%:*}
		cpu_ms >/tmp/cpu0
		perf_go $PERF_N "$1 $k $tag"
		sleep $(($1 + 1)) # one process: gwait's grep every second would take CPU from the ring
		gwait "^GUEST PERF $name $tag " $(($1 * 6 + 60))
		cpu_ms >/tmp/cpu1
		l=$(dcons | grep "^GUEST PERF $name $tag " | tail -1)
		res=${l#GUEST PERF $name $tag }
		echo "domU: $l"
		if echo "$res" | grep -q '^ops=[1-9][0-9]* secs=[0-9.]* ops_per_s=[0-9]* errors=0$'; then
			echo "$res" >>$f-$name.res
			awk 'NR == FNR {a[$1] = $2; next} {print $1, $2 - a[$1]}' /tmp/cpu0 /tmp/cpu1 >>$f-$name.cpu
		else
			echo "$name $tag: '${res:-no result}';" >>$f.bad
		fi
	done
}
perf_end() {
	PERF_N=$((PERF_N + 1))
	perf_go $PERF_N done
	gwait "^GUEST-PERF-DONE order=$PERF_N " 60
	mark PERF-END
}
perf_report() { # perf_report ROUNDS [WHO]
	local who=${2:+-$2} f=/tmp/perf-${2:-all} nk=0
	for k in $PERF_KINDS; do
		name=${k%%:*}
		nk=$((nk + 1))
		[ "$(wc -l <$f-$name.res 2>/dev/null)" = "$1" ] || continue
		rates=$(sed 's/.*ops_per_s=\([0-9]*\).*/\1/' $f-$name.res)
		med=$(echo "$rates" | sort -n | sed -n "$((($1 + 1) / 2))p")
		tot=$(sed 's/^ops=\([0-9]*\) secs=\([0-9.]*\) .*/\1 \2/' $f-$name.res | awk '{o += $1; s += $2} END {printf "ops=%d secs=%.2f", o, s}')
		echo "@@E2E PERF-RESULT$who $name ops_per_s=$med $tot errors=0 rounds=$(echo $rates | tr ' ' ,)"
		perf_cpu_line "$who" $name "${tot%% *}" $f-$name.cpu
	done
	echo "@@E2E PERF-CALIBRATE$who $(dcons | sed -n 's/^GUEST PERF-CALIBRATE //p' | tail -1) (seconds of a busybox loop in the domU before and after)"
	if [ ! -s $f.bad ]; then
		pass ring-perf$who "$nk kinds measured through the domU's /dev/xen/xenbus, $1 rounds each, no error (dom0 saw $(dt $(up) $PERF_T0)s for all the measurements)"
	else
		fail ring-perf$who "$(tr '\n' ' ' <$f.bad)"
	fi
}

# perf_step SECS ROUNDS: all kinds ROUNDS times over (so a slow spell of
# the shared host hits every kind), then the report.
perf_step() {
	perf_begin
	r=1
	while [ $r -le $2 ]; do
		perf_round $1 $r
		r=$((r + 1))
	done
	perf_end
	perf_report $2
}

# perf_cpu_line -WHO KIND ops=N FILE: the ms of CPU per operation each
# domain spent over KIND's rounds (FILE: "domid ms" per round; Xen's
# accounting, dom0's wait around each included): server_ms is the store's
# side (our stub, STUBID, when there is one, else dom0, where the daemon
# runs), domu_ms the measuring domU (ID).
perf_cpu_line() {
	awk -v ops="${3#ops=}" -v stub="$STUBID" -v domu="$ID" -v who="$1" -v name="$2" '
		{ c[$1] += $2 }
		END {
			srv = stub != "" ? stub : 0
			all = ""
			for (d = 0; d < 1000; d++) if (d in c) all = all sprintf(" dom%s=%.2f", d, c[d] / ops)
			printf "@@E2E PERF-CPU%s %s server_ms=%.2f domu_ms=%.2f dom0_ms=%.2f (ms of CPU per operation, Xen accounting; server: dom%s%s; all:%s)\n", who, name, c[srv] / ops, c[domu] / ops, c[0] / ops, srv, stub != "" ? ", our stub" : ", the dom0 daemon", all
		}' $4
}
