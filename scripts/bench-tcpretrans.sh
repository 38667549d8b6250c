#!/usr/bin/env bash
# Benchmark: CPU cost per retransmit and events lost, for tcpretrans under a retransmit storm.
#   scripts/bench-tcpretrans.sh [SECONDS] [CONNECTIONS] [TOOL ARGS...]   (as root, or with sudo)
#   (defaults: 10 s, 200 connections, no tool arguments; e.g. `10 200 -l` or `10 200 -s`)
# Creates two private network namespaces joined by a veth pair, with a 1 ms minimum RTO on
# the client's route (ip route ... rto_min 1ms), and CONNECTIONS TCP connections from the
# client to a server that reads everything. The client keeps writing to every connection
# while the script drops its segments (its neighbour entry for the server pointed at a MAC
# address nobody has) for 100 ms, then lets them through for 50 ms, over and over: each
# drop window makes every connection retransmit with a 1, 2, 4, ... ms backoff, thousands
# of retransmits per second. The release tcpretrans traces meanwhile (output to a file).
# Reports: the client namespace's RetransSegs (segments retransmitted, per /proc/net/snmp of
# that namespace), the rows tcpretrans printed for the client's address, events lost (its
# stderr), and tcpretrans's CPU time per row (from /proc/PID/schedstat just before it
# exits; that includes setting up and removing its tracefs instance, a few ms).
# The original (perl, a kprobe on tcp_retransmit_skb and /proc/net/tcp read every second)
# cannot be measured on a kernel without kprobes; on one with them, run it the same way.
# Needs: ip (iproute2) with veth, python3. Removes the namespaces on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-200}
shift $(( $# < 2 ? $# : 2 ))
command -v ip >/dev/null || { echo "$0: needs ip (iproute2)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$0: needs python3" >&2; exit 1; }
cargo build --release -q -p tcpretrans
bin=target/release/tcpretrans
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing

A=bench-trA-$$ B=bench-trB-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-tcpretrans.XXXXXX")
pids=()
cleanup() {
  [ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip link add tra0 netns "$A" type veth peer name trb0 netns "$B"
ip -n "$A" addr add 10.214.0.1/24 dev tra0
ip -n "$B" addr add 10.214.0.2/24 dev trb0
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set tra0 up
ip -n "$B" link set trb0 up
ip -n "$A" route replace 10.214.0.0/24 dev tra0 rto_min 1ms

cat > "$work/server.py" <<'EOF'
import selectors, socket
sel = selectors.DefaultSelector()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.214.0.2", 5000)); s.listen(4096); s.setblocking(False)
sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for k, _ in sel.select():
        if k.fileobj is s:
            c, _ = s.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
        else:
            try:
                if not k.fileobj.recv(65536):
                    sel.unregister(k.fileobj); k.fileobj.close()
            except OSError:
                sel.unregister(k.fileobj); k.fileobj.close()
EOF
cat > "$work/client.py" <<'EOF'
import socket, sys, time
n, secs = int(sys.argv[1]), float(sys.argv[2])
cs = []
for _ in range(n):
    c = socket.create_connection(("10.214.0.2", 5000)); c.setblocking(False); cs.append(c)
print("ready", flush=True)
end = time.time() + secs
buf = b"x" * 1400
while time.time() < end:
    for c in cs:
        try:
            c.send(buf)
        except OSError:
            pass
    time.sleep(0.005)
EOF
ip netns exec "$B" python3 "$work/server.py" > "$work/server.out" &
pids+=($!)
while ! grep -q ready "$work/server.out" 2>/dev/null; do sleep 0.1; done

"$bin" "$@" > "${BENCH_OUT:-$work/rows.txt}" 2> "$work/err.txt" &
pid=$!
while ! grep -q RADDR "${BENCH_OUT:-$work/rows.txt}" 2>/dev/null; do sleep 0.05; done
# shellcheck disable=SC2016 # awk's own variables
segs() { ip netns exec "$A" awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i; h = 1 } else print $c }' /proc/net/snmp; }
before=$(segs)
ip netns exec "$A" python3 "$work/client.py" "$conns" "$secs" > "$work/client.out" &
cpid=$!
pids+=("$cpid")
while ! grep -q ready "$work/client.out" 2>/dev/null; do sleep 0.05; done
end=$((SECONDS + secs))
while [ $SECONDS -lt $end ] && kill -0 "$cpid" 2>/dev/null; do
  ip -n "$A" neigh replace 10.214.0.2 lladdr 02:00:00:00:00:99 dev tra0 nud permanent
  sleep 0.1
  ip -n "$A" neigh del 10.214.0.2 dev tra0 2>/dev/null || true
  sleep 0.05
done
wait "$cpid" || true
sleep 0.5
after=$(segs)
read -r -a st < "/proc/$pid/stat"
read -r cpu_ns _ < "/proc/$pid/schedstat"
kill -INT "$pid"
wait "$pid" || true
pid=
rows=$(grep -c ' 10\.214\.0\.1:' "${BENCH_OUT:-$work/rows.txt}" || true)
lost=$(grep -o 'WARNING: [0-9]* events lost in total' "$work/err.txt" | grep -o '[0-9]*' || echo 0)
hz=$(getconf CLK_TCK)
python3 - "$secs" "$conns" "$((after - before))" "$rows" "$lost" "$cpu_ns" "${st[13]}" "${st[14]}" "$hz" "$*" <<'EOF'
import sys
secs, conns, segs, rows, lost, ns, ut, stt, hz, args = sys.argv[1:]
segs, rows, lost, ns = int(segs), int(rows), int(lost), int(ns)
print(f"tcpretrans {args or '(no options)'}: {secs} s, {conns} connections")
print(f"  retransmitted segments (client netns RetransSegs): {segs} ({segs / float(secs):.0f}/s)")
print(f"  rows printed for the client:                      {rows}")
print(f"  events lost (tcpretrans stderr):                  {lost}")
print(f"  tcpretrans CPU: {ns / 1e9:.3f} s (user {int(ut) / int(hz):.2f} s, sys {int(stt) / int(hz):.2f} s), "
      f"{ns / max(rows, 1) / 1e3:.2f} us per row")
EOF
