#!/usr/bin/env bash
# Runs the VM tool tests: the guest scripts tests/vm/*.sh except lib.sh, on the
# kernels of scripts/vm/kernels.txt (each kernel runs its SET of scripts, see
# below); prints a table and the closing line
#   vm: N passed, N failed            (", N skipped" when N > 0)
# and exits 1 if any run failed. One run = one (script, kernel) boot.
#
# Usage: scripts/vm/test.sh [--kernel ID]... [--no-build] [--timeout SECS] [-j N]
#                           [--full] [SCRIPT...]
#   --kernel ID   only these kernels (repeatable; default: all of kernels.txt)
#   --no-build    do not run build-static.sh; use what target/static holds
#   --timeout S   per-run timeout when the script declares none (default 300)
#   --slow N      multiply every per-run timeout by N (a busy host: the guests'
#                 times grow with the host's load; VM_TIMEOUT_SCALE likewise)
#   -j N          boot up to N guests at once (default: VM_JOBS, else the number
#                 of host CPUs). Under TCG a guest keeps about one host core busy
#                 (run.sh keeps TCG single-threaded), so N = cores halves the
#                 wall time on 2 cores. Longest runs start first (durations of
#                 the last run, target/vm/durations.tsv; else the timeouts).
#   --full        every script on every kernel, ignoring the kernels' SET (also
#                 implied when both --kernel and SCRIPT are given: those run)
#   SCRIPT...     only these guest scripts, as paths or names (smoke =
#                 tests/vm/smoke.sh; default: tests/vm/*.sh)
#
# Which scripts a kernel runs: the SET column of kernels.txt. "full": every
# script; any other word, e.g. "smoke": only the scripts whose "# sets:" header
# names it (tests/README.md says which kernels run what, and why).
#
# Header comments a guest script may carry (anywhere, one per line):
#   # needs: iosnoop opensnoop   binaries from the static build (build-static.sh
#                                runs first); a binary the workspace does not
#                                build (yet) makes the run SKIPPED, not failed
#   # kernels: 6.1 6.12          run only on these kernel ids
#   # sets: smoke                also run on the kernels of these sets
#   # exclusive: yes             timing-sensitive: with -j N > 1, its runs come
#                                first, one at a time, with no other guest beside
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

kernels=() scripts=() build=1 timeout=300 jobs=${VM_JOBS:-} full='' scale=${VM_TIMEOUT_SCALE:-1}
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) [ $# -ge 2 ] || die "--kernel needs an id"; kernels+=("$2"); shift ;;
    --no-build) build= ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; timeout=$2; shift ;;
    -j) [ $# -ge 2 ] || die "-j needs a number"; jobs=$2; shift ;;
    --slow) [ $# -ge 2 ] || die "--slow needs a factor"; scale=$2; shift ;;
    -j[0-9]*) jobs=${1#-j} ;;
    --full) full=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) scripts+=("$1") ;;
  esac
  shift
