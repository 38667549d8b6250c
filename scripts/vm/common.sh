# shellcheck shell=bash disable=SC2034
# Shared helpers of the VM test harness; sourced (bash) by setup.sh, run.sh,
# test.sh, build-static.sh and capture-fixtures.sh. Not executable on its own.

VM_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$VM_SCRIPTS/../.." && pwd)
VM_TARGET=$REPO_ROOT/target/vm          # everything generated; target/ is git-ignored
VM_CACHE=$VM_TARGET/cache               # apt lists, .deb files, extracted kernels
VM_LOGS=$VM_TARGET/logs                 # full console logs, one per (kernel, script)
KERNELS_TXT=$VM_SCRIPTS/kernels.txt
STATIC_TARGET=$REPO_ROOT/target/static  # CARGO_TARGET_DIR of build-static.sh
STATIC_BIN_DIR=$STATIC_TARGET/x86_64-unknown-linux-gnu/ship   # the "ship" profile (Cargo.toml)

die() { echo "${0##*/}: error: $*" >&2; exit 1; }
note() { [ -n "${VM_QUIET:-}" ] || echo "${0##*/}: $*" >&2; }

# Lines of kernels.txt without comments and blank lines: "ID SUITES REGEX".
kernel_lines() {
  [ -r "$KERNELS_TXT" ] || die "missing $KERNELS_TXT"
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$KERNELS_TXT"
}
kernel_ids() { kernel_lines | awk '{print $1}'; }
kernel_line() { # ID -> "ID SUITES REGEX", or fails
  kernel_lines | awk -v id="$1" '$1 == id { print; found = 1 } END { exit !found }'
}
default_kernel() { kernel_ids | head -n 1; }

# Directory of a prepared kernel (setup.sh fills it): vmlinuz, kver, package,
# version, root/ (the extracted .deb).
kernel_dir() { echo "$VM_CACHE/kernels/$1"; }
kernel_ready() { [ -f "$(kernel_dir "$1")/ready" ]; }

# Accelerator: hardware KVM only when kvm_intel/kvm_amd is loaded. /dev/kvm alone
# is not enough (on this project's machines it is PVM, which cannot boot a stock
# kernel).
pick_accel() {
  case "${VM_ACCEL:-auto}" in
    tcg|kvm) echo "$VM_ACCEL"; return ;;
    auto) ;;
    *) die "VM_ACCEL must be auto, tcg or kvm, not '$VM_ACCEL'" ;;
  esac
  if { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ]; then
    echo kvm
  else
    echo tcg
  fi
}
