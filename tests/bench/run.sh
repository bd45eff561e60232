#!/usr/bin/env bash
# make bench: run every tests/bench/*.bench.sh; each prints `BENCH <name> <value> <unit>` lines
# (see docs/benchmarks.md) and fails when its figure misses its target. Every benchmark runs even
# when an earlier one failed; the exit status says whether all met their targets.
set -uo pipefail
cd "$(dirname "$0")/../.."
failed=()
for b in tests/bench/*.bench.sh; do
    [ -e "$b" ] || continue
    bash "$b" || failed+=("$(basename "$b")")
done
if ((${#failed[@]})); then
    echo "make bench: missed targets or failed: ${failed[*]}" >&2
    exit 1
fi
