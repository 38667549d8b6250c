#!/usr/bin/env bash
# Runs the VM tool tests: every guest script tests/vm/*.sh except lib.sh, on
# every kernel of scripts/vm/kernels.txt; prints a table and the closing line
#   vm: N passed, N failed            (", N skipped" when N > 0)
# and exits 1 if any run failed. One run = one (script, kernel) boot.
#
# Usage: scripts/vm/test.sh [--kernel ID]... [--no-build] [--timeout SECS] [SCRIPT...]
#   --kernel ID   only these kernels (repeatable; default: all of kernels.txt)
#   --no-build    do not run build-static.sh; use what target/static holds
#   --timeout S   per-run timeout when the script declares none (default 300)
#   SCRIPT...     only these guest scripts, as paths or names (smoke =
#                 tests/vm/smoke.sh; default: tests/vm/*.sh)
#
# Header comments a guest script may carry (anywhere, one per line):
#   # needs: iosnoop opensnoop   binaries from the static build (build-static.sh
#                                runs first); a binary the workspace does not
#                                build (yet) makes the run SKIPPED, not failed
#   # kernels: 6.1 6.12          run only on these kernel ids
#   # timeout: 120               per-run timeout in seconds
#   # modules: null_blk          extra kernel modules for the guest (run.sh
#                                --module: put into the initramfs with their
#                                dependencies and insmod'ed by /init)
#   # smp: 1                     guest vCPUs (default 2): 1 for tests that
#                                live-patch kernel text (function_graph), which
#                                QEMU TCG with 2 vCPUs sometimes hangs or oopses on
#                                (run.sh now also keeps TCG single-threaded, which
#                                removes the cause; those scripts stay on 1 vCPU)
# Full console logs: target/vm/logs/<kernel>-<script>.log. Result lines of the
# state-leak matrix ("LEAK <row> <path> <result>[ -- how]", tests/vm/leakmatrix*.sh)
# are saved as target/leak-matrix/vm-<kernel>-<script>.tsv for
# "cargo run -p docgen -- leak-table" (tests/README.md).
set -euo pipefail
# shellcheck source=scripts/vm/common.sh
. "$(dirname "$0")/common.sh"

kernels=() scripts=() build=1 timeout=300
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) [ $# -ge 2 ] || die "--kernel needs an id"; kernels+=("$2"); shift ;;
    --no-build) build= ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; timeout=$2; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) scripts+=("$1") ;;
  esac
  shift
