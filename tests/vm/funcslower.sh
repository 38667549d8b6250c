# VM test of funcslower on kernels with function_graph: a process sleeps 1 s twice and
# 1 ms three times (do_nanosleep, a call of known length): with a 500 ms threshold
# exactly the two long sleeps are shown, each 1 s or more; -a adds headers, timestamps
# and the process; -C (on-CPU time only) shows none. (Under TCG on a loaded host a sleep
# can overrun by a few hundred ms, hence the wide gap between the sleeps and the
# threshold, and runs that end when the sleeper is done instead of after fixed times.)
# It refuses to run beside funcgraph (and funcgraph beside it) without touching the
# other run's settings, and the state-leak matrix row (LEAK lines) covers every exit
# path. --context (3b, 3c): exact rows around a 300 ms sleep, --count, -H, -t.
# Run: scripts/vm/test.sh --kernel 6.12-deb13 funcslower
# needs: funcslower funcgraph
# timeout: 600
# One vCPU: function_graph live-patches kernel text (see funcgraph.sh).
# smp: 1
# The funcslower_* variables below are read by lm_get through eval (SC2034).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2034
. /vm/lib.sh

# A setting of "the user" that must survive every run, and the first top-level tracer
# switch done before the first snapshot (it grows the buffer once per boot before 6.7).
echo vfs_write >"$T/set_graph_function"
echo nop >"$T/current_tracer"
tracefs_snapshot >/tmp/fs.before
restored() { tracefs_snapshot | diff /tmp/fs.before -; }

# sleeper: waits until go (a FIFO, not a polling sleep, which would be a slow call
# itself), sleeps 1 s twice and 1 ms three times, then creates /tmp/fs.done.
sleeper() {
  rm -f /tmp/fs.go /tmp/fs.done
  mkfifo /tmp/fs.go
  sh -c 'read -r _ </tmp/fs.go; sleep 1; sleep 0.001; sleep 1; sleep 0.001; sleep 0.001; : >/tmp/fs.done' &
  sl=$!
}
go() { echo go >/tmp/fs.go; }
# done_then_int FS: once the sleeper is done (at most 120 s), SIGINT to FS; waits for
# it and returns its exit status.
done_then_int() {
  _d=0
  while [ ! -e /tmp/fs.done ] && [ "$_d" -lt 1200 ]; do
    sleep 0.1
    _d=$((_d + 1))
  done
  kill -INT "$1"
  wait "$1"
}
# durations FILE: the microseconds of each do_nanosleep line, one a line.
durations() {
  grep '} /\* do_nanosleep \*/' "$1" | sed -E 's/.* ([0-9]+(\.[0-9]+)?) us .*/\1/' | cut -d. -f1
}
plausible() { # FILE: two durations, each 1 s (the sleep) to 30 s (a starved TCG guest)
  cat "$1"
  [ "$(durations "$1" | wc -l)" -eq 2 ] || return 1
  for d in $(durations "$1"); do [ "$d" -ge 1000000 ] && [ "$d" -lt 30000000 ] || return 1; done
}

# 1. -d: buffered (ended early by SIGINT once the sleeper is done); only the two 1 s
#    sleeps, as the original's exit lines.
sleeper
funcslower -p "$sl" -d 300 do_nanosleep 500000 >/tmp/fs1.out 2>/tmp/fs1.err &
fs=$!
wait_line /tmp/fs1.out '^Tracing' 60 && go
done_then_int "$fs"
rc=$?
kill "$sl" 2>/dev/null
cat /tmp/fs1.err /tmp/fs1.out >"$VM_CHECK_OUT"
sed 's/^/    1| /' /tmp/fs1.out /tmp/fs1.err
check "-d 300, SIGINT: exits 0" test "$rc" -eq 0
check_file_grep "banner" "^Tracing \"do_nanosleep\" for PID $sl slower than 500000 us for 300 seconds\\.\\.\\.\$" /tmp/fs1.out
check_file_grep "an exit line: duration, } /* do_nanosleep */" '^ *[0-9]+\) +[@*#!+$ ] +[0-9.]+ us +\| +\} /\* do_nanosleep \*/$' /tmp/fs1.out
check "exactly the two 1 s sleeps, 1000000 us or more" plausible /tmp/fs1.out
check "settings restored after -d" restored

