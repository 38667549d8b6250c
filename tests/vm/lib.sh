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
