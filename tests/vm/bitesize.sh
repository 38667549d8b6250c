# VM test of bitesize on a real kernel: O_DIRECT I/O of known sizes on the scratch
# virtio disk lands in the right buckets with exact counts, on the block layout of
# this kernel (5.10 and 6.1 have no ioprio field; 6.11+ kernels do).
# Run: scripts/vm/run.sh --kernel 6.1 --bin "$(scripts/vm/build-static.sh -p bitesize)" tests/vm/bitesize.sh
# needs: bitesize
# timeout: 120
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_DISK" ] || { fail "scratch disk" "VM_DISK is empty"; vm_finish; }

# Once tracing is on (the banner is printed): three 4 KiB writes, two 8 KiB reads, one
# 32 KiB read. Buckets "4 16": below 4 KiB 0, 4-15.9 KiB 5, 16 KiB and up 1.
do_io() {
  wait_line "$1" 'Tracing block I/O size' || return
  for i in 1 2 3; do dd if=/dev/zero of="$VM_DISK" bs=4096 count=1 seek=$i oflag=direct conv=notrunc 2>/dev/null; done
  dd if="$VM_DISK" of=/dev/null bs=8192 count=2 skip=8 iflag=direct 2>/dev/null
  dd if="$VM_DISK" of=/dev/null bs=32768 count=1 skip=8 iflag=direct 2>/dev/null
}
rm -f /tmp/bs.out
do_io /tmp/bs.out &
bitesize -d "$VM_DISK" -b "4 16" 4 >/tmp/bs.out 2>/tmp/bs.err
rc=$?
wait
cat /tmp/bs.err >>/tmp/bs.out
check "bitesize -d -b '4 16' 4 exits 0" test "$rc" -eq 0
check_file_grep "below 4 KiB: 0" '^ +-> 3\.9 +: 0 +\|' /tmp/bs.out
check_file_grep "4 to 15.9 KiB: 5 (3 writes, 2 reads)" '^ +4\.0 -> 15\.9 +: 5 +\|#+ *\|$' /tmp/bs.out
check_file_grep "16 KiB and up: 1" '^ +16\.0 -> +: 1 +\|#+ *\|$' /tmp/bs.out
check_no_grep "nothing lost" 'lost' cat /tmp/bs.err
check_no_grep "no instance left" 'bitesize-' ls /sys/kernel/tracing/instances
vm_finish
