#!/usr/bin/env bash
# Benchmark: bitesize's CPU cost per I/O and the I/Os it counts under fio load, next to the
# shell original (perf-tools' bitesize, one filtered perf counter per bucket) on the same load.
#   scripts/bench-bitesize.sh [SECONDS] [IODEPTH] [ORIGINAL]   (as root, or with sudo)
#   (defaults: 10 s, iodepth 32; ORIGINAL: path of the original bitesize script, optional)
# Sets up a loop device over a file in /dev/shm and runs fio 4 KiB random O_DIRECT reads on
# it three times: without tracing (the baseline IOPS), under the release bitesize filtered to
# the device (-d), and under the original if given (it has no device filter: it counts every
# disk, and needs perf). Reports for each: fio IOPS, I/Os counted, events lost (bitesize's
# stderr), and the tracer's user+sys CPU per I/O (from /proc/PID/schedstat just before it
# exits; for the original, perf's). The original's counting happens in the kernel, in the
# I/O path, so compare the IOPS too. Startup and teardown (about 10 ms) are included: use
# 30 s or more for the steady per-I/O cost.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
depth=${2:-32}
orig=${3:-}
command -v fio >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends fio >/dev/null; }
cargo build --release -q -p bitesize
bin=target/release/bitesize
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing

work=$(mktemp -d /dev/shm/bench-bitesize.XXXXXX)
truncate -s 1G "$work/disk.img"
loop=$(losetup --find --show "$work/disk.img")
echo none > "/sys/block/$(basename "$loop")/queue/scheduler" 2>/dev/null || true
dev=$(tr ':' ',' < "/sys/block/$(basename "$loop")/dev")
pid='' fio_pid=''
# On every exit, signals included: end fio and the tools, wait for them (they hold the
# loop device open), then detach it. fio runs in the background and is waited for, so
# that a signal is acted on at once (bash runs traps only between foreground commands).
cleanup() {
  [ -n "${fio_pid:-}" ] && kill "$fio_pid" 2>/dev/null
  [ -n "${pid:-}" ] && kill -INT -- "-$pid" "$pid" 2>/dev/null
  wait 2>/dev/null
  losetup -d "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fio_run() { # $1: output json
  fio --name=bench --filename="$loop" --rw=randread --bs=4k --direct=1 --ioengine=io_uring \
      --iodepth="$depth" --runtime="$secs" --time_based --output-format=json > "$1" &
  fio_pid=$!
  wait "$fio_pid"
  fio_pid=
}
fio_ios() { python3 -c "import json; j=json.load(open('$1')); print(j['jobs'][0]['read']['total_ios'], int(j['jobs'][0]['read']['iops']))"; }
cpu_ns() { read -r ns _ < "/proc/$1/schedstat"; echo "$ns"; }
# I/Os in a histogram printed in the original's layout.
counted() { awk -F' : ' '/ -> / { split($2, a, " "); n += a[1] } END { print n + 0 }' "$1"; }

echo "kernel:   $(uname -r), $(nproc) CPUs"
echo "fio:      4 KiB randread O_DIRECT io_uring iodepth=$depth, $secs s on $loop ($dev)"

fio_run "$work/base.json"
read -r ios iops < <(fio_ios "$work/base.json")
echo "baseline: $ios I/Os ($iops IOPS), no tracing"

"$bin" -d "$dev" > "$work/rs.txt" 2> "$work/rs.err" &
pid=$!
sleep 1
fio_run "$work/rs.json"
sleep 0.5
ns=$(cpu_ns "$pid")
kill -INT "$pid"; wait "$pid"; pid=
read -r ios iops < <(fio_ios "$work/rs.json")
lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/rs.err" | grep -o '[0-9]*' || echo 0)
echo "bitesize: $ios I/Os ($iops IOPS); counted $(counted "$work/rs.txt"); lost ${lost:-0}; CPU $(python3 -c "print(round($ns/1e9,3))") s = $(python3 -c "print(round($ns/max($ios,1)/1e3,3))") us per I/O"

if [ -n "$orig" ]; then
  if ! command -v perf >/dev/null; then
    echo "original: not run (no perf)"
  else
    # With a duration (an interrupted `perf stat ... sleep` exits non-zero, and the
    # original then prints no histogram), in its own session so the cleanup can stop all
    # of it (the script, perf and its sleep).
    setsid bash "$orig" $((secs + 2)) > "$work/orig.txt" 2>&1 &
    pid=$!
    sleep 1
    fio_run "$work/orig.json"
    # The tracer is perf, started by the script: its CPU (the counting itself is in the
    # kernel), read just before it ends.
    ppid=$(pgrep -s "$pid" -x perf || true)
    sleep 0.5
    ns=0; [ -n "$ppid" ] && ns=$(cpu_ns "$ppid" 2>/dev/null || echo 0)
    wait "$pid" || true; pid=
    read -r ios iops < <(fio_ios "$work/orig.json")
    echo "original: $ios I/Os ($iops IOPS); counted $(counted "$work/orig.txt") (all disks); perf CPU $(python3 -c "print(round($ns/1e9,3))") s = $(python3 -c "print(round($ns/max($ios,1)/1e3,3))") us per I/O"
    grep -q -- '->' "$work/orig.txt" || { echo "original output:"; sed 's/^/  /' "$work/orig.txt"; }
  fi
fi
[ -s "$work/rs.err" ] && { echo "bitesize stderr:"; sed 's/^/  /' "$work/rs.err"; }
exit 0
