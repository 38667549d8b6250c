#!/usr/bin/env bash
# Benchmark: the cost of funccount and functrace on a vfs_read storm, in a VM guest (this
# project's CI host has no function tracer). Builds the static binaries and boots
# KERNEL (default 6.12-deb13) under QEMU with scripts/vm/guest/bench-funccount.sh, which
# times `dd bs=1 count=CALLS` (default 100000: as many vfs_read calls) untraced, under
# `funccount vfs_read` and under `functrace vfs_read >file`, and prints the BENCH lines.
#   scripts/bench-funccount.sh [KERNEL] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-6.12-deb13}
calls=${2:-100000}
bin=$(scripts/vm/build-static.sh -p funccount -p functrace | tail -n 1)
VM_SMP=1 scripts/vm/run.sh --kernel "$kernel" --timeout 600 --bin "$bin/funccount" --bin "$bin/functrace" \
  scripts/vm/guest/bench-funccount.sh "$calls" | grep -E '^(BENCH|VM)'
