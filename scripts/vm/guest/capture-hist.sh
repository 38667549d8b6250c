# Guest script that captures a real hist trigger's output for tests/fixtures/hist/
# (run: scripts/vm/run.sh --kernel 6.12-deb13 --out tests/fixtures/hist
# scripts/vm/guest/capture-hist.sh). Creates an fprobe on the sync(2) function directly
# through tracefs (not through a tool), sets `hist:keys=common_pid` on it in a private
# instance (the event itself is not enabled), runs sync from three shells (3, 2 and 1
# times) and writes into $VM_OUT:
#   pid-key.hist   the event's hist file
#   fprobe.format  the fprobe event's format (its __probe_ip field)
#   uname          uname -r
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_OUT" ] || { fail "output dir" "run with run.sh --out DIR"; vm_finish; }
O=$VM_OUT
uname -r >"$O/uname"
F=
for _f in __x64_sys_sync __do_sys_sync ksys_sync; do
  grep -q -x -e "$_f" "$T/available_filter_functions" && { F=$_f; break; }
done
check "fprobe on $F" sh -c "echo 'f:hcap/sync $F' >>$T/dynamic_events"
I=$T/instances/hcap
mkdir "$I"
check "hist trigger" sh -c "echo 'hist:keys=common_pid' >$I/events/hcap/sync/trigger"
sh -c 'sync; sync; sync'
sh -c 'sync; sync'
sh -c 'sync'
cp "$I/events/hcap/sync/hist" "$O/pid-key.hist"
cp "$T/events/hcap/sync/format" "$O/fprobe.format"
cat "$O/pid-key.hist"
rmdir "$I"
echo '-:hcap/sync' >>"$T/dynamic_events"
vm_finish
