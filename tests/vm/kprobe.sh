# VM test of kprobe on a real kernel: string fetch with $arg2, kretprobe with $retval,
# filters, -v, error_log reasons, and no probe of ours left (after SIGINT, SIGKILL + rerun).
# needs: kprobe
# sets: trixie
# $arg2, $retval, ... in single quotes are the probes' fetch arguments (SC2016).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2016
. /vm/lib.sh

ours() { cat "$T/dynamic_events" "$T/kprobe_events" 2>/dev/null | grep -E '^[a-z0-9]+:ptrs_[0-9]+/' || true; }
has_ours() { [ -n "$(ours)" ]; }
# Open known files once kprobe has printed its banner (it does so after tracing is on;
# under TCG its start-up can take over a second).
opens() {
  n=0; while [ $n -lt 100 ] && ! grep -q '^Tracing kprobe' "$1" 2>/dev/null; do sleep 0.1; n=$((n+1)); done
  : < /proc/version; : < /proc/cpuinfo
}

opens /tmp/k1.out &
kprobe -d 3 'p:myopen do_sys_openat2 filename=+0($arg2):string' >/tmp/k1.out 2>&1
rc=$?; wait
check "p: with \$arg2 string exits 0" test "$rc" -eq 0
check_file_grep "banner" '^Tracing kprobe myopen for 3 seconds' /tmp/k1.out
check_file_grep "event line carries the file name" 'myopen: \(do_sys_openat2\+0x0/0x[0-9a-f]+\) filename="/proc/version"' /tmp/k1.out
check_no_grep "no probe of ours left after -d" '.' ours
check_no_grep "kprobe's own opens are not traced" '^ *kprobe-[0-9]+ ' cat /tmp/k1.out

opens /tmp/k2.out &
kprobe -d 3 'r:myret do_sys_openat2 ret=$retval:s32' >/tmp/k2.out 2>&1
wait
check_file_grep "r: with \$retval" 'myret: \(.+ <- do_sys_openat2\) ret=[0-9]+' /tmp/k2.out

opens /tmp/k3.out &
kprobe -d 3 'p:myopen do_sys_openat2 filename=+0($arg2):string' 'filename ~ "*version"' >/tmp/k3.out 2>&1
wait
check_file_grep "matching filter" 'filename="/proc/version"' /tmp/k3.out
check_no_grep "matching filter: nothing else" 'filename="/proc/cpuinfo"' cat /tmp/k3.out
opens /tmp/k4.out &
kprobe -d 3 'p:myopen do_sys_openat2 filename=+0($arg2):string' 'filename == "/nonexistent"' >/tmp/k4.out 2>&1
wait
check_no_grep "non-matching filter: no events" 'myopen:' cat /tmp/k4.out
# The end-of-run account: an empty run says what the probe saw before the filter; a run
# with lines prints none.
check_file_grep "empty run: the account with the hits and the filter" "^kprobe: 0 lines: [0-9,]+ probe hits before any filter, kprobe's own included \\(filter 'filename == \"/nonexistent\"'\\); 0 lost$" /tmp/k4.out
check_no_grep "run with lines: no account" '^kprobe: [0-9,]+ lines' cat /tmp/k1.out
check_no_grep "good fetches: no fault warning" 'printed \(fault\)' cat /tmp/k1.out
# A fetch that always faults ($arg1 is the dfd, AT_FDCWD, not a pointer) is reported.
opens /tmp/k10.out &
kprobe -d 2 'p:myopen do_sys_openat2 fn=+0($arg1):ustring' >/tmp/k10.out 2>&1
wait
check_file_grep "every fetch faulted: one warning with the reason" '^kprobe: WARNING: fn printed \(fault\) in every one of the [0-9]+ events of the first second: the fetch read nothing; it is fetched with :ustring' /tmp/k10.out
check "the fault warning is printed once" test "$(grep -c 'printed (fault)' /tmp/k10.out)" -eq 1

