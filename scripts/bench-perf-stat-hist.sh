#!/usr/bin/env bash
# Benchmark: CPU cost per event and events lost for perf-stat-hist under a read() storm.
#   scripts/bench-perf-stat-hist.sh [CALLS] [PROCS]   (as root)
#   (defaults: 2000000 calls per process, 2 processes)
# The storm is a small C program (built with cc in a temporary directory) making CALLS
# read(fd of /dev/zero, buf, 13) calls in each of PROCS processes at once. perf-stat-hist
# traces syscalls:sys_enter_read with bucket points 13 and 14, so the "13 -> 13" row must
# hold every storm call. Reported: the exact number of calls, what the tool counted, events
# lost (its stderr), the tool's CPU (schedstat, just before it exits) per event of the
# tracepoint, and the storm's run time with and without the tool.
# BIN=path uses that binary instead of building target/release/perf-stat-hist.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-2000000}
procs=${2:-2}
command -v cc >/dev/null || { echo "$0: needs a C compiler (cc) for the storm program" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p perf-stat-hist
  BIN=$PWD/target/release/perf-stat-hist
fi
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing

work=$(mktemp -d /tmp/bench-perf-stat-hist.XXXXXX)
cleanup() { [ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/storm.c" <<'C'
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]); int procs = atoi(argv[2]);
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            char buf[16]; int fd = open("/dev/zero", O_RDONLY);
            for (long i = 0; i < n; i++) {
                if (read(fd, buf, 13) != 13) _exit(1);
            }
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {}
    return 0;
}
C
cc -O2 -o "$work/storm" "$work/storm.c"
total=$((calls * procs))
now() { date +%s.%N; }
base0=$(now); "$work/storm" "$calls" "$procs"; base1=$(now)
base=$(python3 -c "print(round($base1 - $base0, 3))")

"$BIN" -b "13 14" syscalls:sys_enter_read count > "$work/out.txt" 2> "$work/err.txt" &
pid=$!
sleep 1
t0=$(now); "$work/storm" "$calls" "$procs"; t1=$(now)
sleep 0.5
read -r cpu_ns _ < "/proc/$pid/schedstat"
kill -INT "$pid"; wait "$pid" || true; pid=
traced=$(python3 -c "print(round($t1 - $t0, 3))")
seen=$(awk '$1 == 13 && $2 == "->" && $3 == 13 { print $5 }' "$work/out.txt"); seen=${seen:-0}
events=$(awk '$2 == "->" || $1 == "->" { for (i = 1; i <= NF; i++) if ($i == ":") { n += $(i + 1) } } END { print n + 0 }' "$work/out.txt")
lost=$(grep -o 'WARNING: [0-9]* events lost' "$work/err.txt" | grep -o '[0-9]*' || echo 0)
per=$(python3 -c "print(round($cpu_ns / max($events,1), 1))")
cat "$work/out.txt"
echo "perf-stat-hist: $total read(13) calls in $procs processes; counted $seen in 13 -> 13; lost events $lost"
echo "perf-stat-hist: tool CPU $(python3 -c "print(round($cpu_ns/1e9,3))") s for $events events: $per ns per event"
echo "perf-stat-hist: storm $base s untraced, $traced s traced"
