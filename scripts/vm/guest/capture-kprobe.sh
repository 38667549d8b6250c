# Guest half of scripts/vm/capture-kprobe-fixtures.sh (run through run.sh --out).
# Creates a kprobe and a kretprobe on do_sys_openat2 with arguments of every print
# type directly through tracefs (not through the tool), traces known opens on CPU 0 in
# a private instance -- one of them by a process whose comm holds a newline and an
# ESC, opening a file whose name holds a newline -- and writes into $VM_OUT:
#   <name>.format   events/kpcap/<name>/format of this boot (IDs match the pages)
#   <name>.txt      the kernel's text rendering of CPU 0 (per_cpu/cpu0/trace)
#   <name>.bin      one 4 KiB read() of per_cpu/cpu0/trace_pipe_raw, same events
#   header.txt      the instance's `trace` file while empty (the column legend)
#   kallsyms        the /proc/kallsyms lines of every symbol the text names, each
#                   with the line after it (its end), so sizes can be computed
#   uname           uname -r
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_OUT" ] || { fail "output dir" "run with run.sh --out DIR"; vm_finish; }
O=$VM_OUT
uname -r >"$O/uname"
I=$T/instances/kpcap
P='do_sys_openat2'
check "kprobe" sh -c "echo 'p:kpcap/open $P dfd=\$arg1:s32 fn=+0(\$arg2):ustring b0=+u0(\$arg2):u8 x0=+u0(\$arg2):x8 w=+u0(\$arg2):x16 h=+u0(\$arg2):s16 size=\$arg4:u64 flags=+0(\$arg3):x32 sflags=+0(\$arg3):s64 raw=\$arg4 comm=\$comm' >>$T/kprobe_events"
check "kretprobe" sh -c "echo 'r:kpcap/ret $P ret=\$retval:s32 rx=\$retval ru=\$retval:u32' >>$T/kprobe_events"
mkdir "$I"
echo mono >"$I/trace_clock"
cat "$I/trace" >"$O/header.txt"
for e in open ret; do
  cp "$T/events/kpcap/$e/format" "$O/$e.format"
  echo 1 >"$I/events/kpcap/$e/enable"
done

hostile=$(printf '/tmp/ev\n\033[31mfake')
# shellcheck disable=SC2016  # the script written keeps its $1
printf '#!/bin/sh\n: < "$1"\n' >"$hostile"
chmod +x "$hostile"
file=$(printf '/tmp/x\nfake 1 etc-shadow')
: >"$file"
cat >/tmp/opens.sh <<'OPENS'
: </proc/version
"$1" "$2"
(: </nonexistent) 2>/dev/null
true
OPENS
check "opens on CPU 0" taskset -c 0 sh /tmp/opens.sh "$hostile" "$file"
echo 0 >"$I/tracing_on"
cat "$I/per_cpu/cpu0/trace" >"$O/opens.txt"
check "read opens.bin" timeout 10 dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$O/opens.bin" bs=4096 count=1
check_file_grep "kernel text has the probe" 'open: \(do_sys_openat2\+0x0/0x[0-9a-f]+\)' "$O/opens.txt"

# The same with kernel stacks (options/stacktrace).
echo >"$I/trace"
echo 1 >"$I/options/stacktrace"
echo 0 >"$I/events/kpcap/ret/enable"
echo 1 >"$I/tracing_on"
taskset -c 0 sh -c ': </proc/version'
echo 0 >"$I/tracing_on"
cat "$I/per_cpu/cpu0/trace" >"$O/stack.txt"
check "read stack.bin" timeout 10 dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$O/stack.bin" bs=4096 count=1
cp "$T/events/ftrace/kernel_stack/format" "$O/kernel_stack.format" 2>/dev/null
echo 0 >"$I/options/stacktrace"
echo 0 >"$I/events/kpcap/open/enable"
rmdir "$I"
echo '-:kpcap/open' >>$T/kprobe_events
echo '-:kpcap/ret' >>$T/kprobe_events

# Symbols named in the text: "(sym+0x..", "<- sym)", " => sym".
names=$(cat "$O/opens.txt" "$O/stack.txt" | grep -v '^#' |
  sed -n -e 's/.*(\([A-Za-z0-9_.]*\)+0x.*/\1/p' -e 's/.*<- \([A-Za-z0-9_.]*\)).*/\1/p' -e 's/^ => \([A-Za-z0-9_.]*\).*/\1/p' | sort -u)
: >"$O/kallsyms"
for n in $names; do
  grep -A1 -E " $n( |	|\$)" /proc/kallsyms >>"$O/kallsyms"
done
check "kallsyms lines" test -s "$O/kallsyms"
vm_finish
