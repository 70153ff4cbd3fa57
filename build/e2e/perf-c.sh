#!/usr/bin/env bash
# The ring measurements against C xenstored (make e2e-perf-c; issue 15,
# issue 22): Debian's Xen 4.17 under QEMU (TCG) with HVM+HAP (-cpu
# qemu64,+svm,+npt, as pvh.sh), Debian's C xenstored 4.17 (xen-utils-4.17)
# as the dom0 daemon, and the same PVH domU as pvh.sh (build/e2e/pvh-domu.sh:
# Debian's kernel, busybox, xsprobe, build/e2e/pvh-guest-init.sh) measuring
# reads and writes through its kernel's /dev/xen/xenbus; `xenstore-control
# live-update -f` switches the same dom0 daemon process to OUR xenstored
# (make build), the same domU measures again, and back to C for the next
# round (step 3p: rounds of C, then ours, in turn). dom0's /init is
# build/e2e/perf-c-dom0-init.sh. Afterwards it prints, per kind,
#   @@E2E PERF <kind> stub=R ours-dom0=R c=R ours-dom0/c=X stub/c=Y
#     cpu_ms/op stub=A ours-dom0=B c=C server/domu stub=a ours-dom0=b c=c
#     goals ours-dom0>=c:met|NOT-met stub>=2c:...
# (ops/s; cpu_ms/op: Xen's CPU time per operation of the store's domain:
# our stub, or dom0 with the daemon; server/domu: that over the measuring
# domU's own CPU per operation, the same work in every case, so a slower
# host counts less), and @@E2E PERF-GOAL lines, one per goal, with how many
# kinds meet it. stub= comes from pvh.sh's saved
# measurements of the same run (images/e2e-perf-ours.txt); where that file
# is missing or older than this run, stub=? and a line says why. The lines
# are saved in images/e2e-perf.txt and appended to the serial log.
#
# Environment:
#   E2E_RUN_START  epoch seconds the run began (`make e2e`, `make e2e-perf`
#                  set it before pvh.sh); the stub's numbers count only if
#                  saved since. Default: this script's start (so alone:
#                  stub=?); 0 takes any saved file
#   E2E_PERF_OURS  the stub's saved measurements (default images/e2e-perf-ours.txt)
#   E2E_PERF_SECS, E2E_PERF_ROUNDS  as pvh.sh (default 3 and 3)
#   E2E_TIMEOUT    seconds for the boot (default 900)
#   E2E_LOG        serial log (default images/e2e-perf-c.log)
#   E2E_NOBUILD=1  skip `make build` (our xenstored, bin/xenstored)
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
TIMEOUT=${E2E_TIMEOUT:-900}
LOG=${E2E_LOG:-$ROOT/images/e2e-perf-c.log}
OURS=${E2E_PERF_OURS:-$ROOT/images/e2e-perf-ours.txt}
OUT=$ROOT/images/e2e-perf.txt
RUN_START=${E2E_RUN_START:-$(date +%s)}
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-perf-c [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-perf-c [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }
[ "${E2E_XEN:-4.17}" = 4.17 ] || die "E2E_XEN=$E2E_XEN: the C xenstored boot is Xen 4.17 only (pvh.sh measures ours on 4.17)"

# --- 1. packages, dom0 base, Xen (shared with pv.sh; no stub needed)
say "preparing (build/e2e/pv.sh, E2E_PREPARE_ONLY=1 E2E_NOSTUB=1)"
PREP=$(mktemp)
E2E_XEN=4.17 E2E_PREPARE_ONLY=1 E2E_NOSTUB=1 E2E_PREPARED=$PREP bash "$HERE/pv.sh" || die "preparation failed"
. "$PREP"
rm -f "$PREP"
[ -n "${BASE:-}" ] && [ -f "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"
XSD=$PKGROOT/usr/lib/xen-4.17/bin/xenstored
[ -x "$XSD" ] || die "no C xenstored at $XSD (xen-utils-4.17 unpacked by pv.sh)"

# --- 2. the raw wire client
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
CGO_ENABLED=0 go build -C "$ROOT" -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe

# --- 3. the per-run overlay: /init, C xenstored and ours with their
# libraries (the host's, as for the base's Xen tools), xsprobe, the PVH domU
[ -n "${E2E_NOBUILD:-}" ] || make -s -C "$ROOT" build
[ -x "$ROOT/bin/xenstored" ] || die "no $ROOT/bin/xenstored (make build)"
O=$W/o
mkdir -p $O/e2e $O/usr/local/bin $O/usr/lib/xen-4.17/bin $O/usr/sbin
cp "$HERE/perf-c-dom0-init.sh" $O/init
chmod +x $O/init
cp "$HERE/dom0-lib.sh" $O/e2e/
cat >$O/e2e/config <<CFG
PERF_SECS=${E2E_PERF_SECS:-3}
PERF_ROUNDS=${E2E_PERF_ROUNDS:-3}
CFG
cp "$XSD" $O/usr/lib/xen-4.17/bin/xenstored
cp "$ROOT/bin/xenstored" $O/usr/sbin/xsstub-xenstored
for l in $(LD_LIBRARY_PATH= ldd "$XSD" "$ROOT/bin/xenstored" | awk '/=>/ {print $3}' | sort -u); do
	mkdir -p "$O/$(dirname "$l")"
	cp -L "$l" "$O/$l"
done
cp "$W/xsprobe" $O/usr/local/bin/
. "$HERE/pvh-domu.sh"
pvh_domu_image $O e2e.perfonly
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot, then the stub's numbers beside ours-dom0's and C's, and the
# verdict (build/e2e/boot.sh)
. "$HERE/boot.sh"
after_boot() {
	local stub="" why="" scal=""
	if [ ! -f "$OURS" ]; then
		why="no $OURS: pvh.sh did not run, or its step 3p measured nothing, in this run"
	elif [ "$(stat -c %Y "$OURS")" -lt "$RUN_START" ]; then
		why="$OURS was saved $(date -u -d @"$(stat -c %Y "$OURS")" +%FT%TZ), before this run began ($(date -u -d @"$RUN_START" +%FT%TZ)): make e2e-perf runs both boots"
	else
		stub=$OURS
		scal=$(sed -n 's/^# calibrate //p' "$OURS")
	fi
	{
		{
			[ -z "$stub" ] || {
				grep -v '^#' "$stub" | sed 's/^/stub rate /'
				sed -n 's/^# cpu /stub cpu /p' "$stub"
			}
			for who in ours-dom0 c; do
				perf_results "$LOG" $who | sed "s/^/$who rate /"
				perf_cpu "$LOG" $who | sed "s/^/$who cpu /"
			done
		} | perf_table
		[ -z "$why" ] || echo "@@E2E PERF-NOTE stub=?: $why"
		for who in ours-dom0 c; do
			[ -n "$(perf_results "$LOG" $who)" ] || echo "@@E2E PERF-NOTE $who=?: this boot measured nothing for $who (see its checks)"
		done
		echo "@@E2E PERF-NOTE the domU's speed, seconds of a busybox loop before,after the measurements (host load moves it; lower is faster): stub's boot ${scal:-?}, c $(perf_calibration "$LOG" c), ours-dom0 $(perf_calibration "$LOG" ours-dom0)"
	} >"$OUT"
	say "ring measurements, ops/s: our stub (pvh.sh, this run), ours in dom0 and C in dom0 (this boot, one domU); also in $OUT:"
	sed 's/^/   /' "$OUT"
	sed 's/^/[host] /' "$OUT" >>"$LOG"
}

# perf_table: "WHO rate KIND ... ops_per_s=R ..." and "WHO cpu KIND
# server_ms=X ..." lines (WHO: stub, ours-dom0, c) in; one @@E2E PERF line
# per kind and one @@E2E PERF-GOAL line per goal (issue 22: ours-dom0 >= C,
# stub >= 2x C, in ops/s) out. A kind one side did not measure is "?" and
# counts as not met.
perf_table() {
	awk '
		function num(s, key) { return match(s, key "=[0-9.]+") ? substr(s, RSTART + length(key) + 1, RLENGTH - length(key) - 1) : "?" }
		$2 == "rate" { r[$1, $3] = num($0, "ops_per_s"); if (!($3 in seen)) { seen[$3] = 1; order[++k] = $3 } }
		$2 == "cpu" { c[$1, $3] = num($0, "server_ms"); u[$1, $3] = num($0, "domu_ms") }
		function get(a, who, kind) { return ((who, kind) in a) ? a[who, kind] : "?" }
		function ratio(a, b) { return (a != "?" && b != "?" && b > 0) ? sprintf("%.2f", a / b) : "?" }
		function verdict(x, want) { return (x != "?" && x + 0 >= want) ? "met" : "NOT-met" }
		END {
			for (i = 1; i <= k; i++) {
				n = order[i]
				s = get(r, "stub", n); o = get(r, "ours-dom0", n); cc = get(r, "c", n)
				oc = ratio(o, cc); sc = ratio(s, cc)
				g1 = verdict(oc, 1); g2 = verdict(sc, 2)
				m1 += g1 == "met"; m2 += g2 == "met"
				printf "@@E2E PERF %s stub=%s ours-dom0=%s c=%s ours-dom0/c=%s stub/c=%s cpu_ms/op stub=%s ours-dom0=%s c=%s server/domu stub=%s ours-dom0=%s c=%s goals ours-dom0>=c:%s stub>=2c:%s\n", n, s, o, cc, oc, sc, get(c, "stub", n), get(c, "ours-dom0", n), get(c, "c", n), ratio(get(c, "stub", n), get(u, "stub", n)), ratio(get(c, "ours-dom0", n), get(u, "ours-dom0", n)), ratio(get(c, "c", n), get(u, "c", n)), g1, g2
				l1 = l1 " " n "=" oc; l2 = l2 " " n "=" sc
			}
			if (k == 0) { print "@@E2E PERF none: no boot measured a kind"; exit }
			printf "@@E2E PERF-GOAL ours-dom0>=c %s: %d of %d kinds (ours-dom0/c:%s)\n", m1 == k ? "met" : "NOT met", m1, k, l1
			printf "@@E2E PERF-GOAL stub>=2c %s: %d of %d kinds (stub/c:%s)\n", m2 == k ? "met" : "NOT met", m2, k, l2
		}'
}
boot_and_judge +svm,+npt "Xen 4.17, HVM+HAP; Debian's C xenstored 4.17 and ours in dom0 in turn (live update); PVH domU measuring the ring"
