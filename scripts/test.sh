#!/usr/bin/env bash
# The whole test suite of perf-tools-rs: the one command README.md gives.
#   scripts/test.sh               as root, or with sudo (live tests drive real tracefs,
#                                 loop devices and I/O)
# Steps: install what is missing, format and lint checks (rustfmt, shellcheck, clippy),
# unit + live tests (cargo test --workspace), then the VM tests on stock Debian kernels (scripts/vm/test.sh),
# then the state-leak matrix of tests/README.md regenerated from both and compared with
# the checked-in one. Set PT_SKIP_VM=1 to skip the VM stage and the matrix check during
# development (CI never does).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: live tests need root (tracefs, loop devices): run it as root (or with sudo)" >&2
  exit 1
fi

step "requirements"
packages=()
for cmd in losetup dd setpriv; do
  command -v "$cmd" >/dev/null || packages+=(util-linux coreutils)
done
# docgen's SYNOPSIS test renders every man page with man -l.
command -v man >/dev/null || packages+=(man-db)
command -v shellcheck >/dev/null || packages+=(shellcheck)
if [ ${#packages[@]} -gt 0 ]; then
  apt-get update -qq
  # shellcheck disable=SC2046 # one word per package
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${packages[@]}" | sort -u) >/dev/null
fi
# fio drives the overload tests of iosnoop and iolatency (buffer overflow under load).
if ! command -v fio >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends fio >/dev/null
fi
# chromium renders heatmap's SVG to PNG for its browser test (crates/heatmap/tests/browser.rs).
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
modprobe loop 2>/dev/null || true
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "shellcheck (scripts/**/*.sh, tests/vm/*.sh, .ci/run; settings in .shellcheckrc)"
find scripts tests/vm -name '*.sh' -print0 | sort -z | xargs -0 shellcheck .ci/run
echo "shellcheck: ok"

step "cargo machete (unused dependencies are errors)"
command -v cargo-machete >/dev/null || cargo install --locked -q cargo-machete
cargo machete

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (unit, fixture and live tests)"
rm -rf target/leak-matrix   # the leak-matrix results of this run only
cargo test --workspace

step "live tests again through the multi-call binary (scripts/test-multicall.sh)"
scripts/test-multicall.sh

step "release artefacts (scripts/release.sh --multicall-only: the static multi-call binary, tarball, .deb)"
# Its static build is the one the VM stage below runs (built once per run).
scripts/release.sh --multicall-only
(cd target/dist && sha256sum --quiet -c SHA256SUMS)
mc=$(stat -c %s target/dist/perf-tools-rs-*-x86_64/perf-tools)
[ "$mc" -le $((8 * 1024 * 1024)) ] || { echo "release: the multi-call binary grew to $((mc / 1024)) KiB (over 8 MiB)" >&2; exit 1; }

step "Debian package: metadata, contents, every tool runs from it"
deb=$(ls target/dist/perf-tools-rs_*_amd64.deb)
dpkg-deb --info "$deb" >/dev/null
[ "$(dpkg-deb --field "$deb" Package)" = perf-tools-rs ] || { echo "$deb: not the perf-tools-rs package" >&2; exit 1; }
[ -z "$(dpkg-deb --field "$deb" Depends)" ] || { echo "$deb: the static build must depend on nothing" >&2; exit 1; }
root=$(mktemp -d)
dpkg -x "$deb" "$root"
"$root/usr/bin/iosnoop" --version
for t in $(cargo run -q -p docgen -- list); do
  "$root/usr/bin/$t" --help >/dev/null
  [ -s "$root/usr/share/man/man8/$t.8.gz" ] || { echo "$deb: no man page for $t" >&2; exit 1; }
  [ -s "$root/usr/share/bash-completion/completions/$t" ] || { echo "$deb: no bash completion for $t" >&2; exit 1; }
done
# (Not `| grep -q`: under pipefail a reader that stops early makes the pipeline fail.)
page=$(MANPAGER=cat MAN_DISABLE_SECCOMP=1 man -l "$root/usr/share/man/man8/iosnoop.8.gz")
grep -q 'iosnoop' <<<"$page" || { echo "$deb: man -l of the installed iosnoop page shows no iosnoop" >&2; exit 1; }
rm -rf "$root"
echo "deb: ok ($(($(stat -c %s "$deb") / 1024)) KiB)"

step "install smoke test (scripts/install.sh into a temporary prefix)"
stage=$(mktemp -d)
PT_INSTALL_BIN=$(ls target/dist/perf-tools-rs-*-x86_64/perf-tools) scripts/install.sh "$stage" >/dev/null
for t in $(cargo run -q -p docgen -- list); do
  "$stage/bin/$t" --version >/dev/null
  for f in "share/man/man8/$t.8" "share/bash-completion/completions/$t" "share/zsh/site-functions/_$t" "share/fish/vendor_completions.d/$t.fish"; do
    [ -s "$stage/$f" ] || { echo "install: $f missing" >&2; exit 1; }
  done
done
size=$(stat -c %s "$stage/bin/perf-tools")
rm -rf "$stage"
printf 'install: perf-tools (every tool, a link each) %d KiB\n' $((size / 1024))
# A guard against a profile change that stops stripping or LTO (measured: README.md).
if [ "$size" -gt $((8 * 1024 * 1024)) ]; then
  echo "install: perf-tools is over 8 MiB (is the release profile still stripped, with LTO?)" >&2
  exit 1
fi
echo "install: ok"

if [ "${PT_SKIP_VM:-0}" = 1 ]; then
  step "VM tests skipped (PT_SKIP_VM=1)"
else
  step "VM tests (stock Debian kernels under QEMU)"
  scripts/vm/setup.sh
  scripts/vm/test.sh

  step "state-leak matrix (tests/README.md) regenerated from this run's results"
  cp tests/README.md target/leak-matrix/README.checked-in.md
  # Fails when a cell is FAIL or not run (after writing the table).
  cargo run -q -p docgen -- leak-table
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    differs() { ! git diff --exit-code -- tests/README.md; }
  else
    differs() { ! diff -u target/leak-matrix/README.checked-in.md tests/README.md; }
  fi
  if differs; then
    echo "tests/README.md: the checked-in leak matrix is not what the tests produced (diff above); commit the regenerated table" >&2
    exit 1
  fi
fi

step "leftover check"
left=$(ls /sys/kernel/tracing/instances 2>/dev/null || true)
if [ -n "$left" ]; then
  echo "tracefs instances left behind by the tests: $left" >&2
  exit 1
fi
echo "all test stages passed"
