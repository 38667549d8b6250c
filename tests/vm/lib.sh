# Guest-side helpers for the VM test scripts in tests/vm/. Sourced, not run:
#
#   . /vm/lib.sh            (scripts/vm/run.sh puts this file at /vm/lib.sh)
#
# POSIX sh for busybox ash. Every check really runs in the guest and prints one
# line, "PASS: NAME" or "FAIL: NAME" followed by the indented reason and the
# tail of the command's output. vm_finish prints the closing line
#
#   VM: N passed, N failed            (", N skipped" is added when N > 0)
#
# and exits 1 if any check failed (or if no check ran at all), else 0. The
# guest's /init then prints the exit-status marker (vm_exit_marker) that
# run.sh parses from the console.
#
# Environment set by the guest /init: VM_KERNEL (id from kernels.txt),
# VM_DISK (scratch virtio disk, e.g. /dev/vda, empty if none), VM_OUT (a
# directory whose contents run.sh --out copies to the host; empty without --out).

# shellcheck shell=sh
T=/sys/kernel/tracing
VM_PASSED=0
VM_FAILED=0
VM_SKIPPED=0
VM_CHECK_OUT=/tmp/vm-check.out

pass() {
  VM_PASSED=$((VM_PASSED + 1))
  echo "PASS: $1"
}

# fail NAME [REASON]: prints REASON and the tail of the last command's output.
fail() {
  VM_FAILED=$((VM_FAILED + 1))
  echo "FAIL: $1"
  [ -z "${2:-}" ] || echo "    $2"
  if [ -s "$VM_CHECK_OUT" ]; then
    echo "    --- output (last 20 lines) ---"
    tail -n 20 "$VM_CHECK_OUT" | sed 's/^/    | /'
  fi
}

# skip NAME REASON: a check that cannot run here (counted, not a failure).
skip() {
  VM_SKIPPED=$((VM_SKIPPED + 1))
  echo "SKIP: $1 (${2:-no reason given})"
}

# check NAME CMD [ARGS...]: passes when CMD exits 0. CMD may be a shell
# function. Its stdout+stderr is kept in $VM_CHECK_OUT for the next command.
check() {
  _name=$1
  shift
  "$@" >"$VM_CHECK_OUT" 2>&1
  _rc=$?
  if [ "$_rc" -eq 0 ]; then pass "$_name"; else fail "$_name" "exit status $_rc: $*"; fi
  return 0
}

# check_grep NAME PATTERN CMD [ARGS...]: passes when CMD exits 0 and its
# output (stdout+stderr) has a line matching the extended regex PATTERN.
# For a command expected to fail, wrap it: check_grep N P sh -c 'cmd; true'.
check_grep() {
  _name=$1
  _pat=$2
  shift 2
  "$@" >"$VM_CHECK_OUT" 2>&1
  _rc=$?
  if [ "$_rc" -ne 0 ]; then
    fail "$_name" "exit status $_rc: $*"
  elif grep -E -q -e "$_pat" "$VM_CHECK_OUT"; then
    pass "$_name"
  else
    fail "$_name" "no line matches /$_pat/ in the output of: $*"
  fi
  return 0
}

# check_no_grep NAME PATTERN CMD [ARGS...]: passes when CMD exits 0 and no
# line of its output matches PATTERN.
check_no_grep() {
  _name=$1
  _pat=$2
  shift 2
  "$@" >"$VM_CHECK_OUT" 2>&1
  _rc=$?
  if [ "$_rc" -ne 0 ]; then
    fail "$_name" "exit status $_rc: $*"
  elif grep -E -q -e "$_pat" "$VM_CHECK_OUT"; then
    fail "$_name" "a line matches /$_pat/ in the output of: $*"
  else
    pass "$_name"
  fi
  return 0
}

# check_file_grep NAME PATTERN FILE: passes when FILE has a line matching PATTERN.
check_file_grep() {
  if [ ! -r "$3" ]; then
    : >"$VM_CHECK_OUT"
    fail "$1" "cannot read $3"
  else
    cp "$3" "$VM_CHECK_OUT"
    if grep -E -q -e "$2" "$3"; then pass "$1"; else fail "$1" "no line of $3 matches /$2/"; fi
  fi
  return 0
}

