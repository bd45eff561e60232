#!/usr/bin/env bash
# Tests check-rpi4-boot.sh against a good folder and broken copies of it:
#
#   tests/tools/test-check-rpi4-boot.sh [--tool EL2VISOR_BUNDLE] DIR
#
# DIR must pass the check as it is (a fresh `make rpi4-boot` output). Each case then breaks one thing
# in a scratch copy (a missing or wrong config.txt key, a malformed line, a bad Image header, a
# corrupt or truncated bundle, a missing README, a two-line cmdline.txt) and expects the check to
# fail with a message naming that thing. Exit status 0 when every case behaves, 1 otherwise.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tool_args=()
if [ "${1:-}" = --tool ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [--tool EL2VISOR_BUNDLE] DIR" >&2; exit 2; }
    tool_args=(--tool "$2")
    shift 2
fi
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 [--tool EL2VISOR_BUNDLE] DIR" >&2; exit 2; }
good=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0
cases=0

check() { bash "$here/check-rpi4-boot.sh" "${tool_args[@]}" "$1"; }

# Writes bytes (printf escapes) at a byte offset of a file, in place.
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# expect NAME PATTERN MUTATION...: copy, mutate, check must fail and print PATTERN.
expect() {
    local name=$1 pattern=$2 d="$scratch/case"
    shift 2
    cases=$((cases + 1))
    rm -rf "$d"
    cp -r "$good" "$d"
    (cd "$d" && "$@") || { echo "FAIL $name: the mutation itself failed"; failures=$((failures + 1)); return; }
    local out status
    out=$(check "$d" 2>&1)
    status=$?
    if [ "$status" -ne 1 ]; then
        echo "FAIL $name: check exited $status, want 1"
        failures=$((failures + 1))
    elif ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL $name: no message matching /$pattern/ in:"
        printf '%s\n' "$out" | sed 's/^/    /'
        failures=$((failures + 1))
    fi
}

if ! out=$(check "$good" 2>&1); then
    echo "FAIL: $good does not pass the check to begin with:"
    printf '%s\n' "$out" | sed 's/^/    /'
    exit 1
fi

expect "no enable_uart" "no 'enable_uart=1' line" sed -i '/^enable_uart=/d' config.txt
expect "arm_64bit=0" "arm_64bit is '0', want '1'" sed -i 's/^arm_64bit=1$/arm_64bit=0/' config.txt
expect "kernel twice" "sets kernel again" sh -c 'echo kernel=el2visor.img >> config.txt'
expect "malformed line" "line [0-9]+ is not key=value" sh -c 'echo "enable_gic 1" >> config.txt'
expect "filtered key" "no 'enable_gic=1' line outside a board filter" \
    sh -c 'sed -i "/^enable_gic=/d" config.txt && printf "[pi3]\nenable_gic=1\n" >> config.txt'
expect "no disable-bt" "no dtoverlay=disable-bt" sed -i '/^dtoverlay=disable-bt$/d' config.txt
expect "initramfs elsewhere" "initramfs is 'other.bundle followkernel'" \
    sed -i 's/^initramfs guest.bundle followkernel$/initramfs other.bundle followkernel/' config.txt
expect "kernel file missing" "kernel=el2visor.img but .* is missing" rm el2visor.img
expect "CRLF config" "CR \\(DOS\\) line ends" sed -i 's/$/\r/' config.txt
expect "two-line cmdline" "2 lines" sh -c 'echo loglevel=debug >> cmdline.txt'
expect "image magic" "no arm64 Image magic" poke el2visor.img 56 'ARMX'
expect "big-endian image" "Image flags" poke el2visor.img 24 '\001'
expect "odd text_offset" "text_offset" poke el2visor.img 8 '\001'
expect "corrupt bundle" "checksum mismatch" poke guest.bundle 8192 '\377\377\377\377'
expect "truncated bundle" "truncated" truncate -s 100 guest.bundle
expect "no README" "README.md: missing" rm README.md
expect "README without firmware list" "does not mention 'start4.elf'" sed -i 's/start4\.elf/the firmware/g' README.md

if [ "$failures" -gt 0 ]; then
    echo "test-check-rpi4-boot: $failures of $cases cases failed"
    exit 1
fi
echo "test-check-rpi4-boot: all $cases cases ok"
