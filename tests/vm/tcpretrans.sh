# VM test of tcpretrans on 5.10, whose tcp_retransmit_skb has no family field (IPv4
# told from the v4-mapped saddr_v6/daddr_v6): a SYN to an address routed into
# loopback (dropped there: forwarding is off) is retransmitted after 1 s, and the
# row must show exactly the source, destination, port and SYN_SENT; --check names
# the family-less layout; -ls finds tcp_send_loss_probe in kallsyms and leaves nothing.
# Run: scripts/vm/run.sh --kernel 5.10 --bin "$(scripts/vm/build-static.sh -p tcpretrans)" tests/vm/tcpretrans.sh
# needs: tcpretrans
# kernels: 5.10
# timeout: 120
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

tcpretrans --check >/tmp/c.out 2>&1
check "--check exits 0" test $? -eq 0
check_file_grep "--check: layout without family" 'layout +yes +decoded by field name: sport, dport, saddr, daddr, state; IPv4 and IPv6 \(no family field' /tmp/c.out
check_file_grep "--check: kernel symbols for -l" 'tcp_send_loss_probe among them' /tmp/c.out

ip link set lo up
ip addr add 10.98.0.1/32 dev lo
check "route into loopback" ip route add 10.99.0.0/24 dev lo src 10.98.0.1
tcpretrans -ls --duration 4 >/tmp/t.out 2>/tmp/t.err &
tp=$!
wait_line /tmp/t.out 'RADDR:RPORT'
# The SYN and its retransmit (1 s later) are dropped on input; nc gives up after 2 s.
nc -w 2 10.99.0.1 8080 </dev/null >/dev/null 2>&1
wait $tp
check "tcpretrans -ls exits 0" test $? -eq 0
check_file_grep "SYN retransmit row: exact addresses, port, state" '^[0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]+ +10\.98\.0\.1:[0-9]+ +R> 10\.99\.0\.1:8080 +SYN_SENT' /tmp/t.out
check_file_grep "its stack, from the retransmission timer" '^ => tcp_retransmit_timer$' /tmp/t.out
check_no_grep "no instance left" 'tcpretrans-' ls "$T/instances"
vm_finish
