# VM test of funccount on real kernels with the function tracer: __x64_sys_sync counted
# exactly (busybox sync run 20 times) by each counter the kernel has (hist triggers on
# fprobe and kprobe events, records in user space), with a glob and -t; -i -T summaries
# and -i summaries that add up to the calls made; a broad glob refused without --force
# (saying how many functions match); then every exit path of the leak matrix (LEAK
# lines).
# Run: scripts/vm/test.sh --kernel 5.10 funccount
# needs: funccount
# timeout: 400
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
# The counter each kernel of the matrix must choose: Debian's 5.10 cloud kernel has no
# hist triggers (CONFIG_HIST_TRIGGERS unset); 6.12 and 7.x have fprobe events.
RECORDS='function tracer records counted in user space'
case $VM_KERNEL in
  5.10) COUNTER=$RECORDS HIST= ;;
  6.1) COUNTER='hist triggers on kprobe events' HIST=1 ;;
  *) COUNTER='hist triggers on fprobe events' HIST=1 ;;
esac
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
# syncs N [PAUSE]: N sync(2) calls, PAUSE seconds apart.
syncs() {
  _n=0
  while [ "$_n" -lt "$1" ]; do sync; _n=$((_n + 1)); [ -z "${2:-}" ] || sleep "$2"; done
}

# count20 LABEL COUNTER-NAME FUNCCOUNT-ARGS...: 20 syncs while funccount -d 8 runs with
# the glob "__*_sys_sync $F" (it also matches __ia32_sys_sync, never called, so not
# listed, and on some kernels __do_sys_sync, called by __x64_sys_sync): every listed
# function counted exactly 20 times, by the counter named on stderr.
count20() {
  _l=$1 _c=$2
  shift 2
  # A fresh file: the banner wait must not see the last run's.
  rm -f /tmp/fc1.out /tmp/fc1.err
  funccount "$@" -d 8 "__*_sys_sync $F" >/tmp/fc1.out 2>/tmp/fc1.err &
  _fc=$!
  wait_banner /tmp/fc1.out && sleep 1
  syncs 20
  wait "$_fc"
  _rc=$?
  cat /tmp/fc1.err /tmp/fc1.out >"$VM_CHECK_OUT"
  check "$_l: exits 0" test "$_rc" -eq 0
  check_file_grep "$_l: banner" "^Tracing \"__\\*_sys_sync $F\" for 8 seconds\\.\\.\\.\$" /tmp/fc1.out
  check_file_grep "$_l: columns" '^FUNC                              COUNT$' /tmp/fc1.out
  check_file_grep "$_l: exactly 20 calls" "^$F +20\$" /tmp/fc1.out
  check "$_l: every other row (__*_sys_sync called by it) 20 too, none uncalled" sh -c "! grep -E '^[a-z_0-9]+ +[0-9]+\$' /tmp/fc1.out | grep -v -E ' 20\$'"
  check_file_grep "$_l: names its counter" "counting [0-9]+ functions with (the )?$_c" /tmp/fc1.err
  check_file_grep "$_l: Ending tracing..." '^Ending tracing\.\.\.$' /tmp/fc1.out
  cat /tmp/fc1.err /tmp/fc1.out
  check "$_l: state restored" restored
}

# 1. Each counter this kernel has, exactly; the default is the best one.
count20 "default counter" "$COUNTER"
count20 "--counter records" "$RECORDS" --counter records
if [ -n "$HIST" ]; then
  count20 "--counter kprobe" 'hist triggers on kprobe events' --counter kprobe
  check_file_grep "the canary was counted exactly" 'verified: 7 [_a-z0-9]+ calls counted exactly' /tmp/fc1.err
else
  check_grep "--counter kprobe refused, saying why" 'cannot count on this kernel: kprobe: .*CONFIG_HIST_TRIGGERS' sh -c "funccount --counter kprobe -d 1 $F; [ \$? -eq 1 ]"
  check "refusal changed nothing" restored