done
[ -n "$jobs" ] || jobs=$(nproc 2>/dev/null || echo 1)
# Named kernels and named scripts: exactly those, whatever the sets say.
[ ${#kernels[@]} -eq 0 ] || [ ${#scripts[@]} -eq 0 ] || full=1
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "-j needs a whole number >= 1, not '$jobs'"
[[ "$scale" =~ ^[1-9][0-9]*$ ]] || die "--slow needs a whole number >= 1, not '$scale'"
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
DURATIONS=$VM_TARGET/durations.tsv   # "KERNEL<TAB>SCRIPT<TAB>SECONDS" of the last runs
mkdir -p "$LEAK_DIR" "$VM_LOGS"
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
kernel_set() { kernel_line "$1" | awk '{ print ($4 == "" ? "full" : $4) }'; }

# Host packages and kernels once, up front (fast when cached).
"$VM_SCRIPTS/setup.sh" "${kernels[@]}" || die "setup.sh failed"

# ---- the runs: (script, kernel) pairs ------------------------------------------
runs=()      # "KERNEL SCRIPT" in table order (script by script)
notset=0 notset_k=()
for s in "${scripts[@]}"; do
  only=$(header "$s" kernels)
  sets=$(header "$s" sets)
  for k in "${kernels[@]}"; do
    if [ -n "$only" ] && ! [[ " $only " == *" $k "* ]]; then
      continue
    fi
    ks=$(kernel_set "$k")
    if [ -z "$full" ] && [ "$ks" != full ] && ! [[ " $sets " == *" $ks "* ]]; then
      notset=$((notset + 1))
      [[ " ${notset_k[*]} " == *" $k "* ]] || notset_k+=("$k")
      continue
    fi
    runs+=("$k $s")
  done
done
[ ${#runs[@]} -gt 0 ] || die "nothing to run: no script of ${scripts[*]##*/} is in the set of kernel(s) ${kernels[*]} (--full runs every script on every kernel)"

# Whether the multi-call binary carries tool $1: the tools of crates/perf-tools (its
# TOOLS list, read from the source so that this works before anything is built).
mc_list=$(sed -n 's/^ *name: "\([^"]*\)",$/\1/p' "$REPO_ROOT/crates/perf-tools/src/lib.rs")
mc_tool() { grep -qx -e "$1" <<<"$mc_list"; }

# Static binaries, if any run needs one: only those (cargo build --bin ...).
build_state=none
wanted=()
for r in "${runs[@]}"; do
  for b in $(header "${r#* }" needs); do
    [[ " ${wanted[*]} " == *" $b "* ]] || wanted+=("$b")
  done
done
if [ ${#wanted[@]} -gt 0 ]; then
  if [ -z "$build" ]; then
    build_state=skipped
  else
    # Binaries the workspace does not build (yet) are left out (their runs are SKIPPED).
    have=$(cargo metadata --manifest-path "$REPO_ROOT/Cargo.toml" --no-deps --format-version 1 2>/dev/null |
           grep -o '"kind":\["bin"\],[^}]*"name":"[^"]*"' | sed 's/.*"name":"//; s/"$//' || true)
    # The tools run as links to the static multi-call binary `perf-tools` (what the
    # release ships); only a needed binary it does not carry is built on its own.
    # `-p`, not `--bin`: build-static.sh adds `--bins`, which with `--bin` means every
    # binary of the workspace; `-p perf-tools` is exactly what release.sh
    # --multicall-only built, so after it this build is a no-op. (Package names are the
    # binary names here.)
    bargs=(-p perf-tools)
    for b in "${wanted[@]}"; do
      if grep -qx -e "$b" <<<"$have" && ! mc_tool "$b"; then bargs+=(-p "$b"); fi
    done
    [ -n "$have" ] || bargs=()   # metadata unreadable: build every binary
    echo "test.sh: building ${bargs[*]:+the packages${bargs[*]//-p/} }statically (scripts/vm/build-static.sh)" >&2
    t0=$(date +%s)
    if "$VM_SCRIPTS/build-static.sh" "${bargs[@]}" >/dev/null; then
      build_state=ok
      echo "test.sh: static build done in $(( $(date +%s) - t0 ))s" >&2
    else
      build_state=failed
      echo "test.sh: the static build FAILED; every script with '# needs:' fails" >&2
    fi
  fi
fi

results=$(mktemp -d "${TMPDIR:-/tmp}/vm-test.XXXXXX")
pids=()
# On an interrupt, stop the runs started here (run.sh then stops its QEMU).
stop_runs() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait || true
  rm -rf "$results"
}
trap stop_runs EXIT
trap 'exit 130' INT TERM

# run_one KERNEL SCRIPT: one boot; writes $results/<kernel>-<name>.{res,out}.
# .res: RESULT, SECS, CHECKS, REASON separated by "|" (not a tab: read would merge
# the two tabs around an empty field).
run_one() {
  local k=$1 s=$2 name needs t mods smp bins b result='' checks='' secs=- reason='' out rc rpid t0 leak_tsv m
  name=$(basename "$s" .sh)
  needs=$(header "$s" needs)
  t=$(header "$s" timeout); t=${t%% *}; [ -n "$t" ] || t=$timeout
  t=$((t * scale))
  mods=()
  for m in $(header "$s" modules); do mods+=(--module "$m"); done
  smp=$(header "$s" smp); smp=${smp%% *}
  bins=()
  if [ -n "$needs" ]; then
    if [ "$build_state" = failed ]; then
      result=FAILED reason="static build failed (run scripts/vm/build-static.sh to see why)"
    else
      for b in $needs; do
        if mc_tool "$b" && [ -x "$STATIC_BIN_DIR/perf-tools" ]; then
          [[ " ${bins[*]} " == *" $STATIC_BIN_DIR/perf-tools "* ]] || bins+=(--bin "$STATIC_BIN_DIR/perf-tools")
        elif [ -x "$STATIC_BIN_DIR/$b" ]; then
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
  out=$results/$k-$name.out
  : >"$out"
  if [ -z "$result" ]; then
    t0=$(date +%s.%N)
    set +e
    VM_SMP=${smp:-${VM_SMP:-2}} "$VM_SCRIPTS/run.sh" --quiet --kernel "$k" --timeout "$t" "${bins[@]}" "${mods[@]}" "$s" >"$out" 2>&1 &
    rpid=$!
    # Stopped by test.sh's exit trap: stop run.sh too (it stops its QEMU).
    trap 'kill "$rpid" 2>/dev/null; exit 143' TERM
    wait "$rpid"
    rc=$?
    trap - TERM
    set -e
    secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
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
    fi
  fi
  printf '%s|%s|%s|%s\n' "$result" "$secs" "$checks" "$reason" >"$results/$k-$name.res"
}

# Longest first (the last measured duration, else the script's timeout), so that
# the parallel runs end at about the same time.
estimate() { # KERNEL SCRIPT -> seconds
  local d t
  d=$(awk -F'\t' -v k="$1" -v s="$(basename "$2" .sh)" '$1 == k && $2 == s { d = $3 } END { print d }' "$DURATIONS" 2>/dev/null || true)
  if [ -n "$d" ]; then echo "$d"; return; fi
  t=$(header "$2" timeout); t=${t%% *}
  echo "${t:-$timeout}"
}
order=()
while read -r _ k s; do order+=("$k $s"); done < <(
  for r in "${runs[@]}"; do echo "$(estimate "${r%% *}" "${r#* }") $r"; done | sort -s -k1,1 -r -g)

fmt='%-22s %-10s %-8s %-28s %7s\n'
echo "test.sh: ${#runs[@]} runs on kernels ${kernels[*]}, up to $jobs at a time" >&2
[ "$notset" -eq 0 ] || echo "test.sh: $notset runs left out: not in the set of kernel(s) ${notset_k[*]} (kernels.txt SET column; --full runs them)" >&2
wall0=$(date +%s.%N)
# Runs of "# exclusive: yes" scripts first, each alone; then the others, N at a time.
alone=() shared=()
for r in "${order[@]}"; do
  if [ "$jobs" -gt 1 ] && [ "$(header "${r#* }" exclusive)" = "yes " ]; then alone+=("$r"); else shared+=("$r"); fi
done
for r in "${alone[@]}"; do
  run_one "${r%% *}" "${r#* }" &
  pids+=($!)
  wait "$!" || true
done
running=0
for r in "${shared[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "${r%% *}" "${r#* }" &
  pids+=($!)
  running=$((running + 1))
  [ "$jobs" -gt 1 ] || { wait "$!" || true; running=0; }
done
wait || true
pids=()
wall=$(awk -v s="$wall0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')

# ---- table, in script order ---------------------------------------------------
npass=0 nfail=0 nskip=0 sum=0
details=()
# shellcheck disable=SC2059  # $fmt is this script's own format
printf "$fmt" SCRIPT KERNEL RESULT CHECKS TIME
for r in "${runs[@]}"; do
  k=${r%% *} s=${r#* }
  name=$(basename "$s" .sh)
  if ! IFS='|' read -r result secs checks reason <"$results/$k-$name.res" 2>/dev/null; then
    result=FAILED secs=- checks='' reason="the run did not report (interrupted?)"
  fi
  case "$result" in
    PASSED) npass=$((npass + 1)) ;;
    FAILED) nfail=$((nfail + 1))
      if [ "$secs" != - ]; then
        details+=("===== $name on $k: $reason (log: $VM_LOGS/$k-$name.log) =====" "$(cat "$results/$k-$name.out")")
      else
        details+=("===== $name on $k: $reason =====")
      fi ;;
    SKIPPED) nskip=$((nskip + 1)) ;;
  esac
  if [ "$secs" != - ]; then
    sum=$(awk -v a="$sum" -v b="$secs" 'BEGIN { print a + b }')
    printf '%s\t%s\t%s\n' "$k" "$name" "$secs" >>"$DURATIONS"
    secs=${secs}s
  fi
  # shellcheck disable=SC2059
  printf "$fmt" "$name" "$k" "$result" "${checks:--}" "$secs"
  [ "$result" != SKIPPED ] || echo "    skipped: $reason"
done
# Keep only the newest duration of each (kernel, script) for the next run's order.
if [ -f "$DURATIONS" ]; then
  awk -F'\t' '{ d[$1 FS $2] = $0 } END { for (x in d) print d[x] }' "$DURATIONS" | sort >"$DURATIONS.tmp"
  mv "$DURATIONS.tmp" "$DURATIONS"
fi
for d in "${details[@]}"; do printf '%s\n' "$d"; done
echo "vm: wall time ${wall}s for ${#runs[@]} runs ($(printf '%.0f' "$sum")s of runs, up to $jobs at a time)"
line="vm: $npass passed, $nfail failed"
[ "$nskip" -eq 0 ] || line="$line, $nskip skipped"
echo "$line"
[ "$nfail" -eq 0 ]
