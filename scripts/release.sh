#!/usr/bin/env bash
# Builds the release artefacts of perf-tools-rs into target/dist/ (run as root or not):
#   perf-tools-rs-<version>-x86_64/perf-tools   the static multi-call binary (every tool)
#   perf-tools-rs-<version>-x86_64/bin/<tool>   each tool's own static binary
#   perf-tools-rs-<version>-x86_64.tar.gz       both, with the man pages and completions
#   perf-tools-rs_<version>_amd64.deb           /usr/bin/perf-tools, a link per tool, man
#                                               pages and completions; depends on nothing
#   SHA256SUMS                                  of the three files above and every binary
# and prints the sizes. Usage: scripts/release.sh [--multicall-only] [--no-build]
#   --multicall-only  only the multi-call binary (and the tarball and .deb of it): what CI
#                builds, once, for the install test, the .deb test and the VM tests
#   --no-build        package what scripts/vm/build-static.sh built last
#
# Static: glibc's static libc.a through +crt-static (scripts/vm/build-static.sh; the musl
# target is not installable here). Every binary is checked to be static and to contain no
# NSS lookup (getpw*, getgr*, getaddrinfo, gethostby*: a static glibc would load the shared
# NSS modules for them at run time). One exception, documented in README.md: glibc's
# static libc links its own dlopen (for iconv's character-set modules); nothing in the
# tools calls iconv, so it is never used.
# Needs: cargo, libc6-dev, dpkg-deb, gzip, sha256sum (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1 only_mc=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --multicall-only) only_mc=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument $a (try --help)" >&2; exit 2 ;;
  esac
done
die() { echo "release.sh: $*" >&2; exit 1; }

missing=()
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v gzip >/dev/null || missing+=(gzip)
command -v nm >/dev/null || missing+=(binutils)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(grep -m1 '^version = ' Cargo.toml | sed 's/^version = "\(.*\)"/\1/')
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
if [ "$build" = 1 ] && [ "$only_mc" = 1 ]; then
  bindir=$(scripts/vm/build-static.sh -p perf-tools | tail -1)
elif [ "$build" = 1 ]; then
  bindir=$(scripts/vm/build-static.sh | tail -1)
else
  bindir=target/static/x86_64-unknown-linux-gnu/ship
