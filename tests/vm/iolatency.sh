# VM test of iolatency on a real kernel: null_blk with a fixed completion
# delay (irqmode=2, an hrtimer started after block_rq_issue) makes every I/O
# on /dev/nullb0 take at least that long, so the histograms can be checked
# against the truth: the count of O_DIRECT reads issued (and the disk's own
# /sys/block/nullb0/stat), the bucket the delay falls in (ms and -u), -P
# percentiles >= the delay, --json, -D, -Q, and no trace instance left behind.
# Run: scripts/vm/test.sh iolatency   (or: scripts/vm/run.sh --module null_blk
#      --bin "$(scripts/vm/build-static.sh -p iolatency)/iolatency" tests/vm/iolatency.sh)
# needs: iolatency
# sets: trixie
# modules: null_blk
# timeout: 120
# The bucket checks need the guest to get the CPU within a few ms of each completion:
# no other guest beside it (scripts/vm/test.sh -j). On a host busy with other work they
# fail (lateness of 16 ms and more, seen at load 10-14).
# exclusive: yes
# shellcheck disable=SC2046  # set -- $(...) splits numbers into $1, $2, ... on purpose
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh

NB=/dev/nullb0
# A latency can only exceed the delay (the timer starts after the issue
# event), so each delay sits just above a bucket edge in both ms and us, which
# leaves the most room for lateness: under TCG 0.1-0.3 ms typically, but up to
# tens of ms when the host is busy (a 4.1 ms delay put 14% of the I/O into
# "8 -> 16" on a loaded host).
D1_NS=16400000   # "16 -> 32" ms, "16384 -> 32768" us
D2_NS=33000000   # "32 -> 64" ms: the bucket moves
B1=16 B1US=16384 B2=32
N1=40    # reads per run with delay 1 (~0.7 s of I/O)
N2=30    # reads per run with delay 2 (~1 s)
# Share of the reads that must land in the delay's bucket, %: a wrong bucket mapping puts
# none there, while steal on the CI machine (the guest alone does not stop it) can make a
# few completions late by more than the bucket's width.
SHARE=75

# load_nullb NS: (re)loads null_blk with one device whose every request
# completes NS nanoseconds after it was issued (hrtimer).
load_nullb() {
  rmmod null_blk 2>/dev/null
  insmod /lib/modules/null_blk.ko nr_devices=1 queue_mode=2 irqmode=2 completion_nsec="$1" &&
    [ -b "$NB" ] && [ "$(cat /sys/module/null_blk/parameters/completion_nsec)" = "$1" ]
}

# stat_reads: "reads sectors" completed so far on nullb0 (kernel's own count).
stat_reads() {
  set -- $(cat /sys/block/nullb0/stat)
  echo "$1 $3"
}

# start_bg OUT IOLATENCY-ARGS...: starts iolatency in the background (pid in
# $_pid, stdout to OUT, stderr to OUT.err) and waits up to 15 s for its banner,
# which it prints once the events are enabled and the buffers are read.
start_bg() {
  _out=$1
  shift
  iolatency "$@" >"$_out" 2>"$_out.err" &
  _pid=$!
  _i=0
  while ! grep -q '^Tracing block I/O' "$_out" "$_out.err" 2>/dev/null; do
    _i=$((_i + 1))
    if [ "$_i" -gt 300 ] || ! kill -0 "$_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
}

# trace OUT NREADS IOLATENCY-ARGS...: starts iolatency in the background,
# waits for its banner (printed once the events are enabled), does NREADS
# O_DIRECT 4 KiB reads of nullb0 (then runs $EXTRA_IO if set), and waits for
# iolatency to end. Sets TRACE_RC, DD_READS and DD_SECTORS (the stat deltas
# around the dd). Stdout goes to OUT, stderr to OUT.err.
trace() {
  _out=$1 _n=$2
  shift 2
  _args=$*
  _t0=$(cut -d' ' -f1 /proc/uptime)
  start_bg "$_out" "$@"
  set -- $(stat_reads)
  _r0=$1 _s0=$2
  dd if="$NB" of=/dev/null bs=4096 count="$_n" iflag=direct 2>/dev/null
  set -- $(stat_reads)
  DD_READS=$(($1 - _r0)) DD_SECTORS=$(($2 - _s0))
  [ -z "${EXTRA_IO:-}" ] || eval "$EXTRA_IO"
  wait "$_pid"
  TRACE_RC=$?
  echo "----- iolatency $_args (exit $TRACE_RC; $_n reads; nullb0 stat: +$DD_READS reads, +$DD_SECTORS sectors; uptime $_t0 -> $(cut -d' ' -f1 /proc/uptime)) -----"
  cat "$_out"
  [ ! -s "$_out.err" ] || { echo "----- stderr -----"; cat "$_out.err"; }
  echo "-----"
}