# 2. -a, streaming, SIGINT: headers, timestamps, process; no context-switch lines.
sleeper
funcslower -a -p "$sl" do_nanosleep 500000 >/tmp/fs2.out 2>/tmp/fs2.err &
fs=$!
wait_line /tmp/fs2.out '^Tracing' 60 && go
done_then_int "$fs"
rc=$?
kill "$sl" 2>/dev/null
cat /tmp/fs2.err /tmp/fs2.out >"$VM_CHECK_OUT"
sed 's/^/    2| /' /tmp/fs2.out
check "-a SIGINT: exits 0" test "$rc" -eq 0
check_file_grep "-a: column headers" '^# +TIME +CPU +TASK/PID +DURATION +FUNCTION CALLS' /tmp/fs2.out
check_file_grep "-a: timestamp, CPU, task and duration" '^ *[0-9]+\.[0-9]+ \| +[0-9]+\) +sleep-[0-9]+ +\| +[@*#!+$ ] +[0-9.]+ us +\| +\} /\* do_nanosleep \*/$' /tmp/fs2.out
check "-a: the two 1 s sleeps" plausible /tmp/fs2.out
check_no_grep "-a: no context-switch lines" '=>|^ *-----' cat /tmp/fs2.out
check_file_grep "SIGINT: Ending tracing..." '^Ending tracing\.\.\.$' /tmp/fs2.out
check "settings restored after SIGINT" restored

# 3. -C: time asleep is not counted, so no sleep reaches 500 ms; the run says why.
sleeper
funcslower -C -p "$sl" do_nanosleep 500000 >/tmp/fs3.out 2>/tmp/fs3.err &
fs=$!
wait_line /tmp/fs3.out '^Tracing' 60 && go
done_then_int "$fs"
rc=$?
kill "$sl" 2>/dev/null
cat /tmp/fs3.err /tmp/fs3.out >"$VM_CHECK_OUT"
check "-C: exits 0" test "$rc" -eq 0
check_no_grep "-C: no sleep shown" '\} /\* do_nanosleep' cat /tmp/fs3.out
check_file_grep "-C: the empty run explains itself" "^funcslower: 0 lines: no call of \"do_nanosleep\" by PID $sl took 500000 us or more \\(on-CPU time" /tmp/fs3.err
check "settings restored after -C" restored

