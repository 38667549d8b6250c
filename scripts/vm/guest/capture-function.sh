# Guest half of the ftrace/function fixtures (tests/fixtures/formats/<ID>/function) and a
# probe of what the function tracer can do on this kernel, for functrace and funccount:
# run.sh --kernel ID --out DIR scripts/vm/guest/capture-function.sh
# Writes into $VM_OUT: function (events/ftrace/function/format), uname, facts.txt
# (per-instance function tracer and set_ftrace_filter/set_ftrace_pid, the function
# profiler, hist triggers on the function event), header.txt (the instance's `trace`
# header with the function tracer), sample.txt (its text of a few do_nanosleep calls).
# smp: 1
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_OUT" ] || { fail "output dir" "run with run.sh --out DIR"; vm_finish; }
O=$VM_OUT
uname -r >"$O/uname"
cp "$T/events/ftrace/function/format" "$O/function"
{
  echo "available_tracers: $(cat "$T/available_tracers")"
  I=$T/instances/fcap
  mkdir "$I"
  echo "instance tracers: $(cat "$I/available_tracers")"
  for f in set_ftrace_filter set_ftrace_pid set_ftrace_notrace_pid function_profile_enabled trace_stat options/function-fork; do
    [ -e "$I/$f" ] && echo "instance has $f" || echo "instance lacks $f"
    [ -e "$T/$f" ] && echo "top has $f" || echo "top lacks $f"
  done
  echo "ftrace/function files:" "$I"/events/ftrace/function/*
  echo 'hist:keys=ip.sym' >"$I/events/ftrace/function/trigger" 2>&1 && echo "hist on function: yes" || echo "hist on function: no"
  echo "do_nanosleep" >"$I/set_ftrace_filter" && echo "instance filter ok: $(cat "$I/set_ftrace_filter")"
  echo function >"$I/current_tracer" && echo "instance function tracer ok"
  cat "$I/trace" >"$O/header.txt"
  sleep 0.2; sleep 0.2; usleep 1000 2>/dev/null
  echo 0 >"$I/tracing_on"
  cat "$I/trace" >"$O/sample.txt"
  echo nop >"$I/current_tracer"
  rmdir "$I" && echo "instance removed"
  echo "vfs_read" >"$T/set_ftrace_filter"
  echo 1 >"$T/function_profile_enabled" && echo "profiler ok"
  dd if=/dev/zero of=/dev/null bs=1 count=5 2>/dev/null
  echo 0 >"$T/function_profile_enabled"
  head -5 "$T/trace_stat/function0"
  echo >"$T/set_ftrace_filter"
  wc -l <"$T/available_filter_functions"
} >"$O/facts.txt" 2>&1
cat "$O/facts.txt"
vm_finish
