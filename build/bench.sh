#!/usr/bin/env bash
# make bench: the same load scenarios against our xenstored, C xenstored
# 4.22 (built by build/xen422.sh), Debian's C xenstored 4.17 and oxenstored
# 4.17 (all run without Xen through LD_PRELOAD shims) and two do-nothing
# servers (nullstored in Go, cnull in C), in one invocation on this machine.
# Prints a table with ratios against C 4.22 and writes a chart.
#   build/bench.sh OUR_XENSTORED [PNG]
# Environment: BENCH_DURATION (per run, default 2s), BENCH_REPEAT (runs per
# scenario and server, best and median reported, default 2), BENCH_TARGETS
# (subset of "go c422 c417 ox null cnull"), BENCH_SCENARIOS (comma-separated
# subset of the suite, e.g. rw-1x1), BENCH_MD (also write the table as
# Markdown there), BENCH_PARTS (subset of "suite ring storm": the socket
# suite, the ring ceiling, the creation storm), BENCH_STORM (the storm's
# numbers of domains, default 1,10,100; make storm goes to 1000),
# BENCH_RING_REPEAT (ring ceiling runs of 1 s, default 7), BENCH_STORM_MD (the storm
# table as Markdown there), XSSTUB_CACHE (where build/test-deps.sh unpacked
# xen-utils-4.17 and build/xen422.sh built Xen 4.22).
set -euo pipefail
ours=$(realpath "$1"); png=${2:-images/bench.png}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${XSSTUB_CACHE:-/var/cache/xsstub}
xen=$cache/xen-utils
x422=$cache/xen-4.22/root
dur=${BENCH_DURATION:-2s}; repeat=${BENCH_REPEAT:-2}
want=${BENCH_TARGETS:-go c422 c417 ox null cnull}
parts=${BENCH_PARTS:-suite ring storm}
storm=${BENCH_STORM:-1,10,100}

