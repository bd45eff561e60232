#!/usr/bin/env bash
# Linux boot cost under el2visor against bare QEMU (issue 4; method and figures in
# docs/benchmarks-linux.md).
#
# The guest is `make guests`' Debian arm64 cloud kernel with the busybox initramfs whose /init prints
# `EL2VISOR-GUEST-OK cpus=<n> mem=<kB>` and powers off. Both sides run the same QEMU machine
# (virt, virtualization=on, gic-version=3, -cpu max, -smp 2, -m 1G):
#   el2visor  -kernel el2visor.img, Linux and its initramfs as guest-loader modules (the Xen way)
#   bare      -kernel Image -initrd initramfs.cpio.gz -append console=ttyAMA0
# Each run goes from QEMU start to QEMU exit (the guest's poweroff), timed on the host wall clock,
# with the QEMU process's peak RSS from /usr/bin/time -v. The runs alternate, el2visor and bare
# in pairs, the first of each pair swapping from pair to pair so that a drift in host load hits
# both sides alike. Prints
#   BENCH linux_boot_ratio <x> ratio         median over pairs of el2visor wall time / bare wall time
#   BENCH linux_boot_exits <n> exits         median of the el2visor runs' STATS exits=
#   BENCH linux_peak_mem_ratio <x> ratio     median over pairs of el2visor peak RSS / bare peak RSS
# and one `linux.bench.sh: pair …` line per pair on stderr. Targets (issue 4): boot ratio at most
# 1.10, memory ratio at most 1.2; a missed target is reported on stderr and makes the script fail,
# after every figure has been printed.
# EL2VISOR_IMG picks the image (default target/el2visor.img), EL2VISOR_GUESTS the guest folder
# (default .cache/guests, which the script fills itself with tests/fixtures/fetch-guests.sh, as
# `make guests` does, so `make bench` works in a fresh clone), BENCH_PAIRS the number of pairs
# (default 5), BENCH_WARMUP the uncounted rounds of one run each before them (default 1),
# BENCH_TIMEOUT the seconds one QEMU run may take (default 300).
# After each pair a third run, not part of the pair: the same kernel bare, but at EL1 under KVM's
# nVHE hypervisor stub (kvm-arm.mode=nvhe: EL2 present and idle, no Stage 2, no exits). It prints
#   BENCH linux_el1_reference_ratio <x> ratio  median over pairs of its wall time / bare wall time
#   BENCH linux_boot_ratio_vs_el1 <x> ratio    median over pairs of el2visor wall time / its wall time
# what TCG charges any guest kernel for running at EL1 under an EL2, which the bare baseline (VHE
# Linux at EL2) does not pay, and el2visor against a guest that pays it too (docs/benchmarks-linux.md).
# Neither is a target; a missed boot target's message quotes both. BENCH_EL1_REFERENCE=0 leaves
# the reference runs out.
# `linux.bench.sh --guests-only` makes sure the guests are there, prints their folder and stops.
set -euo pipefail
cd "$(dirname "$0")/../.."

guests_only=0
case "${1:-}" in
    --guests-only) guests_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--guests-only]" >&2; exit 2 ;;
esac

IMG=${EL2VISOR_IMG:-target/el2visor.img}
GUESTS=${EL2VISOR_GUESTS:-.cache/guests}
PAIRS=${BENCH_PAIRS:-5}
WARMUP=${BENCH_WARMUP:-1}
TIMEOUT=${BENCH_TIMEOUT:-300}
EL1_REFERENCE=${BENCH_EL1_REFERENCE:-1}
QEMU=${QEMU:-qemu-system-aarch64}
SMP=2
BOOT_RATIO_MAX=1.10
MEM_RATIO_MAX=1.2

die() {
    echo "linux.bench.sh: $*" >&2
    exit 1
}

# The guests: fetched and built into the default folder (idempotent and quiet when they are there
# already); a folder given by EL2VISOR_GUESTS is used as it is.
if [ -z "${EL2VISOR_GUESTS:-}" ]; then
    bash tests/fixtures/fetch-guests.sh "$GUESTS" >/dev/null ||
        die "could not fetch the Linux guest into $GUESTS (tests/fixtures/fetch-guests.sh said why above)"
