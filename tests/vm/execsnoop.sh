# VM test of execsnoop on kernels with dynamic probes: the arguments of a known,
# short-lived exec (gone long before /proc could be read) come exactly from the event
# probe (6.1, 7.x) or the kprobe (5.10), each verified with execsnoop's canary exec
# first; its PPID is the shell that ran it; -a truncates with [...]; two execsnoops at
# once show neither's canary; --check names the source; nothing of ours is left.
# Run: scripts/vm/test.sh --no-build --kernel 6.1 execsnoop
# needs: execsnoop
# sets: pinned trixie
# timeout: 150
# One vCPU: kprobes live-patch kernel text (see opensnoop.sh).
# smp: 1
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

ours() { cat "$T/dynamic_events" "$T/kprobe_events" 2>/dev/null | grep -E '^[a-z0-9]+:ptrs_[0-9]+/' || true; }

execsnoop -v -d 6 >/tmp/es1.out 2>/tmp/es1.err &
p1=$!
execsnoop -t -a 1 -d 6 >/tmp/es2.out 2>/tmp/es2.err &
p2=$!
wait_line /tmp/es1.out 'ARGS$'
wait_line /tmp/es2.out 'ARGS$'
# A known exec that exits at once (a usage error), from a shell whose pid is recorded.
# shellcheck disable=SC2016 # $$ is the inner shell's
sh -c 'echo $$ >/tmp/es.ppid; /bin/execsnoop -a 99 ptrs-vm-known "two words" 2>/dev/null; true'
wait $p1; r1=$?
wait $p2; r2=$?
cat /tmp/es1.err
check "both runs exit 0" test "$r1$r2" = 00
pp=$(cat /tmp/es.ppid)
case "$VM_KERNEL" in
  5.10) want=kprobe what=kprobes ;;
  6.1 | 7.x) want=eprobe what='event probes' ;;
  *) want='(eprobe|kprobe)' what='(event probes|kprobes)' ;;
esac
check_file_grep "-v: the source is $want, verified" "^execsnoop: arguments from $what .*\\(verified with its own exec\\)$" /tmp/es1.err
check_file_grep "known exec: exact ARGS from $want, PPID $pp" "^ *[0-9]+ +$pp $want +/bin/execsnoop -a 99 ptrs-vm-known two words\$" /tmp/es1.out
check_file_grep "-a 1 -t: truncated with [...]" "^[0-9]+\\.[0-9]{6} +[0-9]+ +$pp /bin/execsnoop -a \\[\\.\\.\\.\\]\$" /tmp/es2.out
check_no_grep "no canary row of either run" 'execsnoop-canary|/canary( |$)' cat /tmp/es1.out /tmp/es2.out
# (Only -v shows the source. An exec that entered execve before tracing began and
# finished after it has no probe event: it is rightly resolved from /proc, and marked
# [exited] when it was already gone, as a shell's first grep of wait_line can be.)
check_no_grep "no [exited] or [?] with a probe source" "^ *[0-9]+ +[0-9]+ $want .*(\\[exited\\]|\\[\\?\\])\$" cat /tmp/es1.out

execsnoop --check >/tmp/es3.out 2>&1
rc=$?
cat /tmp/es3.out
check "--check exits 0" test "$rc" -eq 0
check_file_grep "--check: $want verified" "^  source $want +yes +verified with its own exec" /tmp/es3.out
check_no_grep "no probe of ours left" '.' ours
check_no_grep "no instance left" 'execsnoop' ls "$T/instances"
[ -z "$VM_OUT" ] || cp /tmp/es1.out "$VM_OUT/execsnoop-$VM_KERNEL.out"
vm_finish