# hist_stat FILE LOW [DEVNAME]: over all text histograms in FILE (only the
# "Device DEVNAME" sections if given): "total in_bucket_LOW below_LOW above_LOW".
hist_stat() {
  awk -v low="$2" -v dev="${3:-}" '
    /^Device / { insec = ($2 == dev); next }
    /^ *[0-9]+ -> [0-9]+ *: [0-9]+ / {
      if (dev != "" && !insec) next
      t += $5
      if ($1 + 0 == low) b += $5; else if ($1 + 0 < low) lo += $5; else hi += $5
    }
    END { printf "%d %d %d %d\n", t, b, lo, hi }' "$1"
}

# hist_nonempty FILE: how many histograms in FILE counted any I/O.
hist_nonempty() {
  awk '/^  >=\(/ { h++ } /^ *[0-9]+ -> [0-9]+ *: [1-9]/ { seen[h] = 1 }
    END { for (k in seen) n++; print n + 0 }' "$1"
}

# pct_stat FILE MIN: over the "-P" lines: "lines io_sum bad" where bad counts
# lines with a value < MIN or not ascending (p50 <= p90 <= p99 <= p99.9 <= max).
pct_stat() {
  awk -v min="$2" '
    /^  p50 [0-9.]+  p90 [0-9.]+  p99 [0-9.]+  p99\.9 [0-9.]+  max [0-9.]+ \((ms|us)\), [0-9]+ I\/O$/ {
      n++; io += $12
      if ($2 + 0 < min || $4 < $2 || $6 < $4 || $8 < $6 || $10 < $8) bad++
    }
    END { printf "%d %d %d\n", n, io, bad }' "$1"
}

