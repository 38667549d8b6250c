# VM test of syscount and killsnoop on stock kernels: both read syscall tracepoints only
# (raw_syscalls:sys_enter; syscalls:sys_enter/exit_kill, tkill, tgkill), whose layouts,
# the kernel's saved_cmdlines/saved_tgids and instance options (record-tgid, 64 KiB
# sub-buffers) differ with age. Checks: each --check verifies with its own calls (3
# getppid counted exactly and named by the kernel, in the kernel too by a hist trigger
# where the kernel has them; kill/tgkill of signal 0 paired with their results);
# syscount -c of a command counts its one execve (by the hist trigger where there is
# one); a SIGKILLed syscount -c leaves an instance (with its trigger) that --cleanup
# removes; killsnoop shows a busybox `kill -USR1` of a sleep with sender, target,
# signal name and result; nothing is left in tracefs.
# needs: syscount killsnoop
# sets: trixie
# timeout: 120
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

left() { for _i in "$T"/instances/syscount-* "$T"/instances/killsnoop-*; do [ -e "$_i" ] && echo "${_i##*/}"; done; true; }

check_grep "syscount --check: 3 getppid counted, named" '3 of 3 getppid calls.*counted' syscount --check
cp "$VM_CHECK_OUT" /tmp/sc-check.out
check_file_grep "syscount --check: the kernel names the number" 'syscall [0-9]+ is getppid' /tmp/sc-check.out
check_grep "syscount -c command: its execve counted once" '^execve +1$' syscount -c /bin/true
cp "$VM_CHECK_OUT" /tmp/sc-cmd.out
check_file_grep "syscount -c command: banner" '^Tracing while running: "/bin/true"\.\.\.$' /tmp/sc-cmd.out
if [ -e "$T/events/raw_syscalls/sys_enter/hist" ]; then
  check_file_grep "syscount --check: hist trigger counts 3 of 3" 'hist triggers +yes +-c counts in the kernel: a hist trigger counted 3 of 3' /tmp/sc-check.out
  syscount -c > /tmp/sc-k.out 2>&1 &
  sk=$!
  wait_line /tmp/sc-k.out '^Tracing'
  check_grep "syscount -c: its hist trigger is set" '^hist:keys=id.syscall' cat "$T/instances/syscount-$sk/events/raw_syscalls/sys_enter/trigger"
  kill -KILL "$sk"
  wait "$sk" 2>/dev/null
  check_grep "syscount --cleanup removes a killed run's instance with its trigger" "removed stale trace instance syscount-$sk" syscount --cleanup
else
  skip "syscount hist trigger" "no hist triggers on this kernel"
fi
check_grep "killsnoop --check: own signal-0 calls paired" '2 of killsnoop.s own signal-0 calls' killsnoop --check

killsnoop -s > /tmp/ks.out 2> /tmp/ks.err &
kp=$!
if wait_line /tmp/ks.out RETURN; then
  sleep 30 &
  sp=$!
  kill -USR1 "$sp"
  wait "$sp" 2>/dev/null
  wait_line /tmp/ks.out SIGUSR1 10
fi
kill -INT "$kp"
wait "$kp"
me=$(cat /proc/$$/comm)
check_file_grep "killsnoop: sender, target, name, result" "^$me +$$ +$sp +SIGUSR1 +0 *\$" /tmp/ks.out
check_file_grep "killsnoop: ends in order" '^Ending tracing\.\.\.$' /tmp/ks.out
check_no_grep "no instance left" '.' left
vm_finish