# Hostile names: a task whose comm holds a newline and an ESC (a script's comm is its
# file name) opens, twice, a file whose name holds a newline. Exactly one escaped line
# per open; no forged line, no raw control character.
hostile=$(printf '/tmp/ev\n\033[31mfake')
printf '#!/bin/sh\n: < "$1"\n' >"$hostile"
chmod +x "$hostile"
hfile=$(printf '/tmp/x\nfake 1 etc-shadow')
: >"$hfile"
hopens() {
  n=0; while [ $n -lt 100 ] && ! grep -q '^Tracing kprobe' "$1" 2>/dev/null; do sleep 0.1; n=$((n+1)); done
  "$hostile" "$hfile"; "$hostile" "$hfile"
}
hopens /tmp/k8.out &
kprobe -d 3 'p:myopen do_sys_openat2 fn=+0($arg2):ustring' >/tmp/k8.out 2>&1
wait
check "hostile names: one escaped line per open" test "$(grep -c 'fn="/tmp/x\\nfake 1 etc-shadow"$' /tmp/k8.out)" -eq 2
check_file_grep "hostile names: comm escaped in the task column" '^ +ev\\n\\e\[31mfake-[0-9]+ +\[[0-9]{3}\] [.a-zA-Z0-9]{4,5} +[0-9]+\.[0-9]{6}: myopen: \(do_sys_openat2\+0x0/0x[0-9a-f]+\) fn="/tmp/x\\nfake 1 etc-shadow"$' /tmp/k8.out
check_no_grep "hostile names: no forged line" '^fake' cat /tmp/k8.out
check_no_grep "hostile names: no raw control character" "$(printf '[\001-\010\013-\037\177]')" cat /tmp/k8.out
check_no_grep "hostile names: every line is a banner or an event" '.' sh -c "grep -v -E '^(Tracing kprobe .*|Ending tracing\.\.\.|| +[^ ]+-[0-9]+ +\[[0-9]{3}\] [.a-zA-Z0-9]{4,5} +[0-9]+\.[0-9]{6}: myopen: \(do_sys_openat2\+0x0/0x[0-9a-f]+\) fn=\"[^\"]*\")$' /tmp/k8.out; true"

opens /tmp/k9.out &
kprobe -H -s -d 3 'p:myopen do_sys_openat2 fn=+0($arg2):ustring' >/tmp/k9.out 2>&1
wait
check_file_grep "-H: the column legend" '^# +TASK-PID +CPU#' /tmp/k9.out
check_file_grep "-s: a stack after the event" '^ +[^ ]+-[0-9]+ +\[[0-9]{3}\] [.a-zA-Z0-9]{4,5} +[0-9]+\.[0-9]{6}: <stack trace>$' /tmp/k9.out
check_file_grep "-s: frames resolved" '^ => do_sys_openat2$' /tmp/k9.out

check_grep "-v prints the format" 'field:.* filename;' kprobe -v 'p:myopen do_sys_openat2 filename=+0($arg2):string'
check_grep "bad definition: error_log reason" 'error:.*|Command:' sh -c 'kprobe "p:bad do_sys_openat2 x=+0(\$arg2):nosuchtype"; true'
check_grep "bad definition: exit 1" '^1$' sh -c 'kprobe "p:bad do_sys_openat2 x=+0(\$arg2):nosuchtype" 2>/dev/null; echo $?'
check_no_grep "no probe of ours left after errors" '.' ours

kprobe p:vfs_read >/tmp/k5.out 2>&1 &
pid=$!
# Its banner says the probe is set up (a fixed sleep raced with a slow start).
wait_line /tmp/k5.out '^Tracing kprobe'
check "probe exists while running" has_ours
kill -INT $pid; wait $pid
check "SIGINT: exit 0" test $? -eq 0
check_no_grep "no probe of ours left after SIGINT" '.' ours
kprobe p:vfs_read >/tmp/k6.out 2>&1 &
pid=$!
wait_line /tmp/k6.out '^Tracing kprobe'
kill -KILL $pid; wait $pid 2>/dev/null
check "SIGKILL leaves the probe" has_ours
opens /tmp/k7.out &
kprobe -d 2 p:do_sys_openat2 >/tmp/k7.out 2>&1
wait
check_file_grep "rerun removes the stale probe" "stale probe ptrs_$pid/" /tmp/k7.out
check_no_grep "nothing of ours left after rerun" '.' ours
check_no_grep "no instance left" 'kprobe' ls "$T/instances"
[ -z "$VM_OUT" ] || cp /tmp/k1.out /tmp/k2.out /tmp/k8.out /tmp/k9.out "$VM_OUT/" 2>/dev/null
vm_finish
