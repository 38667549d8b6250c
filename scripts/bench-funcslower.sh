#!/bin/sh
# Benchmark: what funcslower costs each call of the function it times. POSIX sh, so it
# also runs in the VM guests (busybox), the only place here with function_graph:
#   scripts/bench-funcslower.sh [CALLS] [FUNCSLOWER]         (as root)
#   VM_SMP=1 scripts/vm/run.sh --kernel 7.x --bin target/static/x86_64-unknown-linux-gnu/ship/funcslower scripts/bench-funcslower.sh
# (defaults: 200000 calls; FUNCSLOWER: funcslower from PATH.)
# Load: `dd bs=1 count=CALLS` from /dev/zero to /dev/null, one read() and so one
# vfs_read() per byte. Timed three ways, twice each: untraced; under
# `funcslower vfs_read 1000000` (every call timed by function_graph, none slow enough to
# be printed: the cost of the in-kernel hook alone); and under
# `funcslower vfs_read 1` (every call printed: the cost with output). Reported: dd's
# elapsed time (from /proc/uptime, 10 ms resolution) and the added time per call.
# The shell original needs bash, which the guests lack; where it runs, time it the same way.
set -eu
n=${1:-200000}
fs=${2:-funcslower}
work=$(mktemp -d /tmp/bench-funcslower.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill -INT "$pid" 2>/dev/null || true
  [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
uptime_cs() { read -r up _ </proc/uptime; echo "$up" | tr -d .; }
run_dd() { # prints dd's elapsed centiseconds
  t0=$(uptime_cs)
  dd if=/dev/zero of=/dev/null bs=1 count="$n" 2>/dev/null
  t1=$(uptime_cs)
  echo $((t1 - t0))
}
traced() { # THRESHOLD: dd under funcslower; prints centiseconds
  "$fs" vfs_read "$1" >"$work/out" 2>"$work/err" &
  pid=$!
  i=0
  until grep -q '^Tracing' "$work/out" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 600 ] || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
  done
  cs=$(run_dd)
  kill -INT "$pid"
  wait "$pid"
  pid=
  lines=$(grep -c 'vfs_read' "$work/out" || true)
  echo "$cs $((lines - 1))"
}
per_call() { # CS BASE: added nanoseconds per call
  echo $(( ($1 - $2) * 10000000 / n ))
}
echo "kernel: $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
echo "load:   dd bs=1 count=$n if=/dev/zero of=/dev/null (one vfs_read() per byte)"
for round in 1 2; do
  base=$(run_dd)
  r=$(traced 1000000)
  quiet=${r% *} qlines=${r#* }
  r=$(traced 1)
  loud=${r% *} llines=${r#* }
  echo "round $round: untraced ${base}0 ms;" \
    "funcslower vfs_read 1000000: ${quiet}0 ms (+$(per_call "$quiet" "$base") ns/call, $qlines lines);" \
    "funcslower vfs_read 1: ${loud}0 ms (+$(per_call "$loud" "$base") ns/call, $llines lines)"
done
