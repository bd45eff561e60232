#!/bin/sh
# Build the probe guest: tests/probe-guest/build.sh OUT  ->  OUT/probe.img
# (an arm64 Linux Image: flat binary, static PIE that relocates itself at entry).
# PROBE_TARGET_DIR overrides the cargo target directory (default OUT/target).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR   (writes OUT_DIR/probe.img)" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
TARGET_DIR=${PROBE_TARGET_DIR:-$OUT/target}
TARGET=aarch64-unknown-none

cd "$HERE"
# The flags are passed explicitly so that no parent folder's cargo config (el2visor's linker
# script, say) can leak into the probe: CARGO_ENCODED_RUSTFLAGS replaces every configured set.
CARGO_ENCODED_RUSTFLAGS="-Crelocation-model=pie" \
    cargo build --quiet --release --locked --target "$TARGET" --target-dir "$TARGET_DIR"
ELF="$TARGET_DIR/$TARGET/release/probe-guest"

TOOLS=""
for d in "$(rustc --print sysroot)"/lib/rustlib/*/bin; do
    if [ -x "$d/llvm-objcopy" ]; then TOOLS=$d; fi
done
if [ -z "$TOOLS" ]; then
    echo "$0: llvm-objcopy not found in the toolchain; run: rustup component add llvm-tools" >&2
    exit 1
fi

# entry.S applies only R_AARCH64_RELATIVE: refuse an image that needs anything else.
OTHER=$("$TOOLS/llvm-readobj" --elf-output-style=GNU -r "$ELF" | grep '^[0-9a-f]\{16\} ' | grep -v R_AARCH64_RELATIVE || true)
if [ -n "$OTHER" ]; then
    echo "$0: the probe has relocations entry.S does not apply:" >&2
    echo "$OTHER" >&2
    exit 1
fi

"$TOOLS/llvm-objcopy" -O binary "$ELF" "$OUT/probe.img"

# Header sanity: magic at 0x38, image_size covers the file.
MAGIC=$(od -An -c -j 56 -N 4 "$OUT/probe.img" | tr -d ' ')
SIZE=$(od -An -t u8 -j 16 -N 8 "$OUT/probe.img" | tr -d ' ')
FILE=$(wc -c < "$OUT/probe.img")
if [ "$MAGIC" != "ARMd" ] || [ "$SIZE" -lt "$FILE" ]; then
    echo "$0: bad Image header in $OUT/probe.img (magic '$MAGIC', image_size $SIZE, file $FILE bytes)" >&2
    exit 1
fi
echo "$OUT/probe.img"