fi

# 1b. Calls made while funccount sets up (before its banner) are not counted: the
# in-kernel counters are live from their creation on, and the first summary subtracts
# what they held once the banner was out. $F sorts before the vfs_* functions, so its counter is
# made first and lives through the setup of the vfs_r* ones. The shell syncs until the
# banner shows, then 5 more; the sync in flight at the banner may count, so 5 or 6.
rm -f /tmp/fc6.out /tmp/fc6.err
funccount -d 6 "$F vfs_r*" >/tmp/fc6.out 2>/tmp/fc6.err &
fc=$!
pre=0
while [ ! -s /tmp/fc6.out ] && [ "$pre" -lt 20000 ]; do sync; pre=$((pre + 1)); done
sleep 1
syncs 5
wait "$fc"
cat /tmp/fc6.err /tmp/fc6.out >"$VM_CHECK_OUT"
n=$(awk -v f="$F" '$1 == f { print $2 }' /tmp/fc6.out)
check "setup: syncs were made while funccount set up ($pre)" test "$pre" -ge 2
check "setup: those $pre are not counted, the 5 after the banner are (5 or 6)" sh -c "[ '${n:-0}' -ge 5 ] && [ '${n:-0}' -le 6 ]"

# 2. -i 1 -T -t 1 for 3 seconds: three dated summaries of one row each.
funccount -T -t 1 -i 1 -d 3 'vfs_read vfs_write' >/tmp/fc2.out 2>/tmp/fc2.err
rc=$?
cat /tmp/fc2.err /tmp/fc2.out >"$VM_CHECK_OUT"
check "-i 1 -d 3: exits 0" test "$rc" -eq 0
check_file_grep "-t banner" '^Tracing "vfs_read vfs_write" for 3 seconds\. Top 1 only\.\.\.$' /tmp/fc2.out
check "-i 1 -d 3: three summaries" test "$(grep -c '^FUNC ' /tmp/fc2.out)" -eq 3
check "-T: three dates" test "$(grep -c -E '^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}$' /tmp/fc2.out)" -eq 3
check "-t 1: at most one row per summary" test "$(grep -c -E '^vfs_(read|write) +[0-9]+$' /tmp/fc2.out)" -le 3

# 3. -i summaries count what happened in their interval: 12 syncs spread over about
# three seconds add up to 12 over the summaries, in more than one of them.
funccount -i 1 -d 5 "$F" >/tmp/fc3.out 2>/tmp/fc3.err &
fc=$!
wait_banner /tmp/fc3.out && sleep 0.5
syncs 12 0.25
wait "$fc"
cat /tmp/fc3.err /tmp/fc3.out >"$VM_CHECK_OUT"
check "-i 1: the summaries add up to the 12 calls" test "$(awk -v f="$F" '$1 == f { s += $2 } END { print s + 0 }' /tmp/fc3.out)" -eq 12
check "-i 1: in more than one summary" test "$(grep -c -E "^$F +[0-9]+\$" /tmp/fc3.out)" -ge 2

# 4. Refusal of a broad glob, saying how many match; --check names the counter.
check_grep "a broad glob needs --force" '"\*" matches [0-9]+ kernel functions .*--force' sh -c 'funccount -d 1 "*"; [ $? -eq 1 ]'
check_grep "--check names the counter" "^funccount: can run.*; $COUNTER" funccount --check
check "refusal and --check changed nothing" restored

# 5. Every exit path (tests/README.md leak matrix).
funccount_run="$F" funccount_ready="^Tracing \"$F\"" funccount_fin="-d 0.5 $F"
funccount_err="'nosuch_function[0-9]'" funccount_errpat='refused set_ftrace_filter'
funccount_how="a glob with a character class that matches no function (left to the kernel): set_ftrace_filter fails (EINVAL) after funccount made its instance"
funccount_panic=1 funccount_cleanup=1 funccount_state=1
lm_row funccount
vm_finish
