#!/usr/bin/env bash
# Boots a stock Debian kernel under QEMU with a busybox initramfs and runs one
# guest test script in it; exits with that script's exit status.
#
# Usage: scripts/vm/run.sh [OPTIONS] GUEST_SCRIPT [ARGS...]
#   --kernel ID      kernel of scripts/vm/kernels.txt (default: its first line)
#   --bin PATH       put this binary into the guest's /bin (repeatable). A
#                    directory adds every executable file directly in it.
#                    Static binaries are best (scripts/vm/build-static.sh);
#                    for a dynamic one its ldd libraries are copied too.
#   --module NAME    load this kernel module too (repeatable); always loaded:
#                    msr loop virtio_pci virtio_blk mq-deadline (and their
#                    dependencies; built-in ones are skipped)
#   --timeout SECS   fail when the guest has not finished by then (default 300)
#   --out DIR        copy what the guest script leaves in $VM_OUT into DIR
#   --log FILE       console log (default target/vm/logs/<kernel>-<script>.log)
#   --quiet          print the guest output only when the run fails
#   --append ARGS    extra kernel command line
# Environment: VM_ACCEL=auto|tcg|kvm (auto: kvm only if kvm_intel/kvm_amd is
#   loaded), VM_SMP (default 2), VM_MEM (default 512M).
#
# The guest script runs as /vm/<name> under busybox sh, with tests/vm/lib.sh at
# /vm/lib.sh, proc/sys/devtmpfs/tracefs/debugfs/tmpfs mounted, a 64 MiB scratch
# virtio disk ($VM_DISK). Its exit status comes back through the console line
# VM_TEST_EXIT=<rc>. Exit status of run.sh: the guest script's; 124 when the
# guest did not finish within the timeout; 125 when it ended without the marker
# (kernel panic, init crash) or QEMU failed; 2 for usage errors.
set -euo pipefail
# shellcheck source=scripts/vm/common.sh
. "$(dirname "$0")/common.sh"

kernel='' timeout=300 out='' log='' quiet='' append=''
bins=() modules=(msr loop virtio_pci virtio_blk mq-deadline) extra_modules=()
usage() { sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
need_arg() { [ $# -ge 2 ] || { echo "run.sh: $1 needs an argument" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) need_arg "$@"; kernel=$2; shift ;;
    --bin) need_arg "$@"; bins+=("$2"); shift ;;
    --module) need_arg "$@"; extra_modules+=("$2"); shift ;;
    --timeout) need_arg "$@"; timeout=$2; shift ;;
    --out) need_arg "$@"; out=$2; shift ;;
    --log) need_arg "$@"; log=$2; shift ;;
    --append) need_arg "$@"; append=$2; shift ;;
    --quiet) quiet=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
script=$1
shift
[ -f "$script" ] || { echo "run.sh: guest script $script not found" >&2; exit 2; }
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout needs whole seconds" >&2; exit 2; }
[ -n "$kernel" ] || kernel=$(default_kernel)
kernel_line "$kernel" >/dev/null || die "no kernel '$kernel' in $KERNELS_TXT (have: $(kernel_ids | tr '\n' ' '))"
name=$(basename "$script" .sh)
mkdir -p "$VM_LOGS"
[ -n "$log" ] || log=$VM_LOGS/$kernel-$name.log

# Host packages and the kernel: setup.sh is a no-op when both are cached.
if ! kernel_ready "$kernel" || ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ]; then
  "$VM_SCRIPTS/setup.sh" "$kernel" >&2 || die "setup.sh $kernel failed"
fi
kd=$(kernel_dir "$kernel")
kroot=$kd/root/$(cat "$kd/moddir")

