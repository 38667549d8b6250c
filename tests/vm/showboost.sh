# showboost in a QEMU TCG guest, where msr.ko loads but every MSR reads 0 and the
# perf msr PMU has no aperf/mperf: it reads /dev/cpu/N/msr, reports the all-zero
# APERF/MPERF clearly (exit 1), loads msr.ko itself with modprobe when the device
# is missing, and explains a guest with neither source.
# needs: showboost
# sets: trixie
# timeout: 120
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

# exits WANT CMD...: true when CMD exits with status WANT (its output stays visible).
exits() {
  _want=$1
  shift
  "$@"
  [ $? -eq "$_want" ]
}

check "msr driver loaded by /init: /dev/cpu/0/msr" test -c /dev/cpu/0/msr
check_grep "reads APERF/MPERF from /dev/cpu/N/msr" '^showboost: APERF/MPERF from /dev/cpu/N/msr' \
  exits 1 showboost 0.3 1
check_grep "all-zero APERF/MPERF: clear error, exit 1" \
  '^showboost: error: IA32_APERF/IA32_MPERF \(0xe8/0xe7\) read 0 and did not advance on CPU 0: the hypervisor returns 0 for these MSRs' \
  exits 1 showboost 0.3 1
check_grep "preamble and table header were printed" '^TIME +C0_MCYC +C0_ACYC +UTIL +RATIO +MHz$' \
  exits 1 showboost 0.3 1
check_grep "-A covers every online CPU" 'did not advance on CPU 0-1:' exits 1 showboost -A 0.3 1
check_grep "-C 7 (no such CPU): usage error, exit 2" 'CPU 7 is not online \(online CPUs: 0-1\)' \
  exits 2 showboost -C 7
check_grep "interval 0: usage error, exit 2" 'interval must be a positive number' exits 2 showboost 0

# Without the device, showboost runs "modprobe msr" itself. Busybox modprobe needs the
# module under /lib/modules/$(uname -r) with a modules.dep.
check "rmmod msr" rmmod msr
check "/dev/cpu/0/msr gone" test ! -e /dev/cpu/0/msr
KDIR=/lib/modules/$(uname -r)
mkdir -p "$KDIR" && cp /lib/modules/msr.ko "$KDIR/msr.ko"
check "depmod" depmod
check_grep "showboost loads msr.ko and reads /dev/cpu/N/msr" '^showboost: APERF/MPERF from /dev/cpu/N/msr' \
  exits 1 showboost 0.3 1
check_grep "msr module is loaded again" '^msr ' cat /proc/modules
check "/dev/cpu/0/msr is back" test -c /dev/cpu/0/msr

# Neither source: no msr driver (and none to load), no aperf/mperf perf events.
check "rmmod msr again" rmmod msr
rm -rf "$KDIR"
check_grep "no source: clear error naming both paths, exit 1" \
  '^showboost: error: no APERF/MPERF source: the hypervisor does not expose APERF/MPERF through MSRs or the perf msr PMU \(.*MSRs: no /dev/cpu/0/msr: kernel lacks CONFIG_X86_MSR or the msr module \(modprobe msr failed.*perf: the perf msr PMU has no aperf/mperf events' \
  exits 1 showboost
insmod /lib/modules/msr.ko 2>/dev/null
vm_finish
