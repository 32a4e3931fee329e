#!/usr/bin/env bash
# Compares the relay's CPU per forwarded datagram between two builds in
# interleaved runs: this machine's speed drifts by 15 % or more between hours,
# so two builds measured apart say little. Each pair runs both relays under
# `bench-relay SECONDS N N` back to back, alternating which goes first.
#
#   bench/compare-relay.sh BUILD-A BUILD-B [PAIRS] [CALLS] [SECONDS]
#
# BUILD-A/B are build directories, each with relay/wzp-relay. Both relays are
# loaded by BUILD-B's bench/bench-relay (WZP_BENCH_RELAY_BIN), so the legs and
# the way they acknowledge are the same for both; WZP_BENCH_RELAY_LEGS=quinn
# works for an old relay too. Prints each pair, then mean and median per build
# and B's change, and ends with a JSON line.
set -eu
ra=$1/relay/wzp-relay rb=$2/relay/wzp-relay bench=$2/bench/bench-relay
pairs=${3:-8} calls=${4:-400} secs=${5:-5}
for x in "$ra" "$rb" "$bench"; do
  [ -x "$x" ] || { echo "no $x: build it first" >&2; exit 2; }
done
run () {
  WZP_BENCH_RELAY_BIN=$1 "$bench" "$secs" "$calls" "$calls" 2>/dev/null |
    awk -v n="$calls" '$1 == n { print $7 }'
}
as=() bs=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then x=$(run "$ra"); y=$(run "$rb"); else y=$(run "$rb"); x=$(run "$ra"); fi
  if [ -z "$x" ] || [ -z "$y" ]; then
    echo "pair $i: a run printed no figure for $calls calls" >&2
    exit 1
  fi
  printf 'pair %2d   A %6s µs   B %6s µs\n' "$i" "$x" "$y"
  as+=("$x") bs+=("$y")
done
python3 - "$calls" "${as[*]}" "${bs[*]}" <<'PY'
import json, statistics, sys
calls = int(sys.argv[1])
a = [float(v) for v in sys.argv[2].split()]
b = [float(v) for v in sys.argv[3].split()]
lower = sum(1 for x, y in zip(a, b) if y < x)
change = 100.0 * (statistics.mean(b) / statistics.mean(a) - 1.0)
print(f"A mean {statistics.mean(a):.2f} median {statistics.median(a):.2f} µs per forwarded datagram")
print(f"B mean {statistics.mean(b):.2f} median {statistics.median(b):.2f} µs per forwarded datagram")
print(f"B vs A: {change:+.1f} %, B lower in {lower} of {len(a)} pairs")
print(json.dumps({"bench": "compare-relay", "calls": calls, "a_us": a, "b_us": b,
                  "a_mean_us": round(statistics.mean(a), 3), "b_mean_us": round(statistics.mean(b), 3),
                  "change_pct": round(change, 1), "b_lower_pairs": lower}))
PY
