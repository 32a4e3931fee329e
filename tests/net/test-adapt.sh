#!/usr/bin/env bash
# Adaptation through a lossy link, in network namespaces. Peer a sends raw
# audio through wzpsink (profile=auto: it encodes), peer b plays it through
# wzpsrc into a WAV; 3 s in, one link starts losing 12 % of what it sends.
# - room: a's link loses; a's own QualityReports carry that to the relay,
#   whose QualityDirective must move a to DEGRADED (Opus6k, 40 ms);
# - call: b (which sends too) loses; b's QualityReports reach a, whose tier
#   controller (upstream's thresholds and hysteresis) must do the same.
# When the loss stops, a must come back to GOOD (Opus24k). b must play
# throughout: its recording covers the call with no silent second.
# - far: no loss but 150 ms each way: a call's tier does not drop on RTT.
# TAP output; skipped where namespaces cannot be made.
#
# usage: test-adapt.sh BUILD_DIR
set -u
build=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lab.sh"

tool=$build/tools/wzp-tool
relay_bin=$build/relay/wzp-relay
export GST_PLUGIN_PATH=$build/plugin

echo "1..7"
why=$(lab_can_run)
if [ -n "$why" ]; then
  for i in 1 2 3 4 5 6 7; do echo "ok $i - adaptation through a lossy link # SKIP $why"; done
  exit 0
fi