# 3b. --context (the outlier recorder): tracing_thresh stays 0, every call is traced,
#     and the outlier (a 300 ms sleep) is printed with exactly the calls that returned
#     within 2 s of it: a 1 ms sleep before and one after. A 1 ms sleep 3 s before and
#     one 3 s after (the sleeper waits on FIFOs between, which calls no do_nanosleep)
#     are not printed. Five calls seen, one outlier, two context rows.
ctx_sleeper() {
  rm -f /tmp/fc.go /tmp/fc.a /tmp/fc.b /tmp/fc.mid1 /tmp/fc.mid2 /tmp/fs.done
  mkfifo /tmp/fc.go /tmp/fc.a /tmp/fc.b
  sh -c 'read -r _ </tmp/fc.go; usleep 1000; : >/tmp/fc.mid1; read -r _ </tmp/fc.a
    usleep 1000; sleep 0.3; usleep 1000; : >/tmp/fc.mid2; read -r _ </tmp/fc.b
    usleep 1000; : >/tmp/fs.done' &
  sl=$!
}
# ctx_drive: lets the sleeper through, with 3 s pauses around its middle part.
ctx_drive() {
  echo go >/tmp/fc.go
  wait_file /tmp/fc.mid1 60 && sleep 3 && echo go >/tmp/fc.a
  wait_file /tmp/fc.mid2 60 && sleep 3
}
wait_file() { # FILE SECS
  _d=0
  while [ ! -e "$1" ] && [ "$_d" -lt $(($2 * 10)) ]; do sleep 0.1; _d=$((_d + 1)); done
  [ -e "$1" ]
}
# rows FILE: the marked rows (the marker and the duration), one a line.
rows() { grep -E '^[*-] ' "$1" | sed -E 's/^([*-]) .* ([0-9]+)(\.[0-9]+)? us .*/\1 \2/'; }
ctx_rows_ok() { # FILE: - (fast), * (300 ms or more), - (fast), and nothing else
  rows "$1"
  [ "$(rows "$1" | cut -c1 | tr -d '\n')" = '-*-' ] || return 1
  rows "$1" | while read -r m d; do
    case $m in
      '*') [ "$d" -ge 300000 ] && [ "$d" -lt 30000000 ] || exit 1 ;;
      -) [ "$d" -lt 100000 ] || exit 1 ;;
    esac
  done
}
ctx_sleeper
funcslower -H -p "$sl" --context 2 do_nanosleep 100000 >/tmp/fs7.out 2>/tmp/fs7.err &
fs=$!
wait_line /tmp/fs7.out '^Tracing' 60
thresh_during=$(cat "$T/tracing_thresh")
ctx_drive
echo go >/tmp/fc.b
done_then_int "$fs"
rc=$?
kill "$sl" 2>/dev/null
cat /tmp/fs7.err /tmp/fs7.out >"$VM_CHECK_OUT"
sed 's/^/    7| /' /tmp/fs7.out /tmp/fs7.err
check "--context: exits 0" test "$rc" -eq 0
check "--context: tracing_thresh left at 0 while tracing" test "$thresh_during" = 0
check_file_grep "--context: banner" "^Tracing \"do_nanosleep\" for PID $sl slower than 100000 us, with 2 s of context \\(every call traced\\)\\.\\.\\. Ctrl-C to end\\.\$" /tmp/fs7.out
check "--context: exactly - * - (the 1 ms sleeps around the 300 ms one)" ctx_rows_ok /tmp/fs7.out
check_file_grep "--context: the outlier row, marked *" '^\* +[0-9]+\) +[@$] +[0-9.]+ us +\| +(\} /\* do_nanosleep \*/|do_nanosleep\(\);)$' /tmp/fs7.out
check_file_grep "--context: a context row, marked -" '^- +[0-9]+\) +[#*!+ ] +[0-9.]+ us +\| +(\} /\* do_nanosleep \*/|do_nanosleep\(\);)$' /tmp/fs7.out
check_no_grep "--context: no timestamps without -t, no entry lines or notes" '^[*-] +[0-9]+\.[0-9]{6} |do_nanosleep\(\) \{|=>' cat /tmp/fs7.out
check_file_grep "--context -H: the header has the marker column, no TIME" '^#M +CPU +DURATION +FUNCTION CALLS' /tmp/fs7.out
check_file_grep "--context: end-of-run counts" '^funcslower: 5 calls seen, 1 outliers \(>= 100000 us\), 2 context rows$' /tmp/fs7.err
check "settings restored after --context" restored

# 3c. --context with --count 1 and -t: ends by itself once the 2 s after the outlier
#     are over (the last 1 ms sleep, 3 s later, is never traced), with timestamps.
ctx_sleeper
funcslower -t -p "$sl" --context 2 --count 1 do_nanosleep 100000 >/tmp/fs8.out 2>/tmp/fs8.err &
fs=$!
wait_line /tmp/fs8.out '^Tracing' 60
ctx_drive
gone() { _d=0; while kill -0 "$1" 2>/dev/null && [ "$_d" -lt 300 ]; do sleep 0.1; _d=$((_d + 1)); done; ! kill -0 "$1" 2>/dev/null; }
check "--count 1: funcslower ends by itself after the context" gone "$fs"
wait "$fs"
rc=$?
echo go >/tmp/fc.b
wait_file /tmp/fs.done 60
kill "$sl" 2>/dev/null
cat /tmp/fs8.err /tmp/fs8.out >"$VM_CHECK_OUT"
sed 's/^/    8| /' /tmp/fs8.out /tmp/fs8.err
check "--count 1: exits 0" test "$rc" -eq 0
check "--count 1: exactly - * -" ctx_rows_ok /tmp/fs8.out
check_file_grep "--count 1 -t: rows keep the timestamp" '^\* +[0-9]+\.[0-9]{6} \| +[0-9]+\) +[@$] +[0-9.]+ us +\|' /tmp/fs8.out
check_file_grep "--count 1: end-of-run counts" '^funcslower: 4 calls seen, 1 outliers \(>= 100000 us\), 2 context rows; stopped after 1 \(--count\)$' /tmp/fs8.err
check "settings restored after --count" restored
check_grep "--count without --context: usage error" 'exit 2' sh -c 'funcslower --count 1 do_nanosleep 100 >/dev/null 2>&1; echo "exit $?"'