# wait_line FILE ERE [SECS]: waits until FILE has a line matching ERE (default at most
# 30 s: a tool's start-up under TCG on a busy host can take several seconds); false if
# it never came. For "the tool is set up" before signalling it, instead of a fixed sleep.
wait_line() {
  _wl=0
  while ! grep -E -q -e "$2" "$1" 2>/dev/null; do
    [ "$_wl" -lt $((${3:-30} * 10)) ] || return 1
    sleep 0.1
    _wl=$((_wl + 1))
  done
}

# kernel_at_least MAJOR MINOR: true when the running kernel is >= MAJOR.MINOR.
kernel_at_least() {
  _v=$(uname -r)
  _maj=${_v%%.*}
  _min=${_v#*.}
  _min=${_min%%[!0-9]*}
  [ "$_maj" -gt "$1" ] || { [ "$_maj" -eq "$1" ] && [ "$_min" -ge "$2" ]; }
}

# vm_finish: the closing summary line; exits with the script's status.
vm_finish() {
  _line="VM: $VM_PASSED passed, $VM_FAILED failed"
  [ "$VM_SKIPPED" -eq 0 ] || _line="$_line, $VM_SKIPPED skipped"
  echo "$_line"
  if [ "$VM_FAILED" -gt 0 ]; then exit 1; fi
  if [ $((VM_PASSED + VM_SKIPPED)) -eq 0 ]; then
    echo "VM: no check ran"
    exit 1
  fi
  exit 0
}

# vm_exit_marker RC: the line run.sh looks for on the console. Printed by the
# guest /init after the test script has ended, whatever way it ended.
vm_exit_marker() {
  echo "VM_TEST_EXIT=$1"
}

# ---- State-leak matrix (tests/vm/leakmatrix*.sh) ------------------------------
# The guest twin of crates/testkit/src/snapshot.rs and of the host matrix test
# crates/testkit/tests/leak_matrix.rs; tests/README.md explains the matrix.

# tracefs_snapshot: prints the tracefs state the tools must leave unchanged (the
# same set as testkit::snapshot, less the triggers): the top-level settings,
# options/*, the probe lists and set_event, instances/, every events/*/*/filter that
# is not "none", and the state files of top-level changes in /run/perf-tools-rs. A
# file this kernel lacks prints as absent. Under TCG it takes about 0.3 s, most of it
# reading ~1400 filter files; reading as many trigger files would double that, so they
# have their own snapshot, tracefs_triggers, which scripts take at start and end.
tracefs_snapshot() {
  (
    cd "$T" || exit 1
    _files=
    for _f in current_tracer tracing_on buffer_size_kb buffer_percent trace_clock \
      tracing_cpumask tracing_thresh max_graph_depth set_ftrace_filter set_ftrace_notrace \
      set_graph_function set_graph_notrace set_ftrace_pid set_ftrace_notrace_pid \
      set_event_pid set_event_notrace_pid kprobe_events uprobe_events dynamic_events \
      synthetic_events set_event; do
      if [ -e "$_f" ]; then _files="$_files $_f"; else echo "$_f: absent"; fi
    done
    # One grep for all (a fork costs under TCG): FILE:LINE for every line, so an empty
    # file prints nothing and a missing one "absent" above.
    # shellcheck disable=SC2086
    grep -H -e '' $_files options/* 2>/dev/null
    echo "instances:"
    ls instances 2>/dev/null || echo "instances: absent"
    grep -H -v -x -e none -e '' events/*/*/filter 2>/dev/null
    for _s in /run/perf-tools-rs/*.state; do
      [ -e "$_s" ] && grep -H -e '' "$_s"
    done
    true
  )
}

# tracefs_triggers: prints every active trigger (events/*/*/trigger lines that are not
# comments) of the top instance.
tracefs_triggers() {
  (cd "$T" && grep -H -v -x -e '#.*' -e '' events/*/*/trigger 2>/dev/null; true)
}

# A tool of the matrix is described by shell variables named after it ($1 = kprobe:
# kprobe_run, ...); argument strings are eval'ed, so quote as in shell:
#   <tool>_run      arguments of a run that lasts until a signal
#   <tool>_ready    ERE of the stdout line that shows its setup is complete
#   <tool>_fin      arguments of a run that ends by itself with status 0 (normal end,
#                   and the second run after SIGKILL, unless <tool>_rerun is set)
#   <tool>_rerun, <tool>_rerun_rc   the second run after SIGKILL and its exit status
#   <tool>_err      arguments of a run that fails (status 1) after its setup
#   <tool>_errpat   ERE that its stderr must match (it is the intended error)
#   <tool>_how      how that error comes about (for the table)
#   <tool>_panic    1 if PT_FAULT=panic makes it panic after setup
#   <tool>_cleanup  1 if it has --cleanup
#   <tool>_state    1 if SIGKILL leaves tracefs state (then the rerun / --cleanup must
#                   report removing it)
#   <tool>_killed   ERE of the snapshot that a SIGKILL at the top level (a state file
#                   of its PID present) must leave, e.g. the tracer it set
#   <tool>_na_<path> (path with - as _)  the reason a path does not apply here
# Paths: normal sigint sigterm sighup sigusr1 sigpipe error panic kill-rerun kill-cleanup.
LM_PATHS="normal sigint sigterm sighup sigusr1 sigpipe error panic kill-rerun kill-cleanup"
LM_WAIT=${LM_WAIT:-90}   # seconds a tool may take to be ready or to exit (TCG)

lm_get() { eval "printf '%s' \"\${$1_$2:-}\""; }

# lm_alive PID: the process exists and is not a zombie (no fork: TCG is slow).
lm_alive() {
  [ -r "/proc/$1/stat" ] || return 1
  read -r _la_pid _la_comm _la_state _la_rest <"/proc/$1/stat" 2>/dev/null || return 1
  [ "$_la_state" != Z ]
}

# lm_start TOOL WHICH: starts "TOOL <tool>_WHICH" in the background (with the
# environment assignment $LM_ENV if set); its pid in lm_pid_TOOL, stdout and stderr
# in /tmp/lm.TOOL.out and .err.
lm_start() {
  _t=$1
  _out=/tmp/lm.$_t.out
  # <tool>_errout: where the error run's stdout goes (/dev/full: the header fails).
  if [ "$2" = err ] && [ -n "$(lm_get "$_t" errout)" ]; then _out=$(lm_get "$_t" errout); fi
  eval "set -- $(lm_get "$1" "$2")"
  if [ -n "${LM_ENV:-}" ]; then
    env "$LM_ENV" "$_t" "$@" >"$_out" 2>"/tmp/lm.$_t.err" &
  else
    "$_t" "$@" >"$_out" 2>"/tmp/lm.$_t.err" &
  fi
  eval "lm_pid_$_t=\$!"
}

# lm_start_pipe TOOL: "TOOL <tool>_run | head -1"; the tool's exit status goes to
# /tmp/lm.TOOL.rc, its pid to /tmp/lm.TOOL.pid.
lm_start_pipe() {
  _t=$1
  rm -f "/tmp/lm.$_t.rc" "/tmp/lm.$_t.pid"
  eval "set -- $(lm_get "$1" run)"
  ( "$_t" "$@" 2>"/tmp/lm.$_t.err" &
    echo $! >"/tmp/lm.$_t.pid"
    wait $!
    echo $? >"/tmp/lm.$_t.rc" ) | head -n 1 >"/tmp/lm.$_t.out" &
  eval "lm_pipe_$_t=\$!"
}

# lm_ready TOOL: until its stdout has the ready line; fails if it exits first.
lm_ready() {
  _pid=$(lm_get lm_pid "$1")
  _pat=$(lm_get "$1" ready)
  _i=0
  while ! grep -E -q -e "$_pat" "/tmp/lm.$1.out" 2>/dev/null; do
    if ! lm_alive "$_pid"; then
      lm_why="$1 exited before it was ready: $(tail -n 3 "/tmp/lm.$1.err" | tr '\n' ' ')"
      return 1
    fi
    _i=$((_i + 1))
    if [ "$_i" -gt $((LM_WAIT * 10)) ]; then
      lm_why="$1 not ready within ${LM_WAIT}s"
      return 1
    fi
    sleep 0.1
  done
}

# lm_exit TOOL WANT: waits for it to exit (killing it after LM_WAIT s) and checks
# the status (a signal N shows as 128+N).
lm_exit() {
  _pid=$(lm_get lm_pid "$1")
  _i=0
  while lm_alive "$_pid"; do
    _i=$((_i + 1))
    if [ "$_i" -gt $((LM_WAIT * 10)) ]; then
      kill -KILL "$_pid" 2>/dev/null
      wait "$_pid" 2>/dev/null
      lm_why="$1 did not exit within ${LM_WAIT}s (killed)"
      return 1
    fi
    sleep 0.1
  done
  wait "$_pid"
  _rc=$?
  if [ "$_rc" -ne "$2" ]; then
    lm_why="$1 exited with $_rc, expected $2: $(tail -n 3 "/tmp/lm.$1.err" | tr '\n' ' ')"
    return 1
  fi
}

# lm_exit_pipe TOOL: the tool of lm_start_pipe must end (status 0) once head is gone.
lm_exit_pipe() {
  _i=0
  while [ ! -s "/tmp/lm.$1.rc" ]; do
    _i=$((_i + 1))
    if [ "$_i" -gt $((LM_WAIT * 10)) ]; then
      kill -KILL "$(cat "/tmp/lm.$1.pid" 2>/dev/null)" 2>/dev/null
      lm_why="$1 did not exit within ${LM_WAIT}s of its reader closing the pipe (killed)"
      wait "$(lm_get lm_pipe "$1")"
      return 1
    fi
    sleep 0.1
  done
  wait "$(lm_get lm_pipe "$1")"
  _rc=$(cat "/tmp/lm.$1.rc")
  [ "$_rc" -eq 0 ] || { lm_why="$1 exited with $_rc, expected 0: $(tail -n 3 "/tmp/lm.$1.err" | tr '\n' ' ')"; return 1; }
  [ "$(wc -l <"/tmp/lm.$1.out")" -eq 1 ] || { lm_why="head -1 got no line from $1"; return 1; }
}

# lm_kill TOOLS...: runs them, SIGKILLs them once ready; the stateful ones must
# have left something behind (else the next step proves nothing).
lm_kill() {
  for _t in "$@"; do lm_start "$_t" run; done
  for _t in "$@"; do lm_ready "$_t" || return 1; done
  for _t in "$@"; do kill -KILL "$(lm_get lm_pid "$_t")"; done
  for _t in "$@"; do lm_exit "$_t" 137 || return 1; done
  tracefs_snapshot >/tmp/lm.killed
  for _t in "$@"; do
    [ "$(lm_get "$_t" state)" = 1 ] || continue
    _p=$(lm_get lm_pid "$_t")
    grep -q -e "$_t-$_p" -e "ptrs_$_p" /tmp/lm.killed || {
      lm_why="SIGKILL of $_t left no state of it, so the next step proves nothing"
      return 1
    }
    # A tool that ran at the top level (its state file is there) must also have left the
    # top-level change it made (TOOL_killed, a pattern of the snapshot): the next step
    # must restore that, not only remove the file.
    _k=$(lm_get "$_t" killed)
    if [ -n "$_k" ] && grep -q "^/run/perf-tools-rs/$_t-$_p\.state:" /tmp/lm.killed &&
      ! grep -q -e "$_k" /tmp/lm.killed; then
      lm_why="SIGKILL of $_t at the top level left its state file but not '$_k'"
      return 1
    fi
  done
}

# lm_reported FILE TOOLS...: FILE mentions removing what each stateful tool left.
lm_reported() {
  _f=$1
  shift
  for _t in "$@"; do
    [ "$(lm_get "$_t" state)" = 1 ] || continue
    _p=$(lm_get lm_pid "$_t")
    grep -q -e "$_t-$_p" -e "ptrs_$_p" "$_f" || {
      lm_why="no report of removing what $_t $_p left: $(tr '\n' ' ' <"$_f")"
      return 1
    }
  done
}

# lm_na PATH TOOLS...: prints why PATH does not apply to the tools (nothing if it does).
lm_na() {
  _path=$1
  shift
  for _t in "$@"; do
    _na=$(lm_get "$_t" "na_$(echo "$_path" | tr - _)")
    [ -z "$_na" ] || { echo "$_na"; return 0; }
  done
  case "$_path" in
    panic)
      for _t in "$@"; do
        [ "$(lm_get "$_t" panic)" = 1 ] || { echo "$_t has no PT_FAULT hook: it keeps no tracing state to unwind"; return 0; }
      done ;;
    kill-cleanup)
      for _t in "$@"; do [ "$(lm_get "$_t" cleanup)" = 1 ] && return 0; done
      echo "no --cleanup option: it keeps no tracing state" ;;
  esac
}

# lm_path PATH TOOLS...: produces exit path PATH with the tools running at once.
# Fails (lm_why says why) when the path was not taken as expected.
lm_path() {
  _path=$1
  shift
  case "$_path" in
    normal)
      for _t in "$@"; do lm_start "$_t" fin; done
      for _t in "$@"; do lm_exit "$_t" 0 || return 1; done ;;
    sigint|sigterm|sighup|sigusr1)
      # shellcheck disable=SC2018,SC2019  # signal names are ASCII
      _sig=$(echo "${_path#sig}" | tr a-z A-Z)
      for _t in "$@"; do lm_start "$_t" run; done
      for _t in "$@"; do lm_ready "$_t" || return 1; done
      for _t in "$@"; do kill "-$_sig" "$(lm_get lm_pid "$_t")"; done
      for _t in "$@"; do lm_exit "$_t" 0 || return 1; done ;;
    sigpipe)
      for _t in "$@"; do lm_start_pipe "$_t"; done
      for _t in "$@"; do lm_exit_pipe "$_t" || return 1; done ;;
    error)
      for _t in "$@"; do lm_start "$_t" err; done
      for _t in "$@"; do
        lm_exit "$_t" 1 || return 1
        grep -E -q -e "$(lm_get "$_t" errpat)" "/tmp/lm.$_t.err" || {
          lm_why="$_t: not the intended error: $(tail -n 3 "/tmp/lm.$_t.err" | tr '\n' ' ')"
          return 1
        }
      done ;;
    panic)
      LM_ENV=PT_FAULT=panic
      for _t in "$@"; do lm_start "$_t" fin; done
      LM_ENV=
      for _t in "$@"; do
        lm_exit "$_t" 101 || return 1
        grep -q 'injected panic' "/tmp/lm.$_t.err" || { lm_why="$_t: no injected panic"; return 1; }
      done ;;
    kill-rerun)
      lm_kill "$@" || return 1
      for _t in "$@"; do
        eval "lm_killed_$_t=\$lm_pid_$_t"
        if [ -n "$(lm_get "$_t" rerun)" ]; then lm_start "$_t" rerun; else lm_start "$_t" fin; fi
      done
      : >/tmp/lm.said
      for _t in "$@"; do
        _want=$(lm_get "$_t" rerun_rc)
        lm_exit "$_t" "${_want:-0}" || return 1
        cat "/tmp/lm.$_t.err" >>/tmp/lm.said
      done
      for _t in "$@"; do eval "lm_pid_$_t=\$lm_killed_$_t"; done
      lm_reported /tmp/lm.said "$@" ;;
    kill-cleanup)
      _lm_cleaner=
      for _t in "$@"; do [ "$(lm_get "$_t" cleanup)" = 1 ] && { _lm_cleaner=$_t; break; }; done
      lm_kill "$@" || return 1
      "$_lm_cleaner" --cleanup >/tmp/lm.said 2>&1 || { lm_why="$_lm_cleaner --cleanup failed: $(tr '\n' ' ' </tmp/lm.said)"; return 1; }
      lm_reported /tmp/lm.said "$@" ;;
  esac
}