# json_stat FILE LOW: per NDJSON line, a recursive-descent JSON check plus
# the expected keys; prints "lines valid with_keys count_sum in_LOW below_LOW
# lost_sum min_p50". Buckets are the objects {"count":..,"ge":..,"lt":..}.
json_stat() {
  awk -v low="$2" '
    function ws() { while (pos <= n && index(" \t\r", substr(s, pos, 1))) pos++ }
    function str(   c) {
      if (substr(s, pos, 1) != "\"") return 0
      for (pos++; pos <= n; pos++) {
        c = substr(s, pos, 1)
        if (c == "\\") pos++
        else if (c == "\"") { pos++; return 1 }
      }
      return 0
    }
    function num() {
      if (!match(substr(s, pos), /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) return 0
      pos += RLENGTH
      return 1
    }
    function seq(cl, isobj) {  # after "{" or "["
      pos++; ws()
      if (substr(s, pos, 1) == cl) { pos++; return 1 }
      while (1) {
        ws()
        if (isobj) {
          if (!str()) return 0
          ws(); if (substr(s, pos, 1) != ":") return 0
          pos++
        }
        if (!val()) return 0
        ws()
        if (substr(s, pos, 1) == cl) { pos++; return 1 }
        if (substr(s, pos, 1) != ",") return 0
        pos++
      }
    }
    function val(   c) {
      ws(); c = substr(s, pos, 1)
      if (c == "{") return seq("}", 1)
      if (c == "[") return seq("]", 0)
      if (c == "\"") return str()
      if (substr(s, pos, 4) == "true" || substr(s, pos, 4) == "null") { pos += 4; return 1 }
      if (substr(s, pos, 5) == "false") { pos += 5; return 1 }
      return num()
    }
    function field(t, k) {  # numeric value of "k":NUMBER in t, or -1
      if (!match(t, "\"" k "\":-?[0-9.eE+-]+")) return -1
      return substr(t, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0
    }
    {
      lines++
      s = $0; n = length(s); pos = 1
      if (!(substr(s, 1, 1) == "{" && val() && pos == n + 1)) next
      valid++
      keys = 1
      split("time interval_s unit count lost_events histograms", want, " ")
      for (i = 1; i <= 6; i++) if (index(s, "\"" want[i] "\":") == 0) keys = 0
      top = s; sub(/"histograms":\[.*\]/, "", top)
      if (keys) withkeys++
      total += field(top, "count")
      lost += field(top, "lost_events")
      rest = s
      while (match(rest, /\{[^{}]*\}/)) {
        b = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
        if (field(b, "ge") == low) inb += field(b, "count")
        else if (field(b, "ge") < low) below += field(b, "count")
      }
      rest = s
      while (match(rest, /"p50":[0-9.eE+-]+/)) {
        p = substr(rest, RSTART + 6, RLENGTH - 6) + 0; rest = substr(rest, RSTART + RLENGTH)
        if (minp == "" || p < minp) minp = p
      }
    }
    END { printf "%d %d %d %d %d %d %d %s\n", lines, valid, withkeys, total, inb, below, lost, (minp == "" ? -1 : minp) }' "$1"
}

# check_hist NAME FILE LOW N [DEVNAME]: N I/O in all, >= SHARE% of them in the
# bucket starting at LOW, none below it.
check_hist() {
  set -- "$1" "$2" "$3" "$4" "${5:-}" $(hist_stat "$2" "$3" "$5")
  echo "INFO: $1: $6 I/O counted, $7 in the $3.. bucket, $8 below, $9 above"
  check "$1: count $6 = $4 reads issued" test "$6" -eq "$4"
  check "$1: >= $SHARE% in the bucket starting at $3 ($7 of $4)" test $(($7 * 100)) -ge $(($4 * SHARE))
  check "$1: none below the bucket starting at $3 ($8)" test "$8" -eq 0
}

# check_run NAME FILE N: exit 0, the dd really did N direct 4 KiB reads (the
# disk's stat agrees), the run ended cleanly and left no trace instance.
check_run() {
  check "$1: exits 0" test "$TRACE_RC" -eq 0
  check "$1: nullb0 stat shows $3 reads of 8 sectors (direct I/O, no read-ahead): +$DD_READS, +$DD_SECTORS" \
    test "$DD_READS" -eq "$3" -a "$DD_SECTORS" -eq $(($3 * 8))
  check_no_grep "$1: no iolatency-* instance left" '^iolatency-' ls "$T/instances"
}

[ -d /sys/module/null_blk ] || [ -f /lib/modules/null_blk.ko ] || { fail "null_blk module" "not in the initramfs (# modules: null_blk)"; vm_finish; }

# ---- delay 1: 16.4 ms --------------------------------------------------------
check "null_blk loaded with completion_nsec=$D1_NS irqmode=2" load_nullb "$D1_NS"
[ -b "$NB" ] || vm_finish
DEV=$(tr ':' ',' </sys/block/nullb0/dev)
echo "INFO: kernel $(uname -r), $NB is $DEV, scheduler: $(cat /sys/block/nullb0/queue/scheduler)"

trace /tmp/a1 "$N1" -d "$DEV" 1 2
check_run "-d $DEV 1 2" /tmp/a1 "$N1"
check_file_grep "-d $DEV 1 2: banner" '^Tracing block I/O\. Output every 1 seconds\.$' /tmp/a1
check_grep "-d $DEV 1 2: two summaries" '^2$' grep -c -F '  >=(ms) .. <(ms)   : I/O      |Distribution' /tmp/a1
check_file_grep "-d $DEV 1 2: 'Ending tracing...'" '^Ending tracing\.\.\.$' /tmp/a1
check_hist "-d $DEV 1 2 (ms)" /tmp/a1 "$B1" "$N1"

trace /tmp/a2 "$N1" -uP -d "$DEV" 1 2
check_run "-uP" /tmp/a2 "$N1"
check_hist "-uP (us)" /tmp/a2 "$B1US" "$N1"
set -- $(pct_stat /tmp/a2 $((D1_NS / 1000)))
echo "INFO: -uP: $1 percentile lines, $2 I/O, $3 below $((D1_NS / 1000)) us or not ascending"
check "-uP: percentile lines count $2 I/O = $N1" test "$2" -eq "$N1"
check "-uP: every p50/p90/p99/p99.9/max >= $((D1_NS / 1000)) us and ascending" test "$1" -ge 1 -a "$3" -eq 0
check_grep "-uP: one percentile or 'no I/O completed' line per interval" '^2$' grep -c -E '^  (no I/O completed|p50 .* I/O)$' /tmp/a2

trace /tmp/a3 "$N1" --json -d "$DEV" 1 2
check_run "--json" /tmp/a3 "$N1"
set -- $(json_stat /tmp/a3 "$B1")
echo "INFO: --json: $1 lines, $2 valid, $3 with all keys, count $4, $5 in ge $B1, $6 below, lost $7, min p50 $8"
check "--json: 2 lines, both valid JSON with time/interval_s/unit/count/lost_events/histograms" test "$1" -eq 2 -a "$2" -eq 2 -a "$3" -eq 2
check "--json: count $4 = $N1, lost_events 0" test "$4" -eq "$N1" -a "$7" -eq 0
check "--json: >= $SHARE% in {ge $B1, lt $((B1 * 2))} ($5), none below ($6)" test $(($5 * 100)) -ge $((N1 * SHARE)) -a "$6" -eq 0
check "--json: every p50 >= the delay ($8 ms)" awk -v p="$8" -v d="$D1_NS" 'BEGIN { exit !(p * 1e6 >= d) }'
check_grep "--json: \"unit\":\"ms\" and \"interval_s\":1 on both lines" '^2$' grep -c -E '"interval_s":1(\.0)?[,}].*"unit":"ms"' /tmp/a3
check_file_grep "--json: without -D the histogram is \"device\":\"all\"" '"device":"all"' /tmp/a3
check_file_grep "--json: banner on stderr" '^Tracing block I/O' /tmp/a3.err

VDA=
if [ -n "$VM_DISK" ]; then
  VDA=$(tr ':' ',' <"/sys/block/${VM_DISK#/dev/}/dev")
  EXTRA_IO="dd if=/dev/zero of=$VM_DISK bs=4096 count=8 oflag=direct conv=notrunc 2>/dev/null"
fi
trace /tmp/a4 "$N1" -D -P 1 2
EXTRA_IO=
check_run "-D -P" /tmp/a4 "$N1"
check_file_grep "-D: 'Device nullb0 ($DEV):'" "^Device nullb0 \\($DEV\\):$" /tmp/a4
[ -z "$VDA" ] || check_file_grep "-D: 'Device ${VM_DISK#/dev/} ($VDA):'" "^Device ${VM_DISK#/dev/} \\($VDA\\):$" /tmp/a4
check_hist "-D -P, nullb0 section" /tmp/a4 "$B1" "$N1" nullb0

# Ctrl-C (SIGINT) ends a run without a count cleanly; a SIGKILLed run leaves
# its instance behind, and --cleanup (or the next run) removes it.
start_bg /tmp/a5 -d "$DEV" 0.5
sleep 1.2
kill -INT "$_pid"
wait "$_pid"
TRACE_RC=$?
check "SIGINT: exits 0 (exit $TRACE_RC)" test "$TRACE_RC" -eq 0
check_file_grep "SIGINT: banner says Ctrl-C to end" '^Tracing block I/O\. Output every 0\.5 seconds\. Ctrl-C to end\.$' /tmp/a5
check_file_grep "SIGINT: 'Ending tracing...'" '^Ending tracing\.\.\.$' /tmp/a5
check_grep "SIGINT: summaries printed before it" '^[1-9]' grep -c -F '  >=(ms) .. <(ms)' /tmp/a5
check_no_grep "SIGINT: no iolatency-* instance left" '^iolatency-' ls "$T/instances"
start_bg /tmp/a6 -d "$DEV" 1
kill -KILL "$_pid"
wait "$_pid" 2>/dev/null
check_grep "SIGKILL: the instance iolatency-$_pid is left behind" "^iolatency-$_pid\$" ls "$T/instances"
check_grep "--cleanup removes it" "^removed stale trace instance iolatency-$_pid\$" iolatency --cleanup
check_no_grep "--cleanup: no iolatency-* instance left" '^iolatency-' ls "$T/instances"

# ---- delay 2: 33 ms: the bucket moves --------------------------------------
check "null_blk reloaded with completion_nsec=$D2_NS" load_nullb "$D2_NS"
DEV=$(tr ':' ',' </sys/block/nullb0/dev)
# 0.5 s summaries: the reads (~1 s) straddle at least one tick; an I/O in
# flight at a tick is counted once, in the summary in which it completes.
trace /tmp/b1 "$N2" -d "$DEV" 0.5 4
check_run "33 ms: -d $DEV 0.5 4" /tmp/b1 "$N2"
check_file_grep "0.5 4: banner" '^Tracing block I/O\. Output every 0\.5 seconds\.$' /tmp/b1
check_grep "0.5 4: four summaries" '^4$' grep -c -F '  >=(ms) .. <(ms)   : I/O      |Distribution' /tmp/b1
check_grep "0.5 4: the reads span two summaries or more" '^[234]$' hist_nonempty /tmp/b1
check_hist "33 ms: -d $DEV 0.5 4 (ms)" /tmp/b1 "$B2" "$N2"

# -Q with mq-deadline (insert events fire): still >= the delay, counted once.
check "mq-deadline on nullb0" sh -c 'echo mq-deadline > /sys/block/nullb0/queue/scheduler'
trace /tmp/b2 "$N2" -Q -D --json 1 2
check_run "33 ms: -Q -D --json" /tmp/b2 "$N2"
set -- $(json_stat /tmp/b2 "$B2")
echo "INFO: -Q -D --json: $1 lines, $2 valid, $3 with all keys, count $4, $5 in ge $B2, $6 below, lost $7, min p50 $8"
check "-Q -D --json: 2 valid lines with all keys" test "$1" -eq 2 -a "$2" -eq 2 -a "$3" -eq 2
check "-Q -D --json: count $4 = $N2, >= $SHARE% in {ge $B2, lt $((B2 * 2))} ($5), none below ($6)" \
  test "$4" -eq "$N2" -a $(($5 * 100)) -ge $((N2 * SHARE)) -a "$6" -eq 0
check_file_grep "-Q -D --json: device \"$DEV\", name \"nullb0\"" "\"device\":\"$DEV\".*\"name\":\"nullb0\"" /tmp/b2

vm_finish
