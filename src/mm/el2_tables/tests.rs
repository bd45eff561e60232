//! Host tests of the EL2 map: the two real layouts, a model-based property test, and errors.

use super::walk::translate;
use super::*;
use crate::mm::addr::{SIZE_1G, SIZE_2M};
use crate::mm::frames::pages::{host::HostPages, identity};
use crate::mm::frames::BootPool;
use proptest::prelude::*;
use El2Mem::*;

const P: u64 = PAGE_SIZE;
const TIB: u64 = 1 << 40;

fn r(start: u64, size: u64) -> PaRange {
    PaRange::new(start, size)
}

/// What the boot code passes on QEMU virt: a device window over the low 1 TiB (or the whole PA
/// range if smaller), RAM at 1 GiB, and the image at RAM + 2 MiB split by section.
fn virt_regions(ram_size: u64, parange: u8, text: u64, rodata: u64) -> Vec<(PaRange, El2Mem)> {
    let window = TIB.min(1 << va_bits(parange));
    vec![
        (r(0, window), Device),
        (r(0x4000_0000, ram_size), ReadWrite),
        (r(0x4020_0000, text), Code),
        (r(0x4020_0000 + text, rodata), ReadOnly),
    ]
}

/// What the boot code passes on a Pi 4: RAM from 0, the image at 2 MiB, the peripheral window.
fn pi_regions(background: bool) -> Vec<(PaRange, El2Mem)> {
    let mut v = Vec::new();
    if background {
        v.push((r(0, TIB), Device));
    }
    v.extend([
        (r(0, 0x3c00_0000), ReadWrite),
        (r(0x20_0000, 0x5_4000), Code),
        (r(0x25_4000, 0x1_c000), ReadOnly),
        (r(0xfc00_0000, 0x400_0000), Device),
    ]);
    v
}

/// The kind the model gives `addr`: the last region containing it.
fn model(regions: &[(PaRange, El2Mem)], addr: u64) -> Option<El2Mem> {
    regions
        .iter()
        .rev()
        .find(|(range, _)| range.contains(addr))
        .map(|&(_, mem)| mem)
        .filter(|&mem| mem != Unmapped)
}

/// Whether the model is the same over all of `[base, base + size)`: it only changes at region
/// boundaries, so compare `base` with each boundary inside.
fn uniform(regions: &[(PaRange, El2Mem)], base: u64, size: u64) -> bool {
    let first = model(regions, base);
    regions
        .iter()
        .flat_map(|(range, _)| [range.start.raw(), range.end()])
        .filter(|&p| p > base && p < base + size)
        .all(|p| model(regions, p) == first)
}

/// Check `addr` against the model: identity, the right kind, and the largest block possible.
fn check_addr(tables: &El2Tables, pages: &HostPages, regions: &[(PaRange, El2Mem)], addr: u64) {
    let expected = model(regions, addr);
    let leaf = translate(tables, pages, addr);
    let Some(expected) = expected else {
        assert_eq!(leaf, None, "{addr:#x} should be unmapped");
        return;
    };
    let leaf = leaf.unwrap_or_else(|| panic!("{addr:#x} should be mapped as {expected:?}"));
    assert_eq!(leaf.pa, Pa(addr), "identity map broken at {addr:#x}");
    assert_eq!(
        leaf.mem,
        Some(expected),
        "{addr:#x}: descriptor {:#x}",
        leaf.descriptor
    );
    let d = leaf.descriptor;
    let writable = d & desc::AP_RO == 0;
    assert!(d & desc::AF != 0, "{addr:#x}: no access flag");
    assert!(
        !(writable || expected == Device) || d & desc::XN != 0,
        "{addr:#x}: W^X broken"
    );
    let best = [(1u8, SIZE_1G), (2, SIZE_2M)]
        .into_iter()
        .find(|&(_, size)| uniform(regions, addr & !(size - 1), size))
        .map_or(3, |(level, _)| level);
    assert_eq!(
        leaf.level, best,
        "{addr:#x} ({expected:?}) mapped at level {} not {best}",
        leaf.level
    );
}

/// Addresses worth checking: every region edge and its neighbours, block bases around them.
fn edge_samples(regions: &[(PaRange, El2Mem)]) -> Vec<u64> {
    let mut v = Vec::new();
    for (range, _) in regions {
        for edge in [range.start.raw(), range.end()] {
            for a in [edge, edge.wrapping_sub(P), edge.wrapping_sub(1), edge + P] {
                v.extend([a, a & !(SIZE_2M - 1), a & !(SIZE_1G - 1)]);
            }
        }
    }
    v.retain(|&a| a < (1 << 40));
    v
}

