#!/usr/bin/env bash
# `make bench` in a fresh clone: the Linux benchmark fetches its guests itself. Copies the two
# scripts involved into an empty tree (no .cache: what a fresh clone has), seeds the package folder
# with the .debs already downloaded here, when there are any, so that no network is needed, and runs
# `linux.bench.sh --guests-only` there; the kernel and the initramfs must then exist.
#
#   tests/bench/test-guests.sh [CACHE_DIR]     (CACHE_DIR: where to take .debs from, default .cache/guests)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
debs=${1:-$repo/.cache/guests}/debs
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/tests/bench" "$tree/tests/fixtures" "$tree/.cache/guests/debs"
cp "$repo/tests/bench/linux.bench.sh" "$tree/tests/bench/"
cp "$repo/tests/fixtures/fetch-guests.sh" "$tree/tests/fixtures/"
if [ -d "$debs" ]; then
    cp -l "$debs"/*.deb "$tree/.cache/guests/debs/" 2>/dev/null || cp "$debs"/*.deb "$tree/.cache/guests/debs/" 2>/dev/null || true
fi
# Only the packages: no kernel, no initramfs, as in a fresh clone.
[ ! -e "$tree/.cache/guests/Image" ] || { echo "test-guests: the scratch tree already has a kernel" >&2; exit 1; }
out=$(cd "$tree" && env -u EL2VISOR_GUESTS bash tests/bench/linux.bench.sh --guests-only) || {
    echo "test-guests: linux.bench.sh --guests-only failed in a tree without guests" >&2
    exit 1
}
for f in Image initramfs.cpio.gz; do
    [ -s "$tree/$out/$f" ] || { echo "test-guests: no $out/$f after linux.bench.sh --guests-only" >&2; exit 1; }
done
echo "test-guests: linux.bench.sh fetched its guests into an empty tree"
