#!/usr/bin/env bash
# Benchmark: the cost of keeping a --cgroup scope's PID set current under a fork storm
# inside the cgroup.
#   scripts/bench-scope.sh [SECONDS] [LOOPS]   (as root; defaults: 10 s, 2 loops)
#   OPENSNOOP_BIN=path  use this binary instead of building target/release/opensnoop
# A cgroup v2 (/sys/fs/cgroup/unified or /sys/fs/cgroup) is made for the run; LOOPS shell
# loops in it fork `/bin/true` as fast as this machine goes for SECONDS. opensnoop runs
# three ways on the same storm, each streaming to a file: with --cgroup on the storm's
# cgroup (the kernel follows the forks by event-fork; the scope polls the cgroup every
# 100 ms and appends new PIDs), with --cgroup on an empty sibling cgroup (the poll alone,
# nothing traced), and system-wide (no scope). Reported per run: forks made, opensnoop's
# user+sys CPU (from /proc/PID/stat just before it ends) as a share of one CPU, and its
# rows. The scope's own cost is the difference between the first and the others.
# The cgroups are removed at the end (their tasks moved back to the root first).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
loops=${2:-2}
if [ -n "${OPENSNOOP_BIN:-}" ]; then
  bin=$OPENSNOOP_BIN
else
  cargo build --release -q -p opensnoop
  bin=target/release/opensnoop
fi
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
root=/sys/fs/cgroup/unified
[ -f "$root/cgroup.procs" ] || root=/sys/fs/cgroup
work=$(mktemp -d /tmp/bench-scope.XXXXXX)
storm_cg=$root/ptrs-bench-scope-$$
empty_cg=$root/ptrs-bench-scope-empty-$$
mkdir -p "$storm_cg" "$empty_cg"
pid=
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null
  for cg in "$storm_cg" "$empty_cg"; do
    while read -r p; do echo "$p" > "$root/cgroup.procs" || true; done < "$cg/cgroup.procs" 2>/dev/null || true
    rmdir "$cg" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

hz=$(getconf CLK_TCK)

# storm: LOOPS loops in the storm cgroup, each forking /bin/true for SECONDS; the count of
# forks goes to $work/forks.
storm() {
  local kids=()
  : > "$work/forks"
  for _ in $(seq "$loops"); do
    ( echo "$BASHPID" > "$storm_cg/cgroup.procs"
      n=0; end=$((SECONDS + secs))
      while [ "$SECONDS" -lt "$end" ]; do /bin/true; n=$((n + 1)); done
      echo "$n" >> "$work/forks" ) &
    kids+=($!)
  done
  wait "${kids[@]}"
}

# measure NAME ARGS...: opensnoop ARGS during a storm.
measure() {
  local name=$1; shift
  "$bin" "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pid=$!
  for _ in $(seq 100); do grep -q 'FILE' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  local t0 t1 ticks0 ticks1
  ticks0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  t0=$(date +%s.%N)
  storm
  t1=$(date +%s.%N)
  ticks1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -INT "$pid"; wait "$pid" || true; pid=
  local forks rows
  forks=$(awk '{s += $1} END {print s}' "$work/forks")
  # Banner and header before the rows; a blank line and "Ending tracing..." after.
  rows=$(($(wc -l < "$work/$name.out") - 4))
  awk -v n="$name" -v f="$forks" -v r="$rows" -v c="$((ticks1 - ticks0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    'BEGIN { s = t1 - t0; printf "%-18s %6d forks (%4.0f/s)  opensnoop CPU %5.2f s = %4.1f%% of one CPU, %4.0f us/fork  %6d rows\n", n, f, f / s, c / hz, 100 * c / hz / s, 1e6 * c / hz / f, r }'
}

echo "fork storm: $loops loops in $storm_cg for $secs s each run ($(nproc) CPUs)"
measure "--cgroup (storm)" --cgroup "$storm_cg"
measure "--cgroup (empty)" --cgroup "$empty_cg"
measure "system-wide" /nonexistent-ptrs-bench
