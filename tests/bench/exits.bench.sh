#!/usr/bin/env bash
# Guest exits in instructions (issue 15; method and figures in docs/benchmarks.md, section
# "Exits"). The embedded probe guest runs with `bench` in its bootargs (guest_args=bench) under
# QEMU -icount shift=0,align=off,sleep=off, -smp 2, on each of cortex-a72 and max, gic-version 2
# and 3; the same probe image also runs on bare QEMU (no EL2) for the latencies' baseline. Under
# -icount shift=0 every executed instruction (any CPU, any EL) is 1 ns of virtual time, so the
# probe's CNTVCT_EL0 ticks are instructions: 1e9 / CNTFRQ per tick (16 at 62.5 MHz, 1 at 1 GHz).
# The probe prints
#   BENCHRAW <name> ticks=<n> base=<n> iters=<n> cntfrq=<hz>
# and this script prints, for each configuration (<cpu> = a72 or max, <gic> = gic2 or gic3),
#   BENCH exit_hvc_<cpu>_<gic> <n> insn        SMCCC_VERSION through HVC, above the loop with a mov
#   BENCH exit_gicd_read_<cpu>_<gic> <n> insn  a GICD_TYPER read, above the loop with a mov
#   BENCH timer_latency_<cpu>_<gic> <n> insn   virtual timer deadline to IAR, above bare QEMU
#   BENCH ipi_latency_<cpu>_<gic> <n> insn     SGI send to the other vCPU's IAR, above bare QEMU
#   BENCH exit_wfi_wake_<cpu>_gic2 <n> insn    deadline to the trapped WFI's return, above bare
# and fails when a cortex-a72 figure misses its target (exit_hvc 100, exit_gicd_read 250,
# ipi_latency 1000, timer_latency 600; exit_wfi_wake has none), after printing every figure.
# mair_write_fast is mair.bench.sh's.
# EL2VISOR_IMG picks the image (default target/el2visor.img), PROBE_IMG the bare probe image
# (default target/probe/probe.img; both are what `make image` builds), BENCH_TIMEOUT the seconds
# one QEMU run may take (default 300), BENCH_CPUS / BENCH_GICS the configurations (default
# "cortex-a72 max" and "2 3").
set -euo pipefail
cd "$(dirname "$0")/../.."

IMG=${EL2VISOR_IMG:-target/el2visor.img}
PROBE=${PROBE_IMG:-target/probe/probe.img}
TIMEOUT=${BENCH_TIMEOUT:-300}
QEMU=${QEMU:-qemu-system-aarch64}
CPUS=${BENCH_CPUS:-cortex-a72 max}
GICS=${BENCH_GICS:-2 3}
# Targets in instructions above bare, cortex-a72 only (issue 15).
TARGETS="exit_hvc=100 exit_gicd_read=250 ipi_latency=1000 timer_latency=600"

die() {
    echo "exits.bench.sh: $*" >&2
    exit 1
}

[ -f "$IMG" ] || die "no image at $IMG: run 'make image' first (or set EL2VISOR_IMG)"
[ -f "$PROBE" ] || die "no probe image at $PROBE: run 'make image' first (or set PROBE_IMG)"
command -v "$QEMU" >/dev/null || die "$QEMU not found: run 'make setup'"

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

