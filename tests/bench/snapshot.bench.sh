#!/usr/bin/env bash
# Snapshot restores of a 1 GiB Linux VM (issue 13; method in docs/snapshots.md and
# docs/benchmarks.md). Debian's kernel with the test initramfs (`el2visor.snapshot=1`: print
# EL2VISOR-SNAPSHOT-POINT, write /tmp, reboot), el2visor with `snapshot_mem=1G guest_mem=1G
# snapshot_on=EL2VISOR-SNAPSHOT-POINT reset=snapshot`, QEMU `-icount shift=0` (1 instruction = 1 ns
# of virtual time: el2visor's CNTPCT figures are the same on any host). el2visor prints, per
# restore, `SNAPSHOT restore kind= pages= cmo_lines= us= first_entry_us= at_us=` and, for a lazy
# one, `SNAPSHOT lazy first_page_us=` (its first missing page mapped: the guest's first
# instruction runs then). Runs:
#   dirty   -cpu max, restore=dirty, el2visor.dirty=16 (16 MiB written after the snapshot), 5 restores
#   eager   -cpu max, restore=eager, 1 restore
#   lazy    -cpu max, restore=lazy, 1 restore
#   nofwb   -cpu cortex-a72, restore=eager, 1 restore (every line cleaned to the PoC)
# Prints
#   BENCH restore_eager_ms <ms>               eager restore, request to done
#   BENCH restore_lazy_first_insn_us <us>     lazy restore, request to the first page mapped
#   BENCH restore_dirty_only_ms <ms>          median dirty-only restore (16 MiB dirtied)
#   BENCH resets_per_s <n>                    dirty-only reset loop: restores per second of virtual time
#   BENCH cmo_lines_per_mib_fwb <n>           lines cleaned per MiB restored, FWB
#   BENCH cmo_lines_per_mib_nofwb <n>         the same without FWB
# and fails when dirty-only is not at least 10 times faster than eager or the lazy restore's first
# instruction comes later than 1 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMG=${EL2VISOR_IMG:-target/el2visor.img}
TIMEOUT=${BENCH_TIMEOUT:-1200}
QEMU=${QEMU:-qemu-system-aarch64}
GUESTS=${EL2VISOR_GUESTS:-.cache/guests}
die() { echo "snapshot.bench.sh: $*" >&2; exit 1; }
[ -f "$IMG" ] || die "no image at $IMG: run 'make image' first"
bash tests/fixtures/fetch-guests.sh "$GUESTS" >/dev/null || die "cannot fetch the Linux test guest"
LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

# run NAME CPU "EL2VISOR ARGS" "GUEST ARGS" RESTORES
run() {
    local out="$LOGDIR/$1.out"
    timeout "$TIMEOUT" "$QEMU" -M virt,virtualization=on,gic-version=3 -cpu "$2" -smp 1 -m 3G \
        -icount shift=0 -nographic -no-reboot -monitor none -serial stdio -kernel "$IMG" \
        -append "snapshot_mem=1G guest_mem=1G snapshot_on=EL2VISOR-SNAPSHOT-POINT reset=snapshot restores=$5 $3" \
        -device "guest-loader,addr=0x49000000,kernel=$GUESTS/Image,bootargs=console=ttyAMA0 el2visor.snapshot=1 $4" \
        -device "guest-loader,addr=0x4c000000,initrd=$GUESTS/initramfs.cpio.gz" >"$out" 2>&1 || true
    local n
    n=$(grep -c '^SNAPSHOT restore ' "$out" || true)
    [ "$n" = "$5" ] || { tail -n 30 "$out" >&2; die "$1: $n restores, expected $5"; }
    grep -q "STATS vm=guest" "$out" || die "$1: the VM did not power off"
}
field() { sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p"; }

run dirty max "restore=dirty" "el2visor.dirty=16" 5
run eager max "restore=eager" "" 1
run lazy max "restore=lazy" "" 1
run nofwb cortex-a72 "restore=eager" "" 1

d=$LOGDIR/dirty.out
dirty_us=$(grep '^SNAPSHOT restore ' "$d" | field us | sort -n | sed -n 3p)
first_at=$(grep '^SNAPSHOT restore ' "$d" | field at_us | head -1)
last_at=$(grep '^SNAPSHOT restore ' "$d" | field at_us | tail -1)
eager_us=$(grep '^SNAPSHOT restore ' "$LOGDIR/eager.out" | field us)
lazy_us=$(grep '^SNAPSHOT lazy first_page_us=' "$LOGDIR/lazy.out" | head -1 | field first_page_us)
fwb_line=$(grep '^SNAPSHOT restore ' "$LOGDIR/eager.out")
nofwb_line=$(grep '^SNAPSHOT restore ' "$LOGDIR/nofwb.out")
per_mib() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } printf "%d", v["cmo_lines"] / (v["pages"] / 256) }'; }

awk -v e="$eager_us" 'BEGIN { printf "BENCH restore_eager_ms %.1f ms\n", e / 1000 }'
echo "BENCH restore_lazy_first_insn_us $lazy_us us"
awk -v d="$dirty_us" 'BEGIN { printf "BENCH restore_dirty_only_ms %.2f ms\n", d / 1000 }'
awk -v a="$first_at" -v b="$last_at" 'BEGIN { printf "BENCH resets_per_s %.2f /s\n", 4 / ((b - a) / 1e6) }'
echo "BENCH cmo_lines_per_mib_fwb $(per_mib "$fwb_line") lines"
echo "BENCH cmo_lines_per_mib_nofwb $(per_mib "$nofwb_line") lines"

ok=1
[ $((dirty_us * 10)) -le "$eager_us" ] || { echo "snapshot.bench.sh: dirty-only ($dirty_us us) is not 10x faster than eager ($eager_us us)" >&2; ok=0; }
[ "$lazy_us" -le 1000 ] || { echo "snapshot.bench.sh: the lazy restore's first instruction came after $lazy_us us (target 1000)" >&2; ok=0; }
[ "$ok" = 1 ]
