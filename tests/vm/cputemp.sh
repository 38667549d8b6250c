# cputemp in a QEMU TCG guest: msr.ko is loaded but every MSR reads 0, and there is
# no hwmon. Whatever the vCPU vendor, cputemp must end with the clear "no
# temperature source" error (exit 1), never print temperatures from zeros; with an
# Intel vCPU the reason names the TjMax register that read 0.
# needs: cputemp
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
check "no hwmon CPU sensor in this guest" sh -c '! grep -qsE "^(coretemp|k10temp|zenpower)$" /sys/class/hwmon/hwmon*/name'
check_grep "no source: clear error, exit 1" \
  '^cputemp: error: no temperature source: the hypervisor does not expose thermal MSRs or hwmon sensors \(CPU: .* under QEMU TCG; MSRs: ' \
  exits 1 cputemp
check_no_grep "no temperature line from all-zero MSRs" '^[0-9]' exits 1 cputemp -a 0.2 2
if grep -q '^vendor_id.*GenuineIntel' /proc/cpuinfo; then
  check_grep "Intel vCPU: TjMax register read 0" 'MSR_TEMPERATURE_TARGET \(0x1a2\) reads 0 on CPU 0' \
    exits 1 cputemp --source msr
  check_grep "Intel vCPU with --tjmax: reading-valid bit clear" 'reading-valid bit \(31\) clear' \
    exits 1 cputemp --source msr --tjmax 100
else
  check_grep "non-Intel vCPU: --source msr explains why" 'cannot read temperature MSRs: .*(no temperature MSRs|Intel-only)' \
    exits 1 cputemp --source msr
fi
check_grep "--source hwmon: no sensor, exit 1" 'no coretemp, k10temp or zenpower sensor in /sys/class/hwmon' \
  exits 1 cputemp --source hwmon
check_grep "count 0: usage error, exit 2" "invalid value '0' for '\[count\]'" exits 2 cputemp 1 0
vm_finish