work=$(mktemp -d)
cleanup () { lab_down; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$tool" identity new "$work/a.seed" >/dev/null
fp_b=$("$tool" identity new "$work/b.seed" | grep -o '[0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{7\}' | head -1)
"$tool" identity new "$work/r.seed" >/dev/null

failed=0
n=0

result () {           # result STATUS TEXT
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}

scenario () {         # scenario room|call
local mode=$1 lossy
lab_up public || { echo "Bail out! lab_up failed"; exit 1; }
lab_exec relay "$relay_bin" --listen 198.51.100.1:4433 --identity "$work/r.seed" \
  >"$work/relay.log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$work/relay.log" && break; sleep 0.05; done
rm -f "$work/b.wav"
# (ip netns exec, not lab_exec: in the background a shell function would
# take the signals meant for gst-launch-1.0, which ip execs into)
if [ "$mode" = room ]; then
  lossy=a
  ip netns exec "${LAB}b" gst-launch-1.0 -e wzpsrc relay=198.51.100.1:4433 identity="$work/b.seed" \
    room=adapt ! audioconvert ! wavenc ! filesink location="$work/b.wav" >"$work/b.log" 2>&1 &
  bpid=$!
  sleep 0.5
  ip netns exec "${LAB}a" env GST_DEBUG=wzpsink:4 gst-launch-1.0 audiotestsrc is-live=true \
    freq=440 ! wzpsink relay=198.51.100.1:4433 identity="$work/a.seed" room=adapt \
    >"$work/a.log" 2>&1 &
  apid=$!
else
  # b answers, plays a into the WAV and sends its own Opus (with reports)
  lossy=b
  ip netns exec "${LAB}b" gst-launch-1.0 -e audiotestsrc is-live=true freq=660 \
    ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 \
    ! wzpsink session=s relay=198.51.100.1:4433 identity="$work/b.seed" auto-answer=true \
    wzpsrc session=s ! audioconvert ! wavenc ! filesink location="$work/b.wav" \
    >"$work/b.log" 2>&1 &
  bpid=$!
  sleep 0.7
  ip netns exec "${LAB}a" env GST_DEBUG=wzpsink:4 gst-launch-1.0 audiotestsrc is-live=true \
    freq=440 ! wzpsink relay=198.51.100.1:4433 identity="$work/a.seed" call="$fp_b" \
    >"$work/a.log" 2>&1 &
  apid=$!
fi
t0=$(date +%s.%N)
elapsed () { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_log PATTERN SECONDS: until a's log has PATTERN
wait_log () {
  for _ in $(seq $(($2 * 10))); do grep -q "$1" "$work/a.log" && return 0; sleep 0.1; done
  return 1
}

sleep 3
lab_exec $lossy iptables -I OUTPUT -p udp -m statistic --mode random --probability 0.12 -j DROP
lab_exec $lossy ip6tables -I OUTPUT -p udp -m statistic --mode random --probability 0.12 -j DROP
loss_on=$(elapsed)
wait_log "sending Opus6k from now on (advised)" 20; st=$?
down_at=$(elapsed)
ok1=$st
if [ "$mode" = room ]; then why="the relay's directive"; else why="b's reports"; fi
result $st "$mode: 12 % loss on $lossy's link from ${loss_on} s: $why moved a's wzpsink to DEGRADED (Opus6k) at ${down_at} s"
lab_exec $lossy iptables -D OUTPUT -p udp -m statistic --mode random --probability 0.12 -j DROP
lab_exec $lossy ip6tables -D OUTPUT -p udp -m statistic --mode random --probability 0.12 -j DROP
loss_off=$(elapsed)
# back up: the reports carry the cumulative loss (as upstream's do), so it
# takes the ratio below 5 % and then five better reports
st=1
if [ $ok1 -eq 0 ]; then
  for _ in $(seq 600); do
    ups=$(grep -c "sending Opus24k from now on (advised)" "$work/a.log")
    [ "$ups" -ge 1 ] && [ "$(grep -n 'sending' "$work/a.log" | tail -1 | grep -c Opus24k)" -eq 1 ] &&
      { st=0; break; }
    sleep 0.1
  done
fi
up_at=$(elapsed)
result $st "$mode: the loss stopped at ${loss_off} s: back to GOOD (Opus24k) at ${up_at} s"
ok2=$st
sleep 1
# stop: a first (b sees it leave), then b, which finishes its WAV on EOS
for pid in "$apid" "$bpid"; do
  kill -INT "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
done
call=$(elapsed)
verdict=$(/usr/bin/python3 - "$work/b.wav" <<'EOF'
import array, math, sys, wave
try:
    w = wave.open(sys.argv[1])
except Exception as e:
    print("0 0 no-recording"); sys.exit()
rate = w.getframerate(); a = array.array("h", w.readframes(w.getnframes()))
secs = len(a) / rate
quiet = 0
for s in range(1, int(secs) - 1):               # whole seconds, edges left out
    blk = a[s * rate:(s + 1) * rate]
    if math.sqrt(sum(x * x for x in blk) / len(blk)) < 300:
        quiet += 1
print("%.1f %d ok" % (secs, quiet))
EOF
)
read -r secs quiet _ <<<"$verdict"
awk -v s="$secs" -v c="$call" -v q="$quiet" 'BEGIN { exit !(s >= c - 3 && q == 0) }'
st=$?
result $st "$mode: b played throughout: ${secs} s recorded of a ${call} s call, ${quiet} silent seconds"
if [ $ok1 -ne 0 ] || [ $ok2 -ne 0 ] || [ $st -ne 0 ]; then
  echo "# a's log:"; grep -i "sending\|error" "$work/a.log" | tail -8 | sed 's/^/#   /'
  echo "# b's log:"; grep -i "error" "$work/b.log" | tail -4 | sed 's/^/#   /'
  echo "# relay:"; tail -5 "$work/relay.log" | sed 's/^/#   /'
fi
lab_down
}

# far: a long path with little loss, 150 ms each way on both peers' links (a
# satellite hop). b's reports carry an RTT of 300 ms or more; a call's tier
# does not drop on RTT alone (upstream's thresholds would send Codec2 1200
# from 200 ms on), so a keeps sending Opus 24k while the reports come in.
far_call () {
LAB_WAN="delay=150" LAB_WANEM=$build/tests/wzp-wanem lab_up public ||
  { echo "Bail out! lab_up failed"; exit 1; }
lab_exec relay "$relay_bin" --listen 198.51.100.1:4433 --identity "$work/r.seed" \
  >"$work/relay.log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$work/relay.log" && break; sleep 0.05; done
ip netns exec "${LAB}b" gst-launch-1.0 -e audiotestsrc is-live=true freq=660 \
  ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 \
  ! wzpsink session=s relay=198.51.100.1:4433 identity="$work/b.seed" auto-answer=true \
  wzpsrc session=s ! fakesink >"$work/b.log" 2>&1 &
bpid=$!
sleep 1.5
ip netns exec "${LAB}a" env GST_DEBUG=wzpsink:4 G_MESSAGES_DEBUG=wzp-session gst-launch-1.0 \
  audiotestsrc is-live=true freq=440 ! wzpsink relay=198.51.100.1:4433 identity="$work/a.seed" \
  call="$fp_b" >"$work/a.log" 2>&1 &
apid=$!
# the tier controller moves after 3 worse reports, one a second
for _ in $(seq 150); do
  [ "$(grep -c "the peer's report:" "$work/a.log")" -ge 8 ] && break
  sleep 0.1
done
for pid in "$apid" "$bpid"; do
  kill -INT "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
done
reports=$(grep -c "the peer's report:" "$work/a.log")
rtt=$(grep -o "the peer's report: loss [0-9.]* %, RTT [0-9]* ms" "$work/a.log" | awk '{print $(NF-1)}' | sort -n | head -1)
other=$(grep "sending .* from now on" "$work/a.log" | grep -vc "sending Opus24k")
[ "$reports" -ge 8 ] && [ "${rtt:-0}" -ge 200 ] && [ "$other" -eq 0 ]
st=$?
result $st "far: 150 ms each way, $reports reports from b with RTT >= ${rtt:-?} ms: a kept Opus24k ($other other codecs chosen)"
if [ $st -ne 0 ]; then
  echo "# a's log:"; grep -i "sending\|report\|error" "$work/a.log" | tail -8 | sed 's/^/#   /'
fi
lab_down
}

scenario room
scenario call
far_call
exit $failed
