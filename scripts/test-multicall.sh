#!/usr/bin/env bash
# Runs live tests of some tools a second time with each tool's binary replaced by a link
# to the multi-call binary `perf-tools` (as `perf-tools --install-links` makes them), so
# the tests that pass against a tool's own binary must pass against the one file that
# ships. The test executables are the ones `cargo test` builds; they start the tool
# through its CARGO_BIN_EXE path (target/debug/<tool>), which here is the link. The own
# binaries are put back afterwards whatever happens.
#   scripts/test-multicall.sh [CRATE:TEST ...]   as root (the live tests need it)
# Default: the exit-path tests (signals, closed pipes, errors, panics, SIGKILL + cleanup)
# of iosnoop, tpoint and syscount, and opensnoop's and execsnoop's live tests.
set -euo pipefail
cd "$(dirname "$0")/.."

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(iosnoop:exit_paths tpoint:exit_paths syscount:exit_paths opensnoop:live execsnoop:live)

bin=target/debug
pkgs=()
for s in "${sets[@]}"; do pkgs+=(-p "${s%%:*}"); done
cargo build -q -p perf-tools
# The test executables, by crate and test name, from cargo's JSON messages.
exes=$(cargo test --no-run -q "${pkgs[@]}" --message-format=json 2>/dev/null |
  grep '"profile":{[^}]*"test":true' | grep -o '"target":{[^}]*"name":"[^"]*"[^}]*}.*"executable":"[^"]*"' |
  sed -E 's/.*"target":\{.*"name":"([^"]+)".*"src_path":"[^"]*\/crates\/([^/]+)\/.*"executable":"([^"]+)"/\2:\1 \3/')

restore() {
  local f
  for f in "$bin"/*.own; do
    [ -e "$f" ] || continue
    rm -f "${f%.own}"
    mv "$f" "${f%.own}"
  done
}
trap restore EXIT

failed=()
for s in "${sets[@]}"; do
  crate=${s%%:*}
  exe=$(awk -v k="$s" '$1 == k { print $2 }' <<<"$exes")
  [ -n "$exe" ] || { echo "test-multicall: no test executable for $s" >&2; exit 1; }
  tool=$crate
  [ -e "$bin/$tool.own" ] || mv "$bin/$tool" "$bin/$tool.own"
  ln -sfn perf-tools "$bin/$tool"
  echo "=== $s through $bin/$tool -> perf-tools"
  if ! "$exe" --test-threads 2; then failed+=("$s"); fi
done
restore
trap - EXIT
if [ ${#failed[@]} -gt 0 ]; then
  echo "test-multicall: FAILED through the multi-call binary: ${failed[*]}" >&2
  exit 1
fi
echo "test-multicall: ${#sets[@]} test sets passed through the multi-call binary"