tmp=$(mktemp -d /tmp/xsbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building the load generator, the do-nothing servers and the shims in $tmp"
(cd "$root" && go build -o "$tmp/" ./bench/cmd/xsload ./bench/cmd/nullstored)
has() { [[ " $want " == *" $1 "* ]]; }
if has cnull; then
  gcc -O2 -Wall -o "$tmp/cnull" "$root/bench/cnull/cnull.c"
fi
if has c417 || has ox; then
  [ -x "$xen/usr/lib/xen-4.17/bin/xenstored" ] || { echo "no C xenstored in $xen: run bash build/test-deps.sh" >&2; exit 1; }
  gcc -O2 -Wall -fPIC -shared -o "$tmp/xsshim.so" "$root/difftest/shim/xsshim.c" -ldl
  gcc -O2 -Wall -fPIC -shared -o "$tmp/oxshim.so" "$root/bench/shim/oxshim.c" -ldl
fi
if has c422; then
  [ -x "$x422/usr/sbin/xenstored" ] || { echo "no C xenstored 4.22 in $x422: run bash build/test-deps.sh" >&2; exit 1; }
  gcc -O2 -Wall -fPIC -shared -DXSSHIM_XENMANAGE -I"$x422/usr/include" -o "$tmp/xsshim422.so" \
    "$root/difftest/shim/xsshim.c" -ldl
fi

wait_socket() { # name socket pid log
  for _ in $(seq 100); do
    [ -S "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || { echo "$1 exited at start:" >&2; cat "$4" >&2; exit 1; }
    sleep 0.05
  done
  echo "$1: no socket $2 after 5s" >&2; cat "$4" >&2; exit 1
}

targets=()
start() { # name socket log cmd...
  local name=$1 sock=$2 log=$3; shift 3
  "$@" >"$log" 2>&1 &
  pids+=($!)
  wait_socket "$name" "$sock" "$!" "$log"
  targets+=(-target "$name=$sock")
}

if has go; then
  mkdir -p "$tmp/go"
  start go "$tmp/go/socket" "$tmp/go.log" "$ours" -N --socket "$tmp/go/socket"
fi
if has c422; then
  # libxenmanage is in no Debian package: its libraries come from the build.
  mkdir -p "$tmp/c422"
  start c422 "$tmp/c422/socket" "$tmp/c422.log" env XENSTORED_RUNDIR="$tmp/c422" LD_PRELOAD="$tmp/xsshim422.so" \
    LD_LIBRARY_PATH="$x422/usr/lib" "$x422/usr/sbin/xenstored" -N
fi
if has c417; then
  mkdir -p "$tmp/c417"
  start c417 "$tmp/c417/socket" "$tmp/c417.log" env XENSTORED_RUNDIR="$tmp/c417" LD_PRELOAD="$tmp/xsshim.so" \
    "$xen/usr/lib/xen-4.17/bin/xenstored" -N
fi
if has ox; then
  mkdir -p "$tmp/ox"
  # Debian's settings, with pid and log files in the scratch directory and
  # no access log (C xenstored -N keeps none either).
  sed -e "s|^pid-file = .*|pid-file = $tmp/ox/pid|" -e 's|^# xenstored-log-level = .*|xenstored-log-level = warn|' \
    "$xen/etc/xen/oxenstored.conf" >"$tmp/ox/oxenstored.conf"
  echo "xenstored-log-file = $tmp/ox/xenstored.log" >>"$tmp/ox/oxenstored.conf"
  start ox "$tmp/ox/socket" "$tmp/ox.log" env XSBENCH_SOCKET="$tmp/ox/socket" \
    LD_PRELOAD="$tmp/xsshim.so $tmp/oxshim.so" \
    "$xen/usr/lib/xen-4.17/bin/oxenstored" --no-fork --no-access-log --config-file "$tmp/ox/oxenstored.conf"
fi
if has null; then
  start null "$tmp/null.sock" "$tmp/null.log" "$tmp/nullstored" --socket "$tmp/null.sock"
fi
if has cnull; then
  start cnull "$tmp/cnull.sock" "$tmp/cnull.log" "$tmp/cnull" --socket "$tmp/cnull.sock"
fi

baseline=c422; has c422 || baseline=c417; has $baseline || baseline=${targets[1]%%=*}
echo "== $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $dur per run, $repeat runs (best and median)"
args=(-suite "${targets[@]}" -baseline "$baseline" -duration "$dur" -repeat "$repeat" -png "$png")
[ -n "${BENCH_MD:-}" ] && args+=(-markdown "$BENCH_MD")
[ -n "${BENCH_SCENARIOS:-}" ] && args+=(-scenarios "$BENCH_SCENARIOS")
part() { [[ " $parts " == *" $1 "* ]]; }
if part suite; then
  "$tmp/xsload" "${args[@]}"
fi
if part ring; then
  # More and shorter runs than the suite's: depth 1 moves by 2x run to run here.
  rrep=${BENCH_RING_REPEAT:-7}
  echo "== ring ceiling: our store over the fake hypervisor's rings against the do-nothing ring server (ringnull), in-process; 1s per run, $rrep runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$tmp/xsload" -ring-ceiling -duration 1s -repeat "$rrep"
fi
if part storm; then
  # Ours and C only: a do-nothing server cannot replay creation, and
  # oxenstored 4.17 never answers GET_FEATURE (4.22's xl sends it).
  st=()
  for ((i = 0; i < ${#targets[@]}; i += 2)); do
    case ${targets[$((i + 1))]%%=*} in go | c422 | c417) st+=(-target "${targets[$((i + 1))]}") ;; esac
  done
  echo "== creation storm: xl create + xl destroy (bench/testdata/xl-create-destroy.trace) replayed for $storm domains; load $(cut -d' ' -f1-3 /proc/loadavg)"
  sargs=(-storm "$storm" "${st[@]}" -baseline "$baseline")
  [ -n "${BENCH_STORM_MD:-}" ] && sargs+=(-markdown "$BENCH_STORM_MD")
  "$tmp/xsload" "${sargs[@]}"
fi
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || echo "warning: server ${targets[$((2*i+1))]} died during the run" >&2
done
