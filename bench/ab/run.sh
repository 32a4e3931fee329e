#!/usr/bin/env bash
# Measures a change to the library inside one relay process: the relay's
# time alternates every 100 ms between the change off (mode 0) and on
# (mode 1), so both halves run on the same heap, connections and machine
# minute. Run-to-run spread (a fresh relay's heap layout, this machine's
# drift) is about ±5 %; within a run, an A/A check splits within ±0.5 %.
#
#   bench/ab/run.sh EXPERIMENT.patch [RUNS] [SECONDS]   (default 3 runs, 20 s)
#   bench/ab/run.sh --aa [RUNS] [SECONDS]               (the method's own noise)
#
# EXPERIMENT.patch applies to HEAD and makes the change depend on
# wzp_ab_mode (gst/wzp/wzp-quic-private.h, once harness.patch is in): see
# keys-prefetch.patch. The harness times endpoint reads (read, handle,
# flush) with the thread's CPU clock and counts their packets, from 4 s into
# the run (after the load generator's connections are up); each run is
# `bench-relay SECONDS 400 400` in a temporary worktree and build.
# Prints, per run, ns per received packet with the change off and on.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
aa=
if [ "${1:-}" = --aa ]; then aa=1; patch=; else patch=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); fi
shift
runs=${1:-3} secs=${2:-20}
work=$(mktemp -d)
cleanup () { git -C "$top" worktree remove --force "$work/src" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
git -C "$top" worktree add -q --detach "$work/src" HEAD
git -C "$work/src" apply "$here/harness.patch"
[ -n "$patch" ] && git -C "$work/src" apply "$patch"
meson setup "$work/b" "$work/src" --buildtype=debugoptimized > "$work/setup.log"
ninja -C "$work/b" bench/bench-relay relay/wzp-relay > "$work/build.log"
total0=0 total1=0
for i in $(seq "$runs"); do
  # the relay prints first (it exits first), then the load generator
  read -r a b < <(env WZP_AB=4 ${aa:+WZP_AA=1} "$work/b/bench/bench-relay" "$secs" 400 400 2>&1 >/dev/null |
                  awk '/^AB mode/ { v[n++] = $6 } END { print v[0], v[1] }')
  printf 'run %d   off %8.1f ns/packet   on %8.1f ns/packet   %+.2f %%\n' "$i" "$a" "$b" \
    "$(echo "($b / $a - 1) * 100" | bc -l)"
  total0=$(echo "$total0 + $a" | bc -l) total1=$(echo "$total1 + $b" | bc -l)
done
printf 'mean      off %8.1f              on %8.1f              %+.2f %%\n' "$(echo "$total0 / $runs" | bc -l)" \
  "$(echo "$total1 / $runs" | bc -l)" "$(echo "($total1 / $total0 - 1) * 100" | bc -l)"
