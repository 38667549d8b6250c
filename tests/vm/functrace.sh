# VM test of functrace on real kernels with the function tracer: three known calls of
# __x64_sys_sync (busybox sync) traced with -H, each line equal (task, PID, CPU,
# function, caller; not the flags and timestamp) to what the kernel's own text shows in a second
# instance tracing the same function; -p; refusals (a broad glob without --force, an
# unknown name); functrace, funccount and funcgraph at the same time (nobody disturbs
# another's settings); then every exit path of the leak matrix (LEAK lines).
# Run: scripts/vm/test.sh --kernel 5.10 functrace
# needs: functrace funccount funcgraph
# timeout: 600
# One vCPU: the function tracers live-patch function entries, which intermittently
# crashes QEMU 7.2 TCG with 2 vCPUs (see funcgraph.sh).
# smp: 1
# The functrace_* variables below are read by lm_get through eval (SC2034).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2034
. /vm/lib.sh

# The sync(2) function this kernel can trace: __x64_sys_sync, or (5.10) __do_sys_sync.
F=
for _f in __x64_sys_sync __do_sys_sync ksys_sync; do
  grep -q -x -e "$_f" "$T/available_filter_functions" && { F=$_f; break; }
done
[ -n "$F" ] || { fail "a traceable sync(2) function" "none of __x64_sys_sync __do_sys_sync ksys_sync"; vm_finish; }
# The first user of a tracer grows the top-level buffer once per boot on kernels before
# 6.7 (buffer_size_kb "7 (expanded: 1408)"): a kernel side effect, done before the snapshot.
echo nop >"$T/current_tracer"
tracefs_snapshot >/tmp/ft.before
restored() { tracefs_snapshot >/tmp/ft.now; diff /tmp/ft.before /tmp/ft.now; }
wait_banner() {
  _i=0
  while [ ! -s "$1" ]; do
    _i=$((_i + 1)); [ "$_i" -gt 600 ] && return 1; sleep 0.1
  done
}
# strip: the lines without their flags and timestamps: each instance's callback records
# its own preempt count (6.12: "...1." in one instance, "....." in the other), and its
# own time.
strip() { grep -v '^#' "$1" | grep -- "$F <-" | sed -E 's/\] [^ ]+ +[0-9]+\.[0-9]+: /] /'; }

# 1. Three syncs; a reference instance shows the kernel's own text of the same calls.
R=$T/instances/ftref
mkdir "$R"
echo "$F" >"$R/set_ftrace_filter"
echo function >"$R/current_tracer"
functrace -H -d 6 "$F" >/tmp/ft1.out 2>/tmp/ft1.err &
ft=$!
wait_banner /tmp/ft1.out && sleep 1 && sync && sync && sync
wait "$ft"
rc=$?
echo 0 >"$R/tracing_on"
cat "$R/trace" >/tmp/ft1.ref
echo nop >"$R/current_tracer"
rmdir "$R"
cat /tmp/ft1.err /tmp/ft1.out >"$VM_CHECK_OUT"
check "functrace -H -d 6 $F exits 0" test "$rc" -eq 0
check_file_grep "banner" "^Tracing \"$F\" for 6 seconds\\.\\.\\.\$" /tmp/ft1.out
check_file_grep "-H: the column legend" '^# +TASK-PID +CPU# ' /tmp/ft1.out
check "three calls, by sync" test "$(grep -c -E "^ +sync-[0-9]+ +\\[000\\] [.a-zA-Z0-9]+ +[0-9]+\\.[0-9]{6}: $F <-[a-z_0-9]+\$" /tmp/ft1.out)" -eq 3
cat /tmp/ft1.out
strip /tmp/ft1.out >/tmp/ft1.ours
strip /tmp/ft1.ref >/tmp/ft1.kernel
cat /tmp/ft1.ours /tmp/ft1.kernel >"$VM_CHECK_OUT"
check "lines equal the kernel's text (task-PID, CPU, function, caller)" diff /tmp/ft1.ours /tmp/ft1.kernel
grep -m1 -- "$F <-" /tmp/ft1.out
check "state restored" restored

# 2. -p: only the given process (a shell that syncs twice); another sync is not shown.
sh -c 'while [ ! -e /tmp/ft.go ]; do sleep 0.2; done; sync; sync; sleep 30' &
loop=$!
functrace -p "$loop" -d 5 "$F" >/tmp/ft2.out 2>/tmp/ft2.err &
ft=$!
wait_banner /tmp/ft2.out && sleep 1 && sync && : >/tmp/ft.go
wait "$ft"
rc=$?
kill "$loop" 2>/dev/null
cat /tmp/ft2.err /tmp/ft2.out >"$VM_CHECK_OUT"
check "-p: exits 0" test "$rc" -eq 0
check "-p: the two syncs of the process's children only" test "$(grep -c -- "$F <-" /tmp/ft2.out)" -eq 2

# 3. Refusals, before anything changes.
check_grep "a broad glob needs --force, saying how many" 'matches [0-9]+ kernel functions .*--force' sh -c 'functrace -d 1 "*"; [ $? -eq 1 ]'
check_grep "an unknown name: close matches" 'close matches: .*vfs_read' sh -c 'functrace -d 1 vfs_raed; [ $? -eq 1 ]'
check "refusals changed nothing" restored

# 4. funcgraph (top level on some kernels), funccount and functrace at once.
head -c 16384 /dev/zero >/tmp/ft.data
funcgraph vfs_read >/tmp/fg.out 2>/tmp/fg.err &
fg=$!
wait_banner /tmp/fg.out
# Until Ctrl-C, not -d: under function_graph (TCG) one tool can take seconds longer to
# set up than the other, and a duration could end before the syncs.
funccount "$F" >/tmp/fc.out 2>/tmp/fc.err &
fc=$!
functrace "$F" >/tmp/ft4.out 2>/tmp/ft4.err &
ft=$!
wait_banner /tmp/fc.out && wait_banner /tmp/ft4.out && sleep 1
sync; sync; dd if=/tmp/ft.data of=/dev/null bs=4096 count=2 2>/dev/null
sleep 1
kill -INT "$ft" "$fc"
wait "$ft"; rc1=$?
wait "$fc"; rc2=$?
sleep 1
kill -INT "$fg"; wait "$fg"; rc3=$?
cat /tmp/ft4.err /tmp/ft4.out /tmp/fc.err /tmp/fc.out /tmp/fg.err >"$VM_CHECK_OUT"
check "together: all three exit 0" test "$rc1$rc2$rc3" = 000
check "together: functrace saw both syncs" test "$(grep -c -- "$F <-" /tmp/ft4.out)" -eq 2
check_file_grep "together: funccount counted both" "^$F +2\$" /tmp/fc.out
check_file_grep "together: funcgraph still graphed vfs_read" 'vfs_read\(\) \{' /tmp/fg.out
check "together: state restored" restored

# 5. Every exit path (tests/README.md leak matrix).
functrace_run="$F" functrace_ready="^Tracing \"$F\"" functrace_fin="-d 0.5 $F"
functrace_err="'nosuch_function[0-9]'" functrace_errpat='refused set_ftrace_filter'
functrace_how="a glob with a character class that matches no function (left to the kernel): set_ftrace_filter fails (EINVAL) after functrace made its instance"
functrace_panic=1 functrace_cleanup=1 functrace_state=1
lm_row functrace
vm_finish
