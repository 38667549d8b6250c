# State-leak matrix, guest half (tests/README.md): kprobe, opensnoop, execsnoop,
# iosnoop, iolatency, showboost and cputemp, and kprobe + opensnoop at once, end by
# every exit path (normal end, SIGINT, SIGTERM, SIGHUP, a closed pipe, an error and a
# panic after setup, SIGKILL and a second run, SIGKILL and --cleanup); the tracefs
# snapshot after each must equal the one before (lm_row in lib.sh). funcgraph has its
# own script (leakmatrix-funcgraph.sh: it needs one vCPU). pmcstat, which touches no
# tracing state, has its matrix on the host only (crates/testkit/tests/leak_matrix.rs).
# needs: kprobe opensnoop execsnoop iosnoop iolatency showboost cputemp
# sets: pinned
# timeout: 360
# One vCPU: enabling probes and syscall tracepoints live-patches kernel text, and QEMU
# TCG with 2 vCPUs sometimes oopses on that (int3 in syscall_trace_enter, seen on 6.12
# with kprobe + opensnoop), as it does for function_graph (see funcgraph.sh).
# smp: 1
# The <tool>_* variables below are read by lm_get through eval (SC2034), and their
# argument strings are eval'ed there, so their $ stay single-quoted (SC2016).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2034,SC2016
. /vm/lib.sh

# The snapshots must see a change at all: a filter, a probe, an instance and a trigger
# made here (and undone).
check "snapshot self-check: unchanged state, equal snapshots" sh -c '. /vm/lib.sh; tracefs_snapshot >/tmp/s1; tracefs_snapshot >/tmp/s2; diff /tmp/s1 /tmp/s2'
tracefs_snapshot >/tmp/s1
echo 'sector == 4242' >"$T/events/block/block_rq_issue/filter"
mkdir "$T/instances/leaky-1"
echo 'p:ptrs_1/leaky vfs_read' >>"$T/kprobe_events"
tracefs_snapshot >/tmp/s2
check_grep "snapshot self-check: sees a filter" 'block_rq_issue/filter:sector == 4242' sh -c 'diff /tmp/s1 /tmp/s2; true'
check_grep "snapshot self-check: sees an instance" '^\+ *leaky-1$' sh -c 'diff /tmp/s1 /tmp/s2; true'
check_grep "snapshot self-check: sees a probe" 'ptrs_1/leaky' sh -c 'diff /tmp/s1 /tmp/s2; true'
echo 0 >"$T/events/block/block_rq_issue/filter"
rmdir "$T/instances/leaky-1"
echo '-:ptrs_1/leaky' >>"$T/kprobe_events"
check "snapshot self-check: undone" sh -c '. /vm/lib.sh; tracefs_snapshot >/tmp/s3; diff /tmp/s1 /tmp/s3'
# And lm_row must fail a "tool" that leaves an instance behind.
check_grep "lm_row self-check: a leaking tool fails" '^LEAK leaky normal FAIL$' \
  sh -c '. /vm/lib.sh; VM_CHECK_OUT=/tmp/lm.inner; leaky() { mkdir "$T/instances/leaky-2"; }; leaky_fin=""; LM_PATHS=normal; lm_row leaky'
rmdir "$T/instances/leaky-2"
echo traceoff >"$T/events/block/block_rq_issue/trigger"
check_grep "trigger snapshot self-check: sees a trigger" 'block_rq_issue/trigger:traceoff' tracefs_triggers
echo '!traceoff' >"$T/events/block/block_rq_issue/trigger"
check_no_grep "trigger snapshot self-check: undone" '.' tracefs_triggers

# Linux < 6.7 grows the top-level buffer (buffer_size_kb "7 (expanded: 1408)") the
# first time any instance enables an event or the tracer is set: a kernel side effect
# of the first user, done here before the first snapshot.
echo nop >"$T/current_tracer"

LM_LONG=$(head -c 4090 /dev/zero | tr '\0' R)   # a filter longer than a page: EINVAL
TCG_MSR="every MSR reads 0 under QEMU TCG"

kprobe_run="p:vfs_read" kprobe_ready='^Tracing kprobe' kprobe_fin="-d 0.5 p:vfs_read"
kprobe_err="p:vfs_read 'nosuchfield == 1'" kprobe_errpat='rejected the filter'
kprobe_how="a filter on a field the probe lacks: the kernel rejects it after the probe and the instance exist"
kprobe_panic=1 kprobe_cleanup=1 kprobe_state=1

opensnoop_run="" opensnoop_ready='^Tracing open' opensnoop_fin="-d 0.5"
opensnoop_err="-d 1" opensnoop_errout=/dev/full opensnoop_errpat='No space left on device'
opensnoop_how="standard output on /dev/full: writing the header, once tracing is on, fails (ENOSPC)"
opensnoop_panic=1 opensnoop_cleanup=1 opensnoop_state=1

# execsnoop's source differs by kernel (event probes, kprobes, or the tracepoint alone).
execsnoop_run="" execsnoop_ready='^Tracing exec' execsnoop_fin="-d 0.5"
execsnoop_err="-d 1" execsnoop_errout=/dev/full execsnoop_errpat='No space left on device'
execsnoop_how="standard output on /dev/full: writing the header, once tracing is on, fails (ENOSPC)"
execsnoop_panic=1 execsnoop_cleanup=1 execsnoop_state=1

iosnoop_run="" iosnoop_ready='^Tracing block I/O' iosnoop_fin="0.5"
iosnoop_err='-i "$LM_LONG" 1' iosnoop_errpat='rejected the filter'
iosnoop_how="a 4090-character \`-i\` glob: the kernel rejects the event filter (EINVAL) after the instance is created"
iosnoop_panic=1 iosnoop_cleanup=1 iosnoop_state=1

iolatency_run="1" iolatency_ready='^Tracing block I/O' iolatency_fin="0.5 1"
iolatency_err='-i "$LM_LONG" 1' iolatency_errpat='rejected the filter' iolatency_how=$iosnoop_how
iolatency_panic=1 iolatency_cleanup=1 iolatency_state=1

# showboost reads /dev/cpu/N/msr (msr.ko): its preamble and header come out, then the
# first interval ends in the all-zero APERF/MPERF error.
showboost_run="5" showboost_ready='C0_MCYC'
showboost_na_normal="$TCG_MSR: every interval ends in the all-zero APERF/MPERF error"
showboost_na_sigpipe="$TCG_MSR: the first write after the header follows an interval, which ends in the all-zero error"
showboost_err="0.3 1" showboost_errpat='did not advance'
showboost_how="$TCG_MSR: APERF/MPERF did not advance (after the preamble and header)"
showboost_rerun="0.3 1" showboost_rerun_rc=1

# cputemp finds no temperature source here and exits at once: only its error runs.
cputemp_err="" cputemp_errpat='no temperature source'
cputemp_how="$TCG_MSR and there is no hwmon sensor: no temperature source (at start: cputemp has no later error)"
for p in normal sigint sigterm sighup sigusr1 sigpipe kill_rerun; do
  eval "cputemp_na_$p=\"exits at start: $TCG_MSR and there is no hwmon sensor\""
done

tracefs_triggers >/tmp/lm.triggers
lm_watchdog_start
lm_row kprobe
lm_row opensnoop
lm_row execsnoop
lm_row iosnoop
lm_row iolatency
lm_row showboost
lm_row cputemp
lm_row kprobe opensnoop
lm_watchdog_stop
check "no event trigger changed by the whole matrix" sh -c '. /vm/lib.sh; tracefs_triggers | diff /tmp/lm.triggers -'
vm_finish
