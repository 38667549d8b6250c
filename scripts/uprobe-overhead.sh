#!/bin/bash
# uprobe-overhead.sh: CPU cost per uprobe hit. A C program calls a small function
# N times in a tight loop; its CPU time (user+sys) is measured without a probe, with
# a uprobe on the function traced by uprobe (every hit recorded), and with a filter
# that drops every hit in the kernel. Prints the added CPU per hit of the traced
# program, and uprobe's own CPU. Needs root, cc, and a built uprobe binary.
# USAGE: scripts/uprobe-overhead.sh [N] [uprobe-binary]
set -euo pipefail
N=${1:-1000000}
UPROBE=${2:-target/debug/uprobe}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/loop.c" <<'C'
#include <stdlib.h>
#include <stdio.h>
__attribute__((noinline)) long hit(long a) { __asm__ volatile("" ::: "memory"); return a + 1; }
int main(int argc, char **argv) { long n = atol(argv[1]), t = 0; for (long i = 0; i < n; i++) t += hit(i); printf("%ld\n", t > 0); return 0; }
C
cc -O2 -o "$dir/loop" "$dir/loop.c"
# CPU seconds (user+sys) of one run of the loop.
cpu() {
	local t0 t1 me=$BASHPID
	t0=$(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
	"$dir/loop" "$N" > /dev/null
	t1=$(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
	echo "scale=6; ($t1 - $t0) / $(getconf CLK_TCK)" | bc
}
# The loop under a probe: uprobe's own CPU from /proc/PID/stat before it ends.
probed() {
	"$UPROBE" "p:$dir/loop:hit" ${1:+"$1"} > "$dir/out" 2> "$dir/err" &
	local up=$!
	for _ in $(seq 100); do grep -q Tracing "$dir/out" 2>/dev/null && break; sleep 0.1; done
	local c
	c=$(cpu)
	sleep 0.5
	local own
	own=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' /proc/$up/stat)
	kill -INT $up; wait $up || true
	echo "$c $own $(grep -c ': hit: (0x' "$dir/out" || true)"
}
base=$(cpu)
read -r rec own lines < <(probed)
read -r filt ownf _ < <(probed 'common_pid == 0')
per() { echo "scale=3; ($1 - $base) * 1000000000 / $N" | bc; }
echo "loop of $N calls: $base s CPU without a probe (0: below one clock tick, $((1000 / $(getconf CLK_TCK))) ms)"
echo "probed, every hit printed: $rec s (+$(per "$rec") ns per hit; uprobe itself $own s for $lines lines)"
echo "probed, filter drops all: $filt s (+$(per "$filt") ns per hit; uprobe itself $ownf s)"
