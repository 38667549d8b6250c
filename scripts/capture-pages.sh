#!/usr/bin/env bash
# Captures raw ring-buffer pages from this machine's kernel as test fixtures:
#   tests/fixtures/pages/<uname -r major.minor>/extend.bin  - 5 direct 4 KiB writes 200 ms apart
#       (sectors 8,16,24,32,40 of a loop device): block_rq_issue/complete events with time extends
#   tests/fixtures/pages/<ver>/missed.bin  - first page read after 3000 I/Os overflowed a
#       minimal buffer: carries the missed-events flag and count
# Each page is one read() of per_cpu/cpu0/trace_pipe_raw in a private instance (I/O pinned to CPU 0).
# Usage (root): scripts/capture-pages.sh
set -euo pipefail
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
ver=$(uname -r | cut -d. -f1,2)
out=$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/pages/$ver
mkdir -p "$out"
img=/dev/shm/capture-pages.img
truncate -s 64M "$img"
loop=$(losetup --find --show "$img")
echo none > "/sys/block/$(basename "$loop")/queue/scheduler" || true
I=$T/instances/capture-pages
cleanup() { rmdir "$I" 2>/dev/null || true; losetup -d "$loop"; rm -f "$img"; }
trap cleanup EXIT
setup() {
  rmdir $I 2>/dev/null || true
  mkdir $I
  echo mono > $I/trace_clock
  echo "$1" > $I/buffer_size_kb
  dev=$(( $(stat -c '%t' "$loop" | sed 's/^/0x/') << 20 | $(stat -c '%T' "$loop" | sed 's/^/0x/') ))
  for e in block_rq_issue block_rq_complete; do
    echo "dev == $dev" > $I/events/block/$e/filter
    echo 1 > $I/events/block/$e/enable
  done
}
setup 64
for i in 1 2 3 4 5; do
  taskset -c 0 dd if=/dev/zero of="$loop" bs=4096 count=1 seek=$i oflag=direct conv=notrunc 2>/dev/null
  sleep 0.2
done
dd if=$I/per_cpu/cpu0/trace_pipe_raw of="$out/extend.bin" bs=4096 count=1 iflag=nonblock 2>/dev/null
setup 4
taskset -c 0 dd if="$loop" of=/dev/null bs=512 count=3000 iflag=direct 2>/dev/null
dd if=$I/per_cpu/cpu0/trace_pipe_raw of="$out/missed.bin" bs=4096 count=1 iflag=nonblock 2>/dev/null
for e in block_rq_issue block_rq_complete; do cp $T/events/block/$e/format "$out/$e.format"; done
ls -l "$out"
