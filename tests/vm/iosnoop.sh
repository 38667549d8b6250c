# VM test of iosnoop on a real kernel: direct I/O of known size and position
# on the scratch virtio disk must show up with the right type, device, block
# and size; the -i/-d filters (-d by major,minor and by name) and -Q (queue
# insert as start; LATms marked * when a request was timed from issue) work.
# Run: scripts/vm/run.sh --kernel 6.1 --bin "$(scripts/vm/build-static.sh)" tests/vm/iosnoop.sh
# needs: iosnoop
# sets: smoke pinned trixie
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_DISK" ] || { fail "scratch disk" "VM_DISK is empty"; vm_finish; }
disk=${VM_DISK#/dev/}
DEV=$(tr ':' ',' <"/sys/block/$disk/dev")   # e.g. 254,0

# Three 4 KiB writes at sectors 8, 16, 24, then two 8 KiB reads at sectors 128, 144,
# once iosnoop has printed its header into $1 (tracing is on by then: a fixed sleep
# raced with a slow start on a loaded host).
do_io() {
  n=0
  while ! grep -q 'COMM' "$1" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  for i in 1 2 3; do dd if=/dev/zero of="$VM_DISK" bs=4096 count=1 seek=$i oflag=direct conv=notrunc 2>/dev/null; done
  dd if="$VM_DISK" of=/dev/null bs=8192 count=2 skip=8 iflag=direct 2>/dev/null
}

rm -f /tmp/io1.out /tmp/io2.out
do_io /tmp/io1.out &
iosnoop -ts 5 >/tmp/io1.out 2>&1
rc=$?
wait
check "iosnoop -ts 5 exits 0" test "$rc" -eq 0
cp /tmp/io1.out "$VM_CHECK_OUT"
check_file_grep "header with STARTs/ENDs" '^STARTs +ENDs +COMM +PID +TYPE +DEV +BLOCK +BYTES +LATms$' /tmp/io1.out
for b in 8 16 24; do
  check_file_grep "4 KiB write at block $b" "^[0-9.]+ +[0-9.]+ +.+ [0-9]+ +W[A-Z]* +$DEV +$b +4096 +[0-9.]+$" /tmp/io1.out
done
for b in 128 144; do
  check_file_grep "8 KiB read by dd at block $b" "^[0-9.]+ +[0-9.]+ +dd +[0-9]+ +R[A-Z]* +$DEV +$b +8192 +[0-9.]+$" /tmp/io1.out
done

# Queue insert events need an I/O scheduler (the default for a multi-queue
# virtio disk is none).
check "mq-deadline scheduler on $disk" sh -c "echo mq-deadline > /sys/block/$disk/queue/scheduler"
do_io /tmp/io2.out &
iosnoop -Q -i '*R*' -d "$DEV" 5 >/tmp/io2.out 2>&1
rc=$?
wait
check "iosnoop -Q -i '*R*' -d $DEV 5 exits 0" test "$rc" -eq 0
for b in 128 144; do
  check_file_grep "-Q: 8 KiB read at block $b" "^dd +[0-9]+ +R[A-Z]* +$DEV +$b +8192 +[0-9.]+$" /tmp/io2.out
done
check_no_grep "-i '*R*': no writes listed" " W[A-Z]* +$DEV " cat /tmp/io2.out
check_no_grep "-Q with mq-deadline: no LATms marked *" '\*$' cat /tmp/io2.out

# With no scheduler, requests issued directly never fire block_rq_insert: -Q
# times them from issue and marks LATms with "*", and the note on stderr counts
# exactly the marked rows. The disk is given by name (-d vda).
check "none scheduler on $disk" sh -c "echo none > /sys/block/$disk/queue/scheduler"
rm -f /tmp/io3.out /tmp/io3.err
do_io /tmp/io3.out &
iosnoop -Q -i '*R*' -d "$disk" 5 >/tmp/io3.out 2>/tmp/io3.err
rc=$?
wait
check "iosnoop -Q -i '*R*' -d $disk 5 exits 0" test "$rc" -eq 0
for b in 128 144; do
  check_file_grep "-Q -d $disk: 8 KiB read at block $b" "^dd +[0-9]+ +R[A-Z]* +$DEV +$b +8192 +[0-9.]+\*?$" /tmp/io3.out
done
marks_match_note() {
  _marked=$(grep -c '\*$' /tmp/io3.out)
  _rows=$(grep -c " $DEV " /tmp/io3.out)
  if [ "$_marked" -eq 0 ]; then
    ! grep -q 'marked \*' /tmp/io3.err
  else
    grep -q "^note: $_marked of $_rows I/O never passed the I/O scheduler queue" /tmp/io3.err
  fi
}
check "-Q: the stderr note counts exactly the rows marked *" marks_match_note
cat /tmp/io3.out /tmp/io3.err

# With tracefs unmounted (and no debugfs to find it under), iosnoop mounts it itself
# and says so once on stderr.
umount /sys/kernel/tracing 2>/dev/null
umount /sys/kernel/debug 2>/dev/null
check "tracefs unmounted for the mount check" sh -c '! grep -qw tracefs /proc/mounts'
iosnoop 1 >/tmp/io3.out 2>/tmp/io3.err
rc=$?
check "iosnoop 1 without tracefs mounted exits 0" test "$rc" -eq 0
check_file_grep "it says it mounted tracefs" '^note: tracefs was not mounted; mounted it at /sys/kernel/tracing' /tmp/io3.err
check "the note comes once" test "$(grep -c 'tracefs was not mounted' /tmp/io3.err)" -eq 1
check "tracefs is mounted afterwards" grep -qw tracefs /proc/mounts

vm_finish
