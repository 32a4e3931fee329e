#!/bin/sh
# Builds the quinn test peer offline from Debian's crates.
#   build.sh SOURCE-DIR TARGET-DIR OUTPUT
set -e
out=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
cd "$1"
CARGO_TARGET_DIR="$2" cargo build --quiet
cp "$2/debug/wzp-quinn-peer" "$out"
