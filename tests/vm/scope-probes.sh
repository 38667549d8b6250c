# VM test of --cgroup (issue 19) for kprobe, functrace, funccount, funcgraph and
# funcslower on real kernels: in a cgroup v2 made here, a shell that runs two syncs
# as children (forked after the tool started), a shell moved into the cgroup after
# the start doing the same, and an identical shell outside. Each tool must show
# exactly the four inside syncs (same PIDs) and none of the outside ones; removing
# the cgroup mid-run ends the run with exit 0 and says so; a SIGKILLed scoped
# funcgraph is restored by --cleanup; --cgroup with -p is a usage error (2); a path
# that is no cgroup fails before tracefs changes; afterwards tracefs is as before
# (no instance, the top-level set_ftrace_pid/set_event_pid untouched).
# Run: scripts/vm/test.sh --kernel 5.10 --kernel 7.x scope-probes
# needs: kprobe functrace funccount funcgraph funcslower
# kernels: 5.10 6.12-deb13 7.x
# timeout: 600
# One vCPU: the function tracers live-patch function entries, which intermittently
# crashes QEMU 7.2 TCG with 2 vCPUs (see funcgraph.sh).
# smp: 1
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

# The sync(2) function this kernel can trace: __x64_sys_sync, or (5.10) __do_sys_sync.
F=
for _f in __x64_sys_sync __do_sys_sync ksys_sync; do
  grep -q -x -e "$_f" "$T/available_filter_functions" && { F=$_f; break; }
done
[ -n "$F" ] || { fail "a traceable sync(2) function" "none of __x64_sys_sync __do_sys_sync ksys_sync"; vm_finish; }

V2=/tmp/cg2
mkdir -p "$V2"
mount -t cgroup2 none "$V2" 2>/dev/null || true
check "cgroup v2 mounted" test -f "$V2/cgroup.procs"
CG=$V2/sp
mkdir -p "$CG"

# The first user of a tracer grows the top-level buffer once per boot on kernels before
# 6.7: a kernel side effect, done before the snapshot.
echo nop >"$T/current_tracer"
tracefs_snapshot >/tmp/sp.before
restored() { tracefs_snapshot >/tmp/sp.now; diff /tmp/sp.before /tmp/sp.now; }

# worker.sh PIDFILE [CGROUP_PROCS]: joins the cgroup if given, waits for /tmp/sp.go,
# then runs sync twice as a child, appending each child's PID to PIDFILE.
cat >/tmp/worker.sh <<'EOF'
[ -z "$2" ] || echo $$ >"$2"
while [ ! -e /tmp/sp.go ]; do sleep 0.1; done
sync & echo $! >>"$1"; wait
sync & echo $! >>"$1"; wait
EOF

# started FILE PID: waits (at most 90 s) until FILE has the banner; false if the tool
# (PID) ended before it, or it never came.
started() {
  _i=0
  while ! grep -q '^Tracing' "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null && [ "$_i" -lt 900 ] || return 1
    sleep 0.1
    _i=$((_i + 1))
  done
}

# round NAME TOOL ARGS...: runs the tool (with -d, ending by itself) while the three
# workers run: "in" (in the cgroup from before the start), "mv" (moved in after the
# start) and "out" (never in it). Output in /tmp/NAME.out and .err, status in $rc.
round() {
  _n=$1
  shift
  rm -f /tmp/sp.go /tmp/sp.in /tmp/sp.mv /tmp/sp.out
  sh /tmp/worker.sh /tmp/sp.in "$CG/cgroup.procs" &
  _win=$!
  sh /tmp/worker.sh /tmp/sp.mv &
  _wmv=$!
  sh /tmp/worker.sh /tmp/sp.out &
  _wout=$!
  sleep 0.5
  "$@" >"/tmp/$_n.out" 2>"/tmp/$_n.err" &
  _tool=$!
  started "/tmp/$_n.out" "$_tool" || echo "round $_n: no banner"
  sleep 1
  echo "$_wmv" >"$CG/cgroup.procs"
  sleep 1
  : >/tmp/sp.go
  wait "$_win" "$_wmv" "$_wout"
  wait "$_tool"
  rc=$?
  sort -u /tmp/sp.in /tmp/sp.mv >/tmp/sp.want
  echo "inside: $(tr '\n' ' ' </tmp/sp.want)outside: $(tr '\n' ' ' </tmp/sp.out)"
  cat "/tmp/$_n.err" "/tmp/$_n.out" >"$VM_CHECK_OUT"
}

