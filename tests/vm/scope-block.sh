# iolatency and iosnoop --cgroup on stock kernels: both decide the scope in user space
# and follow forks from sched_process_fork, whose layout differs (char[16] comms before
# 6.x's __data_loc ones move the PIDs). A shell moved into a cgroup v2 made here forks a
# dd that makes five 64 KiB O_DIRECT reads and exits at once, before a poll of the
# cgroup can list it; a shell outside does three 4 KiB reads and stays (so it is alive
# when its fork is read). Exactly the five must be counted, and none left unplaced.
# needs: iolatency iosnoop
# The two layouts; the host (6.18) runs the same checks as live tests.
# kernels: 5.10 7.x
# timeout: 150
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

V2=/tmp/cg2
mkdir -p "$V2"
mount -t cgroup2 none "$V2" 2>/dev/null || true
check "cgroup v2 mounted" test -f "$V2/cgroup.procs"
mkdir -p "$V2/scope-block"
D=$(tr ':' ',' <"/sys/block/${VM_DISK#/dev/}/dev")
# Without an I/O scheduler a lone synchronous read is issued in the reader's own context;
# with mq-deadline (the guest disk's default) it may be dispatched later by a kworker,
# which --cgroup rightly does not attribute to the cgroup (man pages, CONTAINERS).
echo none >"/sys/block/${VM_DISK#/dev/}/queue/scheduler"
check "the scratch disk has no I/O scheduler" grep -q '\[none\]' "/sys/block/${VM_DISK#/dev/}/queue/scheduler"

# readers: starts the two gated shells (IN moved into the cgroup, OUT outside). OUT
# reads 8 MiB in: the tools pair a start with its completion by (device, sector), so two
# requests in flight at one sector would be told apart by neither the events nor the tools.
readers() {
  rm -f /tmp/go
  sh -c 'while [ ! -e /tmp/go ]; do sleep 0.05; done; dd if="$1" of=/dev/null iflag=direct bs=65536 count=5 2>/dev/null; exit 0' sh "$VM_DISK" &
  IN=$!
  echo "$IN" >"$V2/scope-block/cgroup.procs"
  sh -c 'while [ ! -e /tmp/go ]; do sleep 0.05; done; dd if="$1" of=/dev/null iflag=direct bs=4096 count=3 skip=2048 2>/dev/null; sleep 2; exit 0' sh "$VM_DISK" &
  OUT=$!
}

# traced CMD...: runs the tool in the background with the readers, opens the gate once
# it is tracing, and ends it with SIGINT after the reads (output in /tmp/sb.out, .err).
traced() {
  readers
  # Not the previous tool's files: their banner would open the gate too early.
  rm -f /tmp/sb.out /tmp/sb.err
  "$@" >/tmp/sb.out 2>/tmp/sb.err &
  _p=$!
  _i=0
  while [ $_i -lt 300 ] && ! grep -q "Tracing block I/O" /tmp/sb.out /tmp/sb.err 2>/dev/null; do
    sleep 0.1
    _i=$((_i + 1))
  done
  touch /tmp/go
  wait "$IN"
  wait "$OUT"
  sleep 1.5
  kill -INT "$_p"
  wait "$_p"
  cat /tmp/sb.out /tmp/sb.err
}

# total_count: true when the intervals of /tmp/sb.out (--json) count 5 I/Os in all.
total_count() {
  _n=$(grep -o '^{"count":[0-9]*' /tmp/sb.out | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }')
  echo "counted: $_n"
  [ "$_n" = 5 ]
}

# five_rows: true when /tmp/sb.out has five 64 KiB rows of dd and no 4 KiB row.
five_rows() {
  _big=$(awk '$1 == "dd" && $6 == 65536' /tmp/sb.out | wc -l)
  _small=$(awk '$6 == 4096' /tmp/sb.out | wc -l)
  echo "64 KiB rows of dd: $_big, 4 KiB rows: $_small"
  [ "$_big" = 5 ] && [ "$_small" = 0 ]
}

# none_unplaced: true when the tool's stderr has no note of I/O left unplaced.
none_unplaced() { ! grep -q "exited before" /tmp/sb.err; }

# no_instance: true when no trace instance is left.
no_instance() { [ -z "$(ls "$T/instances")" ]; }

traced iolatency --json -d "$D" --cgroup /scope-block 1
check "iolatency --cgroup counts the five reads of the member's short-lived dd" total_count
check "iolatency --cgroup leaves no I/O unplaced" none_unplaced

traced iosnoop -d "$D" --cgroup /scope-block
check "iosnoop --cgroup prints the member's five 64 KiB reads, none of the 4 KiB ones" five_rows
check "iosnoop --cgroup leaves no I/O unplaced" none_unplaced
check "no trace instance left" no_instance

rmdir "$V2/scope-block" 2>/dev/null || true
vm_finish
