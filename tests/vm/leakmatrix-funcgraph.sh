# State-leak matrix, guest half for funcgraph (tests/README.md): funcgraph ends by
# every exit path (normal end, SIGINT, SIGTERM, SIGHUP, a closed pipe, an error and a
# panic after setup, SIGKILL and a second run, SIGKILL and --cleanup), and the tracefs
# snapshot after each must equal the one before (lm_row in lib.sh). Where it has to
# use the top-level tracer, funcgraph saves and changes top-level settings and must
# restore them exactly, including the user's own ones set below.
# needs: funcgraph
# timeout: 420
# One vCPU: QEMU TCG with 2 vCPUs intermittently crashes while function_graph
# live-patches function entries (see funcgraph.sh).
# smp: 1
# The funcgraph_* variables below are read by lm_get through eval (SC2034).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2034
. /vm/lib.sh

# Settings of "the user" that funcgraph changes (top-level mode) and must put back.
echo vfs_write >"$T/set_graph_function"
echo vfs_write >"$T/set_ftrace_filter"
# Switching the top-level tracer grows the top-level buffer once per boot on kernels
# before 6.7 (buffer_size_kb "7 (expanded: 1408)"): a kernel side effect of the first
# user, done here before the first snapshot.
echo nop >"$T/current_tracer"

funcgraph_run="vfs_read" funcgraph_ready='^Tracing "vfs_read"' funcgraph_fin="-d 0.5 vfs_read"
funcgraph_err="'nosuch_function[0-9]'" funcgraph_errpat='refused set_graph_function'
funcgraph_how="a glob with a character class that matches no function (left to the kernel): set_graph_function fails (EINVAL) after funcgraph made its instance, or saved and changed top-level settings"
funcgraph_panic=1 funcgraph_cleanup=1 funcgraph_state=1
# At the top level a killed run leaves function_graph as the tracer (restored after).
funcgraph_killed='^current_tracer:function_graph$'

tracefs_triggers >/tmp/lm.triggers
lm_watchdog_start
lm_row funcgraph
lm_watchdog_stop
check "no event trigger changed by the whole matrix" sh -c '. /vm/lib.sh; tracefs_triggers | diff /tmp/lm.triggers -'
echo >"$T/set_ftrace_filter"
echo >"$T/set_graph_function"
vm_finish