# pids FILE ERE: the PIDs (task-PID column) of the lines of FILE matching ERE, sorted.
pids() { grep -E -e "$2" "$1" | sed -nE 's/^ *(.*)-([0-9]+) +\[[0-9]+\].*/\2/p' | sort -u; }
# graph_pids FILE: the PIDs of funcgraph -P lines entering $F.
graph_pids() { grep -E -e "$F\\(\\)" "$1" | sed -nE 's/^ *[0-9]+\) +(.*)-([0-9]+) +\|.*/\2/p' | sort -u; }
# none_outside FILE: true when no PID of an outside sync is in FILE (one per line).
none_outside() { ! grep -x -F -f /tmp/sp.out "$1"; }

# 1. kprobe: the probe's lines are the inside syncs, by PID.
round kp kprobe -d 6 --cgroup "$CG" "p:$F"
cat /tmp/kp.out
check "kprobe --cgroup: exits 0" test "$rc" -eq 0
check_file_grep "kprobe --cgroup: banner" "^Tracing kprobe $F for 6 seconds" /tmp/kp.out
pids /tmp/kp.out " $F: \\(" >/tmp/kp.pids
cat /tmp/kp.pids /tmp/sp.want >"$VM_CHECK_OUT"
check "kprobe --cgroup: exactly the inside syncs (moved-in task and children forked after the start included)" diff /tmp/kp.pids /tmp/sp.want
check "kprobe --cgroup: four lines" test "$(grep -c " $F: (" /tmp/kp.out)" -eq 4
check "kprobe --cgroup: no outside sync" none_outside /tmp/kp.pids
check "kprobe: state restored" restored

# 2. functrace.
round ft functrace -d 6 --cgroup "$CG" "$F"
cat /tmp/ft.out
check "functrace --cgroup: exits 0" test "$rc" -eq 0
check_file_grep "functrace --cgroup: banner names the cgroup" "^Tracing \"$F\" for cgroup $CG for 6 seconds\\.\\.\\.\$" /tmp/ft.out
pids /tmp/ft.out " $F <-" >/tmp/ft.pids
cat /tmp/ft.pids /tmp/sp.want >"$VM_CHECK_OUT"
check "functrace --cgroup: exactly the inside syncs (moved-in task and children forked after the start included)" diff /tmp/ft.pids /tmp/sp.want
check "functrace --cgroup: four lines" test "$(grep -c -- " $F <-" /tmp/ft.out)" -eq 4
check "functrace --cgroup: no outside sync" none_outside /tmp/ft.pids
check "functrace: state restored" restored

# 3. funccount: exactly the four inside calls.
round fc funccount -d 6 --cgroup "$CG" "$F"
cat /tmp/fc.out /tmp/fc.err
check "funccount --cgroup: exits 0" test "$rc" -eq 0
check_file_grep "funccount --cgroup: counts exactly the 4 inside calls" "^$F +4\$" /tmp/fc.out
check "funccount: state restored" restored

# 4. funcgraph -P (the task on each line): only inside tasks. Stock kernels run
# function_graph at the top level: its set_ftrace_pid and function-fork are saved and
# restored (the snapshot compares them).
round fg funcgraph -P -d 6 --cgroup "$CG" "$F"
grep -E "instance|top-level" /tmp/fg.err
grep -E "$F\\(\\)" /tmp/fg.out
check "funcgraph --cgroup: exits 0" test "$rc" -eq 0
check_file_grep "funcgraph --cgroup: banner names the cgroup" "^Tracing \"$F\" for cgroup $CG for 6 seconds\\.\\.\\.\$" /tmp/fg.out
graph_pids /tmp/fg.out >/tmp/fg.pids
cat /tmp/fg.pids /tmp/sp.want >"$VM_CHECK_OUT"
check "funcgraph --cgroup: exactly the inside tasks (moved-in task and children forked after the start included)" diff /tmp/fg.pids /tmp/sp.want
check "funcgraph --cgroup: four calls graphed" test "$(grep -c -E "$F\\(\\) \\{" /tmp/fg.out)" -eq 4
check "funcgraph --cgroup: no outside task" none_outside /tmp/fg.pids
check "funcgraph: state restored (top-level set_ftrace_pid, function-fork)" restored

# 4a. funcslower -P (1 us: every sync is slower): the exits of the inside syncs only.
round fs funcslower -P -d 6 --cgroup "$CG" "$F" 1
grep -F "/* $F */" /tmp/fs.out
check "funcslower --cgroup: exits 0" test "$rc" -eq 0
grep -F "} /* $F */" /tmp/fs.out | sed -nE 's/^ *[0-9]+\) +(.*)-([0-9]+) +\|.*/\2/p' | sort -u >/tmp/fs.pids
cat /tmp/fs.pids /tmp/sp.want >"$VM_CHECK_OUT"
check "funcslower --cgroup: exactly the inside syncs" diff /tmp/fs.pids /tmp/sp.want
check "funcslower --cgroup: four exits" test "$(grep -c -F "} /* $F */" /tmp/fs.out)" -eq 4
check "funcslower --cgroup: no outside sync" none_outside /tmp/fs.pids
check "funcslower: state restored (tracing_thresh, set_ftrace_pid, function-fork)" restored

# 4b. SIGKILL of a scoped funcgraph: --cleanup puts the saved settings back.
funcgraph --cgroup "$CG" "$F" >/tmp/fgk.out 2>/tmp/fgk.err &
fgk=$!
started /tmp/fgk.out "$fgk" || echo "funcgraph for SIGKILL: no banner"
kill -9 "$fgk"
wait "$fgk"
funcgraph --cleanup >/tmp/fgk.clean 2>&1
cat /tmp/fgk.err /tmp/fgk.clean
check "funcgraph --cgroup killed with SIGKILL: --cleanup restores everything" restored

# 5. The cgroup removed mid-run: the run ends by itself, exit 0, saying so.
gone() {
  _n=$1
  shift
  mkdir -p "$V2/gone"
  "$@" >"/tmp/$_n.out" 2>"/tmp/$_n.err" &
  _tool=$!
  started "/tmp/$_n.out" "$_tool" || echo "gone $_n: no banner"
  sleep 1
  rmdir "$V2/gone"
  _i=0
  while kill -0 "$_tool" 2>/dev/null && [ "$_i" -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
  kill -0 "$_tool" 2>/dev/null && { echo "gone $_n: still running after 30 s"; kill -INT "$_tool"; }
  wait "$_tool"
  rc=$?
  cat "/tmp/$_n.err" "/tmp/$_n.out" >"$VM_CHECK_OUT"
  check "$_n: the cgroup removed mid-run: exits 0" test "$rc" -eq 0
  check_file_grep "$_n: says the cgroup was removed" "^$_n: the cgroup $V2/gone was removed \\($V2/gone is gone\\): ending the run\$" "/tmp/$_n.err"
}
gone kprobe kprobe --cgroup "$V2/gone" "p:$F"
gone functrace functrace --cgroup "$V2/gone" "$F"
gone funccount funccount --cgroup "$V2/gone" "$F"
gone funcgraph funcgraph --cgroup "$V2/gone" "$F"
check "after the removed cgroups: state restored" restored

# 6. Refusals, before anything changes.
for tool in kprobe functrace funcgraph; do
  arg=$F
  [ "$tool" = kprobe ] && arg=p:$F
  check_grep "$tool --cgroup with -p: usage error (2)" 'cannot be combined with -p' \
    sh -c "$tool --cgroup $CG -p 1 $arg; [ \$? -eq 2 ]"
  check "$tool --cgroup of a directory that is no cgroup: exit 1" \
    sh -c "$tool --cgroup /tmp -d 1 $arg; [ \$? -eq 1 ]"
done
check "funccount --cgroup of a directory that is no cgroup: exit 1" \
  sh -c "funccount --cgroup /tmp -d 1 $F; [ \$? -eq 1 ]"
check "refusals: state restored" restored
ls "$T/instances" >"$VM_CHECK_OUT"
check "no instance left" test -z "$(ls "$T/instances")"
vm_finish
