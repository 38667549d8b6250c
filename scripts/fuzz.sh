#!/usr/bin/env bash
# Longer randomized run of the decoder property tests (the stable-Rust stand-in for
# cargo-fuzz, which needs nightly): the event-format parser, the ring-buffer page
# decoder, the block event decoder (arbitrary bytes and mutated real fixtures from
# tests/fixtures) and the encode -> decode -> merge -> pair round trips.
#   scripts/fuzz.sh [SECONDS]      (default 60 per round of all targets)
# Each round runs every property with PT_FUZZ_CASES cases and a fresh random seed;
# rounds repeat until SECONDS have passed. A failure prints the minimal failing input
# and is saved in crates/block/tests/properties.proptest-regressions, which later runs
# (and CI) replay first.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cases=${PT_FUZZ_CASES:-20000}
cargo test --release -q -p perf-tools-block --test properties --no-run
end=$((SECONDS + secs))
round=0
while [ $SECONDS -lt $end ]; do
  round=$((round + 1))
  log=$(mktemp)
  if ! PT_FUZZ_CASES=$cases cargo test --release -q -p perf-tools-block --test properties >"$log" 2>&1; then
    cat "$log"; rm -f "$log"
    echo "fuzz round $round: FAILED (see above)" >&2
    exit 1
  fi
  rm -f "$log"
  echo "fuzz round $round: $cases cases per property, no failure"
done
