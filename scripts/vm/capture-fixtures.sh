#!/usr/bin/env bash
# Captures real-kernel test fixtures from the VM guests:
#   tests/fixtures/formats/<ID>/  block_rq_{issue,insert,complete}, sys_{enter,exit}_openat,
#                                 sched_process_fork, header_page, header_event (verbatim
#                                 tracefs files)
#   tests/fixtures/pages/<ID>/    raw ring-buffer pages of block_rq_issue/complete
#                                 (extend.bin, missed.bin, full1.bin, full2.bin), the
#                                 kernel's text of the same events (*.txt) and the
#                                 formats of that boot (*.format); only for --pages kernels
# The guest half is scripts/vm/guest/capture-fixtures.sh; see tests/fixtures/README.md.
#
# Usage: scripts/vm/capture-fixtures.sh [--pages ID]... [ID...]
#   ID...       kernels whose formats to capture (default: 6.1 6.12 5.10)
#   --pages ID  also store the raw pages of this kernel (default: 6.1)
# Re-running overwrites the fixtures: the pages get new timestamps and PIDs, so
# tests that pin exact decoded values must be updated with them.
set -euo pipefail
# shellcheck source=scripts/vm/common.sh
. "$(dirname "$0")/common.sh"

ids=() pages=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pages) [ $# -ge 2 ] || die "--pages needs a kernel id"; pages+=("$2"); shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ids+=("$1") ;;
  esac
  shift
done
[ ${#ids[@]} -gt 0 ] || ids=(6.1 6.12 5.10)
[ ${#pages[@]} -gt 0 ] || pages=(6.1)

"$VM_SCRIPTS/setup.sh" "${ids[@]}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vm-capture.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for id in "${ids[@]}"; do
  "$VM_SCRIPTS/run.sh" --quiet --kernel "$id" --out "$tmp/$id" "$VM_SCRIPTS/guest/capture-fixtures.sh" \
    || die "capture on kernel $id failed (log: $VM_LOGS/$id-capture-fixtures.log)"
  kd=$(kernel_dir "$id")
  dst=$REPO_ROOT/tests/fixtures/formats/$id
  mkdir -p "$dst"
  install -m 644 "$tmp/$id"/formats/* "$dst/"
  echo "kernel $id: $(cat "$kd/package") $(cat "$kd/version") (uname -r $(cat "$tmp/$id/uname"))"
  echo "  formats -> ${dst#"$REPO_ROOT"/}: $(cd "$dst" && printf '%s ' *)"
  if [[ " ${pages[*]} " == *" $id "* ]]; then
    pdst=$REPO_ROOT/tests/fixtures/pages/$id
    mkdir -p "$pdst"
    install -m 644 "$tmp/$id"/pages/* "$pdst/"
    echo "  pages   -> ${pdst#"$REPO_ROOT"/}: $(cd "$pdst" && printf '%s ' *)"
  fi
done
