# Guest script: captures what tcpretrans decodes on a VM kernel, for its unit tests
# (tests/fixtures/formats/<ID>/tcp_retransmit_skb and kernel_stack) and for the
# record of what the guest offers (tcp events, kallsyms, kprobes, ip/tc/nc).
# Run: scripts/vm/run.sh --kernel ID --out DIR scripts/vm/guest/capture-tcp.sh
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

[ -n "$VM_OUT" ] || { fail "output dir" "run with run.sh --out DIR"; vm_finish; }
F=$VM_OUT/formats
mkdir -p "$F"
uname -r >"$VM_OUT/uname"
check "format of tcp/tcp_retransmit_skb" cp "$T/events/tcp/tcp_retransmit_skb/format" "$F/tcp_retransmit_skb"
check "format of ftrace/kernel_stack" cp "$T/events/ftrace/kernel_stack/format" "$F/kernel_stack"
ls "$T/events/tcp" >"$VM_OUT/tcp_events"
grep -w tcp_send_loss_probe /proc/kallsyms >"$VM_OUT/tlp_sym" || true
[ -e "$T/kprobe_events" ] && echo yes >"$VM_OUT/kprobes"
for b in ip tc nc; do command -v "$b" >>"$VM_OUT/tools" || echo "no $b" >>"$VM_OUT/tools"; done
vm_finish
