# VM test of perf-tools-doctor on a stock kernel: facts that differ between 5.10, 6.1
# and 6.12 (kprobes present everywhere, event probes only on 5.15+, the block layout
# before and after 6.11), verdicts of the tracing tools, --json, and nothing left in tracefs.
# needs: perf-tools-doctor
# sets: trixie
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

leftovers() {
  for d in "$T"/instances/*; do
    [ -e "$d" ] || continue
    basename "$d"
  done | grep -E '^(perf-tools-doctor|iosnoop|iolatency|funcgraph|kprobe)-[0-9]+$' || true
  cat "$T/dynamic_events" "$T/kprobe_events" "$T/uprobe_events" 2>/dev/null | grep -E 'ptrs_[0-9]+/' || true
}

# The kernel release as an extended regex (Debian's contain '+').
release=$(uname -r | sed 's/[.+]/\\&/g')

perf-tools-doctor --all >/tmp/doc.out 2>/tmp/doc.err
rc=$?
cat /tmp/doc.out /tmp/doc.err
check "exits 0" test "$rc" -eq 0
check_no_grep "no colour in a pipe" "$(printf '\033')" cat /tmp/doc.out
check_no_grep "nothing left in tracefs" '.' leftovers
check_file_grep "header names the kernel" "^perf-tools-doctor: Linux $release " /tmp/doc.out
check_file_grep "tracefs mounted" '^  mount +yes +/sys/kernel/tracing$' /tmp/doc.out
check_file_grep "instances" '^  instances +yes +private instance instances/perf-tools-doctor-[0-9]+ created and removed$' /tmp/doc.out
check_file_grep "kprobes verified" '^  kprobe_events +yes +verified: a kprobe on [a-z_0-9]+ created and removed$' /tmp/doc.out
check_file_grep "uprobes verified" '^  uprobe_events +yes +verified: a uprobe on this program created and removed$' /tmp/doc.out
check_file_grep "ustring" '^  ustring +yes ' /tmp/doc.out
check_file_grep "function_graph" '^  function_graph +yes +available at the top level$' /tmp/doc.out
for ev in block_rq_issue block_rq_complete block_rq_insert sys_enter_openat sys_exit_openat sched_process_exec task_rename; do
  check_file_grep "event $ev" "^  $ev +yes +id [0-9]+, [0-9]+ fields$" /tmp/doc.out
done
# The expectations follow what the guest kernel offers (its format files and tracefs
# README), as the doctor's do, not its version. Linux 6.11 added the ioprio field to
# the block_rq_* events (6.12 has it, 6.1 not).
if grep -q 'field:unsigned short ioprio' "$T/events/block/block_rq_issue/format"; then
  check_file_grep "6.11+: block layout with ioprio" '^  block_layout +yes +6\.11\+ \(with ioprio\)$' /tmp/doc.out
else
  check_file_grep "< 6.11: block layout without ioprio" '^  block_layout +yes +pre-6\.11 \(no ioprio\)$' /tmp/doc.out
fi
check_file_grep "msr device (the msr module is loaded in the guest)" '^  msr_device +yes +/dev/cpu/0/msr reads IA32_TIME_STAMP_COUNTER$' /tmp/doc.out
if grep -q '^[[:space:]]*e\[:' "$T/README"; then
  check_file_grep "5.15+: event probes verified" '^  eprobes +yes +verified: an event probe on syscalls\.sys_enter_openat created and removed$' /tmp/doc.out
  # opensnoop's row is its own --check: event probes when their sentinel opens come back
  # with names, else a kprobe (Debian's 6.18.15 reads the names back empty).
  check_file_grep "5.15+: opensnoop names from a verified source" '^  opensnoop +yes +file names from (event probes|a kprobe)' /tmp/doc.out
else
  check_file_grep "< 5.15: no event probes" "^  eprobes +no +absent \\(the README documents no 'e:' probes\\)$" /tmp/doc.out
  check_file_grep "< 5.15: the fix names CONFIG_EPROBE_EVENTS" 'fix: use a kernel built with CONFIG_EPROBE_EVENTS=y \(Linux 5\.15\+\)$' /tmp/doc.out
  # degraded: the preferred source (event probes) is missing, a kprobe stands in.
  check_file_grep "< 5.15: opensnoop names from a kprobe" '^  opensnoop +(yes|degraded) +file names from a kprobe' /tmp/doc.out
fi
if [ -e "$T/buffer_subbuf_size_kb" ]; then
  check_file_grep "6.8+: sub-buffer size" '^  buffer_subbuf_size_kb +yes ' /tmp/doc.out
else
  check_file_grep "< 6.8: no sub-buffer size" '^  buffer_subbuf_size_kb +degraded +absent: page-sized sub-buffers only$' /tmp/doc.out
fi
check_file_grep "iosnoop can run" '^  iosnoop +yes +block_rq_issue/block_rq_complete \(block_rq_insert for -Q\) in a private instance$' /tmp/doc.out
check_file_grep "kprobe can run" '^  kprobe +yes +kprobes through dynamic_events$' /tmp/doc.out
check_file_grep "funcgraph can run" '^  funcgraph +(yes +function_graph in a private instance|degraded +function_graph at the top level)' /tmp/doc.out
# CONTAINER: the guest runs the doctor as root in its initial namespaces.
check_file_grep "not in a container" '^  runs_in +yes +host: initial PID and cgroup namespaces' /tmp/doc.out
check_file_grep "tracefs reachable" '^  tracefs_reachable +yes +tracefs at /sys/kernel/tracing$' /tmp/doc.out
check_file_grep "capabilities for tracing" '^  capabilities +yes +CapEff [0-9a-f]{16}: CAP_SYS_ADMIN held' /tmp/doc.out
check_file_grep "no seccomp filter" '^  seccomp +yes +off \(Seccomp: 0\)$' /tmp/doc.out
check_file_grep "showboost can run (MSRs)" '^  showboost +yes +MSRs through /dev/cpu/N/msr$' /tmp/doc.out

# The default: what is missing, with fixes, then the verdicts; one screen.
perf-tools-doctor >/tmp/brief.out 2>&1
check_file_grep "default: the missing facts" '^MISSING \([0-9]+ of [0-9]+ facts; the other [0-9]+ are yes' /tmp/brief.out
check_file_grep "default: the verdicts" '^  iosnoop +yes ' /tmp/brief.out
check "default: one screen (at most 50 lines)" test "$(wc -l </tmp/brief.out)" -le 50

perf-tools-doctor --json >/tmp/doc.json 2>/tmp/doc.err
rc=$?
check "--json exits 0" test "$rc" -eq 0
check_file_grep "--json: version" '^  "version": 1,?$' /tmp/doc.json
check_file_grep "--json: kernel" "^  \"kernel\": \"$release\",?\$" /tmp/doc.json
check_file_grep "--json: tools" '^  "tools": \{$' /tmp/doc.json
check_no_grep "--json: nothing left in tracefs" '.' leftovers
vm_finish
