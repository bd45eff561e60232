#!/usr/bin/env bash
# MAIR_EL1 write cost under el2visor's three ways of handling it (issue 5; docs/coherency.md):
#   fast       coherency=mair-trap              TVM trap served by the EL2 fast path
#   slow       coherency=mair-trap fastpath=off TVM trap served by the Rust slow path
#   untrapped  coherency=off                    no trap at all
# Each run boots the embedded probe guest with `bench` in its bootargs (guest_args=bench), which
# times 100 000 `msr mair_el1` with CNTVCT_EL0 and prints
#   BENCHRAW mair_write ticks=<n> base=<n> iters=<n> cntfrq=<hz>
# QEMU runs with -icount shift=0: one instruction = 1 ns of virtual time, so the virtual counter
# counts instructions (ticks * 1e9 / cntfrq) and the figures are the same on any host.
# Prints
#   BENCH mair_write_fast <n> insn       per write, above the untrapped loop
#   BENCH mair_write_slow <n> insn       per write, above the untrapped loop
#   BENCH mair_write_untrapped <n> insn  the untrapped loop's own cost per write
# and fails when the fast path misses its target (at most 30, issue 15) or the slow path is not at least
# 5 times the fast path.
# EL2VISOR_IMG picks the image (default target/el2visor.img, what `make image` builds);
# BENCH_TIMEOUT the seconds one QEMU run may take (default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMG=${EL2VISOR_IMG:-target/el2visor.img}
TIMEOUT=${BENCH_TIMEOUT:-300}
QEMU=${QEMU:-qemu-system-aarch64}
FAST_MAX=30
SLOW_FACTOR=5

die() {
    echo "mair.bench.sh: $*" >&2
    exit 1
}

[ -f "$IMG" ] || die "no image at $IMG: run 'make image' first (or set EL2VISOR_IMG)"
command -v "$QEMU" >/dev/null || die "$QEMU not found: run 'make setup'"

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

# run NAME "EL2VISOR ARGS" "EXPECTED PROBE MODE LINE": boot once, check the probe ran healthy in
# the mode asked for, and print "ticks base iters cntfrq".
run() {
    local name=$1 args=$2 mode=$3 log="$LOGDIR/$1.log" status=0
    timeout --kill-after=10 "$TIMEOUT" "$QEMU" \
        -M virt,virtualization=on,gic-version=3 -cpu max -smp 1 -m 1G \
        -icount shift=0,align=off,sleep=off \
        -nographic -no-reboot -monitor none -serial stdio \
        -kernel "$IMG" -append "$args guest_args=bench" </dev/null >"$log.raw" 2>&1 || status=$?
    tr -d '\r' <"$log.raw" >"$log"     # the serial console ends lines with CR LF
    local why=""
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="QEMU did not finish within ${TIMEOUT}s"
    elif [ "$status" -ne 0 ]; then
        why="QEMU exited with status $status"
    elif ! grep -qxF "probe: el2visor coherency mode $mode" "$log"; then
        why="the probe did not report coherency mode '$mode' (is '$args' still el2visor's syntax?)"
    elif ! grep -q '^PROBE DONE pass=[0-9]* fail=0' "$log"; then
        why="the probe reported failures"
    fi
    local line
    line=$(grep -a '^BENCHRAW mair_write ' "$log" | tail -n1 || true)
    if [ -z "$why" ] && [ -z "$line" ]; then
        why="no 'BENCHRAW mair_write' line: does the probe guest see 'bench' in its bootargs (guest_args=bench)?"
    fi
    if [ -n "$why" ]; then
        {
            echo "mair.bench.sh: $name run ($args): $why. Last lines of its output:"
            tail -n 20 "$log" | sed 's/^/    /'
        } >&2
        return 1
    fi
    local f ticks="" base="" iters="" cntfrq=""
    for f in $line; do
        case $f in
            ticks=*) ticks=${f#ticks=} ;;
            base=*) base=${f#base=} ;;
            iters=*) iters=${f#iters=} ;;
            cntfrq=*) cntfrq=${f#cntfrq=} ;;
        esac
    done
    for f in "$ticks" "$base" "$iters" "$cntfrq"; do
        [[ $f =~ ^[0-9]+$ ]] || die "$name run: malformed line: $line"
    done
    [ "$iters" -gt 0 ] && [ "$cntfrq" -gt 0 ] || die "$name run: iters and cntfrq must be positive: $line"
    echo "$ticks $base $iters $cntfrq"
}

read -r fast_ticks _ fast_iters fast_hz < <(run fast "coherency=mair-trap" "mair-trap") || exit 1
read -r slow_ticks _ slow_iters slow_hz < <(run slow "coherency=mair-trap fastpath=off" "mair-trap (fast path off)") || exit 1
read -r off_ticks _ off_iters off_hz < <(run untrapped "coherency=off" "off") || exit 1

[ "$fast_iters" = "$off_iters" ] && [ "$slow_iters" = "$off_iters" ] ||
    die "the runs timed different iteration counts ($fast_iters, $slow_iters, $off_iters)"
[ "$fast_hz" = "$off_hz" ] && [ "$slow_hz" = "$off_hz" ] ||
    die "CNTFRQ differs between runs ($fast_hz, $slow_hz, $off_hz)"

# Instructions per write: ticks * 1e9 / cntfrq / iters (one decimal).
awk -v f="$fast_ticks" -v s="$slow_ticks" -v u="$off_ticks" -v n="$off_iters" -v hz="$off_hz" \
    -v fmax="$FAST_MAX" -v factor="$SLOW_FACTOR" '
    function insn(t) { return t * 1e9 / hz / n }
    BEGIN {
        fast = insn(f - u); slow = insn(s - u); untrapped = insn(u)
        printf "BENCH mair_write_fast %.1f insn\n", fast
        printf "BENCH mair_write_slow %.1f insn\n", slow
        printf "BENCH mair_write_untrapped %.1f insn\n", untrapped
        bad = 0
        if (fast > fmax) {
            printf "mair.bench.sh: the fast path costs %.1f instructions per write, more than the target %d\n", fast, fmax > "/dev/stderr"
            bad = 1
        }
        if (slow < factor * fast) {
            printf "mair.bench.sh: the slow path (%.1f) is less than %d times the fast path (%.1f): is the fast path serving the writes?\n", slow, factor, fast > "/dev/stderr"
            bad = 1
        }
        exit bad
    }'
