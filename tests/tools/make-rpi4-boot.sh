#!/usr/bin/env bash
# Assembles the Raspberry Pi 4 boot folder (what `make rpi4-boot` runs; tests/tools/tools.mk passes
# every option):
#
#   tests/tools/make-rpi4-boot.sh --tool EL2VISOR_BUNDLE --image EL2VISOR_IMG --out DIR --cache CACHE
#       [--kernel IMAGE] [--initrd FILE] [--cmdline GUEST_CMDLINE] [--bootargs EL2VISOR_CMDLINE]
#       [--firmware FIRMWARE_BOOT_DIR] [--vms "VM VM …"]
#
# DIR gets config.txt and README.md (from tests/rpi4/), cmdline.txt (el2visor's command line),
# el2visor.img and guest.bundle (built by el2visor-bundle). With no --kernel, the guest is the Debian
# kernel and busybox initramfs that tests/fixtures/fetch-guests.sh CACHE/guests produces (--initrd
# still overrides the initramfs); with --kernel and no --initrd, the guest has no initrd.
# --vms puts several VMs in guest.bundle instead (tests/tools/bundle-vms.sh: each VM
# [NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE]); --kernel, --initrd and --cmdline then do not apply.
# --firmware copies start4.elf, fixup4.dat, the BCM2711 DTBs and overlays/disable-bt.dtbo from a
# Raspberry Pi firmware release's boot/ folder. The folder is built beside DIR and swapped in only
# when complete, then checked with tests/tools/check-rpi4-boot.sh.
set -euo pipefail

die() { printf 'make-rpi4-boot: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

tool="" image="" out="" cache="" kernel="" initrd="" cmdline="" bootargs="" firmware="" vms=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { printf 'make-rpi4-boot: %s needs a value\n' "$1" >&2; usage; }
    case "$1" in
        --tool) tool=$2 ;;
        --image) image=$2 ;;
        --out) out=$2 ;;
        --cache) cache=$2 ;;
        --kernel) kernel=$2 ;;
        --initrd) initrd=$2 ;;
        --cmdline) cmdline=$2 ;;
        --bootargs) bootargs=$2 ;;
        --firmware) firmware=$2 ;;
        --vms) vms=$2 ;;
        *) printf 'make-rpi4-boot: unknown option %s\n' "$1" >&2; usage ;;
    esac
    shift 2
done
[ -n "$tool" ] && [ -n "$image" ] && [ -n "$out" ] && [ -n "$cache" ] || usage

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ -x "$tool" ] || die "el2visor-bundle not found at $tool: run \`make bundle-tool\`"
[ -s "$image" ] || die "el2visor image $image missing: run \`make image\`"

# --- The guest: several VMs, given, or the test guest from the package cache.
if [ -n "$vms" ]; then
    [ -z "$kernel" ] && [ -z "$initrd" ] || die "give either VMS or KERNEL/INITRD, not both"
elif [ -z "$kernel" ]; then
    guests=$(bash "$repo/tests/fixtures/fetch-guests.sh" "$cache/guests") \
        || die "could not fetch the default guest; pass KERNEL=path/to/Image (and INITRD=…) instead"
    kernel=$(sed -n 3p <<<"$guests")   # Image-rpi4: the generic kernel, with BCM2711 drivers
    [ -n "$initrd" ] || initrd=$(sed -n 2p <<<"$guests")
    [ -s "$kernel" ] && [ -s "$initrd" ] || die "fetch-guests.sh printed no kernel/initramfs paths"
fi

# --- Build in a staging folder beside the destination.
mkdir -p "$(dirname "$out")"
stage="$out.new.$$"
trap 'rm -rf "$stage"' EXIT
rm -rf "$stage"
mkdir -p "$stage"

cp "$repo/tests/rpi4/config.txt" "$stage/config.txt"
cp "$repo/tests/rpi4/README.md" "$stage/README.md"
cp "$image" "$stage/el2visor.img"
printf '%s\n' "$bootargs" >"$stage/cmdline.txt"

if [ -n "$vms" ]; then
    listing=$(bash "$here/bundle-vms.sh" "$tool" "$stage/guest.bundle" "$vms") \
        || die "building guest.bundle failed (see the message above)"
else
    build=("$tool" build --kernel "$kernel" --cmdline "$cmdline" -o "$stage/guest.bundle")
    [ -z "$initrd" ] || build+=(--initrd "$initrd")
    listing=$("${build[@]}") || die "building guest.bundle failed (see the message above)"
fi

if [ -n "$firmware" ]; then
    [ -d "$firmware" ] || die "--firmware $firmware is not a folder"
    for f in start4.elf fixup4.dat bcm2711-rpi-4-b.dtb overlays/disable-bt.dtbo; do
        [ -s "$firmware/$f" ] || die "$firmware/$f missing: point RPI_FIRMWARE at the boot/ folder of a Raspberry Pi firmware release"
    done
    mkdir -p "$stage/overlays"
    cp "$firmware/start4.elf" "$firmware/fixup4.dat" "$firmware/bcm2711-rpi-4-b.dtb" "$stage/"
    for f in bcm2711-rpi-400.dtb bcm2711-rpi-cm4.dtb; do
        [ ! -s "$firmware/$f" ] || cp "$firmware/$f" "$stage/"
    done
    cp "$firmware/overlays/disable-bt.dtbo" "$stage/overlays/"
fi

# --- Record what went in, for whoever finds the card later.
{
    printf '\n## This build\n\n'
    if [ -n "$vms" ]; then
        printf -- '- several VMs, each a dom0less domain on its own CPUs with its own RAM and an emulated\n'
        printf -- '  PL011 (its console; output prefixed with `(<name>) `, input switched by Ctrl-A three times):\n'
        grep '^  VM ' <<<"$listing" | sed 's/^  /  - /'
        printf -- '- VMS as given: `%s`\n' "$vms"
    else
        printf -- '- guest kernel: `%s`\n' "$kernel"
        printf -- '- guest initrd: `%s`\n' "${initrd:-none}"
        printf -- '- guest command line: `%s`\n' "$cmdline"
    fi
    printf -- '- el2visor command line (cmdline.txt): `%s`\n' "$bootargs"
    if [ -n "$firmware" ]; then
        printf -- '- firmware files copied from `%s`\n' "$firmware"
    else
        printf -- '- firmware files: not included, copy them as described above\n'
    fi
    printf '\n```\n%s\n```\n' "${listing#*guest.bundle: }"
} >>"$stage/README.md"

bash "$here/check-rpi4-boot.sh" --tool "$tool" "$stage" >/dev/null \
    || die "the folder failed its own check (messages above); $out left unchanged"

rm -rf "$out"
mv "$stage" "$out"
trap - EXIT
printf '%s\n' "$out"
