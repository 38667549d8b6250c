#!/usr/bin/env bash
# Benchmark: cachestat's CPU cost per page cache event, and the slowdown of a workload
# that misses the page cache all the time, with and without cachestat running.
#   scripts/bench-cachestat.sh [MIB] [ROUNDS]   (as root, or with sudo)
#   (defaults: a 256 MiB file, read 8 times)
# The load: a file of MIB MiB in /var/tmp (a disk-backed file system; tmpfs pages never
# pass the page cache tracepoints), dropped from the cache with POSIX_FADV_DONTNEED and
# read again, ROUNDS times: every page added to the cache is an event (one per folio).
# Reported: the load's time untraced (before and after) and traced, the events cachestat counted (its -D
# columns) and its user+sys CPU (/proc/PID/schedstat) per event. The shell original
# needs the function profiler (CONFIG_FUNCTION_PROFILER with the function tracer); where
# the kernel lacks it (as on the CI machine) it cannot run, so it is not compared.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-256}
rounds=${2:-8}
cargo build --release -q -p cachestat
bin=target/release/cachestat
file=/var/tmp/bench-cachestat.$$
pid=
cleanup() {
  [ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -f "$file" "$file.out" "$file.err"
}
trap cleanup EXIT
cpu_ns() { read -r ns _ < "/proc/$1/schedstat"; echo "$ns"; }
dd if=/dev/urandom of="$file" bs=1M count="$mib" status=none
sync
load() {
  python3 - "$file" "$rounds" <<'PY'
import os, sys, time
path, rounds = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
t0 = time.monotonic()
for _ in range(rounds):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.lseek(fd, 0, 0)
    while os.read(fd, 1 << 20):
        pass
print(round(time.monotonic() - t0, 3))
PY
}
echo "kernel:   $(uname -r), $(nproc) CPUs"
echo "load:     read a $mib MiB file $rounds times, dropped from the cache before each read"
echo "baseline: $(load) s, not traced"
"$bin" -D 1 > "$file.out" 2> "$file.err" &
pid=$!
sleep 3
ns0=$(cpu_ns "$pid")
secs=$(load)
sleep 1.2
ns=$(( $(cpu_ns "$pid") - ns0 ))
kill -INT "$pid"; wait "$pid"; pid=
# Events of the rows after the warm-up: added + dirtied (+ accessed where counted).
events=$(awk 'NR > 5 && /\(/ { gsub(/[()]/, ""); n = NF; a = ($(n-5) == "-") ? 0 : $(n-5); e += a + $(n-4) + $(n-3) + $(n-1) } END { print e + 0 }' "$file.out")
echo "cachestat: $secs s traced; $events events counted; CPU $(python3 -c "print(round($ns/1e9,3))") s = $(python3 -c "print(round($ns/max($events,1),1))") ns per event (including its fixed cost per interval)"
echo "baseline: $(load) s, not traced (again: the machine's noise)"
grep -h 'lost' "$file.err" || echo "lost:     none reported"
exit 0
