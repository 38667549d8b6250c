#!/usr/bin/env bash
# Benchmark: tpoint's CPU cost per event, and events printed or lost, under a syscall storm,
# next to the shell original (perf-tools' tpoint) on the same load.
#   scripts/bench-tpoint.sh [EVENTS] [ORIGINAL]   (as root, or with sudo)
#   (defaults: 500000 events; ORIGINAL: path of the original tpoint script, optional)
# The load is `dd bs=1` from /dev/zero to /dev/null: one read() per byte, EVENTS of them as
# fast as the machine goes, traced at syscalls:sys_enter_read with -p (the tracer follows
# only dd). Reported for each run: dd's time (the traced workload's slowdown against an
# untraced run), events printed, events lost (tpoint's count, or the kernel's
# "[LOST N EVENTS]" lines), and the tracer's user+sys CPU per event (from
# /proc/PID/schedstat just before it exits; for the original, its `cat trace_pipe`).
# The original writes to the top-level tracefs instance; to leave other tracing users on
# this machine alone, this script runs it against a private instance of its own instead
# (its `tracing=` directory edited), which holds every file it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500000}
orig=${2:-}
cargo build --release -q -p tpoint
bin=target/release/tpoint
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T

work=$(mktemp -d /dev/shm/bench-tpoint.XXXXXX)
inst=
pid=
cleanup() {
  [ -n "${pid:-}" ] && kill -TERM -- "-$pid" "$pid" 2>/dev/null; wait 2>/dev/null
  if [ -n "$inst" ] && [ -d "$inst" ]; then
    echo 0 > "$inst/events/enable" 2>/dev/null; rmdir "$inst" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cpu_ns() { read -r ns _ < "/proc/$1/schedstat"; echo "$ns"; }

# Starts dd paused (it waits for a line on a fifo, then execs dd with the same PID).
start_storm() {
  rm -f "$work/go"; mkfifo "$work/go"
  ( read -r _ < "$work/go"; exec dd if=/dev/zero of=/dev/null bs=1 count="$n" status=none ) &
  storm=$!
}
# Releases dd, waits for it, sets $secs to its run time in seconds.
run_storm() {
  local t0 t1
  t0=$(date +%s.%N); echo > "$work/go"; wait "$storm"; t1=$(date +%s.%N)
  secs=$(python3 -c "print(round($t1 - $t0, 3))")
}

echo "kernel:   $(uname -r), $(nproc) CPUs"
echo "load:     dd bs=1 count=$n (one read() per byte), traced at syscalls:sys_enter_read -p <dd>"

start_storm
run_storm
echo "baseline: dd $secs s, not traced"

start_storm
"$bin" -p "$storm" syscalls:sys_enter_read > "$work/tp.txt" 2> "$work/tp.err" &
pid=$!
sleep 1
run_storm
sleep 1
ns=$(cpu_ns "$pid")
kill -INT "$pid"; wait "$pid"; pid=
printed=$(grep -c 'sys_read(' "$work/tp.txt" || true)
lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/tp.err" | grep -o '[0-9]*' || echo 0)
echo "tpoint:   dd $secs s; printed $printed; lost ${lost:-0}; CPU $(python3 -c "print(round($ns/1e9,3))") s = $(python3 -c "print(round($ns/max($printed,1)/1e3,3))") us per printed event"

if [ -n "$orig" ]; then
  inst=$T/instances/bench-tpoint-orig-$$
  mkdir "$inst"
  sed "s|^tracing=.*|tracing=$inst|" "$orig" > "$work/tpoint-orig"
  start_storm
  # In its own session. A background job ignores SIGINT, so it is ended with SIGTERM to its
  # `cat trace_pipe` (the script's trap then runs its end, as after Ctrl-C).
  setsid bash "$work/tpoint-orig" -p "$storm" syscalls:sys_enter_read > "$work/orig.txt" 2>&1 &
  pid=$!
  sleep 1
  run_storm
  sleep 1
  cpid=$(pgrep -s "$pid" -x cat || true)
  ns=0; [ -n "$cpid" ] && ns=$(cpu_ns "$cpid")
  kill -TERM "${cpid:-}" 2>/dev/null || kill -TERM -- "-$pid"; wait "$pid" || true; pid=
  printed=$(grep -c 'sys_read(' "$work/orig.txt" || true)
  olost=$(grep -o 'LOST [0-9]* EVENTS' "$work/orig.txt" | awk '{ n += $2 } END { print n + 0 }')
  echo "original: dd $secs s; printed $printed; lost $olost (its [LOST] lines; it reports nothing else); cat trace_pipe CPU $(python3 -c "print(round($ns/1e9,3))") s = $(python3 -c "print(round($ns/max($printed,1)/1e3,3))") us per printed event"
fi
[ -s "$work/tp.err" ] && { echo "tpoint stderr:"; sed 's/^/  /' "$work/tp.err"; }
exit 0