# run SIDE CPU GIC: boot the probe once in bench mode; print its BENCHRAW lines as
# "name ticks base iters cntfrq". el2visor runs must pass every probe; bare runs fail the
# el2visor-only probes by design and are only read for their latencies.
run() {
    local side=$1 cpu=$2 gic=$3 log="$LOGDIR/$1.$2.$3.log" status=0
    local -a args
    if [ "$side" = el2visor ]; then
        args=(-M "virt,virtualization=on,gic-version=$gic" -kernel "$IMG" -append "guest_args=bench")
    else
        args=(-M "virt,gic-version=$gic" -kernel "$PROBE" -append "bench")
    fi
    timeout --kill-after=10 "$TIMEOUT" "$QEMU" "${args[@]}" -cpu "$cpu" -smp 2 -m 1G \
        -icount shift=0,align=off,sleep=off \
        -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log.raw" 2>&1 || status=$?
    tr -d '\r' <"$log.raw" >"$log"     # the serial console ends lines with CR LF
    local why=""
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="QEMU did not finish within ${TIMEOUT}s"
    elif [ "$status" -ne 0 ]; then
        why="QEMU exited with status $status"
    elif ! grep -q '^PROBE DONE' "$log"; then
        why="the probe did not finish"
    elif [ "$side" = el2visor ] && ! grep -q '^PROBE DONE pass=[0-9]* fail=0' "$log"; then
        why="the probe reported failures"
    elif grep -q '^probe: .*\(latency\|exit\|benchmarks\).* \(failed\|not run\)' "$log"; then
        why="a benchmark did not run: $(grep -m1 '^probe: .*\(failed\|not run\)' "$log")"
    fi
    if [ -n "$why" ]; then
        {
            echo "exits.bench.sh: $side run on $cpu gic$gic: $why. Last lines of its output:"
            tail -n 20 "$log" | sed 's/^/    /'
        } >&2
        return 1
    fi
    awk '$1 == "BENCHRAW" {
        n = $2; t = b = i = f = ""
        for (k = 3; k <= NF; k++) {
            split($k, kv, "=")
            if (kv[1] == "ticks") t = kv[2]; else if (kv[1] == "base") b = kv[2]
            else if (kv[1] == "iters") i = kv[2]; else if (kv[1] == "cntfrq") f = kv[2]
        }
        if (t !~ /^[0-9]+$/ || b !~ /^[0-9]+$/ || i !~ /^[1-9][0-9]*$/ || f !~ /^[1-9][0-9]*$/) {
            print "malformed: " $0 > "/dev/stderr"; exit 1
        }
        print n, t, b, i, f
    }' "$log"
}

bad=0
for cpu in $CPUS; do
    short=${cpu/cortex-/}
    for gic in $GICS; do
        run el2visor "$cpu" "$gic" >"$LOGDIR/hv" || { bad=1; continue; }
        run bare "$cpu" "$gic" >"$LOGDIR/bare" || { bad=1; continue; }
        awk -v suffix="_${short}_gic$gic" -v gic="$gic" -v check="$([ "$cpu" = cortex-a72 ] && echo 1 || echo 0)" \
            -v targets="$TARGETS" '
            function insn(ticks, iters, hz) { return ticks * 1e9 / hz / iters }
            FNR == NR { bare[$1] = insn($2 - $3, $4, $5); next }
            { hv[$1] = insn($2 - $3, $4, $5) }
            END {
                split(targets, tl, " ")
                for (k in tl) { split(tl[k], kv, "="); max[kv[1]] = kv[2] }
                n = split("exit_hvc exit_gicd_read timer_latency ipi_latency exit_wfi_wake", names, " ")
                status = 0
                for (k = 1; k <= n; k++) {
                    name = names[k]
                    if (name == "exit_wfi_wake" && gic != 2) continue
                    if (!(name in hv)) {
                        printf "exits.bench.sh: no %s figure from el2visor%s\n", name, suffix > "/dev/stderr"
                        status = 1; continue
                    }
                    v = hv[name]
                    if (name ~ /latency|wfi_wake/) {
                        if (!(name in bare)) {
                            printf "exits.bench.sh: no %s figure from bare QEMU%s\n", name, suffix > "/dev/stderr"
                            status = 1; continue
                        }
                        v -= bare[name]
                    }
                    printf "BENCH %s%s %.1f insn\n", name, suffix, v
                    if (check && (name in max) && v > max[name]) {
                        printf "exits.bench.sh: %s%s is %.1f instructions above bare, more than the target %d\n", name, suffix, v, max[name] > "/dev/stderr"
                        status = 1
                    }
                }
                exit status
            }' "$LOGDIR/bare" "$LOGDIR/hv" || bad=1
    done
done
exit $bad
