# VM test of opensnoop on a real kernel with dynamic probes: the file names come from
# an event probe (5.15+) or a kprobe (5.10), exact FILE strings and FDs, and no probe
# of ours remains afterwards (also after SIGINT, and after SIGKILL + rerun).
# needs: opensnoop
# One vCPU: kprobes live-patch kernel text, and QEMU TCG with 2 vCPUs once hung the
# whole 5.10 guest mid-run (as it does for funcgraph).
# smp: 1
. /vm/lib.sh

ours() { cat "$T/dynamic_events" "$T/kprobe_events" 2>/dev/null | grep -E '^[a-z0-9]+:ptrs_[0-9]+/' || true; }
has_ours() { [ -n "$(ours)" ]; }

mkdir -p "/tmp/dir with spaces"
: > "/tmp/dir with spaces/file one"
# Open known files once opensnoop has printed its banner (after tracing is on; under
# TCG its start-up can take over a second). $1: the output file to watch.
do_opens() {
  n=0; while [ $n -lt 100 ] && ! grep -q '^Tracing open' "$1" 2>/dev/null; do sleep 0.1; n=$((n+1)); done
  # exec N<file opens from the shell itself: FD 3 known in advance in busybox sh
  sh -c 'exec 3<"/tmp/dir with spaces/file one"; exec 3</tmp/vm-missing-file 2>/dev/null; true'
  sh -c 'exec 3</etc/passwd-not-there' 2>/dev/null
  : < /proc/version
}
do_opens /tmp/os1.out &
opensnoop -v -d 3 >/tmp/os1.out 2>/tmp/os1.err
rc=$?
wait
cat /tmp/os1.err
check "opensnoop -d 3 exits 0" test "$rc" -eq 0
if kernel_at_least 5 15; then
  check_file_grep "5.15+: event probes are the source" 'event probes' /tmp/os1.err
else
  check_file_grep "< 5.15: kprobe is the source" 'kprobe on' /tmp/os1.err
fi
check_file_grep "header" '^COMM +PID +FD FILE$' /tmp/os1.out
check_file_grep "path with spaces, FD 0x3" '^sh +[0-9]+ +0x3 /tmp/dir with spaces/file one$' /tmp/os1.out
check_file_grep "missing file, FD -1" '^sh +[0-9]+ +-1 /tmp/vm-missing-file$' /tmp/os1.out
check_file_grep "/proc/version" ' 0x[0-9a-f]+ /proc/version$' /tmp/os1.out
check_no_grep "no /proc resolution marks" 'via /proc' cat /tmp/os1.out
check_no_grep "no probe of ours left after -d" '.' ours

do_opens /tmp/os2.out &
opensnoop -x --errno -d 3 >/tmp/os2.out 2>&1
wait
check_file_grep "-x --errno: ENOENT" '^sh +[0-9]+ +ENOENT /etc/passwd-not-there$' /tmp/os2.out
check_no_grep "-x: no successful opens" ' [0-9]+ +[0-9]+ /' cat /tmp/os2.out

opensnoop >/tmp/os3.out 2>&1 &
pid=$!
sleep 2
check "opensnoop created probes while running" has_ours
kill -INT $pid
wait $pid
check "SIGINT: exit 0" test $? -eq 0
check_no_grep "no probe of ours left after SIGINT" '.' ours

opensnoop >/tmp/os4.out 2>&1 &
pid=$!
sleep 2
kill -KILL $pid
wait $pid 2>/dev/null
check "SIGKILL leaves the probes" has_ours
opensnoop --cleanup >/tmp/os5.out 2>&1
cp /tmp/os5.out "$VM_CHECK_OUT"
check_file_grep "--cleanup removes the stale probes" "stale probe ptrs_$pid/" /tmp/os5.out
check_no_grep "nothing of ours left after cleanup" '.' ours
check_no_grep "no instance left" 'opensnoop' ls "$T/instances"

[ -z "$VM_OUT" ] || cp /tmp/os1.out "$VM_OUT/opensnoop-$VM_KERNEL.out"
vm_finish
