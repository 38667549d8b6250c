#!/usr/bin/env bash
# Benchmark: CPU cost per event and events lost for syscount under a syscall storm and for
# killsnoop under a signal storm, next to the shell originals on the same load.
#   scripts/bench-syscount.sh [syscount|killsnoop] [CALLS] [PROCS]   (as root)
#   (defaults: syscount, 2000000 calls per process, 2 processes)
# The storm is a small C program (built with cc in a temporary directory) that makes CALLS
# getppid() calls (syscount) or CALLS kill(self, SIGUSR1) calls with SIGUSR1 ignored
# (killsnoop), in PROCS processes at once. Reported: the exact number of calls, what the
# tool counted (syscount: the getppid row of -c; killsnoop: its rows), events lost (the
# tool's stderr), the tool's CPU (schedstat, just before it exits) per event, and the
# storm's own run time with and without the tool (the cost to the traced workload).
# The original runs too when PERF_TOOLS_DIR names a checkout of perf-tools: syscount -c
# needs perf (`perf stat`, counts in the kernel); killsnoop uses the top-level trace
# instance, so it runs only with RUN_ORIGINAL_KILLSNOOP=1 (not while other tracing runs),
# in a private mount namespace with debugfs at /sys/kernel/debug (where it looks for
# tracing); its rows, the events it lost and the CPU of its bash, cat and awk are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-syscount}
calls=${2:-2000000}
procs=${3:-2}
case $tool in syscount|killsnoop) ;; *) echo "usage: $0 [syscount|killsnoop] [CALLS] [PROCS]" >&2; exit 2 ;; esac
command -v cc >/dev/null || { echo "$0: needs a C compiler (cc) for the storm program" >&2; exit 1; }
cargo build --release -q -p "$tool"
bin=$PWD/target/release/$tool
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing

