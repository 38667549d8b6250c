#!/usr/bin/env bash
# Benchmark: execsnoop's CPU cost per exec and its completeness under an exec storm, and
# the shell original's on the same load if it can run here.
#   scripts/bench-execsnoop.sh [EXECS] [LOOPS]   (as root; defaults: 10000 execs, 2 loops)
#   EXECSNOOP_BIN=path  use this binary instead of building target/release/execsnoop
#   PERF_TOOLS=dir      a checkout of Brendan Gregg's perf-tools: its execsnoop runs on
#                       the same load too (it needs kprobes; where the kernel has none it
#                       fails at start, and the script says so)
# LOOPS shell loops run `/bin/true ptrs-bench-N` EXECS times in all, as fast as this
# machine goes, while execsnoop streams its rows to a file. Reported: execs issued, rows
# of the storm that execsnoop printed (with exact arguments, or [exited] where the /proc
# fallback read them too late), events lost (execsnoop's stderr), and execsnoop's
# user+sys CPU per exec (/proc/PID/schedstat just before it ends; this includes its start,
# the canary check, and its end, a few ms: use many execs for the steady cost).
set -euo pipefail
cd "$(dirname "$0")/.."
execs=${1:-10000}
loops=${2:-2}
if [ -n "${EXECSNOOP_BIN:-}" ]; then
  bin=$EXECSNOOP_BIN
else
  cargo build --release -q -p execsnoop
  bin=target/release/execsnoop
fi
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
work=$(mktemp -d /tmp/bench-execsnoop.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# storm TAG: LOOPS loops of /bin/true TAG-i, EXECS in all; prints the loops' pids first.
storm() {
  local per=$((execs / loops)) l kids=()
  for l in $(seq "$loops"); do
    ( echo "$BASHPID" >> "$work/storm.pids"
      for ((i = 0; i < per; i++)); do /bin/true "$1-$l"; done ) &
    kids+=($!)
  done
  # Only the loops: the tracer is a child of this shell too.
  wait "${kids[@]}"
}

# measure NAME CMD...: runs CMD (a tracer writing rows to $work/NAME.out) during a storm.
measure() {
  local name=$1; shift
  : > "$work/storm.pids"
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pid=$!
  # Set up (the canary check) before the storm.
  for _ in $(seq 100); do grep -q 'ARGS' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$name: did not start:"; sed 's/^/  /' "$work/$name.err"; pid=; return 0
  fi
  local t0 t1
  t0=$(date +%s.%N)
  storm "ptrs-bench-$name"
  t1=$(date +%s.%N)
  sleep 1
  local cpu_ns
  read -r cpu_ns _ < "/proc/$pid/schedstat"
  kill -INT "$pid"; wait "$pid" || true; pid=
  local rows exited lost
  # The storm's rows: those whose PPID is one of the loops.
  rows=$(awk 'NR == FNR { p[$1] = 1; next } ($2 in p)' "$work/storm.pids" "$work/$name.out" | wc -l)
  exited=$(awk 'NR == FNR { p[$1] = 1; next } ($2 in p) && /\[exited\]$/' "$work/storm.pids" "$work/$name.out" | wc -l)
  lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/$name.err" | grep -o '[0-9]*' || echo 0)
  echo "$name:"
  echo "  execs issued:   $execs in $(python3 -c "print(round($t1 - $t0, 2))") s ($(python3 -c "print(int($execs / ($t1 - $t0)))")/s, $loops loops)"
  echo "  rows of them:   $rows ($exited of them [exited])"
  echo "  events lost:    ${lost:-0}"
  echo "  CPU:            $(python3 -c "print(round($cpu_ns / 1e9, 3))") s user+sys = $(python3 -c "print(round($cpu_ns / $execs / 1e3, 1))") us per exec"
  grep -v '^$' "$work/$name.err" | sed 's/^/  stderr: /' | head -5 || true
}

echo "kernel: $(uname -r), $(nproc) CPUs; source: $("$bin" --check 2>/dev/null | head -1)"
measure execsnoop "$bin"
if [ -n "${PERF_TOOLS:-}" ] && [ -x "$PERF_TOOLS/execsnoop" ]; then
  # The original uses /sys/kernel/debug/tracing and a lock file; it cannot share the
  # top-level buffer, so nothing else may trace meanwhile.
  mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug 2>/dev/null || true
  measure original "$PERF_TOOLS/execsnoop"
else
  echo "original: not run (set PERF_TOOLS to a perf-tools checkout)"
fi
