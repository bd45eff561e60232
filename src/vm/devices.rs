//! Which host physical ranges a VM gets as passthrough devices, premapped whole at Stage 2 when the
//! VM is created: every device `reg` and every bus window (the Pi's `/soc` peripheral windows),
//! widened to pages and merged, minus what the VM must never touch directly (the GIC's
//! distributor and redistributors, which el2visor emulates, its CPU/hypervisor/virtual CPU
//! interfaces, el2visor's own console while el2visor owns it) and minus RAM.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::mm::addr::{PaRange, PAGE_SIZE};

/// `r` widened outward to whole pages (saturating at the top of the address space).
fn widen(r: &PaRange) -> Option<(u64, u64)> {
    if r.size == 0 {
        return None;
    }
    let start = r.start.raw() & !(PAGE_SIZE - 1);
    let end = r.start.raw().saturating_add(r.size).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    (end > start).then_some((start, end))
}

/// Sorted, merged union of the page-widened ranges.
fn union(ranges: impl IntoIterator<Item = PaRange>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ranges.into_iter().filter_map(|r| widen(&r)).collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `ranges` minus every hole (both already sorted and merged).
fn subtract(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut s, e) in ranges {
        for &(hs, he) in holes {
            if he <= s || hs >= e {
                continue;
            }
            if hs > s {
                out.push((s, hs));
            }
            s = s.max(he);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

/// The passthrough device ranges of a VM: `devices` and `windows` widened to pages and merged,
/// minus `exclude` (widened too) and minus `ram`.
pub fn passthrough(devices: &[PaRange], windows: &[PaRange], exclude: &[PaRange], ram: &[PaRange]) -> Vec<PaRange> {
    let wanted = union(devices.iter().chain(windows).copied());
    let holes = union(exclude.iter().chain(ram).copied());
    subtract(&wanted, &holes).into_iter().map(|(s, e)| PaRange::new(s, e - s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: u64, n: u64) -> PaRange {
        PaRange::new(s, n)
    }

    #[test]
    fn qemu_virt_gicv2_keeps_devices_and_drops_the_gic() {
        let devices = [
            r(0x0800_0000, 0x1_0000),  // GICD
            r(0x0801_0000, 0x1_0000),  // GICC
            r(0x0803_0000, 0x1_0000),  // GICH
            r(0x0804_0000, 0x1_0000),  // GICV
            r(0x0900_0000, 0x1000),    // PL011
            r(0x0901_0000, 0x1000),    // PL031
            r(0x0a00_0000, 0x200),     // virtio-mmio
            r(0x0a00_0200, 0x200),
        ];
        let gic = [r(0x0800_0000, 0x1_0000), r(0x0801_0000, 0x1_0000), r(0x0803_0000, 0x1_0000), r(0x0804_0000, 0x1_0000)];
        let got = passthrough(&devices, &[], &gic, &[r(0x4000_0000, 1 << 30)]);
        assert_eq!(got, vec![r(0x0900_0000, 0x1000), r(0x0901_0000, 0x1000), r(0x0a00_0000, 0x1000)]);
    }

    #[test]
    fn pi4_windows_are_mapped_whole_around_the_gic() {
        let windows = [r(0xfc00_0000, 0x0380_0000), r(0xff80_0000, 0x80_0000)];
        let gic = [r(0xff84_1000, 0x1000), r(0xff84_2000, 0x2000), r(0xff84_4000, 0x2000), r(0xff84_6000, 0x2000)];
        let got = passthrough(&[r(0xfe20_1000, 0x200)], &windows, &gic, &[r(0, 0x3c00_0000)]);
        assert_eq!(got, vec![r(0xfc00_0000, 0x0384_1000), r(0xff84_8000, 0x7b_8000)]);
    }

    proptest! {
        #[test]
        fn result_is_wanted_minus_holes(
            dev in prop::collection::vec((0u64..64, 1u64..8), 0..8),
            ex in prop::collection::vec((0u64..64, 1u64..8), 0..5),
        ) {
            let page = |(p, n): (u64, u64)| r(p * PAGE_SIZE + 0x10, n * PAGE_SIZE - 0x20);
            let devices: Vec<PaRange> = dev.into_iter().map(page).collect();
            let exclude: Vec<PaRange> = ex.into_iter().map(page).collect();
            let got = passthrough(&devices, &[], &exclude, &[]);
            for w in got.windows(2) {
                prop_assert!(w[0].end() < w[1].start.raw(), "sorted, disjoint, merged");
            }
            for p in 0..80u64 {
                let a = p * PAGE_SIZE;
                let touched = |v: &[PaRange]| v.iter().any(|d| d.start.raw() < a + PAGE_SIZE && a < d.end());
                let mapped = got.iter().any(|g| g.contains(a));
                prop_assert_eq!(mapped, touched(&devices) && !touched(&exclude), "page {}", p);
            }
        }
    }
}
