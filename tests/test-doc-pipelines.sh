#!/usr/bin/env bash
# Every gst-launch-1.0 pipeline in the README and docs/elements.md, run as
# written: taken from the documents' sh code blocks, with only the relay's
# address, the identity files, bob's fingerprint and output files pointed at
# this test's relay and directory. The pairs place a real call; each must
# come up, carry audio, and end as documented. TAP output.
#   test-doc-pipelines.sh BUILD-DIR SOURCE-DIR
set -u
build=$1 src=$2
. "$src/tests/pipeline-lib.sh"
export GST_PLUGIN_PATH=$build/plugin
tool=$build/tools/wzp-tool
tmp=$(mktemp -d)
pids=()
cleanup () { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT

# the pipelines of a document, one per line (continuations joined)
pipelines () {
  /usr/bin/python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    for cmd in block.replace("\\\n", " ").splitlines():
        cmd = cmd.split(" #")[0].strip()
        if cmd.startswith("gst-launch-1.0"):
            print(re.sub(r"\s+", " ", cmd))
EOF
}

"$build/relay/wzp-relay" --listen 127.0.0.1:0 --identity "$tmp/relay.seed" >"$tmp/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^advertised' "$tmp/relay.log" && break; sleep 0.1; done
relay=$(awk '/^listening on/ {print $3}' "$tmp/relay.log")

# as written, with this test's relay, files and fingerprints; IDENTITY-DIR
# holds the seeds (README: made by wzp-tool identity new; docs: made by the
# pipeline itself with create-identity=true)
localize () {
  local dir=$1 line=$2
  line=${line//relay=127.0.0.1:4433/relay=$relay}
  line=${line//identity=bob.seed/identity=$dir/bob.seed}
  line=${line//identity=alice.seed/identity=$dir/alice.seed}
  line=${line//location=bob.wav/location=$tmp/bob.wav}
  echo "${line//<bob-fingerprint>/$bob}"
}

# run LOG PIPELINE: in the background; sets $pid
run () {
  local log=$1; shift
  eval "exec $1" >"$log" 2>&1 &
  pid=$!
  pids+=($pid)
}


wav_seconds () {
  /usr/bin/python3 -c 'import sys,wave; w=wave.open(sys.argv[1]); print("%.2f" % (w.getnframes()/w.getframerate()))' "$1" 2>/dev/null || echo 0
}

# ---- README.md: bob answers and records, alice calls with a tone ----------
mapfile -t readme < <(pipelines "$src/README.md")
[ "${#readme[@]}" -eq 2 ]
ok "README.md has its two pipelines (found ${#readme[@]})" $?
mkdir -p "$tmp/readme"
"$tool" identity new "$tmp/readme/alice.seed" >/dev/null
bob=$("$tool" identity new "$tmp/readme/bob.seed")
run "$tmp/readme-bob.log" "$(localize "$tmp/readme" "${readme[0]}")"; bob_pid=$pid
for _ in $(seq 50); do grep -q "registered from" "$tmp/relay.log" && break; sleep 0.1; done
run "$tmp/readme-alice.log" "$(localize "$tmp/readme" "${readme[1]}")"; alice_pid=$pid
sleep 4
kill -INT "$alice_pid"
wait_exit "$alice_pid" 5; st=$?
wait_exit "$bob_pid" 5; st2=$?
secs=$(wav_seconds "$tmp/bob.wav")
awk -v s="$secs" -v a="$st" -v b="$st2" 'BEGIN { exit !(a == 0 && b == 0 && s >= 2.0) }'
ok "README: the call comes up, alice stops (exit $st), bob's pipeline ends with the hang-up (exit $st2) and recorded $secs s" $?

# ---- docs/elements.md: answer and play; call with the two-way session; a room
mapfile -t el < <(pipelines "$src/docs/elements.md")
[ "${#el[@]}" -eq 3 ]
ok "docs/elements.md has its three pipelines (found ${#el[@]})" $?
mkdir -p "$tmp/el"
run "$tmp/el-bob.log" "$(localize "$tmp/el" "${el[0]}")"; bob_pid=$pid
for _ in $(seq 50); do [ -f "$tmp/el/bob.seed" ] && break; sleep 0.1; done
bob=$("$tool" identity show "$tmp/el/bob.seed" 2>/dev/null | awk '/^fingerprint:/ {print $2}')
[ -n "$bob" ]
ok "create-identity=true made bob's seed file ($bob)" $?
sleep 0.7
run "$tmp/el-alice.log" "$(localize "$tmp/el" "${el[1]}") -m"; alice_pid=$pid
up=1
for _ in $(seq 100); do grep -q "media:first_send" "$tmp/el-alice.log" && { up=0; break; }; sleep 0.1; done
sleep 1
kill -INT "$bob_pid"
wait_exit "$bob_pid" 5; st=$?
wait_exit "$alice_pid" 5; st2=$?
[ $up -eq 0 ] && [ "$st" -eq 0 ] && [ "$st2" -eq 0 ]
ok "elements.md: alice's two-way call comes up and sends (media:first_send), bob stops (exit $st), alice's pipeline ends with the hang-up (exit $st2)" $?

run "$tmp/el-room.log" "$(localize "$tmp/el" "${el[2]}")"; room_pid=$pid
joined=1
for _ in $(seq 50); do grep -q "joined room standup" "$tmp/relay.log" && { joined=0; break; }; sleep 0.1; done
sleep 0.5
kill -INT "$room_pid"
wait_exit "$room_pid" 5; st=$?
[ $joined -eq 0 ] && [ "$st" -eq 0 ]
ok "elements.md: the room pipeline joins room standup and stops cleanly (exit $st)" $?

echo "1..$n"
if [ $failed -ne 0 ]; then
  for f in "$tmp"/*.log; do echo "# $(basename "$f"):"; tail -5 "$f" | sed 's/^/#   /'; done
fi
exit $failed
