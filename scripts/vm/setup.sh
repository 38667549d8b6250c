#!/usr/bin/env bash
# Prepares the VM test harness: host packages and guest kernels. Idempotent and
# fast when everything is cached (no network access then).
#
# Usage: scripts/vm/setup.sh [--refresh] [ID...]
#   ID...      kernels of scripts/vm/kernels.txt to prepare (default: all)
#   --refresh  re-read the apt lists and re-resolve the newest package of each
#              kernel (otherwise a kernel once downloaded is kept)
#
# Host packages (installed only when missing, as root):
#   qemu-system-x86 busybox-static  (--no-install-recommends: 17 MB, not 129 MB)
#   xz-utils zstd binutils          (module decompression, reading .modinfo)
# Guest kernels: `apt-get download` + `dpkg-deb -x` into target/vm/cache/,
# using a private apt sources list (target/vm/cache/apt/) built from the
# SUITES column of kernels.txt, so the machine's /etc/apt is left alone.
set -euo pipefail
# shellcheck source=scripts/vm/common.sh
. "$(dirname "$0")/common.sh"

refresh=
ids=()
while [ $# -gt 0 ]; do
  case "$1" in
    --refresh) refresh=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ids+=("$1") ;;
  esac
  shift
done
[ ${#ids[@]} -gt 0 ] || mapfile -t ids < <(kernel_ids)
for id in "${ids[@]}"; do kernel_line "$id" >/dev/null || die "no kernel '$id' in $KERNELS_TXT (have: $(kernel_ids | tr '\n' ' '))"; done

export DEBIAN_FRONTEND=noninteractive

# ---- host packages -------------------------------------------------------
pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
missing=()
for p in qemu-system-x86 busybox-static; do pkg_installed "$p" || missing+=("$p"); done
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
command -v objcopy >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "host packages missing: ${missing[*]}; run this script as root (or: apt-get install --no-install-recommends ${missing[*]})"
  # apt-get update only when some package has no install candidate (fresh machine).
  for p in "${missing[@]}"; do
    pol=$(apt-cache policy "$p" 2>/dev/null || true)
    if ! echo "$pol" | grep 'Candidate: [0-9]' >/dev/null; then
      note "apt-get update (no candidate for $p)"
      apt-get update -qq || die "apt-get update failed"
      break
    fi
  done
  note "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
[ -x /bin/busybox ] || die "/bin/busybox missing although busybox-static is installed"
if grep -q '=>' <<<"$(ldd /bin/busybox 2>/dev/null)"; then
  die "/bin/busybox is dynamically linked; the guest needs busybox-static (apt-get install busybox-static)"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found after installing qemu-system-x86"

# ---- guest kernels -------------------------------------------------------
todo=()
for id in "${ids[@]}"; do
  if [ -n "$refresh" ] || ! kernel_ready "$id"; then todo+=("$id"); fi
done
if [ ${#todo[@]} -eq 0 ]; then
  note "ready: kernels ${ids[*]} ($VM_CACHE/kernels)"
  exit 0
fi

# Private apt configuration: sources from the SUITES column of every kernel.
APT_DIR=$VM_CACHE/apt
mkdir -p "$APT_DIR/lists/partial" "$VM_CACHE/debs"
sources=$(kernel_lines | awk '{print $2}' | tr ',' '\n' | sort -u | while read -r s; do
  case "$s" in
    *-security) echo "deb http://deb.debian.org/debian-security $s main" ;;
    *) echo "deb http://deb.debian.org/debian $s main" ;;
  esac
done)
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::lists=$APT_DIR/lists" -o "Dir::Cache::pkgcache=$APT_DIR/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$APT_DIR/srcpkgcache.bin"
          -o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
          -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
          -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
if [ -n "$refresh" ] || [ "$(cat "$APT_DIR/sources.list" 2>/dev/null)" != "$sources" ] || [ ! -f "$APT_DIR/updated" ]; then
  printf '%s\n' "$sources" >"$APT_DIR/sources.list"
  rm -f "$APT_DIR/updated"
  note "apt-get update (private lists: $(echo "$sources" | awk '{print $3}' | tr '\n' ' '))"
  apt-get "${APT_OPTS[@]}" update -qq </dev/null || die "apt-get update with $APT_DIR/sources.list failed (is deb.debian.org reachable?)"
  touch "$APT_DIR/updated"
fi

for id in "${todo[@]}"; do
  read -r _ _ regex < <(kernel_line "$id")
  names=$(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- | grep -E "$regex" || true)
  [ -n "$names" ] || die "kernel $id: no package matches /$regex/ in suites $(kernel_line "$id" | awk '{print $2}'); fix $KERNELS_TXT"
  best='' bestver=''
  # One apt-cache call for all names: "NAME VERSION" per package with a candidate.
  # shellcheck disable=SC2086  # $names: one word per package name
  while read -r n v; do
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestver"; then best=$n bestver=$v; fi
  done < <(apt-cache "${APT_OPTS[@]}" policy $names |
           awk '/^[^ ].*:$/ { n = substr($0, 1, length($0) - 1) } /^  Candidate:/ && $2 != "(none)" { print n, $2 }')
  [ -n "$best" ] || die "kernel $id: packages match /$regex/ but none has a candidate version"
  kd=$(kernel_dir "$id")
  if kernel_ready "$id" && [ "$(cat "$kd/package")=$(cat "$kd/version")" = "$best=$bestver" ]; then
    note "kernel $id: $best $bestver (cached, still the newest)"
    continue
  fi
  deb=$VM_CACHE/debs/${best}_${bestver}_amd64.deb
  if [ ! -s "$deb" ]; then
    note "kernel $id: downloading $best=$bestver"
    tmp=$(mktemp -d "$VM_CACHE/debs/dl.XXXXXX")
    chmod 777 "$tmp"   # apt-get download runs as the _apt sandbox user
    (cd "$tmp" && apt-get "${APT_OPTS[@]}" download -qq "$best=$bestver" </dev/null) \
      || { rm -rf "$tmp"; die "kernel $id: apt-get download $best=$bestver failed"; }
    mv "$tmp"/*.deb "$deb"
    rm -rf "$tmp"
  fi
  note "kernel $id: extracting $(basename "$deb")"
  rm -rf "$kd.new"
  mkdir -p "$kd.new"
  dpkg-deb -x "$deb" "$kd.new/root" || die "kernel $id: dpkg-deb -x $deb failed"
  moddir=
  for d in "$kd.new"/root/lib/modules/* "$kd.new"/root/usr/lib/modules/*; do
    [ -d "$d/kernel" ] && { moddir=$d; break; }
  done
  [ -n "$moddir" ] || die "kernel $id: no lib/modules/<version> in $deb"
  kver=$(basename "$moddir")
  [ -f "$kd.new/root/boot/vmlinuz-$kver" ] || die "kernel $id: no boot/vmlinuz-$kver in $deb"
  echo "$kver" >"$kd.new/kver"
  echo "$best" >"$kd.new/package"
  echo "$bestver" >"$kd.new/version"
  echo "${moddir#"$kd.new/root/"}" >"$kd.new/moddir"
  ln -s "root/boot/vmlinuz-$kver" "$kd.new/vmlinuz"
  touch "$kd.new/ready"
  old=
  [ -f "$kd/package" ] && old=$VM_CACHE/debs/$(cat "$kd/package")_$(cat "$kd/version")_amd64.deb
  rm -rf "$kd"
  mv "$kd.new" "$kd"
  [ -n "$old" ] && [ "$old" != "$deb" ] && rm -f "$old"
  note "kernel $id: ready, $best $bestver (uname -r $kver)"
done