work=$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX")
qpid=
cleanup() {
  [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The initramfs is two concatenated gzip'ed cpio archives (the kernel unpacks
# them in turn): a cached base with busybox and its applet links, and this run's
# modules, binaries, scripts and /init.
mkcpio() { # DIR OUT
  (cd "$1" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$2") || die "building an initramfs archive from $1 failed"
}
base=$VM_CACHE/initramfs/busybox-$(stat -c %s-%Y /bin/busybox).cpio.gz
if [ ! -s "$base" ]; then
  mkdir -p "$VM_CACHE/initramfs" "$work/base"/{bin,sbin,usr/bin,usr/sbin,etc}
  cp /bin/busybox "$work/base/bin/busybox"
  /bin/busybox --list-full | while read -r applet; do
    [ -e "$work/base/$applet" ] || ln -s /bin/busybox "$work/base/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$work/base/etc/passwd"
  printf 'root:x:0:\n' >"$work/base/etc/group"
  find "$VM_CACHE/initramfs" -name 'busybox-*.cpio.gz' ! -name "${base##*/}" -delete
  mkcpio "$work/base" "$base.$$.tmp"   # parallel runs (test.sh -j) may race here
  mv "$base.$$.tmp" "$base"
fi
stage=$work/root
mkdir -p "$stage"/{bin,lib/modules,proc,sys,dev,tmp,root,vm,out,mnt}

# ---- kernel modules, decompressed, in dependency order ---------------------
declare -A modfile=() builtin=() loaded=()
while IFS= read -r f; do
  b=${f##*/}; b=${b%%.ko*}; modfile[${b//-/_}]=$f
done < <(find "$kroot/kernel" -name '*.ko*')
if [ -f "$kroot/modules.builtin" ]; then
  while IFS= read -r f; do b=${f##*/}; b=${b%%.ko*}; builtin[${b//-/_}]=1; done <"$kroot/modules.builtin"
fi
add_module() { # NAME REQUIRED
  local n=${1//-/_} f dst deps d
  [ -z "${loaded[$n]:-}" ] || return 0
  loaded[$n]=1
  [ -z "${builtin[$n]:-}" ] || return 0
  f=${modfile[$n]:-}
  if [ -z "$f" ]; then
    [ "$2" = required ] && die "kernel $kernel has no module '$1' (not in $kroot/kernel, not built in)"
    note "kernel $kernel has no module '$1'; not loaded"
    return 0
  fi
  dst=$stage/lib/modules/$n.ko
  case "$f" in
    *.ko) cp "$f" "$dst" ;;
    *.ko.xz) xz -dc "$f" >"$dst" ;;
    *.ko.zst) zstd -dcq "$f" >"$dst" ;;
    *.ko.gz) gzip -dc "$f" >"$dst" ;;
    *) die "unknown module compression: $f" ;;
  esac
  objcopy -O binary --only-section=.modinfo "$dst" "$work/modinfo" || die "cannot read .modinfo of $f"
  deps=$(tr '\0' '\n' <"$work/modinfo" | sed -n 's/^depends=//p' | tr ',' ' ')
  for d in $deps; do add_module "$d" required; done
  echo "$n" >>"$stage/lib/modules/load.order"
}
: >"$stage/lib/modules/load.order"
for m in "${modules[@]}"; do add_module "$m" optional; done
for m in "${extra_modules[@]}"; do add_module "$m" required; done

# ---- test binaries ----------------------------------------------------------
add_bin() { # FILE
  local f=$1 dst lib
  dst=$stage/bin/$(basename "$f")
  objcopy --strip-debug "$f" "$dst" 2>/dev/null || cp "$f" "$dst"
  chmod 755 "$dst"
  # A dynamic binary needs its libraries and loader in the guest.
  if grep -q '=> /\|^[[:space:]]*/' <<<"$(ldd "$f" 2>/dev/null)"; then
    for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
      [ -e "$stage$lib" ] && continue
      mkdir -p "$stage$(dirname "$lib")"
      cp -L "$lib" "$stage$lib"
    done
  fi
}
for b in "${bins[@]}"; do
  if [ -d "$b" ]; then
    n=0
    for f in "$b"/*; do
      if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
      add_bin "$f"
      n=$((n + 1))
    done
    [ "$n" -gt 0 ] || die "--bin $b: no executable files in that directory"
  elif [ -f "$b" ] && [ -x "$b" ]; then
    add_bin "$b"
  else
    die "--bin $b: not an executable file or a directory (build it first, e.g. scripts/vm/build-static.sh)"
  fi
done

# The multi-call binary stands for every tool it carries that no --bin supplied: a link
# per tool, as `perf-tools --install-links` makes them (what ships is what is tested).
if [ -x "$stage/bin/perf-tools" ]; then
  mc_tools=$("$stage/bin/perf-tools" --list) || die "$stage/bin/perf-tools --list failed"
  for t in $mc_tools; do
    [ -e "$stage/bin/$t" ] || ln -s perf-tools "$stage/bin/$t"
  done
fi

# ---- guest script, helpers, /init ------------------------------------------
cp "$REPO_ROOT/tests/vm/lib.sh" "$stage/vm/lib.sh"
cp "$script" "$stage/vm/$name.sh"
quote() { printf "'%s' " "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
  printf 'set -- '
  for a in "$@"; do quote "$a"; done
  echo
} >"$stage/vm/args"
cat >"$stage/vm/env" <<EOF
VM_KERNEL='$kernel'
VM_SCRIPT='$name'
EOF
cat >"$stage/init" <<'EOF'
#!/bin/sh
# Generated by scripts/vm/run.sh.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing || echo "VM: cannot mount tracefs"
while read -r m; do
  insmod "/lib/modules/$m.ko" || echo "VM: insmod $m failed"
done </lib/modules/load.order
. /vm/env
. /vm/lib.sh
# Virtio disks by serial: vmscratch -> $VM_DISK, vmout -> output tar.
VM_DISK= VM_OUT= outdev=
i=0
while [ $i -lt 50 ]; do
  for s in /sys/block/vd*/serial; do
    [ -r "$s" ] || continue
    case "$(cat "$s")" in
      vmscratch) d=${s%/serial}; VM_DISK=/dev/${d##*/} ;;
      vmout) d=${s%/serial}; outdev=/dev/${d##*/}; VM_OUT=/out ;;
    esac
  done
  [ -n "$VM_DISK" ] && { [ "$VM_WANT_OUT" = 0 ] || [ -n "$outdev" ]; } && [ -b "$VM_DISK" ] && break
  sleep 0.1
  i=$((i + 1))
done
[ -n "$VM_DISK" ] || echo "VM: scratch disk not found"
export VM_KERNEL VM_SCRIPT VM_DISK VM_OUT T
cd /tmp
echo "VM_TEST_BEGIN kernel=$VM_KERNEL uname=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
. /vm/args
sh "/vm/$VM_SCRIPT.sh" "$@"
rc=$?
echo "VM_TEST_END uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -n "$outdev" ]; then
  tar -cf "$outdev" -C /out . || { echo "VM: writing the output tar to $outdev failed"; rc=125; }
  sync
fi
vm_exit_marker "$rc"
sleep 0.2
poweroff -f
sleep 5
EOF
chmod 755 "$stage/init"
echo "VM_WANT_OUT=$([ -n "$out" ] && echo 1 || echo 0)" >>"$stage/vm/env"

mkcpio "$stage" "$work/run.cpio.gz"
cat "$base" "$work/run.cpio.gz" >"$work/initrd.gz"

# ---- boot -----------------------------------------------------------------
truncate -s 64M "$work/scratch.img"
drives=(-drive "file=$work/scratch.img,if=none,id=d0,format=raw,cache=unsafe"
        -device "virtio-blk-pci,drive=d0,serial=vmscratch")
if [ -n "$out" ]; then
  truncate -s 256M "$work/out.img"
  drives+=(-drive "file=$work/out.img,if=none,id=d1,format=raw,cache=unsafe"
           -device "virtio-blk-pci,drive=d1,serial=vmout")
fi
accel=$(pick_accel)
if [ "$accel" = kvm ]; then
  cpu=(-accel kvm -cpu host)
else
  # -cx16: QEMU 7.2 TCG mis-emulates cmpxchg16b in Linux >= 6.8 with -smp 2
  # (random early-boot oopses).
  # thread=single: all vCPUs in one host thread. With one thread per vCPU
  # (multi-threaded TCG), a vCPU can run a stale translation of kernel text
  # another vCPU just live-patched: enabling tracepoints patches static keys
  # with int3 breakpoints, and a 6.12 guest once died with "Oops: int3" in
  # __schedule mid-test (1 of 30 CI runs). VM_TCG_THREAD=multi restores it.
  # shellcheck disable=SC2054  # the commas are QEMU's option syntax
  cpu=(-accel "tcg,thread=${VM_TCG_THREAD:-single}" -cpu max,-cx16)
fi
# -nodefaults/-display none/-monitor none instead of -nographic: the serial
# console goes alone into the log file, without the monitor multiplexed in.
qemu=(qemu-system-x86_64 "${cpu[@]}" -m "${VM_MEM:-512M}" -smp "${VM_SMP:-2}"
      -nodefaults -display none -monitor none -serial "file:$log" -no-reboot
      -kernel "$kd/vmlinuz" -initrd "$work/initrd.gz"
      -append "console=ttyS0 quiet panic=-1 $append" "${drives[@]}")
[ -n "$quiet" ] || note "booting $(cat "$kd/package") ($accel) with $name.sh; log: $log"
clean_log() { tr -d '\r' <"$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1b[c()][0-9A-Za-z]\{0,1\}//g'; }
# A kernel that crashes while booting, before the guest script began (no
# VM_TEST_BEGIN), says nothing about the code under test: under TCG, 6.8+
# kernels occasionally oops early. Boot again,
# up to 3 times, keeping each crashed console log; a crash after
# VM_TEST_BEGIN is never retried.
for attempt in 1 2 3; do
  start=$(date +%s.%N)
  set +e
  timeout -k 5 "$timeout" "${qemu[@]}" </dev/null >"$work/qemu.err" 2>&1 &
  qpid=$!
  wait "$qpid"
  qrc=$?
  qpid=
  set -e
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  [ -f "$log" ] || : >"$log"
  if [ "$attempt" -lt 3 ] && [ "$qrc" -ne 124 ] && [ "$qrc" -ne 137 ] && ! clean_log | grep -q '^VM_TEST_BEGIN' \
     && clean_log | grep -q 'Kernel panic\|Oops\|general protection fault\|BUG:'; then
    cp "$log" "$log.bootcrash$attempt"
    note "kernel $kernel crashed while booting, before $name.sh began (attempt $attempt; log kept in $log.bootcrash$attempt): booting again"
    continue
  fi
  break
done

# ---- result ---------------------------------------------------------------
[ -f "$log" ] || : >"$log"
marker=$(clean_log | sed -n 's/^VM_TEST_EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
guest_output() { clean_log | sed -n '/^VM_TEST_BEGIN/,/^VM_TEST_EXIT=/p'; }
if [ -n "$marker" ]; then
  rc=$marker
  if [ -n "$out" ]; then
    mkdir -p "$out"
    tar -xf "$work/out.img" -C "$out" || { echo "run.sh: cannot unpack the guest's output disk" >&2; rc=125; }
  fi
  if [ "$rc" -ne 0 ] || [ -z "$quiet" ]; then guest_output; fi
  [ -n "$quiet" ] || note "kernel $kernel: $name.sh exited $rc in ${secs}s (boot to poweroff)"
  exit "$rc"
fi
# No marker: say why, with the console tail.
echo "----- console log $log (last 60 lines) -----" >&2
clean_log | tail -n 60 >&2
[ -s "$work/qemu.err" ] && { echo "----- qemu stderr -----" >&2; cat "$work/qemu.err" >&2; }
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "run.sh: FAILED: kernel $kernel, $name.sh: the guest did not finish within ${timeout}s (no VM_TEST_EXIT marker); raise --timeout or look for a hang in the log above" >&2
  exit 124
fi
echo "run.sh: FAILED: kernel $kernel, $name.sh: the guest ended after ${secs}s without the VM_TEST_EXIT marker (qemu exit status $qrc: kernel panic, init crash or QEMU error; see the log above)" >&2
exit 125
