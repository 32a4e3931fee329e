#!/usr/bin/env bash
# wzp-tool from the shell, as a user would run it. TAP output.
set -u
tool=${1:?usage: test-wzp-tool.sh PATH-TO-wzp-tool PATH-TO-quic-fixture}
fixture=${2:?usage: test-wzp-tool.sh PATH-TO-wzp-tool PATH-TO-quic-fixture PATH-TO-wzp-relay}
relay=${3:?usage: test-wzp-tool.sh PATH-TO-wzp-tool PATH-TO-quic-fixture PATH-TO-wzp-relay}
data=${G_TEST_SRCDIR:-$(dirname "$0")}/data
tmp=$(mktemp -d)
fixture_pid=
relay_pid=
trap 'rm -rf "$tmp"; [ -n "$fixture_pid" ] && kill "$fixture_pid" 2>/dev/null; [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null' EXIT
n=0
failed=0

ok () {          # ok DESCRIPTION CONDITION-EXIT-STATUS
  n=$((n + 1))
  if [ "$2" -eq 0 ]; then echo "ok $n - $1"; else echo "not ok $n - $1"; failed=1; fi
}

# identity new / show
out=$("$tool" identity new "$tmp/a.seed"); st=$?
[ $st -eq 0 ] && [[ "$out" =~ ^[0-9a-f]{4}(:[0-9a-f]{4}){7}$ ]]; ok "identity new prints a fingerprint" $?
[ "$(stat -c %a "$tmp/a.seed")" = 600 ]; ok "identity new creates the file with mode 0600" $?
before=$(cat "$tmp/a.seed")
"$tool" identity new "$tmp/a.seed" >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ "$(cat "$tmp/a.seed")" = "$before" ]
ok "identity new refuses to overwrite, with a one-line error" $?
show=$("$tool" identity show "$tmp/a.seed")
grep -qx "fingerprint: $out" <<<"$show"; ok "identity show prints the same fingerprint" $?

printf '%s\n' "$(printf '2a%.0s' $(seq 32))" >"$tmp/A.seed"
show=$("$tool" identity show "$tmp/A.seed")
grep -qx "fingerprint: 9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c" <<<"$show" &&
  grep -qx "ed25519_public: d335301856dc5f763fb71fbec9728840d3feb078855e184dce5b0769fcda04bc" <<<"$show" &&
  grep -qx "x25519_public: 450ec91af98d8d4a92c4df7123d1ef8addf6de185623135b015398652e7fa73d" <<<"$show" &&
  grep -qx "tls_ed25519_public: 3dbb0da5cb00fa2fb6360a38a767dc04e7a8c8aef85295a5caa7766fc3176048" <<<"$show"
ok "identity show matches the protocol's seed A vector" $?

echo "not hex" >"$tmp/bad.seed"
"$tool" identity show "$tmp/bad.seed" >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "malformed" "$tmp/err"
ok "identity show on a malformed seed file: exit 1, one-line error" $?

# signal decode: every upstream vector comes back byte for byte
bad=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  got=$(printf '%s' "$line" | "$tool" signal decode) || bad=1
  [ "$got" = "$line" ] || { bad=1; echo "# decode mismatch: $line -> $got"; }
done <"$data/signal-vectors.txt"
ok "signal decode reproduces every protocol §2.5 vector" $bad

got=$(printf ' {"Hangup" : {"call_id":"x", "reason":"Normal", "extra":[1,2]}}\n' | "$tool" signal decode)
[ "$got" = '{"Hangup":{"reason":"Normal","call_id":"x"}}' ]; ok "signal decode canonicalises field order and drops unknown fields" $?

got=$(echo '"Reflect"' | "$tool" signal encode --hex)
[ "$got" = "00000009225265666c65637422" ]; ok "signal encode --hex frames Reflect as in §2.1" $?

echo '{"MediaPathReport":{"call_id":"18a2b3c4d5e6f708","direct_ok":true,"race_winner":"Direct"}}' |
  "$tool" signal encode >"$tmp/frame.bin"
[ "$(head -c 4 "$tmp/frame.bin" | od -An -tx1 | tr -d ' \n')" = "0000005a" ] &&
  [ "$("$tool" signal decode <"$tmp/frame.bin")" = '{"MediaPathReport":{"call_id":"18a2b3c4d5e6f708","direct_ok":true,"race_winner":"Direct"}}' ]
ok "signal encode writes a framed message that signal decode reads back" $?

