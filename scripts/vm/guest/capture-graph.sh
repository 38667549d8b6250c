# Guest half of tests/fixtures/funcgraph-text/<ID>: the kernel's function_graph text of
# do_nanosleep without tracing_thresh, with funcgraph-abstime and funcgraph-tail (what
# funcslower --context reads), at the top level, from trace_pipe (pipe.txt) and, with
# funcgraph-proc too, from trace (trace-proc.txt, with its header):
# run.sh --kernel ID --out DIR scripts/vm/guest/capture-graph.sh   (run.sh's 2 vCPUs)
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh
O=$VM_OUT
uname -r >"$O/uname"
cat "$T/tracing_thresh" >"$O/thresh.txt"
ls "$T/options" >"$O/options.txt"
echo do_nanosleep >"$T/set_ftrace_filter"
echo do_nanosleep >"$T/set_graph_function"
echo 1 >"$T/options/funcgraph-abstime"
echo 1 >"$T/options/funcgraph-tail"
echo function_graph >"$T/current_tracer"
cat "$T/trace_pipe" >"$O/pipe.txt" &
cp=$!
usleep 1000; usleep 1000; sleep 0.3; usleep 1000
# two sleepers interleaved
sh -c 'sleep 0.2' & a=$!; sh -c 'usleep 50000; usleep 1000' & b=$!; wait $a $b
sleep 0.5
kill $cp
echo 1 >"$T/options/funcgraph-proc"
usleep 1000; sleep 0.1
sh -c 'sleep 0.2' & a=$!; sh -c 'usleep 50000' & b=$!; wait $a $b
echo 0 >"$T/tracing_on"
cat "$T/trace" >"$O/trace-proc.txt"
echo 1 >"$T/tracing_on"
echo nop >"$T/current_tracer"
pass captured
vm_finish
