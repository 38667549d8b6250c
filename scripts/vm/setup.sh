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

# candidates REGEX -> "NAME VERSION" of every linux-image-* package matching REGEX that
# has a candidate version. One apt-cache call for all names.
candidates() {
  local names
  names=$(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- | grep -E "$1" || true)
  [ -n "$names" ] || return 0
  # shellcheck disable=SC2086  # $names: one word per package name
  apt-cache "${APT_OPTS[@]}" policy $names |
    awk '/^[^ ].*:$/ { n = substr($0, 1, length($0) - 1) } /^  Candidate:/ && $2 != "(none)" { print n, $2 }'
}
# parts NAME VERSION -> the packages that make up this kernel, "NAME=VERSION" per line:
# the linux-image package itself and, for the split layout of newer Debian kernels
# (linux-image-* a metapackage of a few KB), its linux-binary-* (the image, at
# usr/lib/modules/<ver>/vmlinuz), linux-modules-* (the modules, .ko.xz) and
# linux-base-* (modules.builtin, modules.order, config) of the same version.
# Fails when a linux-binary-* or linux-modules-* part has no candidate of that version.
# A linux-base-* part is optional: transitional images (e.g. 6.18.15+deb13) depend on
# one the registry no longer carries while holding the image, modules and
# modules.builtin themselves; if the kernel really needs it, the checks below (no
# vmlinuz, no modules) say so.
parts() {
  local dep v
  echo "$1=$2"
  while read -r dep; do
    v=$(apt-cache "${APT_OPTS[@]}" policy "$dep" | awk '/^  Candidate:/ { print $2 }')
    if [ "$v" != "$2" ]; then
      case "$dep" in
        linux-base-*) note "$1 $2: $dep of that version is not available; going on without it"; continue ;;
        *) return 1 ;;
      esac
    fi
    echo "$dep=$v"
  done < <(apt-cache "${APT_OPTS[@]}" show "$1=$2" 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1 |
           tr ',' '\n' | sed -n 's/^ *\(linux-\(binary\|modules\|base\)-[^ ]*\) (= [^)]*)$/\1/p')
}

for id in "${todo[@]}"; do
  read -r _ _ regex _ < <(kernel_line "$id")
  cands=$(candidates "$regex")
  [ -n "$cands" ] || die "kernel $id: no package with a candidate version matches /$regex/ in suites $(kernel_line "$id" | awk '{print $2}'); fix $KERNELS_TXT"
  # Newest first by dpkg's version order; the first whose parts are all available wins.
  sorted=()
  while read -r n v; do
    i=${#sorted[@]}
    while [ "$i" -gt 0 ] && dpkg --compare-versions "$v" gt "${sorted[$((i - 1))]#* }"; do
      sorted[i]=${sorted[$((i - 1))]}
      i=$((i - 1))
    done
    sorted[i]="$n $v"
  done <<<"$cands"
  best='' bestver='' pkgs=''
  for c in "${sorted[@]}"; do
    if pkgs=$(parts "${c% *}" "${c#* }"); then best=${c% *} bestver=${c#* }; break; fi
    note "kernel $id: ${c% *} ${c#* } skipped: a linux-binary-/-modules-/-base- package it needs has no candidate of that version"
  done
  [ -n "$best" ] || die "kernel $id: packages match /$regex/ but none has all its parts (linux-binary-*, linux-modules-*, linux-base-*) available"
  kd=$(kernel_dir "$id")
  want=$(while IFS='=' read -r p v; do echo "${p}_${v}_amd64.deb"; done <<<"$pkgs")
  have=
  if [ -f "$kd/debs" ]; then have=$(cat "$kd/debs")
  elif [ -f "$kd/package" ]; then have="$(cat "$kd/package")_$(cat "$kd/version")_amd64.deb"
  fi
  if kernel_ready "$id" && [ "$have" = "$want" ]; then
    note "kernel $id: $best $bestver (cached, still the newest)"
    continue
  fi
  debs=()
  while IFS='=' read -r p v; do
    deb=$VM_CACHE/debs/${p}_${v}_amd64.deb
    if [ ! -s "$deb" ]; then
      note "kernel $id: downloading $p=$v"
      tmp=$(mktemp -d "$VM_CACHE/debs/dl.XXXXXX")
      chmod 777 "$tmp"   # apt-get download runs as the _apt sandbox user
      (cd "$tmp" && apt-get "${APT_OPTS[@]}" download -qq "$p=$v" </dev/null) \
        || { rm -rf "$tmp"; die "kernel $id: apt-get download $p=$v failed"; }
      mv "$tmp"/*.deb "$deb"
      rm -rf "$tmp"
    fi
    debs+=("$deb")
  done <<<"$pkgs"
  rm -rf "$kd.new"
  mkdir -p "$kd.new"
  for deb in "${debs[@]}"; do
    note "kernel $id: extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$kd.new/root" || die "kernel $id: dpkg-deb -x $deb failed"
  done
  moddir=
  for d in "$kd.new"/root/lib/modules/* "$kd.new"/root/usr/lib/modules/*; do
    [ -d "$d/kernel" ] && { moddir=$d; break; }
  done
  [ -n "$moddir" ] || die "kernel $id: no lib/modules/<version>/kernel in ${debs[*]}"
  kver=$(basename "$moddir")
  # The image: boot/vmlinuz-<ver> (one linux-image package), or
  # usr/lib/modules/<ver>/vmlinuz (linux-binary-*, the split layout).
  vmlinuz=
  for f in "boot/vmlinuz-$kver" "usr/lib/modules/$kver/vmlinuz" "lib/modules/$kver/vmlinuz"; do
    [ -f "$kd.new/root/$f" ] && { vmlinuz=$f; break; }
  done
  [ -n "$vmlinuz" ] || die "kernel $id: no boot/vmlinuz-$kver or usr/lib/modules/$kver/vmlinuz in ${debs[*]}"
  echo "$kver" >"$kd.new/kver"
  echo "$best" >"$kd.new/package"
  echo "$bestver" >"$kd.new/version"
  printf '%s\n' "${debs[@]##*/}" >"$kd.new/debs"
  echo "${moddir#"$kd.new/root/"}" >"$kd.new/moddir"
  ln -s "root/$vmlinuz" "$kd.new/vmlinuz"
  touch "$kd.new/ready"
  old=()
  if [ -f "$kd/debs" ]; then
    mapfile -t old <"$kd/debs"
  elif [ -f "$kd/package" ]; then
    old=("$(cat "$kd/package")_$(cat "$kd/version")_amd64.deb")
  fi
  rm -rf "$kd"
  mv "$kd.new" "$kd"
  for o in "${old[@]}"; do
    [[ " ${debs[*]##*/} " == *" $o "* ]] || rm -f "$VM_CACHE/debs/$o"
  done
  note "kernel $id: ready, $best $bestver (uname -r $kver; $(basename -a "${debs[@]}" | tr '\n' ' '))"
done