fi
for f in Image initramfs.cpio.gz; do
    [ -f "$GUESTS/$f" ] || die "no $GUESTS/$f (EL2VISOR_GUESTS=$GUESTS): point it at a folder with Image and initramfs.cpio.gz"
done
if [ "$guests_only" = 1 ]; then
    echo "$GUESTS"
    exit 0
fi
[ -f "$IMG" ] || die "no image at $IMG: run 'make image' first (or set EL2VISOR_IMG)"
case $GUESTS in *,*) die "$GUESTS: QEMU -device options cannot take a path with a comma" ;; esac
command -v "$QEMU" >/dev/null || die "$QEMU not found: run 'make setup'"
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PAIRS must be a positive number, not '$PAIRS'"
if [ ! -x /usr/bin/time ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq time >/dev/null 2>&1 ||
        die "/usr/bin/time is missing and 'apt-get install time' failed: install the 'time' package"
fi

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

MACHINE=(-M virt,virtualization=on,gic-version=3 -cpu max -smp "$SMP" -m 1G
    -nographic -no-reboot -monitor none -serial stdio)
EL2VISOR=(-kernel "$IMG" -append ""
    -device "guest-loader,addr=0x49000000,kernel=$GUESTS/Image,bootargs=console=ttyAMA0"
    -device "guest-loader,addr=0x4c000000,initrd=$GUESTS/initramfs.cpio.gz")
BARE=(-kernel "$GUESTS/Image" -initrd "$GUESTS/initramfs.cpio.gz" -append "console=ttyAMA0")
EL1=(-kernel "$GUESTS/Image" -initrd "$GUESTS/initramfs.cpio.gz" -append "console=ttyAMA0 kvm-arm.mode=nvhe")

# run SIDE N: boot once; check the guest reached init with every CPU and QEMU exited by itself;
# print "<wall seconds> <peak RSS kB> <STATS exits or ->".
run() {
    local side=$1 n=$2 log="$LOGDIR/$1.$2" status=0 start end
    local -a args
    case $side in
        el2visor) args=("${EL2VISOR[@]}") ;;
        el1) args=("${EL1[@]}") ;;
        *) args=("${BARE[@]}") ;;
    esac
    start=$(date +%s%N)
    /usr/bin/time -v -o "$log.time" timeout --kill-after=10 "$TIMEOUT" \
        "$QEMU" "${MACHINE[@]}" "${args[@]}" </dev/null >"$log.raw" 2>&1 || status=$?
    end=$(date +%s%N)
    tr -d '\r' <"$log.raw" >"$log"     # the serial console ends lines with CR LF
    local why="" exits=-
    if [ "$status" -ne 0 ]; then
        why="QEMU (under timeout ${TIMEOUT}s) exited with status $status"
    elif ! grep -qx "EL2VISOR-GUEST-OK cpus=$SMP mem=[0-9]*" "$log"; then
        why="no 'EL2VISOR-GUEST-OK cpus=$SMP' marker: the guest did not reach init with every CPU"
    elif [ "$side" = el1 ] && grep -q "VHE mode initialized" "$log"; then
        why="kvm-arm.mode=nvhe was not honoured: the kernel ran at EL2 with VHE, not at EL1"
    elif [ "$side" = el2visor ]; then
        exits=$(sed -n 's/^STATS exits=\([0-9]*\) .*/\1/p' "$log" | head -n1)
        [ -n "$exits" ] || why="no 'STATS exits=' line from el2visor"
    fi
    local rss
    rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): \([0-9]*\)$/\1/p' "$log.time")
    [ -n "$why" ] || [ -n "$rss" ] || why="/usr/bin/time -v gave no 'Maximum resident set size'"
    if [ -n "$why" ]; then
        {
            echo "linux.bench.sh: $side run $n: $why. Last lines of its output:"
            tail -n 20 "$log" | sed 's/^/    /'
        } >&2
        return 1
    fi
    echo "$(( (end - start) / 1000000 )) $rss $exits"
}