fi
[ -x "$bindir/perf-tools" ] || die "$bindir/perf-tools is missing (run without --no-build)"
mapfile -t tools < <(cargo run -q -p docgen -- list | grep -vx perf-tools)
[ ${#tools[@]} -gt 0 ] || die "docgen list named no tools"

dist=target/dist
name=perf-tools-rs-$version-x86_64
rm -rf "$dist"
mkdir -p "$dist/$name/bin"

# ---- the binaries: static, no NSS -------------------------------------------
check_static() { # FILE
  if grep -q '=>' <<<"$(ldd "$1" 2>/dev/null)"; then die "$1 is dynamically linked"; fi
  # nm of a stripped binary sees no symbols; the static build's link warnings would name
  # them, so look for the NSS entry points' names in the file instead.
  local bad
  bad=$(grep -a -o -E '\b(getpwnam|getpwuid|getpwent|getgrnam|getgrgid|getgrouplist|initgroups|getaddrinfo|gethostbyname|gethostbyaddr|getservbyname|getnameinfo)(_r)?\b' "$1" | sort -u | tr '\n' ' ' || true)
  [ -z "$bad" ] || die "$1 refers to $bad: a static glibc binary would need glibc's shared NSS modules at run time"
}
install -m 0755 "$bindir/perf-tools" "$dist/$name/perf-tools"
check_static "$dist/$name/perf-tools"
if [ "$only_mc" = 0 ]; then
  for t in "${tools[@]}"; do
    [ -x "$bindir/$t" ] || die "$bindir/$t is missing (run without --no-build)"
    install -m 0755 "$bindir/$t" "$dist/$name/bin/$t"
    check_static "$dist/$name/bin/$t"
  done
else
  rmdir "$dist/$name/bin"
fi

# ---- man pages and completions ----------------------------------------------
comp=$(mktemp -d)
trap 'rm -rf "$comp"' EXIT
cargo run -q -p docgen -- completions "$comp" >/dev/null
share=$dist/$name/share
mkdir -p "$share/man/man8" "$share/bash-completion/completions" "$share/zsh/vendor-completions" \
  "$share/fish/vendor_completions.d"
for t in "${tools[@]}" perf-tools; do
  gzip -9n <"man/man8/$t.8" >"$share/man/man8/$t.8.gz"
  install -m 0644 "$comp/bash/$t.bash" "$share/bash-completion/completions/$t"
  install -m 0644 "$comp/zsh/_$t" "$share/zsh/vendor-completions/_$t"
  install -m 0644 "$comp/fish/$t.fish" "$share/fish/vendor_completions.d/$t.fish"
done
tar -C "$dist" --owner=0 --group=0 --sort=name -czf "$dist/$name.tar.gz" "$name"

# ---- the Debian package -----------------------------------------------------
deb=$dist/deb
mkdir -p "$deb/DEBIAN" "$deb/usr/bin" "$deb/usr/share/doc/perf-tools-rs"
install -m 0755 "$dist/$name/perf-tools" "$deb/usr/bin/perf-tools"
for t in "${tools[@]}"; do ln -s perf-tools "$deb/usr/bin/$t"; done
cp -r "$share" "$deb/usr/"
printf 'perf-tools-rs %s\nLicense: GPL-2.0-or-later\nA Rust port of Brendan Gregg'"'"'s perf-tools, msr-cloud-tools and pmc-cloud-tools.\n' \
  "$version" >"$deb/usr/share/doc/perf-tools-rs/copyright"
size_kb=$(du -sk --apparent-size "$deb/usr" | cut -f1)
cat >"$deb/DEBIAN/control" <<EOF
Package: perf-tools-rs
Version: $version
Architecture: amd64
Maintainer: perf-tools-rs developers <perf-tools-rs@example.invalid>
Installed-Size: $size_kb
Section: utils
Priority: optional
Homepage: https://example.invalid/perf-tools-rs
Description: Linux tracing and CPU-counter tools (iosnoop, opensnoop, execsnoop, ...)
 Rust ports of Brendan Gregg's perf-tools (ftrace), msr-cloud-tools and
 pmc-cloud-tools: iosnoop, iolatency, opensnoop, execsnoop, killsnoop, syscount,
 funcgraph, kprobe, uprobe and more, with the originals' options and columns. One
 statically linked multi-call binary, /usr/bin/perf-tools, and a link per tool.
 Run perf-tools-doctor to see what this kernel can trace.
EOF
chmod -R u+rwX,go+rX,go-w "$deb"
dpkg-deb --root-owner-group -Zxz --build "$deb" "$dist/perf-tools-rs_${version}_amd64.deb" >/dev/null
rm -rf "$deb"

sums=("$name.tar.gz" "perf-tools-rs_${version}_amd64.deb" "$name/perf-tools")
[ "$only_mc" = 1 ] || sums+=("${tools[@]/#/$name/bin/}")
(cd "$dist" && sha256sum "${sums[@]}" >SHA256SUMS)

# ---- sizes -------------------------------------------------------------------
kib() { echo $(( $(stat -c %s "$1") / 1024 )); }
printf 'release: %-40s %6d KiB\n' "perf-tools (multi-call, ${#tools[@]} tools)" "$(kib "$dist/$name/perf-tools")"
if [ "$only_mc" = 0 ]; then
  total=0
  for t in "${tools[@]}"; do total=$((total + $(stat -c %s "$dist/$name/bin/$t"))); done
  printf 'release: %-40s %6d KiB\n' "the ${#tools[@]} per-tool binaries together" $((total / 1024))
fi
printf 'release: %-40s %6d KiB\n' "$name.tar.gz" "$(kib "$dist/$name.tar.gz")"
printf 'release: %-40s %6d KiB\n' "perf-tools-rs_${version}_amd64.deb" "$(kib "$dist/perf-tools-rs_${version}_amd64.deb")"
echo "release: artefacts and SHA256SUMS in $dist"