# lm_row TOOLS...: every exit path for the tools (one tool, or several at once). Per
# cell: path, snapshot; the snapshot must equal the one before the cell (the one
# after the previous cell: one snapshot per cell, each costs about 0.3 s under TCG).
# Prints one check line and one result line "LEAK <row> <path> <pass|FAIL|n/a:reason>
# [ -- how]", which scripts/vm/test.sh collects into target/leak-matrix/ for the table.
lm_row() {
  _row=$(echo "$*" | tr ' ' +)
  tracefs_snapshot >/tmp/lm.before
  for _lp in $LM_PATHS; do
    lm_why=''
    _lm_na=$(lm_na "$_lp" "$@")
    if [ -n "$_lm_na" ]; then
      skip "leak: $_row $_lp" "n/a: $_lm_na"
      echo "LEAK $_row $_lp n/a:$_lm_na"
      continue
    fi
    for _t in "$@"; do eval "lm_pid_$_t="; done
    _t0=$(cut -d' ' -f1 /proc/uptime)
    lm_path "$_lp" "$@"
    # A path that failed half-way may leave tools running: end them (what they
    # leave then shows in the diff).
    for _t in "$@"; do
      _lm_left=$(lm_get lm_pid "$_t")
      if [ -n "$_lm_left" ] && lm_alive "$_lm_left"; then
        kill -KILL "$_lm_left" 2>/dev/null
        wait "$_lm_left"
        lm_why="${lm_why:-$_t still running}"
      fi
    done
    tracefs_snapshot >/tmp/lm.after
    _secs=$(awk -v a="$_t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    diff /tmp/lm.before /tmp/lm.after >/tmp/lm.diff
    _changed=$?
    mv /tmp/lm.after /tmp/lm.before
    _how=
    if [ "$_lp" = error ]; then
      for _t in "$@"; do _how="${_how:+$_how; }$(lm_get "$_t" how)"; done
    fi
    if [ -n "$lm_why" ] || [ "$_changed" -ne 0 ]; then
      { [ -z "$lm_why" ] || echo "$lm_why"; echo "tracefs changes (diff before after):"; cat /tmp/lm.diff; } >"$VM_CHECK_OUT"
      fail "leak: $_row $_lp (${_secs}s)" "${lm_why:-tracing state left changed}"
      echo "LEAK $_row $_lp FAIL${_how:+ -- $_how}"
    else
      pass "leak: $_row $_lp (${_secs}s)"
      echo "LEAK $_row $_lp pass${_how:+ -- $_how}"
    fi
  done
}

# lm_watchdog_start / lm_watchdog_stop: every 60 s, print the state, wait channel and
# kernel stack of a tool process seen in two samples in a row, so a hang shows where
# it is in the console log.
lm_watchdog_start() {
  (
    _seen=
    while sleep 60; do
      _now=
      for _w in /proc/[0-9]*; do
        read -r _wp _wc _ws _wr <"$_w/stat" 2>/dev/null || continue
        case "$_wc" in
          "(kprobe)"|"(opensnoop)"|"(iosnoop)"|"(iolatency)"|"(funcgraph)"|"(showboost)"|"(cputemp)"|"(pmcstat)")
            _now="$_now $_wp"
            case " $_seen " in
              *" $_wp "*)
                echo "lm watchdog: uptime $(cut -d' ' -f1 /proc/uptime): $_wp $_wc state $_ws wchan $(cat "$_w/wchan" 2>/dev/null)"
                sed 's/^/    /' "$_w/stack" 2>/dev/null ;;
            esac ;;
        esac
      done
      _seen=$_now
    done
  ) &
  LM_WATCHDOG=$!
}
lm_watchdog_stop() {
  kill "$LM_WATCHDOG" 2>/dev/null
  wait "$LM_WATCHDOG" 2>/dev/null
}
