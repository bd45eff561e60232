#!/usr/bin/env bash
# Checks a Raspberry Pi 4 boot folder made by `make rpi4-boot`:
#
#   tests/tools/check-rpi4-boot.sh [--tool EL2VISOR_BUNDLE] DIR
#
# - config.txt: every line is a comment, a [filter] section, key=value or `initramfs FILE ADDR`;
#   no CR line ends; no key set twice (dtoverlay/dtparam excepted); arm_64bit=1, enable_uart=1,
#   enable_gic=1, kernel=el2visor.img, dtoverlay=disable-bt and `initramfs guest.bundle followkernel`
#   set outside any board filter; the files kernel= and initramfs name exist in DIR;
# - cmdline.txt: one line, no CR;
# - el2visor.img: an arm64 Image header (magic "ARM\x64" at 0x38, little endian, no reserved flag
#   bits, text_offset a 4 KiB multiple below 2 MiB, image_size covering the file);
# - guest.bundle: parses as el2visor parses it (`el2visor-bundle check`), its kernel included;
# - README.md: names the firmware files and the console settings.
# Every problem is reported, not just the first. Exit status 0 all good, 1 problems, 2 usage.
# The tool defaults to $EL2VISOR_BUNDLE, else target/tools/<host>/release/el2visor-bundle.
set -uo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
tool=${EL2VISOR_BUNDLE:-}
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tool) [ $# -ge 2 ] || usage; tool=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) printf 'check-rpi4-boot: unknown option %s\n' "$1" >&2; usage ;;
        *) [ -z "$dir" ] || usage; dir=$1; shift ;;
    esac
done
[ -n "$dir" ] || usage
[ -d "$dir" ] || { printf 'check-rpi4-boot: %s is not a folder\n' "$dir" >&2; exit 2; }
if [ -z "$tool" ]; then
    repo=$(cd "$(dirname "$0")/../.." && pwd)
    host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    tool="$repo/target/tools/$host/release/el2visor-bundle"
fi

problems=0
bad() { printf 'check-rpi4-boot: %s/%s: %s\n' "$dir" "$1" "$2" >&2; problems=$((problems + 1)); }

# --- config.txt
check_config() {
    local f="$dir/config.txt" n=0 line section="all" key
    local -A seen=() value=()
    [ -s "$f" ] || { bad config.txt "missing or empty"; return; }
    if grep -q $'\r' "$f"; then bad config.txt "has CR (DOS) line ends"; fi
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line=${line%$'\r'}
        case "$line" in
            ''|'#'*) continue ;;
        esac
        if [[ $line =~ ^\[([a-z0-9_=:]+)\]$ ]]; then
            section=${BASH_REMATCH[1]}
            continue
        fi
        if [[ $line =~ ^initramfs\ ([^\ ]+)\ (followkernel|0x[0-9a-fA-F]+)$ ]]; then
            key=initramfs
            line="initramfs=${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
        elif [[ $line =~ ^([a-z_][a-z0-9_]*)=([^\ ].*)$ ]]; then
            key=${BASH_REMATCH[1]}
        else
            bad config.txt "line $n is not key=value, [filter] or 'initramfs FILE ADDR': '$line'"
            continue
        fi
        [ "$section" = all ] || continue
        case "$key" in
            dtoverlay|dtparam) value[$key]="${value[$key]:-} ${line#*=} " ;;
            *)
                if [ -n "${seen[$key]:-}" ]; then
                    bad config.txt "line $n sets $key again (first on line ${seen[$key]}; the last one wins)"
                fi
                value[$key]=${line#*=}
                ;;
        esac
        seen[$key]=$n
    done <"$f"
    local want
    for want in arm_64bit=1 enable_uart=1 enable_gic=1 kernel=el2visor.img "initramfs=guest.bundle followkernel"; do
        key=${want%%=*}
        if [ -z "${seen[$key]:-}" ]; then
            [ "$key" = initramfs ] && want="initramfs ${want#*=}"
            bad config.txt "no '$want' line outside a board filter"
        elif [ "${value[$key]}" != "${want#*=}" ]; then
            bad config.txt "$key is '${value[$key]}', want '${want#*=}'"
        fi
    done
    [[ "${value[dtoverlay]:-}" == *" disable-bt "* ]] \
        || bad config.txt "no dtoverlay=disable-bt: the PL011 console would stay on Bluetooth"
    local k=${value[kernel]:-} i=${value[initramfs]:-}
    i=${i%% *}
    [ -z "$k" ] || [ -s "$dir/$k" ] || bad config.txt "kernel=$k but $dir/$k is missing"
    [ -z "$i" ] || [ -s "$dir/$i" ] || bad config.txt "initramfs $i but $dir/$i is missing"
}