work=$(mktemp -d "/tmp/bench-$tool.XXXXXX")
cleanup() {
  [ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null
  [ -n "${opid:-}" ] && kill -INT -- -"$opid" 2>/dev/null && wait "$opid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/storm.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]); int procs = atoi(argv[3]); int sig = !strcmp(argv[1], "kill");
    signal(SIGUSR1, SIG_IGN);
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            pid_t me = getpid();
            for (long i = 0; i < n; i++) {
                if (sig) syscall(SYS_kill, me, SIGUSR1); else syscall(SYS_getppid);
            }
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {}
    return 0;
}
C
cc -O2 -o "$work/storm" "$work/storm.c"
kind=getppid; [ "$tool" = killsnoop ] && kind="kill"
total=$((calls * procs))
now() { date +%s.%N; }
base0=$(now); "$work/storm" "$kind" "$calls" "$procs"; base1=$(now)
base=$(python3 -c "print(round($base1 - $base0, 3))")

# The tool, then the storm; CPU read just before it ends.
if [ "$tool" = syscount ]; then args=(-c); else args=(); fi
"$bin" "${args[@]}" > "$work/out.txt" 2> "$work/err.txt" &
pid=$!
sleep 1
t0=$(now); "$work/storm" "$kind" "$calls" "$procs"; t1=$(now)
sleep 0.5
read -r cpu_ns _ < "/proc/$pid/schedstat"
kill -INT "$pid"; wait "$pid" || true; pid=
traced=$(python3 -c "print(round($t1 - $t0, 3))")
if [ "$tool" = syscount ]; then
  seen=$(awk '$1 == "getppid" { print $2 }' "$work/out.txt"); seen=${seen:-0}
  events=$(awk 'NR > 2 && $2 ~ /^[0-9]+$/ { n += $2 } END { print n + 0 }' "$work/out.txt")
else
  seen=$(awk '$1 == "storm" && $4 == 10 && $5 == 0 { n++ } END { print n + 0 }' "$work/out.txt")
  events=$((seen * 2))
fi
lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/err.txt" | grep -o '[0-9]*' || echo 0)
per=$(python3 -c "print(round($cpu_ns / max($events,1), 1))")
echo "$tool: $total ${kind} calls in $procs processes; counted $seen; lost events $lost"
echo "$tool: tool CPU $(python3 -c "print(round($cpu_ns/1e9,3))") s for $events events: $per ns per event, $(python3 -c "print(round($cpu_ns / $total, 1))") ns per call traced"
echo "$tool: storm $base s untraced, $traced s traced"

# The original on the same load, if it runs here.
orig=${PERF_TOOLS_DIR:+$PERF_TOOLS_DIR/$tool}
if [ -z "$orig" ] || [ ! -x "$orig" ]; then
  echo "original $tool: not run (set PERF_TOOLS_DIR to a perf-tools checkout)"
elif [ "$tool" = syscount ]; then
  if command -v perf >/dev/null; then
    (cd "$work" && "$orig" -c "$work/storm" "$kind" "$calls" "$procs" > "$work/orig.txt" 2> "$work/orig-err.txt") || true
    oseen=$(awk '$1 == "getppid" { print $2 }' "$work/orig.txt"); oseen=${oseen:-none}
    ot0=$(now); (cd "$work" && "$orig" -c "$work/storm" "$kind" "$calls" "$procs" > /dev/null 2>&1) || true; ot1=$(now)
    echo "original syscount -c (perf stat, in-kernel counts): counted $oseen; storm under perf $(python3 -c "print(round($ot1 - $ot0, 3))") s"
  else
    echo "original syscount: not run (no perf)"
  fi
elif [ "${RUN_ORIGINAL_KILLSNOOP:-0}" = 1 ]; then
  # The original reads /sys/kernel/debug/tracing: it runs in a private mount namespace
  # with debugfs mounted there (nothing changes outside it). `set -m` gives it its own
  # process group in which SIGINT is not ignored, so that SIGINT to the group ends it as
  # Ctrl-C at a terminal does (a script's background job ignores SIGINT otherwise, and
  # the original's `cat trace_pipe` would never end). Its CPU is that of every process
  # of the group (bash, cat, awk), read just before it ends.
  printf '%s\n' 'mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug || exit 1' \
    "exec \"$orig\"" > "$work/orig.sh"
  set -m
  unshare -m bash "$work/orig.sh" > "$work/orig.txt" 2> "$work/orig-err.txt" &
  opid=$!
  set +m
  for _ in $(seq 50); do grep -q '^COMM' "$work/orig.txt" && break; sleep 0.1; done
  if ! grep -q '^COMM' "$work/orig.txt"; then
    kill -INT -- -"$opid" 2>/dev/null || true; wait "$opid" || true; opid=
    echo "original killsnoop: did not start: $(head -c 300 "$work/orig-err.txt")"
  else
    sleep 0.5
    ot0=$(now); "$work/storm" "$kind" "$calls" "$procs"; ot1=$(now); sleep 1
    ocpu=0
    for p in $(pgrep -g "$opid"); do
      read -r ns _ 2>/dev/null < "/proc/$p/schedstat" && ocpu=$((ocpu + ns))
    done
    kill -INT -- -"$opid" 2>/dev/null || true
    wait "$opid" || true
    opid=
    orows=$(awk '$1 == "storm" { n++ } END { print n + 0 }' "$work/orig.txt")
    oright=$(awk '$1 == "storm" && $3 == $2 && $4 == 10 && $5 == 0 { n++ } END { print n + 0 }' "$work/orig.txt")
    olost=$(grep -o 'LOST [0-9]* EVENTS' "$work/orig-err.txt" | awk '{ n += $2 } END { print n + 0 }')
    echo "original killsnoop: $orows storm rows of $total calls ($oright with the right TPID, SIGNAL 10 and RETURN 0); lost events $olost"
    echo "original killsnoop: CPU (bash, cat, awk) $(python3 -c "print(round($ocpu/1e9,3))") s: $(python3 -c "print(round($ocpu / $total, 1))") ns per kill() call traced"
    echo "original killsnoop: storm $(python3 -c "print(round($ot1 - $ot0, 3))") s traced"
  fi
else
  echo "original killsnoop: not run (it uses the top-level trace instance: RUN_ORIGINAL_KILLSNOOP=1)"
fi
