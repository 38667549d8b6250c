# Smoke test of the VM harness itself (needs no project binary): the guest
# kernel has what the ftrace/MSR tools rely on, and the harness plumbing
# (tracefs mount, modules, scratch disk, exit status) works.
# Run: scripts/vm/run.sh [--kernel ID] tests/vm/smoke.sh
# sets: smoke pinned trixie
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

I=$T/instances/vmsmoke
MARK=/tmp/vm-smoke-marker

check_grep "tracefs is mounted at $T" " $T tracefs " cat /proc/mounts
check "kprobe_events exists" test -w "$T/kprobe_events"

# A kprobe with a string fetch from the second argument (the user filename).
# shellcheck disable=SC2016  # $arg2 is the kprobe's argument, not the shell's
probe_add() { echo 'p:vmsmoke/open do_sys_openat2 filename=+0($arg2):string' >>"$T/kprobe_events"; }
check "kprobe on do_sys_openat2 with +0(\$arg2):string is accepted" probe_add
check_grep "kprobe is listed in kprobe_events" '^p:vmsmoke/open do_sys_openat2' cat "$T/kprobe_events"
check "tracefs instance created" mkdir "$I"
check "kprobe enabled in the instance" sh -c "echo 1 > $I/events/vmsmoke/open/enable"
# The shell's redirection opens the file (openat -> do_sys_openat2); dd opens it again.
open_marker() { echo marker >"$MARK" && dd if="$MARK" of=/dev/null 2>/dev/null; }
check "open $MARK" open_marker
echo 0 >"$I/events/vmsmoke/open/enable"
check_grep "kprobe saw the open of $MARK" "open: \\(do_sys_openat2\\+0x0/.*\\) filename=\"$MARK\"" cat "$I/trace"
check "instance removed" rmdir "$I"
check "kprobe removed" sh -c "echo '-:vmsmoke/open' >> $T/kprobe_events"
check_no_grep "kprobe gone from kprobe_events" 'vmsmoke' cat "$T/kprobe_events"

check_grep "function_graph in available_tracers" '(^| )function_graph( |$)' cat "$T/available_tracers"

# msr.ko is insmod'ed by the guest /init (run.sh loads msr by default); unload
# it and load it again here to see insmod create /dev/cpu/N/msr.
check_grep "msr module loaded by /init" '^msr ' cat /proc/modules
check "rmmod msr" rmmod msr
check "/dev/cpu/0/msr gone after rmmod" test ! -e /dev/cpu/0/msr
check "insmod /lib/modules/msr.ko" insmod /lib/modules/msr.ko
check "/dev/cpu/0/msr exists" test -c /dev/cpu/0/msr
msr_read() { [ "$(dd if=/dev/cpu/0/msr bs=8 count=1 skip=16 iflag=skip_bytes 2>/dev/null | wc -c)" -eq 8 ]; }
check "8-byte read of MSR 0x10 (TSC) from /dev/cpu/0/msr" msr_read

for e in block_rq_issue block_rq_insert block_rq_complete; do
  check_grep "block tracepoint $e exists" '^name: '"$e"'$' cat "$T/events/block/$e/format"
done

# Block tracepoints fire for I/O on the scratch virtio disk.
if [ -n "$VM_DISK" ]; then
  B=$T/instances/vmsmoke-block
  mkdir "$B"
  echo 1 >"$B/events/block/block_rq_issue/enable"
  echo 1 >"$B/events/block/block_rq_complete/enable"
  check "4 direct 4 KiB writes to $VM_DISK" dd if=/dev/zero of="$VM_DISK" bs=4096 count=4 oflag=direct
  echo 0 >"$B/tracing_on"
  check_grep "block_rq_issue seen for $VM_DISK" 'block_rq_issue: [0-9]+,[0-9]+ W' cat "$B/trace"
  check_grep "block_rq_complete seen for $VM_DISK" 'block_rq_complete: [0-9]+,[0-9]+ W' cat "$B/trace"
  rmdir "$B"
else
  fail "scratch virtio disk present" "VM_DISK is empty (run.sh attaches one)"
fi

vm_finish