# --- cmdline.txt
check_cmdline() {
    local f="$dir/cmdline.txt"
    [ -f "$f" ] || { bad cmdline.txt "missing"; return; }
    if grep -q $'\r' "$f"; then bad cmdline.txt "has a CR: the firmware would pass it to el2visor"; fi
    local lines
    lines=$(grep -c '' "$f")
    [ "$lines" -le 1 ] || bad cmdline.txt "$lines lines: the firmware reads only the first"
}

# Prints the little-endian u64 at offset $2 of file $1 as 16 hex digits.
hex64() { od -An -tx8 -j "$2" -N 8 "$1" | tr -d ' \n'; }

# --- el2visor.img
check_image() {
    local f="$dir/el2visor.img" size magic flags text isize
    [ -s "$f" ] || { bad el2visor.img "missing or empty"; return; }
    size=$(wc -c <"$f")
    [ "$size" -ge 64 ] || { bad el2visor.img "$size bytes, shorter than the 64-byte Image header"; return; }
    magic=$(od -An -tx1 -j 56 -N 4 "$f" | tr -d ' \n')
    [ "$magic" = 41524d64 ] || bad el2visor.img "no arm64 Image magic \"ARM\\x64\" at 0x38 (found $magic): not an Image"
    flags=$(hex64 "$f" 24)
    [[ $flags == 000000000000000[02468ace] ]] \
        || bad el2visor.img "Image flags 0x$flags: big endian (bit 0) or reserved bits 63:4 set"
    # Range checks on the hex digits first: bash arithmetic is signed 64-bit.
    text=$(hex64 "$f" 8)
    [[ $text =~ ^0{10}[0-9a-f]{6}$ ]] && [ $((16#$text % 4096)) -eq 0 ] && [ $((16#$text)) -lt $((2 << 20)) ] \
        || bad el2visor.img "text_offset 0x$text is not a 4 KiB multiple below 2 MiB"
    isize=$(hex64 "$f" 16)
    [[ $isize =~ ^[89a-f] ]] || [ $((16#$isize)) -ge "$size" ] \
        || bad el2visor.img "image_size 0x$isize is smaller than the file ($size bytes)"
}

# --- guest.bundle
check_bundle() {
    local f="$dir/guest.bundle" out
    [ -s "$f" ] || { bad guest.bundle "missing or empty"; return; }
    [ -x "$tool" ] || { bad guest.bundle "cannot check it: no el2visor-bundle at $tool (run \`make bundle-tool\`)"; return; }
    if ! out=$("$tool" check "$f" 2>&1); then
        bad guest.bundle "el2visor-bundle check refused it: $out"
    fi
}

# --- README.md
check_readme() {
    local f="$dir/README.md" word
    [ -s "$f" ] || { bad README.md "missing or empty"; return; }
    for word in start4.elf fixup4.dat bcm2711-rpi-4-b.dtb overlays/disable-bt.dtbo 115200 GPIO14 GPIO15 "pin 6" "pin 8" "pin 10"; do
        grep -qF "$word" "$f" || bad README.md "does not mention '$word'"
    done
}

check_config
check_cmdline
check_image
check_bundle
check_readme
if [ "$problems" -gt 0 ]; then
    printf 'check-rpi4-boot: %s: %d problem(s)\n' "$dir" "$problems" >&2
    exit 1
fi
printf 'check-rpi4-boot: %s: ok\n' "$dir"
