# VM test of tcpretrans. On 5.10, tcp_retransmit_skb has no family field (IPv4 told
# from the v4-mapped saddr_v6/daddr_v6); 6.12-deb13 has one. A SYN to an address
# routed into loopback (dropped there: forwarding is off) is retransmitted after 1 s,
# and the row must show exactly the source, destination, port and SYN_SENT: from the
# tracepoint, then from the kprobe source (forced with --source kprobe: a kprobe on
# __tcp_retransmit_skb reading the head of struct sock_common, verified at start by
# its canary), which must show the same row. --check names the layout; -ls finds
# tcp_send_loss_probe in kallsyms; nothing is left (instances, probes), also after
# SIGTERM, and after kill -9 and --cleanup, of the kprobe source.
# Run: scripts/vm/run.sh --kernel 5.10 --bin "$(scripts/vm/build-static.sh -p tcpretrans)" tests/vm/tcpretrans.sh
# needs: tcpretrans
# sets: trixie
# kernels: 5.10 6.12-deb13
# timeout: 150
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

tcpretrans --check >/tmp/c.out 2>&1
check "--check exits 0" test $? -eq 0
if kernel_at_least 5 13; then
  check_file_grep "--check: layout with family" 'layout +yes +decoded by field name: sport, dport, saddr, daddr, state; IPv4 and IPv6 by the family field' /tmp/c.out
else
  check_file_grep "--check: layout without family" 'layout +yes +decoded by field name: sport, dport, saddr, daddr, state; IPv4 and IPv6 \(no family field' /tmp/c.out
fi
check_file_grep "--check: kernel symbols for -l" 'tcp_send_loss_probe among them' /tmp/c.out
check_file_grep "--check: names the tracepoint source" 'source +yes +the tcp:tcp_retransmit_skb tracepoint' /tmp/c.out

ip link set lo up
ip addr add 10.98.0.1/32 dev lo
check "route into loopback" ip route add 10.99.0.0/24 dev lo src 10.98.0.1

# One run of tcpretrans $1 with a SYN retransmit provoked; output in /tmp/$2.out/.err.
syn_run() {
  # shellcheck disable=SC2086
  tcpretrans $1 --duration 4 >"/tmp/$2.out" 2>"/tmp/$2.err" &
  tp=$!
  wait_line "/tmp/$2.out" 'RADDR:RPORT'
  # The SYN and its retransmit (1 s later) are dropped on input; nc gives up after 2 s.
  nc -w 2 10.99.0.1 8080 </dev/null >/dev/null 2>&1
  wait $tp
  check "tcpretrans $1 exits 0" test $? -eq 0
  check_file_grep "$2: SYN retransmit row: exact addresses, port, state" '^[0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]+ +10\.98\.0\.1:[0-9]+ +R> 10\.99\.0\.1:8080 +SYN_SENT' "/tmp/$2.out"
  check_file_grep "$2: its stack, from the retransmission timer" '^ => tcp_retransmit_timer$' "/tmp/$2.out"
}

syn_run -ls tp
syn_run "-ls --source kprobe" kp
check_file_grep "kprobe: the source on stderr" '^tcpretrans: source: kprobe on __tcp_retransmit_skb reading the head of struct sock_common \(verified with a canary' /tmp/kp.err
# The same connection attempt: the kprobe's row has the tracepoint's columns.
row_of() { awk '/R> 10\.99\.0\.1:8080/ { sub(/:[0-9]+$/, "", $3); print $3, $4, $5, $6; exit }' "$1"; }
tp_row=$(row_of /tmp/tp.out)
kp_row=$(row_of /tmp/kp.out)
check "kprobe row = tracepoint row (but the local port)" test -n "$tp_row" -a "$tp_row" = "$kp_row"
echo "--- tcpretrans -ls --source kprobe:"; grep -v '^ => ' /tmp/kp.out; cat /tmp/kp.err
check_no_grep "no instance left" 'tcpretrans-' ls "$T/instances"
check_no_grep "no probe left" 'ptrs_' cat "$T/kprobe_events"
# The kprobe source's exit paths: SIGTERM removes its probes and instance; after
# kill -9, --cleanup does.
for sig in TERM KILL; do
  tcpretrans --source kprobe >/tmp/k9.out 2>/tmp/k9.err &
  kp=$!
  wait_line /tmp/k9.out 'RADDR:RPORT'
  check_grep "kprobe source running: its probe" "ptrs_$kp/tcpretrans_retransmit" cat "$T/kprobe_events"
  kill -"$sig" $kp
  wait $kp
  [ "$sig" = KILL ] && tcpretrans --cleanup >/dev/null 2>&1
  check_no_grep "SIG$sig: no probe left" 'ptrs_' cat "$T/kprobe_events"
  check_no_grep "SIG$sig: no instance left" 'tcpretrans-' ls "$T/instances"
done
vm_finish
