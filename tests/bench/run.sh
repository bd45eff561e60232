#!/usr/bin/env bash
# make bench: every benchmark prints `BENCH <name> <value> <unit>` lines (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
for b in tests/bench/*.bench.sh; do
    [ -e "$b" ] || continue
    bash "$b"
done