fn build_and_check(regions: &[(PaRange, El2Mem)], parange: u8, extra: &[u64]) -> usize {
    let mut pages = HostPages::new();
    let tables = build(regions, parange, &mut pages).unwrap();
    assert_eq!(pages.in_use(), tables.table_pages());
    for addr in edge_samples(regions)
        .into_iter()
        .chain(extra.iter().copied())
    {
        check_addr(&tables, &pages, regions, addr);
    }
    let used = tables.table_pages();
    destroy(tables, &mut pages);
    assert_eq!(pages.in_use(), 0, "destroy gives every table page back");
    used
}

#[test]
fn qemu_virt_layouts_fit_the_boot_pool() {
    for parange in [2u8, 5] {
        for ram_gib in 1..=4u64 {
            // Image inside one 2 MiB block; image crossing into the next one.
            for (text, rodata, expected) in [(0x6_3000, 0x1_d000, 5), (0x11_0000, 0x10_0000, 6)] {
                let regions = virt_regions(ram_gib * SIZE_1G, parange, text, rodata);
                let used = build_and_check(
                    &regions,
                    parange,
                    &[0x0900_0000, 0x4000_0000 + ram_gib * SIZE_1G],
                );
                assert_eq!(
                    used, expected,
                    "PARange {parange}, {ram_gib} GiB RAM, text {text:#x}"
                );
            }
        }
        // RAM that ends inside a GiB needs one more level-2 table.
        let regions = virt_regions(0x6000_0000, parange, 0x6_3000, 0x1_d000);
        assert_eq!(build_and_check(&regions, parange, &[]), 6);
    }
}

#[test]
fn qemu_virt_attributes() {
    let regions = virt_regions(2 * SIZE_1G, 2, 0x6_3000, 0x1_d000);
    let mut pages = HostPages::new();
    let t = build(&regions, 2, &mut pages).unwrap();
    assert_eq!((t.start_level(), t.va_bits()), (0, 40));
    let at = |a| translate(&t, &pages, a).unwrap();
    assert_eq!(
        (at(0x0900_0000).mem, at(0x0900_0000).level),
        (Some(Device), 1),
        "PL011"
    );
    assert_eq!(
        (at(0x4020_0000).mem, at(0x4020_0000).level),
        (Some(Code), 3)
    );
    assert_eq!(at(0x4026_2fff).mem, Some(Code));
    assert_eq!(at(0x4026_3000).mem, Some(ReadOnly));
    assert_eq!(at(0x4028_0000).mem, Some(ReadWrite), "data and bss stay RW");
    assert_eq!(
        (at(0x4040_0000).mem, at(0x4040_0000).level),
        (Some(ReadWrite), 2)
    );
    assert_eq!(
        (at(0x8000_0000).mem, at(0x8000_0000).level),
        (Some(ReadWrite), 1)
    );
    assert_eq!(
        (at(0xc000_0000).mem, at(0xc000_0000).level),
        (Some(Device), 1)
    );
    assert_eq!(at(TIB - 1).mem, Some(Device), "high PCIe window");
    assert_eq!(
        translate(&t, &pages, TIB),
        None,
        "beyond the 40-bit PA range"
    );
    assert_eq!(
        desc::attr_index(at(0x4000_0000).descriptor),
        desc::ATTR_NORMAL_WB
    );
    assert_eq!(desc::shareability(at(0x4000_0000).descriptor), 3);
}

#[test]
fn raspberry_pi_4_layouts() {
    // Without the background: root, one level-1, level-2 for the first and fourth GiB, one
    // level-3 for the image. With it: the fourth GiB becomes a block, but 1 TiB needs two level-1.
    for (parange, background, expected) in [(2u8, false, 5), (2, true, 5), (4, true, 5)] {
        let regions = pi_regions(background);
        let used = build_and_check(&regions, parange, &[0xfe20_1000, 0xff84_1000, 0x3c00_0000]);
        assert_eq!(used, expected, "PARange {parange}, background {background}");
    }
    let mut pages = HostPages::new();
    let t = build(&pi_regions(false), 2, &mut pages).unwrap();
    assert_eq!(
        translate(&t, &pages, 0xfe20_1000).map(|l| (l.mem, l.level)),
        Some((Some(Device), 2))
    );
    assert_eq!(
        translate(&t, &pages, 0x3c00_0000),
        None,
        "the GPU's memory is not mapped"
    );
    assert_eq!(
        translate(&t, &pages, 0x20_0000).and_then(|l| l.mem),
        Some(Code)
    );
}

