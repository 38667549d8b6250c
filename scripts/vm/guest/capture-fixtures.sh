# Guest half of scripts/vm/capture-fixtures.sh (run through run.sh --out).
# Writes into $VM_OUT:
#   formats/   event formats and ring-buffer headers, copied verbatim from tracefs
#   pages/     raw ring-buffer pages (one 4 KiB read() of per_cpu/cpu0/trace_pipe_raw
#              each) of block_rq_issue/block_rq_complete on the scratch virtio disk,
#              the kernel's own text rendering of the same events (*.txt, read
#              before the pages were consumed) and the *.format files of this boot
#   uname      uname -r of the guest
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_OUT" ] || { fail "output dir" "run with run.sh --out DIR"; vm_finish; }
F=$VM_OUT/formats
P=$VM_OUT/pages
mkdir -p "$F" "$P"
uname -r >"$VM_OUT/uname"

for e in block_rq_issue block_rq_insert block_rq_complete; do
  check "format of block/$e" cp "$T/events/block/$e/format" "$F/$e"
done
for e in sys_enter_openat sys_exit_openat; do
  check "format of syscalls/$e" cp "$T/events/syscalls/$e/format" "$F/$e"
done
check "format of sched/sched_process_fork" cp "$T/events/sched/sched_process_fork/format" "$F/sched_process_fork"
check "events/header_page" cp "$T/events/header_page" "$F/header_page"
check "events/header_event" cp "$T/events/header_event" "$F/header_event"

# ---- raw pages ------------------------------------------------------------
[ -n "$VM_DISK" ] || { fail "scratch disk" "VM_DISK is empty"; vm_finish; }
disk=${VM_DISK#/dev/}
maj=$(cut -d: -f1 "/sys/block/$disk/dev")
min=$(cut -d: -f2 "/sys/block/$disk/dev")
dev=$(( (maj << 20) | min ))    # the kernel's dev_t, as in the events' dev field
I=$T/instances/capture-pages

# setup BUFFER_KB: a fresh instance recording block_rq_issue/complete of $VM_DISK.
setup() {
  rmdir "$I" 2>/dev/null
  mkdir "$I" &&
  echo mono >"$I/trace_clock" &&
  echo "$1" >"$I/buffer_size_kb" &&
  for e in block_rq_issue block_rq_complete; do
    echo "dev == $dev" >"$I/events/block/$e/filter" &&
    echo 1 >"$I/events/block/$e/enable" || return 1
  done
}
# page NAME: the kernel's text of CPU 0's events, then one raw page of CPU 0.
page() {
  cat "$I/per_cpu/cpu0/trace" >"$P/$1.txt" &&
  timeout 10 dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$P/$1.bin" bs=4096 count=1 2>/dev/null &&
  [ "$(wc -c <"$P/$1.bin")" -eq 4096 ]
}

# extend: five 4 KiB O_DIRECT writes by dd on CPU 0 at sectors 8..40, 200 ms
# apart, so consecutive events are separated by time-extend records.
check "instance for extend.bin" setup 64
writes() {
  for i in 1 2 3 4 5; do
    taskset -c 0 dd if=/dev/zero of="$VM_DISK" bs=4096 count=1 seek="$i" oflag=direct conv=notrunc 2>/dev/null || return 1
    sleep 0.2
  done
}
check "5 direct writes 200 ms apart" writes
check "read extend.bin" page extend
check_file_grep "extend.txt has block_rq_issue" 'block_rq_issue: [0-9]+,[0-9]+ WS 4096 \(\) 8 \+ 8' "$P/extend.txt"

# missed: 3000 4 KiB O_DIRECT reads into a 4 KiB-per-CPU buffer (overwrite
# mode); the first page read carries the missed-events flag and count.
# (Not 512-byte reads as on the host: busybox dd silently falls back to
# buffered, read-ahead I/O for bs=512 iflag=direct.)
check "instance for missed.bin" setup 4
check "3000 direct 4 KiB reads" sh -c "taskset -c 0 dd if=$VM_DISK of=/dev/null bs=4096 count=3000 iflag=direct 2>/dev/null"
check "read missed.bin" page missed
# The page header's commit word (u64 at offset 8) has RB_MISSED_EVENTS (bit 31).
missed_flag() { c=$(od -A n -t u8 -j 8 -N 8 "$P/missed.bin" | tr -d ' '); echo "commit=$c"; [ $(( (c >> 31) & 1 )) -eq 1 ]; }
check "missed.bin has the missed-events flag" missed_flag

# full: 64 direct 4 KiB writes back to back, the first two full pages of CPU 0.
check "instance for full*.bin" setup 64
check "64 direct writes" sh -c "taskset -c 0 dd if=/dev/zero of=$VM_DISK bs=4096 count=64 oflag=direct 2>/dev/null"
cat "$I/per_cpu/cpu0/trace" >"$P/full.txt"
check "read full1.bin" timeout 10 dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$P/full1.bin" bs=4096 count=1
check "read full2.bin" timeout 10 dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$P/full2.bin" bs=4096 count=1

for e in block_rq_issue block_rq_complete; do
  check "format of this boot: $e" cp "$T/events/block/$e/format" "$P/$e.format"
done
rmdir "$I"
vm_finish