# median: the median of the numbers on stdin, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Warm-up: each side once, not counted. The first run after a while reads the kernel, the
# initramfs and QEMU itself from disk and faults in host memory nothing has touched lately, and
# it was el2visor's, which goes first in pair 1 (that run was often the slowest of the ten, once
# by 1.2 s).
for ((i = 1; i <= WARMUP; i++)); do
    for side in bare el2visor; do
        run "$side" "warmup$i" >/dev/null || exit 1
    done
done
: >"$LOGDIR/pairs"
for ((i = 1; i <= PAIRS; i++)); do
    if ((i % 2)); then order=(el2visor bare); else order=(bare el2visor); fi
    for side in "${order[@]}"; do
        read -r ms rss exits < <(run "$side" "$i") || exit 1
        [ -n "${ms:-}" ] || exit 1
        printf -v "${side}_ms" %s "$ms"
        printf -v "${side}_rss" %s "$rss"
        [ "$side" = bare ] || el2visor_exits=$exits
    done
    echo "$el2visor_ms $bare_ms $el2visor_rss $bare_rss $el2visor_exits" >>"$LOGDIR/pairs"
    echo "linux.bench.sh: pair $i (${order[0]} first): el2visor ${el2visor_ms} ms ${el2visor_rss} kB" \
        "${el2visor_exits} exits, bare ${bare_ms} ms ${bare_rss} kB" >&2
    if [ "$EL1_REFERENCE" = 1 ]; then
        # After the pair, so that the pair itself runs as without the reference.
        read -r el1_ms _ _ < <(run el1 "$i") || exit 1
        [ -n "${el1_ms:-}" ] || exit 1
        echo "$el1_ms $bare_ms $el2visor_ms" >>"$LOGDIR/el1"
        echo "linux.bench.sh: pair $i reference: bare Linux at EL1 (kvm-arm.mode=nvhe) ${el1_ms} ms" >&2
    fi
done

boot_ratio=$(awk '{ printf "%.6f\n", $1 / $2 }' "$LOGDIR/pairs" | median)
mem_ratio=$(awk '{ printf "%.6f\n", $3 / $4 }' "$LOGDIR/pairs" | median)
exits=$(awk '{ print $5 }' "$LOGDIR/pairs" | median)
el1_ratio="" vs_el1=""
if [ "$EL1_REFERENCE" = 1 ]; then
    el1_ratio=$(awk '{ printf "%.6f\n", $1 / $2 }' "$LOGDIR/el1" | median)
    vs_el1=$(awk '{ printf "%.6f\n", $3 / $1 }' "$LOGDIR/el1" | median)
fi

awk -v b="$boot_ratio" -v m="$mem_ratio" -v e="$exits" -v bmax="$BOOT_RATIO_MAX" -v mmax="$MEM_RATIO_MAX" \
    -v r="$el1_ratio" -v v="$vs_el1" '
    BEGIN {
        printf "BENCH linux_boot_ratio %.3f ratio\n", b
        printf "BENCH linux_boot_exits %d exits\n", e
        printf "BENCH linux_peak_mem_ratio %.3f ratio\n", m
        if (r != "") {
            printf "BENCH linux_el1_reference_ratio %.3f ratio\n", r
            printf "BENCH linux_boot_ratio_vs_el1 %.3f ratio\n", v
        }
        bad = 0
        if (b > bmax) {
            printf "linux.bench.sh: Linux boots %.3f times as long under el2visor as on bare QEMU, more than the target %.2f\n", b, bmax > "/dev/stderr"
            if (r != "")
                printf "linux.bench.sh: on this host the same kernel bare at EL1 (the reference) took %.3f times as long as at EL2, and el2visor %.3f times as long as the reference\n", r, v > "/dev/stderr"
            bad = 1
        }
        if (m > mmax) {
            printf "linux.bench.sh: QEMU peaks at %.3f times the bare memory under el2visor, more than the target %.2f\n", m, mmax > "/dev/stderr"
            bad = 1
        }
        exit bad
    }'
