# CPU cost of kprobe's output path: the same probe and workload traced by two kprobe
# binaries given with run.sh --bin (named kprobe-new and kprobe-text), streaming to
# /dev/null; prints each one's lines and CPU time (utime+stime, clock ticks).
# Usage: run.sh --bin DIR/kprobe-new --bin DIR/kprobe-text scripts/vm/guest/bench-kprobe.sh
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh
n=20000
tools=${BENCH_TOOLS:-"kprobe-new kprobe-text"}
bench() {
  tool=$1
  # shellcheck disable=SC2016  # $arg2 is the probe's, not the shell's
  "$tool" 'p:myopen do_sys_openat2 fn=+0($arg2):ustring' >/tmp/b.out 2>/tmp/b.err &
  pid=$!
  i=0; while [ $i -lt 100 ] && ! grep -q '^Tracing' /tmp/b.out 2>/dev/null; do sleep 0.1; i=$((i+1)); done
  sleep 1
  s0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  i=0; while [ $i -lt "$n" ]; do : </proc/version; i=$((i+1)); done
  sleep 2
  s1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  kill -INT $pid; wait $pid
  lines=$(grep -c 'fn="/proc/version"' /tmp/b.out)
  echo "BENCH $tool: $lines lines for $n opens, $((s1 - s0)) ticks of CPU ($(getconf CLK_TCK 2>/dev/null || echo 100)/s)"
  pass "bench $tool"
}
for t in $tools; do bench "$t"; done
for t in $tools; do bench "$t"; done
vm_finish
