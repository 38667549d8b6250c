#!/usr/bin/env bash
# Benchmark: CPU cost per traced I/O and completeness of iosnoop or iolatency under fio load.
#   scripts/bench-block.sh [iosnoop|iolatency] [SECONDS] [IODEPTH]   (as root, or with sudo)
#   (defaults: iosnoop, 10 s, iodepth 32; BENCH_HEATMAP=1 adds --heatmap FILE)
# Sets up a loop device over a file in /dev/shm, starts the release tool filtered to it
# (iosnoop streaming; iolatency with 1 s intervals; output to a file), runs fio 4 KiB random
# O_DIRECT reads as fast as this machine goes, then reports: I/Os issued (fio), I/Os the tool
# reported (iosnoop rows; iolatency histogram counts), events lost (the tool's stderr), and
# the tool's user+sys CPU per I/O (from /proc/PID/schedstat just before it exits). That CPU
# includes the tool's start and end (setting up and removing its tracefs instance, about
# 10 ms): use 30 s or more for the steady per-I/O cost.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-iosnoop}
secs=${2:-10}
depth=${3:-32}
case $tool in iosnoop|iolatency) ;; *) echo "usage: $0 [iosnoop|iolatency] [SECONDS] [IODEPTH]" >&2; exit 2 ;; esac
command -v fio >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends fio >/dev/null; }
cargo build --release -q -p "$tool"
bin=target/release/$tool
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing

work=$(mktemp -d /dev/shm/bench-iosnoop.XXXXXX)
truncate -s 1G "$work/disk.img"
loop=$(losetup --find --show "$work/disk.img")
echo none > "/sys/block/$(basename "$loop")/queue/scheduler" 2>/dev/null || true
dev=$(tr ':' ',' < "/sys/block/$(basename "$loop")/dev")
pid='' fio_pid=''
# On every exit, signals included: end fio and the tool, wait for them (they hold the
# loop device open), then detach it. fio runs in the background and is waited for, so
# that a signal is acted on at once (bash runs traps only between foreground commands).
cleanup() {
  [ -n "${fio_pid:-}" ] && kill "$fio_pid" 2>/dev/null
  [ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null
  wait 2>/dev/null
  losetup -d "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# iolatency: 1 s intervals covering the whole fio run, so it ends by itself after it.
if [ "$tool" = iosnoop ]; then args=(-d "$dev"); else args=(-d "$dev" 1 $((secs + 2))); fi
# BENCH_HEATMAP=1: also write a heat map (--heatmap), to compare the CPU per I/O.
[ -n "${BENCH_HEATMAP:-}" ] && args+=(--heatmap "$work/heatmap.svg")
"$bin" "${args[@]}" > "${BENCH_OUT:-$work/rows.txt}" 2> "$work/err.txt" &
pid=$!
sleep 1
fio --name=bench --filename="$loop" --rw=randread --bs=4k --direct=1 --ioengine=io_uring \
    --iodepth="$depth" --runtime="$secs" --time_based --output-format=json > "$work/fio.json" &
fio_pid=$!
wait "$fio_pid"
fio_pid=
if [ "$tool" = iolatency ]; then
  # Read the CPU counters just before its last interval ends.
  while [ "$(grep -c '>=(ms)' "$work/rows.txt")" -lt $((secs + 1)) ]; do sleep 0.1; done
fi
sleep 0.5
# utime+stime in clock ticks (the user/sys split), and the exact CPU time in ns from
# schedstat, read just before the tool exits.
read -r -a st < "/proc/$pid/stat"
uticks=${st[13]}; sticks=${st[14]}
read -r cpu_ns _ < "/proc/$pid/schedstat"
if [ "$tool" = iosnoop ]; then kill -INT "$pid"; fi
wait "$pid"; pid=
hz=$(getconf CLK_TCK)
ios=$(python3 -c "import json,sys; j=json.load(open('$work/fio.json')); print(j['jobs'][0]['read']['total_ios'])")
iops=$(python3 -c "import json,sys; j=json.load(open('$work/fio.json')); print(int(j['jobs'][0]['read']['iops']))")
if [ "$tool" = iosnoop ]; then
  rows=$(grep -c " $dev " "$work/rows.txt" || true)
else
  rows=$(awk -F' : ' '/ -> / { split($2, a, " "); n += a[1] } END { print n + 0 }' "$work/rows.txt")
fi
lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/err.txt" | grep -o '[0-9]*' || echo 0)
cpu_s=$(python3 -c "print(round($cpu_ns / 1e9, 3))")
per_io=$(python3 -c "print(round($cpu_ns / max($ios,1) / 1e3, 3))")
echo "kernel:          $(uname -r), $(nproc) CPUs"
echo "fio:             4 KiB randread O_DIRECT io_uring iodepth=$depth, $secs s on $loop ($dev)"
echo "I/Os issued:     $ios ($iops IOPS)"
echo "I/Os reported:   $rows"
echo "events lost:     ${lost:-0}"
echo "$tool CPU:  ${cpu_s} s user+sys = ${per_io} us per I/O (user $uticks, sys $sticks ticks of 1/$hz s)"
[ -s "$work/err.txt" ] && { echo "$tool stderr:"; sed 's/^/  /' "$work/err.txt"; }
exit 0
