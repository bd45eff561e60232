#!/usr/bin/env bash
# A virtio-blk-pci disk read under el2visor against bare QEMU (issue 11; method and figures in
# docs/benchmarks.md, section "PCI disk read").
#
# The guest is `make guests`' Debian arm64 cloud kernel and busybox initramfs; its /init
# (`el2visor.virtio=1 el2visor.blkread=vda:64`) loads the virtio modules, reads the first 64 MiB
# of a virtio-blk-pci disk with dd and prints
# `EL2VISOR-BLKREAD 64 <centiseconds>`, timed in the guest (/proc/uptime), then powers off. Both
# sides run the same machine (virt, virtualization=on, gic-version=3, -cpu max, -smp 2, -m 1G), the
# guest as it comes: MSI-X through the ITS on bare QEMU, INTx under el2visor (no virtual ITS yet).
# QEMU runs with -icount shift=0,align=off,sleep=off, so the guest's clock counts instructions
# executed (el2visor's included) and the figure does not depend on the load of a shared host.
# The disk is QEMU's null-co block driver (64 MiB that read as zeroes), not an image file: a file's
# reads complete on QEMU's host I/O threads, and when every vCPU idles in WFI meanwhile, sleep=off
# jumps the virtual clock to the next timer deadline at once, so a read took seconds of virtual
# time in about one run in four, bare QEMU included (docs/benchmarks.md). null-co answers a request
# without any host I/O thread, so no completion is outstanding while the vCPUs idle.
# One run per side is discarded, then runs alternate in pairs as in linux.bench.sh. Prints
#   BENCH pci_blk_read_ratio <x> ratio   median over pairs of el2visor read time / bare read time
#   BENCH pci_blk_read_ms <n> ms         median el2visor read time
# and one `pci.bench.sh: pair …` line per pair on stderr. Target (issue 11): ratio at most 1.2; a
# missed target is reported on stderr and makes the script fail.
# EL2VISOR_IMG, EL2VISOR_GUESTS, BENCH_TIMEOUT as for linux.bench.sh; BENCH_PCI_PAIRS the number of
# pairs (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMG=${EL2VISOR_IMG:-target/el2visor.img}
GUESTS=${EL2VISOR_GUESTS:-.cache/guests}
PAIRS=${BENCH_PCI_PAIRS:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
QEMU=${QEMU:-qemu-system-aarch64}
RATIO_MAX=1.2
MIB=64

die() {
    echo "pci.bench.sh: $*" >&2
    exit 1
}

if [ -z "${EL2VISOR_GUESTS:-}" ]; then
    bash tests/fixtures/fetch-guests.sh "$GUESTS" >/dev/null ||
        die "could not fetch the Linux guest into $GUESTS (tests/fixtures/fetch-guests.sh said why above)"
fi
for f in Image initramfs.cpio.gz; do
    [ -f "$GUESTS/$f" ] || die "no $GUESTS/$f (EL2VISOR_GUESTS=$GUESTS)"
done
[ -f "$IMG" ] || die "no image at $IMG: run 'make image' first (or set EL2VISOR_IMG)"
case $GUESTS in *,*) die "$GUESTS: QEMU -device options cannot take a path with a comma" ;; esac
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PCI_PAIRS must be a positive number, not '$PAIRS'"

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

ARGS="console=ttyAMA0 el2visor.virtio=1 el2visor.blkread=vda:$MIB"
MACHINE=(-M virt,virtualization=on,gic-version=3 -cpu max -smp 2 -m 1G -icount shift=0,align=off,sleep=off
    -nographic -no-reboot -monitor none -serial stdio
    -drive "if=none,driver=null-co,size=${MIB}M,read-zeroes=on,id=d0" -device virtio-blk-pci,drive=d0)
EL2VISOR=(-kernel "$IMG" -append ""
    -device "guest-loader,addr=0x49000000,kernel=$GUESTS/Image,bootargs=$ARGS"
    -device "guest-loader,addr=0x4c000000,initrd=$GUESTS/initramfs.cpio.gz")
BARE=(-kernel "$GUESTS/Image" -initrd "$GUESTS/initramfs.cpio.gz" -append "$ARGS")

# run SIDE N: boot once, print the guest's read time in ms.
run() {
    local side=$1 n=$2 log="$LOGDIR/$1.$2" status=0 cs
    local -a args
    if [ "$side" = el2visor ]; then args=("${EL2VISOR[@]}"); else args=("${BARE[@]}"); fi
    timeout --kill-after=10 "$TIMEOUT" "$QEMU" "${MACHINE[@]}" "${args[@]}" </dev/null 2>&1 | tr -d '\r' >"$log" || status=$?
    cs=$(sed -n "s/^EL2VISOR-BLKREAD $MIB \([0-9]*\)$/\1/p" "$log" | head -n1)
    if [ "$status" -ne 0 ] || [ -z "$cs" ] || [ "$cs" -eq 0 ]; then
        {
            echo "pci.bench.sh: $side run $n: no 'EL2VISOR-BLKREAD $MIB <cs>' line (QEMU status $status). Last lines:"
            tail -n 20 "$log" | sed 's/^/    /'
        } >&2
        return 1
    fi
    echo $((cs * 10))
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: >"$LOGDIR/pairs"
# One discarded run per side first (caches warm).
run el2visor 0 >/dev/null || exit 1
run bare 0 >/dev/null || exit 1
for ((i = 1; i <= PAIRS; i++)); do
    if ((i % 2)); then order=(el2visor bare); else order=(bare el2visor); fi
    for side in "${order[@]}"; do
        ms=$(run "$side" "$i") || exit 1
        printf -v "${side}_ms" %s "$ms"
    done
    echo "$el2visor_ms $bare_ms" >>"$LOGDIR/pairs"
    echo "pci.bench.sh: pair $i (${order[0]} first): el2visor ${el2visor_ms} ms, bare ${bare_ms} ms" >&2
done

ratio=$(awk '{ printf "%.6f\n", $1 / $2 }' "$LOGDIR/pairs" | median)
ms=$(awk '{ print $1 }' "$LOGDIR/pairs" | median)
awk -v r="$ratio" -v ms="$ms" -v max="$RATIO_MAX" '
    BEGIN {
        printf "BENCH pci_blk_read_ratio %.3f ratio\n", r
        printf "BENCH pci_blk_read_ms %d ms\n", ms
        if (r > max) {
            printf "pci.bench.sh: a %d MiB virtio-blk-pci read takes %.3f times as long under el2visor as on bare QEMU, more than the target %.2f\n", '"$MIB"', r, max > "/dev/stderr"
            exit 1
        }
    }'
