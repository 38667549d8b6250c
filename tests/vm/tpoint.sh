# VM test of tpoint on a real kernel: a block_rq_issue of a known O_DIRECT read on the
# scratch virtio disk, filtered by sector in the kernel, in the kernel's text layout,
# with -s kernel stacks from the stacktrace option of the private instance (instance
# options differ between kernels).
# Run: scripts/vm/run.sh --kernel 5.10 --bin "$(scripts/vm/build-static.sh -p tpoint)" tests/vm/tpoint.sh
# needs: tpoint
# The kernel renders the text itself; the oldest kernel shows its layout and stacks.
# kernels: 5.10
# timeout: 120
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_DISK" ] || { fail "scratch disk" "VM_DISK is empty"; vm_finish; }
disk=${VM_DISK#/dev/}
majmin=$(cat "/sys/block/$disk/dev")
kdev=$(( (${majmin%:*} << 20) | ${majmin#*:} ))

# Once tracing is on: 8 KiB reads at sectors 256 and 512; only 512 passes the filter.
do_io() {
  wait_line "$1" 'Tracing block:block_rq_issue' || return
  dd if="$VM_DISK" of=/dev/null bs=8192 count=1 skip=16 iflag=direct 2>/dev/null
  dd if="$VM_DISK" of=/dev/null bs=8192 count=1 skip=32 iflag=direct 2>/dev/null
}
rm -f /tmp/tp.out
do_io /tmp/tp.out &
tpoint -s -d 4 block:block_rq_issue "dev == $kdev && sector == 512" >/tmp/tp.out 2>/tmp/tp.err
rc=$?
wait
cat /tmp/tp.err >>/tmp/tp.out
check "tpoint -s -d 4 exits 0" test "$rc" -eq 0
# The task column is the kernel's: it names a task from its saved_cmdlines, which
# records a name at the task's next context switch after an event; a line read from
# trace_pipe before dd was first switched out shows "<...>" (the event's own [dd] is
# exact).
check_file_grep "the read at sector 512, kernel layout" "^ +(dd|<\\.\\.\\.>)-[0-9]+ +\[[0-9]{3}\] [^ ]+ +[0-9]+\.[0-9]{6}: block_rq_issue: ${majmin%:*},${majmin#*:} R[A-Z]* 8192 \(\) 512 \+ 16 .*\[dd\]$" /tmp/tp.out
check_no_grep "the read at sector 256 filtered out" ' 256 \+ 16 ' cat /tmp/tp.out
check_file_grep "a kernel stack follows" ': <stack trace>$' /tmp/tp.out
check_file_grep "stack lines" '^ => [a-z_]' /tmp/tp.out
check_no_grep "no instance left" 'tpoint-' ls /sys/kernel/tracing/instances
vm_finish
