# pmcstat --cgroup on stock kernels: software events counted for one cgroup only
# (PERF_FLAG_PID_CGROUP per CPU), on a cgroup v2 hierarchy mounted here, and on a v1
# hierarchy mounted with the perf_event controller (then v2 paths are refused with
# the reason). A workload runs inside the cgroup while pmcstat counts; an identical
# one outside, with the cgroup empty, must count nothing.
# needs: pmcstat
# The oldest kernel (the host covers 6.18); cgroup counting does not differ between builds.
# kernels: 5.10
# timeout: 180
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

# exits WANT CMD...: true when CMD exits with status WANT (its output stays visible).
exits() {
  _want=$1
  shift
  "$@"
  [ $? -eq "$_want" ]
}

# busy PROCS: a shell loop of known work with page faults (a 4 MB dd buffer), run in
# the cgroup whose cgroup.procs (or v1 tasks) file is PROCS, or outside with "-".
busy() {
  sh -c '[ "$1" = - ] || echo $$ > "$1"; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/dev/null bs=4M count=4 2>/dev/null' sh "$1"
}

# counted FILE: true when the rows of FILE add up to some CPU time and page faults.
counted() {
  awk '$1 ~ /^[0-9.]+$/ { t += $1; pf += $5; n++ } END { print "rows", n, "TASK_MS", t, "PGFAULT", pf; exit !(n > 0 && t > 0 && pf > 0) }' "$1"
}

# nothing FILE: true when every row of FILE is zero.
nothing() {
  awk '$1 ~ /^[0-9.]+$/ { n++; if ($1 + $3 + $4 + $5 != 0) bad++ } END { print "rows", n, "nonzero", bad + 0; exit !(n > 0 && bad == 0) }' "$1"
}

V2=/tmp/cg2
mkdir -p "$V2"
mount -t cgroup2 none "$V2" 2>/dev/null || true
check "cgroup v2 mounted" test -f "$V2/cgroup.procs"
mkdir -p "$V2/pt"
# A fresh v2 hierarchy where no controller was ever enabled (no systemd here): the
# kernel has made no perf_event state for its cgroups yet, and pmcstat says how to
# fix that; enabling any controller at the root makes it.
if [ -z "$(cat "$V2/cgroup.subtree_control")" ]; then
  check_grep "v2 without any controller enabled: the fix is named" \
    'echo \+pids > /sys/fs/cgroup/cgroup.subtree_control' \
    exits 1 pmcstat -m sw --cgroup "$V2/pt" 0.2 0.2
fi
check "enable a controller at the v2 root" sh -c "echo +pids > $V2/cgroup.subtree_control"

pmcstat -m sw --cgroup "$V2/pt" 0.5 2.5 >/tmp/in.out 2>/tmp/in.err &
pid=$!
wait_line /tmp/in.out TASK_MS  # counting from here (the header is flushed first)
busy "$V2/pt/cgroup.procs"
wait "$pid"
rc=$?
cat /tmp/in.out /tmp/in.err
check "v2: exits 0" test "$rc" -eq 0
check_file_grep "v2: names the cgroup" "^pmcstat: counting cgroup /pt \\($V2/pt\\) on CPUs " /tmp/in.err
check "v2: the inside workload is counted" counted /tmp/in.out

pmcstat -m sw --cgroup /pt 0.5 1.5 >/tmp/out.out 2>/tmp/out.err &
pid=$!
wait_line /tmp/out.out TASK_MS  # counting from here (the header is flushed first)
busy -
wait "$pid"
cat /tmp/out.out /tmp/out.err
check "v2: a workload outside counts nothing" nothing /tmp/out.out

pmcstat -m sw --cgroup /pt 0.2 >/tmp/gone.out 2>/tmp/gone.err &
pid=$!
wait_line /tmp/gone.out TASK_MS  # counting from here (the header is flushed first)
rmdir "$V2/pt"
wait "$pid"
rc=$?
cat /tmp/gone.err
check "removed cgroup: exits 0" test "$rc" -eq 0
check_file_grep "removed cgroup: said so" '^pmcstat: cgroup /pt was removed' /tmp/gone.err

# A v1 hierarchy with perf_event: its cgroups work, v2 paths no longer can.
V1=/tmp/cg1
mkdir -p "$V1"
if mount -t cgroup -o perf_event none "$V1" 2>/dev/null; then
  mkdir -p "$V1/pt" "$V2/pt2"
  pmcstat -m sw --cgroup "$V1/pt" 0.5 2.5 >/tmp/v1.out 2>/tmp/v1.err &
  pid=$!
  wait_line /tmp/v1.out TASK_MS  # counting from here (the header is flushed first)
  busy "$V1/pt/tasks"
  wait "$pid"
  rc=$?
  cat /tmp/v1.out /tmp/v1.err
  check "v1 perf_event: exits 0" test "$rc" -eq 0
  check "v1 perf_event: the inside workload is counted" counted /tmp/v1.out
  check_grep "v1 perf_event: a v2 cgroup is refused with the reason" \
    "the perf_event controller is attached to the v1 hierarchy [0-9]+ here \\(mounted at $V1\\)" \
    exits 1 pmcstat -m sw --cgroup "$V2/pt2" 0.2 0.2
  rmdir "$V1/pt" "$V2/pt2"
  umount "$V1"
else
  skip "v1 perf_event hierarchy" "this kernel would not mount it next to cgroup v2"
fi
vm_finish
