#!/usr/bin/env bash
# A group room through a real relay with three pipelines: one speaks a
# 440 Hz tone, two listen and record; both recordings must hold the tone.
# TAP output.   test-room.sh BUILD-DIR SOURCE-DIR
set -u
build=$1 src=$2
export GST_PLUGIN_PATH=$build/plugin
py=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
n=0 failed=0
ok () { n=$((n + 1)); if [ "$2" -eq 0 ]; then echo "ok $n - $1"; else echo "not ok $n - $1"; failed=1; fi; }

"$build/relay/wzp-relay" --listen 127.0.0.1:0 --identity "$tmp/relay.seed" >"$tmp/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^advertised' "$tmp/relay.log" && break; sleep 0.1; done
relay=$(awk '/^listening on/ {print $3}' "$tmp/relay.log")
# b by properties, c by URI (through uridecodebin, which picks opusdec itself)
gst-launch-1.0 -e wzpsrc relay="$relay" room=standup alias=b \
    ! opusdec plc=true ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 \
    ! wavenc ! filesink location="$tmp/b.wav" >"$tmp/b.log" 2>&1 &
pids+=($!)
gst-launch-1.0 -e uridecodebin uri="wzp://$relay/room/standup?alias=c" \
    ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 \
    ! wavenc ! filesink location="$tmp/c.wav" >"$tmp/c.log" 2>&1 &
pids+=($!)
sleep 1
gst-launch-1.0 audiotestsrc is-live=true freq=440 num-buffers=150 samplesperbuffer=960 \
    ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 \
    ! wzpsink relay="$relay" room=standup alias=a >"$tmp/a.log" 2>&1
sleep 0.5
for p in "${pids[@]:1}"; do kill -INT "$p" 2>/dev/null; done
sleep 1.5
for who in b c; do
  verdict=$("$py" "$src/scripts/check-tone.py" "$tmp/$who.wav" 2>&1)
  awk -F'[ =]' '{for (i=1;i<NF;i++) {if ($i=="seconds") s=$(i+1); if ($i=="ratio_440_vs_others") r=$(i+1)}} END {exit !(s >= 2 && r >= 1000)}' <<<"$verdict"
  ok "listener $who in the room heard the speaker ($verdict)" $?
done
echo "1..$n"
exit $failed
