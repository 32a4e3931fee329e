#!/usr/bin/env bash
# The NAT matrix: for each topology of tests/net/lab.sh, a real wzp-relay and
# two real peers (wzp-tool answer / wzp-tool call, each a WzpSession) in
# their own namespaces place one call with the real protocol timers (3 s
# report wait, 2 s direct limit), send frames both ways, and the decision of
# both sides, setup time and delivery are checked. TAP output; the table is
# printed as comments and written to $WZP_NAT_TABLE when set.
#
# usage: test-nat.sh BUILD_DIR [ROW...]
set -u
build=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lab.sh"

tool=$build/tools/wzp-tool
relay_bin=$build/relay/wzp-relay
# name | topology | loss | frames | expected decision (direct, direct6 = over
# IPv6, relay, agree = either, as long as both sides agree) | action 2.5 s
# into the call (flush-a: forget peer a's NAT mappings; relay-restart:
# SIGTERM the relay and start it again), or wan=PROFILE: both peers' links
# to the segment through the WAN emulator (tests/net/wanem.c) with that
# profile; their calls must also play out with at most 1 % of the frames
# late beyond the links' own loss (wzp-tool plays what arrives through
# wzpsrc's playout buffer)
rows=(
  "both public|public|0|250|direct|"
  "both behind cone NATs|cone|0|250|direct|"
  "one symmetric, one cone|symmetric-cone|0|250|agree|"
  "both symmetric|symmetric|0|250|relay|"
  "UDP between peers blocked|blocked|0|250|relay|"
  "same LAN behind one NAT|samelan|0|250|direct|"
  "IPv6 only between peers, IPv4 to relay|v6only|0|250|direct6|"
  "cone NATs, 10% loss|cone|0.10|3000|agree|"
  "cone NATs, 30% loss|cone|0.30|5000|agree|"
  "NAT rebinding mid-call, cone, direct|cone|0|250|direct|flush-a"
  "NAT rebinding mid-call, symmetric, relay|symmetric|0|250|relay|flush-a"
  "relay restart mid-call, direct|cone|0|250|direct|relay-restart"
  "LTE links (40 ms plus half-normal jitter, σ 20 ms; 1 % lost in bursts of 3), relay path|blocked|0|1500|relay|wan=lte"
  "LTE links, direct|public|0|1500|direct|wan=lte"
  "150 ms each way to the relay (300 ms RTT)|cone|0|500|direct|wan=delay=150"
)
if [ $# -gt 0 ]; then
  sel=()
  for r in "${rows[@]}"; do
    for want in "$@"; do [[ ${r%%|*} == "$want" || $r == *"|$want|0|"*"|" ]] && sel+=("$r"); done
  done
  rows=("${sel[@]}")
fi

echo "1..${#rows[@]}"
why=$(lab_can_run)
if [ -n "$why" ]; then
  i=0
  for r in "${rows[@]}"; do
    i=$((i + 1)); echo "ok $i - ${r%%|*} # SKIP $why"
  done
  exit 0
fi

work=$(mktemp -d)
cleanup () { lab_down; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$tool" identity new "$work/a.seed" >/dev/null
fp_b=$("$tool" identity new "$work/b.seed" | grep -o '[0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{7\}' | head -1)
"$tool" identity new "$work/r.seed" >/dev/null

table=("| topology | expected | caller decision | callee decision | direct via | setup ms (caller/callee) | decided ms | delivered a→b | delivered b→a | played out: late, target (callee / caller) | result |"
       "|---|---|---|---|---|---|---|---|---|---|---|")

start_relay () {
  lab_exec relay "$relay_bin" --listen 198.51.100.1:4433 --identity "$work/r.seed" \
    >>"$work/relay.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 100); do
    [ "$(grep -c 'listening' "$work/relay.log" 2>/dev/null)" -ge "$1" ] && break; sleep 0.05
  done
}

run_row () {          # run_row NAME TOPO LOSS FRAMES EXPECT ACTION; sets $verdict, $detail
  local name=$1 topo=$2 loss=$3 frames=$4 expect=$5 action=$6
  local timeout=$(( frames / 50 + 40 ))
  verdict=fail; detail=
  LAB_WAN=
  [[ $action == wan=* ]] && LAB_WAN=${action#wan=}
  export LAB_WAN LAB_WANEM=$build/tests/wzp-wanem
  if ! lab_up "$topo" 2>"$work/lab.err"; then
    detail="lab_up failed: $(head -c 300 "$work/lab.err")"; lab_down; return
  fi
  [ "$loss" != 0 ] && lab_loss "$loss"
  : >"$work/relay.log"
  start_relay 1
  : >"$work/b.json"
  lab_exec b "$tool" answer 198.51.100.1:4433 --identity "$work/b.seed" --frames "$frames" \
    --timeout "$timeout" ${WZP_NAT_VERBOSE:+--verbose} >"$work/b.json" 2>"$work/b.err" &
  local bpid=$!
  for _ in $(seq 400); do grep -q registered "$work/b.json" && break; sleep 0.05; done
  lab_exec a "$tool" call 198.51.100.1:4433 "$fp_b" --identity "$work/a.seed" --frames "$frames" \
    --timeout "$timeout" ${WZP_NAT_VERBOSE:+--verbose} >"$work/a.json" 2>"$work/a.err" &
  local apid=$!
  case $action in
    flush-a) sleep 2.5; lab_flush_nat a ;;
    relay-restart) sleep 2.5; kill -TERM "$relay_pid"; wait "$relay_pid"; start_relay 2 ;;
  esac
  wait "$apid"
  wait "$bpid"
  lab_down
  detail=$(python3 - "$work/a.json" "$work/b.json" "$expect" "$loss" "$name" "$action" <<'PY'
import json, sys
def last(path):
    lines = [l for l in open(path) if l.startswith('{"role"')]
    return json.loads(lines[-1]) if lines else None
a, b = last(sys.argv[1]), last(sys.argv[2])
expect, loss, name, action = sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6]
if a is None or b is None:
    print("FAIL|no result from " + ("caller" if a is None else "callee"))
    sys.exit()
# with loss, what arrives is binomial: allow 4 standard deviations below
# the mean (a spurious failure about once in 30,000 directions) and 0.5 %
# for the frames sent while the call sets up
def need(sent):
    if sent == 0:
        return 1.0            # nothing sent: nothing can pass
    if loss == 0:
        return 0.95
    return 1 - loss - 4 * (loss * (1 - loss) / sent) ** 0.5 - 0.005
ab = b["received"] / a["sent"] if a["sent"] else 0
ba = a["received"] / b["sent"] if b["sent"] else 0
problems = []
if not (a["ok"] and b["ok"]):
    problems.append("call not up on both sides")
if a["path"] != b["path"]:
    problems.append("split decision")
# two gst-wzp peers: sealed end to end, each proved its identity key, nothing forged
if not (a.get("encrypted") and b.get("encrypted") and a.get("peer_authenticated") and b.get("peer_authenticated")):
    problems.append("not sealed end to end")
if a.get("auth_failed", 0) or b.get("auth_failed", 0):
    problems.append("frames failed authentication")
want = {"direct": "direct", "direct6": "direct", "relay": "relay"}.get(expect)
if want and a["path"] != want:
    problems.append(f"expected {want}")
if expect == "direct6" and not (a["direct_addr"].startswith("[") and b["direct_addr"].startswith("[")):
    problems.append("direct path not over IPv6")
if ab < need(a["sent"]) or ba < need(b["sent"]):
    problems.append(f"delivery below {min(need(a['sent']), need(b['sent'])):.1%}")
if action.startswith("wan="):
    # played out: frames late for their play time beyond what the links lost
    for side, who in ((a, "caller"), (b, "callee")):
        if side["received"] and side.get("late", 0) > 0.01 * side["received"]:
            problems.append(f"{who}: {side['late']} of {side['received']} frames late")
if action.startswith("wan=delay="):
    # audio within 2 RTT and a frame of the answer (both parties joined the
    # call's relay room while it rang); 50 ms for the hosts' own work
    rtt = 2 * float(action.split("=")[2])
    if b["setup_ms"] > 2 * rtt + 20 + 50:
        problems.append(f"the callee heard the caller {b['setup_ms']:.0f} ms after answering (2 RTT + a frame: {2 * rtt + 20:.0f})")
via = a["direct_addr"] or b["direct_addr"] or "-"
row = (f"| {name} | {expect.replace('direct6', 'direct (IPv6)')} | {a['path']} | {b['path']} | {via} | "
       f"{a['setup_ms']:.1f} / {b['setup_ms']:.1f} | {max(a['negotiated_ms'], 0):.0f} | "
       f"{b['received']}/{a['sent']} ({ab:.1%}) | {a['received']}/{b['sent']} ({ba:.1%}) | "
       f"{b.get('late', 0)} / {a.get('late', 0)} late, {b.get('target_ms', 0)} / {a.get('target_ms', 0)} ms | "
       f"{'ok' if not problems else 'FAIL: ' + '; '.join(problems)} |")
print(("PASS" if not problems else "FAIL") + "|" + row)
PY
)
  [ "${detail%%|*}" = PASS ] && verdict=pass
  detail=${detail#*|}
}

i=0; failed=0
for r in "${rows[@]}"; do
  IFS='|' read -r name topo loss frames expect action <<<"$r"
  i=$((i + 1))
  run_row "$name" "$topo" "$loss" "$frames" "$expect" "$action"
  table+=("$detail")
  if [ "$verdict" = pass ]; then
    echo "ok $i - $name"
  else
    failed=$((failed + 1))
    echo "not ok $i - $name: $detail"
    sed "s/^/# caller: /" "$work/a.json" "$work/a.err" | tail -n 40
    sed "s/^/# callee: /" "$work/b.json" "$work/b.err" | tail -n 40
  fi
done
for line in "${table[@]}"; do echo "# $line"; done
[ -n "${WZP_NAT_TABLE:-}" ] && printf '%s\n' "${table[@]}" >"$WZP_NAT_TABLE"
exit 0
