#!/usr/bin/env bash
# Finds the parts of ngtcp2's memory that a relay's per-packet paths use, for
# the prefetch tables in gst/wzp/wzp-quic-conn.c (hot_ranges, hot_blocks).
# Builds the given ngtcp2 source tree (the version the relay runs with) with
# every load and store instrumented, runs BUILD-DIR's bench-relay with its
# relay on that library and shim.c preloaded, records some seconds of steady
# forwarding at CALLS calls (default 20) and prints the two tables.
# Needs cmake, a C compiler and python3; takes about a minute. With
# NGTCP2_LINES_KEEP=FILE the record is kept there, for tables.py to read
# again with other shares.
#
#   bench/ngtcp2-lines/trace.sh NGTCP2-SOURCE BUILD-DIR [CALLS]
set -eu
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd) calls=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
bench=
cleanup () {
  [ -n "$bench" ] && kill "$bench" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# compiled with ThreadSanitizer's instrumentation, linked without its run-time:
# shim.c answers the calls
cmake -S "$src" -B "$work/ng" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS="-g -O2 -fsanitize=thread" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fno-sanitize=thread -DENABLE_OPENSSL=OFF \
  -DENABLE_SHARED_LIB=ON -DENABLE_STATIC_LIB=OFF > "$work/cmake.log"
cmake --build "$work/ng" --target ngtcp2 -j "$(nproc)" > "$work/build.log"
cc -O2 -shared -fPIC "$here/shim.c" -o "$work/shim.so" -ldl
printf '#include <stdio.h>\n#include "ngtcp2_conn.h"\nint main (void) { printf ("%%zu\\n", sizeof (ngtcp2_conn)); return 0; }\n' \
  > "$work/size.c"
cc -I"$src/lib" -I"$src/lib/includes" -I"$work/ng/lib/includes" -I"$work/ng" \
  "$work/size.c" -o "$work/size"

export NGTCP2_LINES_OUT=$work/record.txt
WZP_BENCH_RELAY_WRAPPER="env LD_PRELOAD=$work/shim.so LD_LIBRARY_PATH=$work/ng/lib" \
  "$build/bench/bench-relay" 30 "$calls" "$calls" > "$work/bench.log" 2>&1 &
bench=$!
# the load step starts after the memory figures: give it time to settle
until grep -q '^ *calls' "$work/bench.log"; do
  kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log" >&2; exit 1; }
  sleep 1
done
sleep 8
relay=$(pgrep -P "$bench" -x wzp-relay)
kill -USR2 "$relay"
sleep 8
kill -USR1 "$relay"
sleep 1
[ -n "${NGTCP2_LINES_KEEP:-}" ] && cp "$NGTCP2_LINES_OUT" "$NGTCP2_LINES_KEEP"
python3 "$here/tables.py" "$("$work/size")" < "$NGTCP2_LINES_OUT"
