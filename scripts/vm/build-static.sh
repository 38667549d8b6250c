#!/usr/bin/env bash
# Builds the workspace's binaries as static executables for the VM guests
# (a busybox initramfs has no libc) and prints the directory that holds them.
#
# Usage: scripts/vm/build-static.sh [CARGO BUILD ARGS...]   (e.g. -p iosnoop)
#
# How: the installed gnu target with glibc's static libc.a (libc6-dev):
#   RUSTFLAGS='-C target-feature=+crt-static' \
#   cargo build --profile ship --target x86_64-unknown-linux-gnu
# (the "ship" profile of Cargo.toml: release with whole-program LTO, what release.sh ships)
# into CARGO_TARGET_DIR=target/static, so it never invalidates the normal
# target/ build. An explicit --target keeps RUSTFLAGS away from build scripts
# and proc macros, which stay dynamic host code. (The musl target is not
# installed and cannot be downloaded here.) Cargo's output goes to stderr; the
# last line on stdout is the binaries directory, for run.sh --bin.
set -euo pipefail
# shellcheck source=scripts/vm/common.sh
. "$(dirname "$0")/common.sh"

case "${1:-}" in
  -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
esac
TRIPLE=x86_64-unknown-linux-gnu
command -v cargo >/dev/null || die "cargo not found"
if command -v rustup >/dev/null && ! grep -qx "$TRIPLE" <<<"$(rustup target list --installed 2>/dev/null)"; then
  die "rust target $TRIPLE is not installed (rustup target list --installed)"
fi
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || die "glibc's libc.a is missing: apt-get install libc6-dev"

cd "$REPO_ROOT"
# No debug info: run.sh strips it from what goes into a guest anyway, and without
# it the build and the links are quicker (CARGO_PROFILE_RELEASE_DEBUG overrides).
CARGO_TARGET_DIR=$STATIC_TARGET RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  CARGO_PROFILE_SHIP_DEBUG=${CARGO_PROFILE_SHIP_DEBUG:-false} \
  cargo build --profile ship --target "$TRIPLE" --bins "$@" >&2 \
  || die "static build failed (CARGO_TARGET_DIR=$STATIC_TARGET)"

# Every binary must really be static, or it will not start in the guest.
n=0
for f in "$STATIC_BIN_DIR"/*; do
  if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
  n=$((n + 1))
  if grep -q '=>' <<<"$(ldd "$f" 2>/dev/null)"; then
    die "$f is dynamically linked: $(ldd "$f" | tr '\n' ' ')"
  fi
done
[ "$n" -gt 0 ] || die "no binaries in $STATIC_BIN_DIR after the build"
echo "$STATIC_BIN_DIR"