done
[ ${#kernels[@]} -gt 0 ] || mapfile -t kernels < <(kernel_ids)
for k in "${kernels[@]}"; do kernel_line "$k" >/dev/null || die "no kernel '$k' in $KERNELS_TXT"; done
if [ ${#scripts[@]} -eq 0 ]; then
  for f in "$REPO_ROOT"/tests/vm/*.sh; do
    [ "$(basename "$f")" = lib.sh ] || scripts+=("$f")
  done
fi
[ ${#scripts[@]} -gt 0 ] || die "no guest scripts in tests/vm/"
for i in "${!scripts[@]}"; do  # a bare name means tests/vm/NAME.sh
  s=${scripts[$i]}
  [ -f "$s" ] || [ ! -f "$REPO_ROOT/tests/vm/${s%.sh}.sh" ] || scripts[i]=$REPO_ROOT/tests/vm/${s%.sh}.sh
  [ -f "${scripts[$i]}" ] || die "guest script $s not found"
done

LEAK_DIR=$REPO_ROOT/target/leak-matrix
mkdir -p "$LEAK_DIR"
# leak_lines KERNEL < console log -> "KERNEL<TAB>row<TAB>path<TAB>result<TAB>how" lines
leak_lines() {
  tr -d '\r' | awk -v env="$1" '
    sub(/^LEAK /, "") && NF >= 3 {
      row = $1; path = $2; rest = substr($0, length($1) + length($2) + 3); how = ""
      i = index(rest, " -- ")
      if (i) { how = substr(rest, i + 4); rest = substr(rest, 1, i - 1) }
      printf "%s\t%s\t%s\t%s\t%s\n", env, row, path, rest, how
    }'
}

header() { # SCRIPT KEY -> words of "# KEY: ..." lines
  sed -n "s/^#[[:space:]]*$2:[[:space:]]*//p" "$1" | tr '\n' ' '
}

# Host packages and kernels once, up front (fast when cached).
"$VM_SCRIPTS/setup.sh" "${kernels[@]}" || die "setup.sh failed"

# Static binaries, if any script needs one.
build_state=none
for s in "${scripts[@]}"; do
  if [ -n "$(header "$s" needs)" ]; then build_state=wanted; break; fi
done
if [ "$build_state" = wanted ]; then
  if [ -z "$build" ]; then
    build_state=skipped
  else
    echo "test.sh: building the workspace statically (scripts/vm/build-static.sh)" >&2
    t0=$(date +%s)
    if "$VM_SCRIPTS/build-static.sh" >/dev/null; then
      build_state=ok
      echo "test.sh: static build done in $(( $(date +%s) - t0 ))s" >&2
    else
      build_state=failed
      echo "test.sh: the static build FAILED; every script with '# needs:' fails" >&2
    fi
  fi
fi

results=$(mktemp -d "${TMPDIR:-/tmp}/vm-test.XXXXXX")
trap 'rm -rf "$results"' EXIT
npass=0 nfail=0 nskip=0
details=()
fmt='%-22s %-6s %-8s %-28s %7s\n'
printf "$fmt" SCRIPT KERNEL RESULT CHECKS TIME
for s in "${scripts[@]}"; do
  name=$(basename "$s" .sh)
  needs=$(header "$s" needs)
  only=$(header "$s" kernels)
  t=$(header "$s" timeout); t=${t%% *}; [ -n "$t" ] || t=$timeout
  mods=()
  for m in $(header "$s" modules); do mods+=(--module "$m"); done
  smp=$(header "$s" smp); smp=${smp%% *}
  for k in "${kernels[@]}"; do
    if [ -n "$only" ] && ! [[ " $only " == *" $k "* ]]; then
      continue
    fi
    result='' checks='' secs=- reason=''
    bins=()
    if [ -n "$needs" ]; then
      if [ "$build_state" = failed ]; then
        result=FAILED reason="static build failed (run scripts/vm/build-static.sh to see why)"
      else
        for b in $needs; do
          if [ -x "$STATIC_BIN_DIR/$b" ]; then
            bins+=(--bin "$STATIC_BIN_DIR/$b")
          else
            result=SKIPPED
            reason="${reason:+$reason; }binary '$b' not built (no such binary in the workspace yet, or run scripts/vm/build-static.sh)"
          fi
        done
      fi
    fi
    leak_tsv=$LEAK_DIR/vm-$k-$name.tsv
    rm -f "$leak_tsv"
    if [ -z "$result" ]; then
      out=$results/$k-$name.out
      t0=$(date +%s.%N)
      set +e
      VM_SMP=${smp:-${VM_SMP:-2}} "$VM_SCRIPTS/run.sh" --quiet --kernel "$k" --timeout "$t" "${bins[@]}" "${mods[@]}" "$s" >"$out" 2>&1
      rc=$?
      set -e
      secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1fs", e - s }')
      checks=$(tr -d '\r' <"$VM_LOGS/$k-$name.log" 2>/dev/null | sed -n 's/^VM: \([0-9]* passed, [0-9]* failed.*\)$/\1/p' | tail -n 1)
      leak_lines "$k" <"$VM_LOGS/$k-$name.log" >"$leak_tsv.tmp" 2>/dev/null || true
      if [ -s "$leak_tsv.tmp" ]; then mv "$leak_tsv.tmp" "$leak_tsv"; else rm -f "$leak_tsv.tmp"; fi
      if [ "$rc" -eq 0 ]; then
        result=PASSED
      else
        result=FAILED
        case "$rc" in
          124) reason="timeout after ${t}s" ;;
          125) reason="guest crashed or ended without the exit marker" ;;
          *) reason="guest script exited $rc" ;;
        esac
        details+=("===== $name on $k: $reason (log: $VM_LOGS/$k-$name.log) =====" "$(cat "$out")")
      fi
    elif [ "$result" = FAILED ]; then
      details+=("===== $name on $k: $reason =====")
    fi
    case "$result" in
      PASSED) npass=$((npass + 1)) ;;
      FAILED) nfail=$((nfail + 1)) ;;
      SKIPPED) nskip=$((nskip + 1)) ;;
    esac
    printf "$fmt" "$name" "$k" "$result" "${checks:--}" "$secs"
    [ "$result" != SKIPPED ] || echo "    skipped: $reason"
  done
done
for d in "${details[@]}"; do printf '%s\n' "$d"; done
line="vm: $npass passed, $nfail failed"
[ "$nskip" -eq 0 ] || line="$line, $nskip skipped"
echo "$line"
[ "$nfail" -eq 0 ]