for input in '{"Unknown":{}}' '{"Ping":{"timestamp_ms":-1}}' 'not json' '' \
             '{"Hangup":{"reason":"Normal"},"Extra":1}'; do
  printf '%s' "$input" | "$tool" signal decode >"$tmp/out" 2>"$tmp/err"; st=$?
  [ $st -eq 1 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -q '^wzp-tool: invalid message: ' "$tmp/err"
  ok "signal decode rejects '$input' with exit 1 and one line" $?
done
printf '\x00\x00\x00\x20"Ref' | "$tool" signal decode >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && grep -q 'only 4 follow' "$tmp/err"; ok "signal decode rejects a truncated frame" $?
printf '\x00\x20\x00\x00' | "$tool" signal decode >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && grep -q '1 MiB' "$tmp/err"; ok "signal decode rejects a frame over 1 MiB" $?

# media decode
got=$("$tool" media decode "02 00 00 64 00 00 07 d0 00 00 00 00 fc ff fe 19 19 14 c8")
[ "$got" = '{"version":0,"repair":false,"codec":"Opus24k","codec_id":0,"quality":true,"fec_ratio":0,"seq":100,"timestamp":2000,"fec_block":0,"fec_symbol":0,"reserved":0,"csrc_count":0,"payload_len":3,"payload":"fcfffe","quality_report":{"loss_pct":25,"rtt_4ms":25,"jitter_ms":20,"bitrate_cap_kbps":200}}' ]
ok "media decode prints the §3.10 datagram's fields" $?
got=$("$tool" media decode 51fcffffffffffffffffff00)
[[ "$got" == *'"repair":true,"codec":"Codec2_1200","codec_id":4,"quality":false,"fec_ratio":127,"seq":65535,"timestamp":4294967295,"fec_block":255,"fec_symbol":255,"reserved":255,"csrc_count":0,"payload_len":0'* ]]
ok "media decode handles header vector C" $?
got=$("$tool" media decode --federation 0cfc005144b3036700000001000000140000000 2>&1); st=$?
[ $st -eq 1 ]; ok "media decode rejects odd-length hex" $?
got=$("$tool" media decode --federation 0cfc005144b30367000000010000001400000000f8fffe)
[[ "$got" == '{"room_hash":"0cfc005144b30367",'*'"payload":"f8fffe"}' ]]; ok "media decode --federation strips the room hash" $?
for hex in 00 3c00000100000014000000000 3c000001000000140000000000 020000640000 02000064000007d000000000fcff; do
  "$tool" media decode "$hex" >/dev/null 2>"$tmp/err"; st=$?
  [ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; ok "media decode rejects $hex" $?
done

# ping and version against a QUIC server on loopback
"$fixture" >"$tmp/fixture.out" 2>&1 &
fixture_pid=$!
for _ in $(seq 50); do grep -q FINGERPRINT "$tmp/fixture.out" && break; sleep 0.1; done
port=$(awk '/^PORT/ {print $2}' "$tmp/fixture.out")
fp=$(awk '/^FINGERPRINT/ {print $2}' "$tmp/fixture.out")
out=$("$tool" ping "127.0.0.1:$port" 2>&1); st=$?
[ $st -eq 0 ] && [[ "$out" == *"\"tls_fingerprint\":\"$fp\""* ]] && [[ "$out" == *'"handshake_ms":'* ]]
ok "ping prints the handshake time and the server's fingerprint" $?
"$tool" ping "127.0.0.1:$port" --pin "$fp" >/dev/null 2>&1; ok "ping with the right pin succeeds" $?
"$tool" ping "127.0.0.1:$port" --pin "00:11" >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && grep -q "pinned" "$tmp/err"; ok "ping with a wrong pin fails and says so" $?
out=$("$tool" version "127.0.0.1:$port"); st=$?
[ $st -eq 0 ] && [ "$out" = fixture-build ]; ok "version reads the build id from the uni stream" $?
kill "$fixture_pid"; wait "$fixture_pid" 2>/dev/null; fixture_pid=
start=$(date +%s%N)
"$tool" ping "127.0.0.1:$port" --timeout 500 >/dev/null 2>"$tmp/err"; st=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "running and reachable" "$tmp/err" && [ $ms -lt 3000 ]
ok "ping to a dead port fails within its timeout with a clear error (${ms} ms)" $?
# reflect and version against the real relay
"$relay" --listen 127.0.0.1:0 --identity "$tmp/relay.seed" >"$tmp/relay.out" 2>&1 &
relay_pid=$!
for _ in $(seq 50); do grep -q '^advertised' "$tmp/relay.out" && break; sleep 0.1; done
raddr=$(awk '/^listening on/ {print $3}' "$tmp/relay.out")
out=$("$tool" reflect "$raddr"); st=$?
[ $st -eq 0 ] && [[ "$out" =~ ^127\.0\.0\.1:[0-9]+$ ]]; ok "reflect prints the address the relay sees ($out)" $?
# AES-256-GCM packet protection: libsodium's at the relay, OpenSSL's here
out=$(WZP_PACKET_CRYPTO=openssl "$tool" reflect "$raddr"); st=$?
[ $st -eq 0 ] && [[ "$out" =~ ^127\.0\.0\.1:[0-9]+$ ]]; ok "reflect with OpenSSL packet protection against libsodium's" $?
[ "$("$tool" version "$raddr")" = "$("$relay" --version)" ]; ok "version matches the relay's own --version" $?
# a test call of 100 frames: both sides ok (the callee, hung up on before its
# own 250 frames are out, too), sealed end to end, the peer authenticated
bob=$("$tool" identity new "$tmp/bob.seed")
"$tool" answer "$raddr" --identity "$tmp/bob.seed" >"$tmp/answer.json" 2>&1 &
answer_pid=$!
for _ in $(seq 50); do grep -q registered "$tmp/answer.json" && break; sleep 0.1; done
"$tool" call "$raddr" "$bob" --frames 100 >"$tmp/call.json" 2>&1; st=$?
wait "$answer_pid"; st2=$?
grep -q '"role":"caller","ok":true' "$tmp/call.json" && grep -q '"role":"callee","ok":true' "$tmp/answer.json" &&
  grep -q '"encrypted":true,"peer_authenticated":true' "$tmp/call.json" && [ $st -eq 0 ] && [ $st2 -eq 0 ]
ok "call --frames 100 and answer: both ok (exit $st, $st2), sealed, the peer authenticated" $?
kill "$relay_pid"; wait "$relay_pid" 2>/dev/null; relay_pid=
# a relay flag out of range is a usage error with a one-line message
err=$("$relay" --listen 127.0.0.1:0 --identity "$tmp/relay.seed" --rx-hold-us 200000 2>&1 >/dev/null); st=$?
[ $st -eq 2 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && [[ "$err" == *rx-hold-us* ]]
ok "--rx-hold-us above 100000 is refused (exit 2)" $?

"$tool" ping "not-an-address" >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && grep -q "is not an address" "$tmp/err"; ok "ping rejects a bad address" $?

# featherChat bridge: the payload round-trips, the type follows the table
report='{"MediaPathReport":{"call_id":"18a2b3c4d5e6f708","direct_ok":true,"race_winner":"Direct"}}'
enc=$(echo "$report" | "$tool" featherchat encode --relay-addr 198.51.100.9:4433 --room call-18a2b3c4d5e6f708)
payload=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["payload"])' "$enc")
dec=$(printf '%s' "$payload" | "$tool" featherchat decode)
[ "$dec" = "{\"signal_type\":\"Offer\",\"signal\":$report,\"relay_addr\":\"198.51.100.9:4433\",\"room\":\"call-18a2b3c4d5e6f708\"}" ]
ok "featherchat encode | decode gives the message, relay_addr and room back" $?
echo '{"Hangup":{"reason":"Normal","call_id":null}}' | "$tool" featherchat encode | grep -q '"signal_type":"Hangup"'
ok "featherchat encode: Hangup travels as CallSignalType Hangup" $?
echo '{"signal":{"Nope":{}}}' | "$tool" featherchat decode >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; ok "featherchat decode of an unknown variant: exit 1, one-line error" $?

"$tool" frobnicate >/dev/null 2>&1; [ $? -eq 2 ]; ok "an unknown command is a usage error (exit 2)" $?
"$tool" call 127.0.0.1:1 "$bob" --frames x >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 2 ] && grep -q 'call: --frames "x" is not a valid value' "$tmp/err"
ok "a bad option value is a usage error that names the option and the value (exit $st)" $?
"$tool" ping 127.0.0.1:1 --nope >/dev/null 2>"$tmp/err"; st=$?
[ $st -eq 2 ] && grep -q 'ping: unknown argument "--nope"' "$tmp/err"
ok "an unknown option is a usage error that names it (exit $st)" $?
"$tool" version | grep -q '^wzp-tool '; ok "version prints the version" $?

echo "1..$n"
exit $failed
