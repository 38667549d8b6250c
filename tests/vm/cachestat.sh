# VM test of cachestat on a real kernel: the canary passes (--check), a known workload
# (an 8 MiB file on ext2 on the scratch disk, read cold after drop_caches, then warm)
# moves the counts the expected way by the expected amount, and nothing is left in
# tracefs on a normal end (--count), SIGINT, a panic after setup or SIGKILL + --cleanup.
# Run: scripts/vm/test.sh --kernel 5.10 cachestat.sh
# needs: cachestat
# sets: smoke pinned trixie
# timeout: 240
# The cachestat_* variables below are read by lm_get through eval (SC2034).
# shellcheck shell=sh source=tests/vm/lib.sh disable=SC2034
. /vm/lib.sh

[ -n "$VM_DISK" ] || { fail "scratch disk" "VM_DISK is empty"; vm_finish; }
mkdir -p /mnt/cs
if ! { mke2fs -q -F "$VM_DISK" && mount -t ext2 "$VM_DISK" /mnt/cs; } >"$VM_CHECK_OUT" 2>&1; then
  fail "ext2 on the scratch disk" "mke2fs/mount failed"
  vm_finish
fi
# The canary needs a disk-backed directory (/tmp is tmpfs here).
export TMPDIR=/mnt/cs
PAGES=2048
dd if=/dev/urandom of=/mnt/cs/data bs=4096 count=$PAGES 2>/dev/null
sync

check_grep "--check: canary passes" '^  canary +yes' cachestat --check
cp "$VM_CHECK_OUT" /tmp/cs.check
sed 's/^/    | /' /tmp/cs.check
kprobes=0
grep -Eq '^  accesses +yes' /tmp/cs.check && kprobes=1

# One 3-second interval around a read of the file: cold (read once), then warm (read
# $WARM_READS times, so that the file's hits stand well above the guest's background,
# which differs between two intervals by several hundred accesses). Each interval runs
# dd $WARM_READS times (cold: the other runs read /dev/null), as every exec of the
# busybox binary adds a few hundred accesses of its own.
WARM_READS=8
interval() {
  echo 1 >/proc/sys/vm/drop_caches
  [ "$1" = warm ] && dd if=/mnt/cs/data of=/dev/null bs=65536 2>/dev/null
  rm -f "/tmp/cs.$1"
  cachestat -D --count 1 3 >"/tmp/cs.$1" 2>"/tmp/cs.$1.err" &
  _p=$!
  if ! wait_line "/tmp/cs.$1" HITS; then
    kill "$_p" 2>/dev/null
    cat "/tmp/cs.$1.err"
    return 1
  fi
  _n=0 _if=/mnt/cs/data
  while [ "$_n" -lt "$WARM_READS" ]; do
    dd if="$_if" of=/dev/null bs=65536 2>/dev/null
    [ "$1" = warm ] || _if=/dev/null
    _n=$((_n + 1))
  done
  wait "$_p"
}
check "cold run exits 0" interval cold
check "warm run exits 0" interval warm
sed 's/^/    cold | /' /tmp/cs.cold /tmp/cs.cold.err
sed 's/^/    warm | /' /tmp/cs.warm /tmp/cs.warm.err
# Row: HITS MISSES DIRTIES RATIO BUFFERS_MB CACHE_MB (accessed bufdirty added written dirtied pages)
row() { grep -E '^ +[-?0-9]+ +[0-9]+ ' "/tmp/cs.$1" | tail -n 1; }
cold=$(row cold)
warm=$(row warm)
# shellcheck disable=SC2086
set -- $cold
check "cold: MISSES $2 within [$PAGES, $PAGES+128]" test "$2" -ge $PAGES -a "$2" -le $((PAGES + 128))
cold_folios=$(echo "$cold" | sed -E 's/.*\(([-0-9]+) [0-9]+ ([0-9]+) .*/\2/')
# shellcheck disable=SC2086
set -- $warm
check "warm: MISSES $2 below 32" test "$2" -lt 32
if [ "$kprobes" = 1 ]; then
  # HITS count accessed calls, one per folio read (a page without large folios), plus
  # the guest's own background accesses (several hundred per second, and up to about
  # a thousand more in one interval than in the other): warm minus cold is the file's
  # folios read from the cache $WARM_READS times, give or take that difference.
  cold_hits=$(echo "$cold" | awk '{ print $1 }')
  warm_hits=$(echo "$warm" | awk '{ print $1 }')
  case "$cold_hits.$warm_hits" in
    *[!0-9.]*) fail "HITS are numbers" "cold $cold_hits, warm $warm_hits"; cold_hits=0 warm_hits=0 ;;
  esac
  d=$((warm_hits - cold_hits))
  f=$((cold_folios * WARM_READS))
  check "warm - cold HITS $d within [0.9, 2] x $WARM_READS x $cold_folios folios (-+1024 background)" \
    test "$d" -ge $((f * 9 / 10 - 1024)) -a "$d" -le $((f * 2 + 1024))
  check_grep "warm: RATIO >= 95%" '^(9[5-9]|100)\.[0-9]%$' echo "$4"
  check "cold RATIO below warm RATIO" awk -v c="$(echo "$cold" | awk '{ print $4 }')" -v w="$4" \
    'BEGIN { exit !(c + 0 < w + 0) }'
else
  check_grep "no access source: HITS and RATIO are -" '^ +- +[0-9]+ +[0-9]+ +- ' echo "$warm"
fi
check_no_grep "no instance left" 'cachestat-' ls "$T/instances"

cachestat_run="1" cachestat_ready='HITS' cachestat_fin="--count 1 1"
cachestat_panic=1 cachestat_cleanup=1 cachestat_state=1
LM_PATHS="normal sigint panic kill-cleanup"
lm_row cachestat
umount /mnt/cs
vm_finish