#[test]
fn builds_into_a_32_page_boot_pool() {
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    let mut backing: Vec<Page> = (0..32).map(|_| Page([0x5a; 4096])).collect();
    let base = backing.as_mut_ptr() as u64;
    for regions in [
        virt_regions(4 * SIZE_1G, 5, 0x11_0000, 0x10_0000),
        pi_regions(true),
    ] {
        // SAFETY: the pool is `backing`, which outlives it and nothing else uses.
        let mut pool = unsafe { BootPool::new(r(base, 32 * P), identity) };
        let t = build(&regions, 5, &mut pool).unwrap();
        assert!(pool.pages_used() <= 32 && pool.pages_used() == t.table_pages());
        let leaf = translate(&t, &pool, 0x20_0000).unwrap();
        assert_eq!(leaf.pa, Pa(0x20_0000));
    }
}

#[test]
fn errors_are_reported_and_pages_returned() {
    let mut pages = HostPages::new();
    let unaligned = [(r(0x4000_0800, P), ReadWrite)];
    let e = build(&unaligned, 2, &mut pages).unwrap_err();
    assert!(matches!(e, El2MapError::Unaligned { .. }) && e.to_string().contains("4 KiB"));
    let beyond = [(r(0, TIB + P), Device)];
    let e = build(&beyond, 2, &mut pages).unwrap_err();
    assert_eq!(
        e,
        El2MapError::BeyondPaRange {
            range: r(0, TIB + P),
            va_bits: 40
        }
    );
    let wraps = [(r(u64::MAX - P + 1, 2 * P), Device)];
    assert!(matches!(
        build(&wraps, 5, &mut pages),
        Err(El2MapError::BeyondPaRange { .. })
    ));
    assert_eq!(pages.in_use(), 0);

    let mut few = HostPages::with_limit(3);
    let e = build(&virt_regions(SIZE_1G, 2, 0x6_3000, 0x1_d000), 2, &mut few).unwrap_err();
    assert_eq!(e, El2MapError::OutOfPages { pages_used: 3 });
    assert_eq!(few.in_use(), 0, "a failed build gives its pages back");
    assert!(
        build(&[(r(0, 0), Device)], 2, &mut few).is_ok(),
        "empty regions are ignored"
    );
}

/// Offsets within a few GiB, made of GiB, 2 MiB and page parts so blocks get exercised.
fn offset() -> impl Strategy<Value = u64> {
    (
        0u64..6,
        prop::option::of(0u64..512),
        prop::option::of(0u64..512),
    )
        .prop_map(|(g, m, p)| g * SIZE_1G + m.unwrap_or(0) * SIZE_2M + p.unwrap_or(0) * P)
}

fn mem() -> impl Strategy<Value = El2Mem> {
    prop_oneof![Just(Device), Just(Code), Just(ReadOnly), Just(ReadWrite), Just(Unmapped)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random overlapping region lists against the last-region-wins model, at every edge and at
    /// random addresses: identity, attributes, W^X, largest possible blocks, no leaked pages.
    #[test]
    fn matches_the_model(
        regions in prop::collection::vec((offset(), offset(), mem()), 0..8),
        randoms in prop::collection::vec(0u64..8 * SIZE_1G, 32),
    ) {
        let regions: Vec<_> = regions.into_iter().map(|(s, len, m)| (r(s, len), m)).collect();
        build_and_check(&regions, 2, &randoms);
    }
}

/// The stacks' guard pages stay unmapped: the lowest 4 KiB of each CPU's 64 KiB stack slot faults
/// at EL2, everything around them (the stacks themselves, the image's data below) stays
/// read-write, and the map still fits the boot pool.
#[test]
fn stack_guard_pages_are_left_unmapped() {
    let stacks = 0x4028_0000;
    let mut regions = virt_regions(SIZE_1G, 2, 0x5_0000, 0x2_0000);
    regions.extend(stack_guards(stacks, 0x1_0000, P, 8));
    let mut pages = HostPages::new();
    let t = build(&regions, 2, &mut pages).unwrap();
    assert!(t.table_pages() <= 32, "{} table pages", t.table_pages());
    for cpu in 0..8u64 {
        let slot = stacks + cpu * 0x1_0000;
        for off in [0, 8, P - 8] {
            assert_eq!(translate(&t, &pages, slot + off), None, "CPU {cpu}: guard byte {off:#x} is mapped");
        }
        for off in [P, P + 8, 0x1_0000 - 8] {
            let leaf = translate(&t, &pages, slot + off).unwrap_or_else(|| panic!("CPU {cpu}: stack at {off:#x} unmapped"));
            assert_eq!((leaf.mem, leaf.pa.raw()), (Some(ReadWrite), slot + off));
        }
    }
    assert_eq!(translate(&t, &pages, stacks - 8).map(|l| l.mem), Some(Some(ReadWrite)), "data below the stacks");
    assert_eq!(translate(&t, &pages, stacks + 8 * 0x1_0000).map(|l| l.mem), Some(Some(ReadWrite)), "RAM above");
}
