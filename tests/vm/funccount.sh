# VM test of funccount on real kernels with the function tracer: __x64_sys_sync counted
# exactly (busybox sync run 20 times), with a glob and -t; -i -T summaries; a broad glob
# refused without --force (saying how many functions match); then every exit path of
# the leak matrix (LEAK lines).
# Run: scripts/vm/test.sh --kernel 5.10 funccount
# needs: funccount
# timeout: 300
# One vCPU: the function tracer live-patches function entries, which intermittently
# crashes QEMU 7.2 TCG with 2 vCPUs (see funcgraph.sh).
# smp: 1
# The funccount_* variables below are read by lm_get through eval (SC2034).
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
tracefs_snapshot >/tmp/fc.before
restored() { tracefs_snapshot >/tmp/fc.now; diff /tmp/fc.before /tmp/fc.now; }
wait_banner() {
  _i=0
  while [ ! -s "$1" ]; do
    _i=$((_i + 1)); [ "$_i" -gt 600 ] && return 1; sleep 0.1
  done
}

# 1. 20 syncs, counted with a glob that also matches __ia32_sys_sync (never called, so
# not listed) and, on some kernels, __do_sys_sync (called by __x64_sys_sync).
funccount -d 8 "__*_sys_sync $F" >/tmp/fc1.out 2>/tmp/fc1.err &
fc=$!
wait_banner /tmp/fc1.out && sleep 1
i=0; while [ $i -lt 20 ]; do sync; i=$((i + 1)); done
wait "$fc"
rc=$?
cat /tmp/fc1.err /tmp/fc1.out >"$VM_CHECK_OUT"
check "funccount -d 8 exits 0" test "$rc" -eq 0
check_file_grep "banner" "^Tracing \"__\\*_sys_sync $F\" for 8 seconds\\.\\.\\.\$" /tmp/fc1.out
check_file_grep "columns" '^FUNC                              COUNT$' /tmp/fc1.out
check_file_grep "exactly 20 calls" "^$F +20\$" /tmp/fc1.out
check "every other row (__*_sys_sync called by it) 20 too, none uncalled" sh -c "! grep -E '^[a-z_]+ +[0-9]+\$' /tmp/fc1.out | grep -v -E ' 20\$'"
check_file_grep "names its counter" 'counting [0-9]+ functions with the function tracer records counted in user space' /tmp/fc1.err
check_file_grep "Ending tracing..." '^Ending tracing\.\.\.$' /tmp/fc1.out
cat /tmp/fc1.out
check "state restored" restored

# 2. -i 1 -T -t 1 for 3 seconds: three dated summaries of one row each.
funccount -T -t 1 -i 1 -d 3 'vfs_read vfs_write' >/tmp/fc2.out 2>/tmp/fc2.err
rc=$?
cat /tmp/fc2.err /tmp/fc2.out >"$VM_CHECK_OUT"
check "-i 1 -d 3: exits 0" test "$rc" -eq 0
check_file_grep "-t banner" '^Tracing "vfs_read vfs_write" for 3 seconds\. Top 1 only\.\.\.$' /tmp/fc2.out
check "-i 1 -d 3: three summaries" test "$(grep -c '^FUNC ' /tmp/fc2.out)" -eq 3
check "-T: three dates" test "$(grep -c -E '^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}$' /tmp/fc2.out)" -eq 3
check "-t 1: at most one row per summary" test "$(grep -c -E '^vfs_(read|write) +[0-9]+$' /tmp/fc2.out)" -le 3

# 3. Refusal of a broad glob, saying how many match; --check names the counter.
check_grep "a broad glob needs --force" '"\*" matches [0-9]+ kernel functions .*--force' sh -c 'funccount -d 1 "*"; [ $? -eq 1 ]'
check_grep "--check names the counter" 'function tracer records counted in user space' funccount --check
check "refusal and --check changed nothing" restored

# 4. Every exit path (tests/README.md leak matrix).
funccount_run="$F" funccount_ready="^Tracing \"$F\"" funccount_fin="-d 0.5 $F"
funccount_err="'nosuch_function[0-9]'" funccount_errpat='refused set_ftrace_filter'
funccount_how="a glob with a character class that matches no function (left to the kernel): set_ftrace_filter fails (EINVAL) after funccount made its instance"
funccount_panic=1 funccount_cleanup=1 funccount_state=1
lm_row funccount
vm_finish
