#!/usr/bin/env bash
# Installs perf-tools-rs: the multi-call binary `perf-tools` with a link per tool
# (iosnoop, opensnoop, ...: each runs as that tool), man pages and bash/zsh/fish
# completions.
#   scripts/install.sh [PREFIX]   as root, or with sudo (default PREFIX: /usr/local)
#   DESTDIR=/tmp/stage scripts/install.sh /usr (staged install, e.g. for packaging)
#   PT_INSTALL_BIN=FILE scripts/install.sh ... installs FILE as perf-tools instead of
#   building it (CI: the static one scripts/release.sh built)
# One tool's own binary instead: `cargo install --path crates/<tool>`. A static file for
# another machine: scripts/release.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
root="${DESTDIR:-}$prefix"

bin=${PT_INSTALL_BIN:-}
if [ -z "$bin" ]; then
  cargo build --profile ship -p perf-tools -q
  bin=target/ship/perf-tools
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable file" >&2; exit 1; }
mapfile -t tools < <(cargo run -q -p docgen -- list | grep -vx perf-tools)
comp=$(mktemp -d)
trap 'rm -rf "$comp"' EXIT
cargo run -q -p docgen -- completions "$comp" >/dev/null

install -d "$root/bin" "$root/share/man/man8" "$root/share/bash-completion/completions" \
  "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$root/bin/perf-tools"
for t in "${tools[@]}" perf-tools; do
  # A per-tool binary of an earlier install is replaced by the link.
  [ "$t" = perf-tools ] || ln -sfn perf-tools "$root/bin/$t"
  install -m 0644 "man/man8/$t.8" "$root/share/man/man8/$t.8"
  install -m 0644 "$comp/bash/$t.bash" "$root/share/bash-completion/completions/$t"
  install -m 0644 "$comp/zsh/_$t" "$root/share/zsh/site-functions/_$t"
  install -m 0644 "$comp/fish/$t.fish" "$root/share/fish/vendor_completions.d/$t.fish"
  echo "installed $t"
done
echo "$root/bin/perf-tools and a link per tool, man pages in $root/share/man/man8, completions for bash, zsh and fish"
