#!/usr/bin/env bash
# Start-up and shut-down cost of the tracing tools (as root).
#   scripts/startup-cost.sh [-n RUNS] [--strace] [--bin-dir DIR] [TOOL...]
#   (defaults: 9 runs; iosnoop iolatency opensnoop kprobe funcgraph; target/release)
# For each tool, RUNS times: start it with its output on a pipe, time from just before
# exec until its banner line ("Tracing ...") arrives on the pipe (start-to-header), then
# send SIGINT and time until it has exited (end-to-exit: final drain, instance removal).
# Prints the median, minimum and maximum of both in milliseconds. A tool that cannot run
# on this kernel (kprobe without kprobe_events, funcgraph without function_graph) is
# listed with its first error line.
# With --strace, also runs each tool once under strace -f -T and lists the tracefs
# writes, opens, mkdirs and rmdirs that took 1 ms or more (the breakdown of the cost).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=9
use_strace=0
bin_dir=target/release
tools=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) runs=$2; shift 2 ;;
        --strace) use_strace=1; shift ;;
        --bin-dir) bin_dir=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) tools+=("$1"); shift ;;
    esac
done
[ ${#tools[@]} -gt 0 ] || tools=(iosnoop iolatency opensnoop kprobe funcgraph)
[ "$(id -u)" = 0 ] || { echo "run as root (the tools trace the kernel)" >&2; exit 1; }

# Arguments that make each tool start its usual way (and trace little).
args_of() {
    case $1 in
        kprobe) echo "p:do_sys_openat2" ;;
        funcgraph) echo "do_nanosleep" ;;
        *) echo "" ;;
    esac
}

work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# Microseconds since the epoch, without starting a process.
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

median() { sort -n | awk '{v[NR]=$1} END {if (NR) printf "%.1f %.1f %.1f", v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000}'; }

# One run: prints "START_US END_US", or "fail: FIRST STDERR LINE".
one_run() {
    local bin=$1; shift
    local fifo=$work/out err=$work/err
    rm -f "$fifo"
    mkfifo "$fifo"
    local t0 t1 t2 t3 line got=0
    t0=$(now_us)
    "$bin" "$@" >"$fifo" 2>"$err" &
    local pid=$!
    exec 3<"$fifo"
    while IFS= read -r -t 10 line <&3; do
        if [[ $line == Tracing* ]]; then
            t1=$(now_us)
            got=1
            break
        fi
    done
    if [ $got = 0 ]; then
        exec 3<&-
        wait "$pid" 2>/dev/null || true
        echo "fail: $(head -1 "$err")"
        return
    fi
    # Keep reading (the tool must not block on a full pipe), then stop it.
    cat <&3 >/dev/null &
    local reader=$!
    sleep 0.2
    t2=$(now_us)
    kill -INT "$pid"
    wait "$pid" || true
    t3=$(now_us)
    wait "$reader" 2>/dev/null || true
    exec 3<&-
    echo "$((t1 - t0)) $((t3 - t2))"
}

printf '%-10s %28s %28s\n' tool "start-to-header ms (med min max)" "end-to-exit ms (med min max)"
for tool in "${tools[@]}"; do
    bin=$bin_dir/$tool
    [ -x "$bin" ] || { printf '%-10s not built (%s)\n' "$tool" "$bin"; continue; }
    read -r -a targs <<<"$(args_of "$tool")"
    starts=() ends=() failed=""
    for _ in $(seq "$runs"); do
        r=$(one_run "$bin" "${targs[@]}")
        case $r in
            fail:*) failed=${r#fail: }; break ;;
            *) starts+=("${r% *}"); ends+=("${r#* }") ;;
        esac
    done
    if [ -n "$failed" ]; then
        printf '%-10s cannot run here: %s\n' "$tool" "$failed"
        continue
    fi
    printf '%-10s %28s %28s\n' "$tool" \
        "$(printf '%s\n' "${starts[@]}" | median)" "$(printf '%s\n' "${ends[@]}" | median)"
done

if [ $use_strace = 1 ]; then
    command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }
    for tool in "${tools[@]}"; do
        bin=$bin_dir/$tool
        [ -x "$bin" ] || continue
        read -r -a targs <<<"$(args_of "$tool")"
        log=$work/strace.$tool
        timeout -s INT 1 strace -f -T -e trace=write,openat,mkdir,rmdir -o "$log" \
            "$bin" "${targs[@]}" >/dev/null 2>&1 || true
        echo
        echo "$tool: tracefs system calls of 1 ms or more (strace -T; strace slows every call)"
        # Pair each write with the file its descriptor was opened on.
        awk '
            /openat\(.*tracing/ { if (match($0, /"[^"]*"/)) path = substr($0, RSTART + 1, RLENGTH - 2);
                                  if (match($0, /= [0-9]+ </)) { fd = substr($0, RSTART + 2, RLENGTH - 4); file[fd] = path } }
            { if (!match($0, /<[0-9.]+>$/)) next; t = substr($0, RSTART + 1, RLENGTH - 2) * 1000; if (t < 1) next }
            /mkdir\(|rmdir\(/ { match($0, /"[^"]*"/); printf "  %7.1f ms  %s %s\n", t, ($0 ~ /rmdir/ ? "rmdir" : "mkdir"), substr($0, RSTART + 1, RLENGTH - 2); next }
            /write\([0-9]+,/ { match($0, /write\([0-9]+/); fd = substr($0, RSTART + 6, RLENGTH - 6);
                               if (!(fd in file)) next; match($0, /, "[^"]*"/);
                               printf "  %7.1f ms  write %s to %s\n", t, substr($0, RSTART + 2, RLENGTH - 2), file[fd] }
        ' "$log" | sed 's#/sys/kernel/tracing/##'
    done
fi
