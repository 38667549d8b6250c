# Guest half of scripts/bench-funccount.sh: the cost of funccount (with the counter it
# chooses, and with --counter records) and functrace on a storm of vfs_read calls (busybox dd bs=1: one read and one write per byte), against the
# same storm untraced. Prints the storm's wall time untraced and under each tool, the
# tool's CPU time (utime+stime from /proc/PID/stat, ticks of 10 ms), what it counted or
# printed, and what it reported lost. Under QEMU TCG every number is inflated many times
# over real hardware: compare them with each other, not with a real machine's.
# needs: funccount functrace
# smp: 1
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh
N=${1:-100000}
F=vfs_read
now() { cut -d' ' -f1 /proc/uptime; }
storm() {
  _a=$(now); dd if=/dev/zero of=/dev/null bs=1 count="$N" 2>/dev/null; _b=$(now)
  awk -v a="$_a" -v b="$_b" 'BEGIN { printf "%.2f", b - a }'
}
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
wait_banner() { _i=0; while [ ! -s "$1" ]; do _i=$((_i + 1)); [ "$_i" -gt 600 ] && return 1; sleep 0.1; done; }
echo "BENCH untraced: dd bs=1 count=$N took $(storm) s"
echo "BENCH untraced again: $(storm) s"
for run in funccount funccount-records functrace; do
  tool=${run%-records}
  opt=; [ "$run" = funccount-records ] && opt='--counter records'
  # shellcheck disable=SC2086  # opt is empty or two words
  "$tool" $opt "$F" >/tmp/b.$run.out 2>/tmp/b.$run.err &
  p=$!
  wait_banner /tmp/b.$run.out; sleep 1
  c0=$(cpu "$p"); t=$(storm); sleep 1; c1=$(cpu "$p")
  kill -INT "$p"; wait "$p"
  if [ "$tool" = funccount ]; then
    got="counted $(awk -v f="$F" '$1 == f { print $2 }' /tmp/b.$run.out) calls of $F"
  else
    got="printed $(grep -c -- "$F <-" /tmp/b.$run.out) lines"
  fi
  lost=$(grep -o -E '[0-9,]+ events lost' /tmp/b.$run.err | tr '\n' ' ')
  counter=$(grep -o -E 'with (hist triggers on [a-z]+ events|the function tracer records)' /tmp/b.$run.err)
  echo "BENCH $tool${opt:+ $opt} (${counter:-no counter line}): dd took $t s; $tool used $(( (c1 - c0) * 10 )) ms of CPU during it; $got; lost: ${lost:-none}"
done
pass "bench ran"
vm_finish
