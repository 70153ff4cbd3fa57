#!/usr/bin/env bash
# The ring measurements against C xenstored (make e2e-perf-c; issue 15):
# Debian's Xen 4.17 under QEMU (TCG) with HVM+HAP (-cpu qemu64,+svm,+npt,
# as pvh.sh), Debian's C xenstored 4.17 (xen-utils-4.17) as the dom0
# daemon, and the same PVH domU as pvh.sh (build/e2e/pvh-domu.sh: Debian's
# kernel, busybox, xsprobe, build/e2e/pvh-guest-init.sh) measuring reads and
# writes through its kernel's /dev/xen/xenbus (step 3p; dom0's /init is
# build/e2e/perf-c-dom0-init.sh). Afterwards it prints, for each kind,
#   @@E2E PERF <kind> ours=<ops/s> c=<ops/s> ours/c=<ratio>
# with ours from pvh.sh's saved measurements of the same run
# (images/e2e-perf-ours.txt); where that file is missing or older than this
# run, ours=? and a line says why. The lines are saved in images/e2e-perf.txt
# and appended to the serial log.
#
# Environment:
#   E2E_RUN_START  epoch seconds the run began (`make e2e`, `make e2e-perf`
#                  set it before pvh.sh); ours counts only if saved since.
#                  Default: this script's start (so alone: ours=?); 0 takes
#                  any saved file
#   E2E_PERF_OURS  our saved measurements (default images/e2e-perf-ours.txt)
#   E2E_PERF_SECS, E2E_PERF_ROUNDS  as pvh.sh (default 3 and 3)
#   E2E_TIMEOUT    seconds for the boot (default 420)
#   E2E_LOG        serial log (default images/e2e-perf-c.log)
#   E2E_PERF_DAEMON  c (default) or ours: OUR xenstored (make build) as the
#                  dom0 daemon instead, to tell our code from the stub
#                  domain's platform; its lines read ours-dom0= instead of c=
#                  (log images/e2e-perf-ours-dom0.log, images/e2e-perf-ours-dom0.txt)
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
TIMEOUT=${E2E_TIMEOUT:-420}
DAEMON=${E2E_PERF_DAEMON:-c}
case $DAEMON in
c) LABEL=c SUFFIX=c ;;
ours) LABEL=ours-dom0 SUFFIX=ours-dom0 ;;
*) echo "E2E_PERF_DAEMON=$DAEMON: want c or ours" >&2; exit 2 ;;
esac
LOG=${E2E_LOG:-$ROOT/images/e2e-perf-$SUFFIX.log}
OURS=${E2E_PERF_OURS:-$ROOT/images/e2e-perf-ours.txt}
OUT=$ROOT/images/e2e-perf$([ $DAEMON = c ] || echo "-$SUFFIX").txt
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

# --- 3. the per-run overlay: /init, C xenstored and its libraries (the
# host's, as for the base's Xen tools), xsprobe, the PVH domU
O=$W/o
mkdir -p $O/e2e $O/usr/local/bin $O/usr/lib/xen-4.17/bin
cp "$HERE/perf-c-dom0-init.sh" $O/init
chmod +x $O/init
cp "$HERE/dom0-lib.sh" $O/e2e/
if [ $DAEMON = ours ]; then
	[ -n "${E2E_NOBUILD:-}" ] || make -s -C "$ROOT" build
	XSD=$ROOT/bin/xenstored
	DST=/usr/sbin/xsstub-xenstored
else
	DST=/usr/lib/xen-4.17/bin/xenstored
fi
cat >$O/e2e/config <<CFG
PERF_SECS=${E2E_PERF_SECS:-3}
PERF_ROUNDS=${E2E_PERF_ROUNDS:-3}
XSD=$DST
CFG
mkdir -p "$O/$(dirname $DST)"
cp "$XSD" "$O/$DST"
for l in $(LD_LIBRARY_PATH= ldd "$XSD" | awk '/=>/ {print $3}'); do
	mkdir -p "$O/$(dirname "$l")"
	cp -L "$l" "$O/$l"
done
cp "$W/xsprobe" $O/usr/local/bin/
. "$HERE/pvh-domu.sh"
pvh_domu_image $O e2e.perfonly
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot, then ours beside C's, and the verdict (build/e2e/boot.sh)
. "$HERE/boot.sh"
after_boot() {
	local ours="" why="" ocal=""
	if [ ! -f "$OURS" ]; then
		why="no $OURS: pvh.sh did not run, or its step 3p measured nothing, in this run"
	elif [ "$(stat -c %Y "$OURS")" -lt "$RUN_START" ]; then
		why="$OURS was saved $(date -u -d @"$(stat -c %Y "$OURS")" +%FT%TZ), before this run began ($(date -u -d @"$RUN_START" +%FT%TZ)): make e2e-perf runs both boots"
	else
		ours=$(grep -v '^#' "$OURS")
		ocal=$(sed -n 's/^# calibrate //p' "$OURS")
	fi
	{
		perf_results "$LOG" | awk -v ours="$ours" -v label="$LABEL" '
			function rate(s) { return match(s, /ops_per_s=[0-9]+/) ? substr(s, RSTART + 10, RLENGTH - 10) : "?" }
			BEGIN { n = split(ours, l, "\n"); for (i = 1; i <= n; i++) if (l[i] != "") { split(l[i], f, " "); o[f[1]] = rate(l[i]); order[++k] = f[1] } }
			{ c[$1] = rate($0); if (!($1 in o)) order[++k] = $1 }
			END {
				for (i = 1; i <= k; i++) {
					name = order[i]; a = (name in o) ? o[name] : "?"; b = (name in c) ? c[name] : "?"
					r = (a != "?" && b != "?" && b > 0) ? sprintf(" ours/%s=%.2f", label, a / b) : ""
					printf "@@E2E PERF %s ours=%s %s=%s%s\n", name, a, label, b, r
				}
				if (k == 0) print "@@E2E PERF none: neither boot measured a kind"
			}'
		[ -z "$why" ] || echo "@@E2E PERF-NOTE ours=?: $why"
		[ -n "$(perf_results "$LOG")" ] || echo "@@E2E PERF-NOTE $LABEL=?: this boot measured nothing (see its checks)"
		echo "@@E2E PERF-NOTE the domU's speed, seconds of a busybox loop before,after the measurements (host load moves it; lower is faster): ours' boot ${ocal:-?}, $LABEL's boot $(perf_calibration "$LOG")"
	} >"$OUT"
	say "ring measurements, ours (pvh.sh, this run) beside $LABEL (this boot's dom0 daemon), ops/s; also in $OUT:"
	sed 's/^/   /' "$OUT"
	sed 's/^/[host] /' "$OUT" >>"$LOG"
}
boot_and_judge +svm,+npt "Xen 4.17, HVM+HAP; $([ $DAEMON = c ] && echo "Debian's C xenstored 4.17" || echo "OUR xenstored") in dom0, PVH domU measuring the ring"