# 4. Beside funcgraph: each refuses while the other runs, and the running one's
#    settings and output are untouched.
head -c 16384 /dev/zero >/tmp/fs.data
funcgraph -m 1 vfs_read >/tmp/fg.out 2>/tmp/fg.err &
fg=$!
wait_line /tmp/fg.out '^Tracing' 60
tracefs_snapshot >/tmp/fs.fg
funcslower -d 1 do_nanosleep 1000 >/tmp/fs4.out 2>/tmp/fs4.err
rc=$?
cat /tmp/fs4.err >"$VM_CHECK_OUT"
check "beside funcgraph: funcslower refuses (exit 1)" test "$rc" -eq 1
check_file_grep "beside funcgraph: says why" 'function_graph is running in instances/funcgraph-[0-9]+|another perf-tools-rs run is using the top-level tracer' /tmp/fs4.err
check "beside funcgraph: funcgraph's settings untouched" sh -c '. /vm/lib.sh; tracefs_snapshot | diff /tmp/fs.fg -'
for _ in 1 2 3; do dd if=/tmp/fs.data of=/dev/null bs=4096 count=4 2>/dev/null; done
check "beside funcgraph: funcgraph still graphs vfs_read" wait_line /tmp/fg.out 'vfs_read\(\);' 20
kill -INT "$fg"
wait "$fg"
check "funcgraph + refused funcslower: settings restored" restored

sleeper
funcslower -p "$sl" do_nanosleep 500000 >/tmp/fs5.out 2>/tmp/fs5.err &
fs=$!
wait_line /tmp/fs5.out '^Tracing' 60
tracefs_snapshot >/tmp/fs.fs
funcgraph -d 1 vfs_read >/tmp/fg2.out 2>/tmp/fg2.err
rc=$?
cat /tmp/fg2.err >"$VM_CHECK_OUT"
check "beside funcslower: funcgraph refuses (exit 1)" test "$rc" -eq 1
check_file_grep "beside funcslower: says why" 'tracing_thresh is 500000 us|another perf-tools-rs run is using the top-level tracer' /tmp/fg2.err
funcslower -d 1 vfs_read 1000 >/tmp/fs6.out 2>/tmp/fs6.err
rc=$?
cat /tmp/fs6.err >"$VM_CHECK_OUT"
check "beside funcslower: a second funcslower refuses (exit 1)" test "$rc" -eq 1
check_file_grep "beside funcslower: the second says why" 'another perf-tools-rs run is using the top-level tracer' /tmp/fs6.err
check "beside funcslower: its settings untouched" sh -c '. /vm/lib.sh; tracefs_snapshot | diff /tmp/fs.fs -'
go
done_then_int "$fs"
kill "$sl" 2>/dev/null
check "beside funcslower: funcslower still shows the slow sleeps" plausible /tmp/fs5.out
check "funcslower + refused funcgraph: settings restored" restored

# 5. The state-leak matrix row: every exit path leaves tracefs as it was.
funcslower_run="do_nanosleep 1000000" funcslower_ready='^Tracing "do_nanosleep"'
funcslower_fin="-d 0.5 do_nanosleep 1000000"
funcslower_err="'nosuch_function[0-9]' 1000" funcslower_errpat='refused set_ftrace_filter'
funcslower_how="a glob with a character class that matches no function (left to the kernel): set_ftrace_filter fails (EINVAL) after funcslower took the top-level lock and state file and made its instance, or saved and changed top-level settings"
funcslower_panic=1 funcslower_cleanup=1 funcslower_state=1
lm_row funcslower
echo >"$T/set_graph_function"
vm_finish
