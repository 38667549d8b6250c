#!/usr/bin/env bash
# Installs perf-tools-rs: release binaries, man pages and bash/zsh/fish completions.
#   scripts/install.sh [PREFIX]   as root, or with sudo (default PREFIX: /usr/local)
#   DESTDIR=/tmp/stage scripts/install.sh /usr (staged install, e.g. for packaging)
# Per tool, `cargo install --path crates/<tool>` also works (binary only).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
root="${DESTDIR:-}$prefix"

cargo build --release --workspace --bins -q
mapfile -t tools < <(cargo run -q -p docgen -- list)
comp=$(mktemp -d)
trap 'rm -rf "$comp"' EXIT
cargo run -q -p docgen -- completions "$comp" >/dev/null

install -d "$root/bin" "$root/share/man/man8" "$root/share/bash-completion/completions" \
  "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
for t in "${tools[@]}"; do
  install -m 0755 "target/release/$t" "$root/bin/$t"
  install -m 0644 "man/man8/$t.8" "$root/share/man/man8/$t.8"
  install -m 0644 "$comp/bash/$t.bash" "$root/share/bash-completion/completions/$t"
  install -m 0644 "$comp/zsh/_$t" "$root/share/zsh/site-functions/_$t"
  install -m 0644 "$comp/fish/$t.fish" "$root/share/fish/vendor_completions.d/$t.fish"
  echo "installed $t"
done
echo "binaries in $root/bin, man pages in $root/share/man/man8, completions for bash, zsh and fish"
