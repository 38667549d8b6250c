#!/usr/bin/env bash
# Captures a uprobe test fixture from this machine's kernel:
#   tests/fixtures/uprobe/<uname -r major.minor>/{entry,ret,user_stack}.format, header.txt,
#   calls.bin (one page of per_cpu/cpu0/trace_pipe_raw) and calls.txt (the kernel's text of
#   the same events): a small C program, pinned to CPU 0, calls probed(i, s) three times
#   with an ordinary string and twice with one holding a newline and an escape, under a
#   uprobe (i and the string), a uretprobe ($retval) and user stack traces.
# Usage (root, cc): scripts/capture-uprobe.sh
set -euo pipefail
T=/sys/kernel/tracing
ver=$(uname -r | cut -d. -f1,2)
out=$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/uprobe/$ver
mkdir -p "$out"
tmp=$(mktemp -d)
I=$T/instances/capture-uprobe
G=capture_uprobe
cleanup() {
  rmdir "$I" 2>/dev/null || true
  echo "-:$G/entry" >> $T/uprobe_events 2>/dev/null || true
  echo "-:$G/ret" >> $T/uprobe_events 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cat > "$tmp/p.c" <<'C'
#include <stdlib.h>
__attribute__((noinline)) long probed(long a, const char *s) { __asm__ volatile("" ::: "memory"); return a * 2 + s[0]; }
int main(int argc, char **argv) { long t = 0; for (int i = 1; i < argc; i++) t += probed(i, argv[i]); return t == 0; }
C
cc -O1 -fno-omit-frame-pointer -o "$tmp/p" "$tmp/p.c"
off=$(nm "$tmp/p" | awk '$3 == "probed" { print "0x" $1 }')
echo "p:$G/entry $tmp/p:$off a=%di s=+0(%si):ustring" >> $T/uprobe_events
echo "r:$G/ret $tmp/p:$off ret=\$retval" >> $T/uprobe_events
mkdir $I
echo mono > $I/trace_clock
echo 1 > $I/options/userstacktrace
echo 1 > $I/events/$G/enable
taskset -c 0 "$tmp/p" one two three "$(printf 'ev\nfake\033[31m')" "$(printf 'x\ny')" || true
echo 0 > $I/tracing_on
echo 0 > $I/events/$G/enable
cp $T/events/$G/entry/format "$out/entry.format"
cp $T/events/$G/ret/format "$out/ret.format"
cp $T/events/ftrace/user_stack/format "$out/user_stack.format"
grep '^#' $I/trace > "$out/header.txt"
grep -v '^#' $I/trace > "$out/calls.txt"
dd if=$I/per_cpu/cpu0/trace_pipe_raw of="$out/calls.bin" bs=4096 count=1 iflag=nonblock 2>/dev/null
ls -l "$out"
