#!/usr/bin/env bash
# Soak: one long call through the relay (UDP between the peers blocked, so
# the relay path is the only one) with random loss on the peers' links.
# Samples the resident memory of the relay and both peers every 10 s and
# checks that it stays flat, then that both sides' statistics agree with
# each other. Not part of scripts/test (it runs for minutes); its figures
# go to docs/performance.md.
#
# usage: soak.sh BUILD_DIR [MINUTES (10)] [LOSS (0.05)]
set -u
build=$1
minutes=${2:-10}
loss=${3:-0.05}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lab.sh"

why=$(lab_can_run)
[ -n "$why" ] && { echo "soak: skipped: $why"; exit 77; }
tool=$build/tools/wzp-tool
work=$(mktemp -d)
trap 'lab_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
"$tool" identity new "$work/a.seed" >/dev/null
fp_b=$("$tool" identity new "$work/b.seed" | grep -o '[0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{7\}' | head -1)
"$tool" identity new "$work/r.seed" >/dev/null
frames=$((minutes * 60 * 50))

lab_up blocked || exit 1
lab_loss "$loss"
# started with ip netns exec directly (not through a shell function), so that
# $! is the process itself and its RSS can be read
ip netns exec "${LAB}relay" "$build/relay/wzp-relay" --listen 198.51.100.1:4433 --identity "$work/r.seed" \
  >"$work/relay.log" 2>&1 &
rpid=$!
sleep 0.5
ip netns exec "${LAB}b" "$tool" answer 198.51.100.1:4433 --identity "$work/b.seed" --frames "$frames" \
  --timeout $((minutes * 60 + 60)) >"$work/b.json" 2>&1 &
bpid=$!
for _ in $(seq 200); do grep -q registered "$work/b.json" && break; sleep 0.05; done
ip netns exec "${LAB}a" "$tool" call 198.51.100.1:4433 "$fp_b" --identity "$work/a.seed" --frames "$frames" \
  --timeout $((minutes * 60 + 60)) >"$work/a.json" 2>&1 &
apid=$!

rss () { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "t_s relay_kib caller_kib callee_kib" >"$work/rss.txt"
t=0
while kill -0 "$apid" 2>/dev/null; do
  echo "$t $(rss "$rpid") $(rss "$apid") $(rss "$bpid")" >>"$work/rss.txt"
  sleep 10; t=$((t + 10))
done
wait "$apid"; wait "$bpid"
cat "$work/rss.txt"
python3 - "$work/rss.txt" "$work/a.json" "$work/b.json" "$loss" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
rows = [list(map(int, r)) for r in rows if len(r) == 4 and all(x.isdigit() for x in r)]
def last(path):
    ls = [l for l in open(path) if l.startswith('{"role"')]
    return json.loads(ls[-1]) if ls else None
a, b, loss = last(sys.argv[2]), last(sys.argv[3]), float(sys.argv[4])
ok = True
# after the first minute (warm-up), memory must not keep growing
warm = [r for r in rows if r[0] >= 60]
for i, who in ((1, "relay"), (2, "caller"), (3, "callee")):
    if len(warm) >= 2:
        first, lastv, peak = warm[0][i], warm[-1][i], max(r[i] for r in warm)
        grow = lastv - first
        print(f"{who}: RSS {first} KiB at 60 s, {lastv} KiB at the end, peak {peak} KiB, growth {grow} KiB")
        if grow > 2048:
            ok = False
if a is None or b is None:
    print("no result"); sys.exit(1)
need = 1 - loss - 0.02
ab, ba = b["received"] / a["sent"], a["received"] / b["sent"]
print(f"caller: sent {a['sent']} received {a['received']} ({ba:.2%}) path {a['path']}")
print(f"callee: sent {b['sent']} received {b['received']} ({ab:.2%}) path {b['path']}")
if not (a["ok"] and b["ok"] and a["path"] == b["path"] == "relay" and min(ab, ba) >= need):
    ok = False
print(json.dumps({"minutes": rows[-1][0] / 60 if rows else 0, "loss": loss,
                  "delivered_ab": round(ab, 4), "delivered_ba": round(ba, 4),
                  "relay_rss_growth_kib": warm[-1][1] - warm[0][1] if len(warm) >= 2 else None,
                  "caller_rss_growth_kib": warm[-1][2] - warm[0][2] if len(warm) >= 2 else None,
                  "callee_rss_growth_kib": warm[-1][3] - warm[0][3] if len(warm) >= 2 else None,
                  "ok": ok}))
sys.exit(0 if ok else 1)
PY
