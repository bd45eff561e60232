//! The physical memory layout: which RAM the hypervisor may hand out.
//!
//! Platform discovery yields RAM banks and everything that already lives in them (the image, the
//! DTB, `/reserved-memory`, `/memreserve/`, loaded modules, a spin-table page). [`free_ranges`]
//! subtracts the second list from the first and keeps only whole 4 KiB pages, so the frame
//! allocator fed from it can never hand out a byte that overlaps something in use.
//!
//! All arithmetic is done on `u128` ends, so ranges that touch or cross `u64::MAX` are clipped to
//! the 64-bit address space instead of wrapping.
//!
//! [`place_top`] decides where el2visor moves itself at boot, as Xen does: as high in RAM as
//! possible, so that what it keeps is one block at the top and the VM's RAM below stays whole. It
//! allocates nothing (it runs before the heap exists). [`block_below`] and [`highest_fit`] place
//! the rest of el2visor's memory once the heap exists.

use alloc::vec::Vec;

use super::addr::{Pa, PaRange, PAGE_SIZE};

/// One past the last byte of the 64-bit physical address space.
const SPACE_END: u128 = 1 << 64;

/// `[start, end)` with `end` possibly `2^64`.
type Span = (u128, u128);

/// The span of `r`, clipped to the 64-bit address space.
fn span(r: &PaRange) -> Span {
    let start = r.start.raw() as u128;
    (start, (start + r.size as u128).min(SPACE_END))
}

/// Non-empty spans of `ranges`, sorted and with overlapping or touching spans merged.
fn normalize(ranges: &[PaRange]) -> Vec<Span> {
    let mut spans: Vec<Span> = ranges.iter().map(span).filter(|(s, e)| s < e).collect();
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// RAM minus every reserved range, as whole 4 KiB pages.
///
/// Each remaining piece is shrunk inward to page boundaries; empty pieces are dropped. The result
/// is sorted, disjoint, page aligned and never touches a reserved byte, however the inputs overlap
/// or are ordered. A single free range cannot describe all 2^64 bytes in a `u64` size, so in that
/// one theoretical case the last page is left out.
pub fn free_ranges(ram: &[PaRange], reserved: &[PaRange]) -> Vec<PaRange> {
    let ram = normalize(ram);
    let reserved = normalize(reserved);
    let page = PAGE_SIZE as u128;
    let mut out = Vec::new();
    let mut emit = |s: u128, e: u128| {
        let s = (s + page - 1) & !(page - 1);
        let e = e & !(page - 1);
        if s < e {
            let size = (e - s).min(u64::MAX as u128 & !(page - 1));
            out.push(PaRange {
                start: Pa(s as u64),
                size: size as u64,
            });
        }
    };
    // Both lists are sorted and merged; `r` is the first reserved span that may still matter.
    let mut r = 0;
    for &(ram_start, ram_end) in &ram {
        let mut cursor = ram_start;
        while r < reserved.len() && reserved[r].1 <= cursor {
            r += 1;
        }
        let mut i = r;
        while i < reserved.len() && reserved[i].0 < ram_end {
            let (res_start, res_end) = reserved[i];
            if res_start > cursor {
                emit(cursor, res_start);
            }
            cursor = cursor.max(res_end);
            i += 1;
        }
        if cursor < ram_end {
            emit(cursor, ram_end);
        }
    }
    out
}

/// `ram` cut in two by `covered`: the part inside it and the part outside (each as
/// [`free_ranges`] gives pieces). `ram` itself when nothing is outside, so that RAM the boot can
/// use whole is not page-trimmed for nothing.
pub fn split_covered(ram: &[PaRange], covered: &[PaRange]) -> (Vec<PaRange>, Vec<PaRange>) {
    let outside = free_ranges(ram, covered);
    if outside.is_empty() {
        return (ram.to_vec(), outside);
    }
    (free_ranges(ram, &outside), outside)
}

/// Total bytes in `ranges` (which must not overlap).
pub fn total_size(ranges: &[PaRange]) -> u64 {
    ranges.iter().map(|r| r.size).sum()
}

/// Whether `[lo, hi)` is all inside `ram` (whose ranges may touch or overlap).
fn covered(ram: &[PaRange], mut lo: u128, hi: u128) -> bool {
    while lo < hi {
        match ram.iter().map(span).find(|&(s, e)| s <= lo && lo < e) {
            Some((_, e)) => lo = e,
            None => return false,
        }
    }
    true
}

fn touches_any(ranges: &[PaRange], lo: u128, hi: u128) -> bool {
    ranges.iter().map(span).any(|(s, e)| s < hi && lo < e && s < e)
}

/// The highest `top`, a multiple of `align` (a power of two), such that `[top - total, top)` is
/// RAM and touches nothing in `hard`, and its upper `head` bytes `[top - head, top)` touch nothing
/// in `soft` either. `None` when no such place exists.
///
/// At boot, `head` is what el2visor copies at once (its image and the DTB) and must not land on
/// anything still in use; the rest of `total` (its frame pool, the copies of the boot modules) is
/// filled later, after the modules it may cover have been moved out, but must never cover
/// firmware memory. No allocation.
pub fn place_top(ram: &[PaRange], hard: &[PaRange], soft: &[PaRange], head: u64, total: u64, align: u64) -> Option<u64> {
    let (head, total, align) = (head as u128, total.max(head) as u128, align as u128);
    let down = |x: u128| x & !(align - 1);
    // The best place ends at the top of a RAM range or right below something in the way.
    let candidates = ram
        .iter()
        .map(|r| down(span(r).1))
        .chain(hard.iter().chain(soft).map(|b| down(span(b).0)));
    candidates
        .filter(|&top| {
            top >= total
                && covered(ram, top - total, top)
                && !touches_any(hard, top - total, top)
                && !touches_any(soft, top - head, top)
        })
        .max()
        .map(|top| top.min(u64::MAX as u128) as u64)
}

/// `[start, end)` with `start` the highest multiple of `align` at most `end - size`, if it is all
/// RAM and touches nothing in `blockers`.
pub fn block_below(ram: &[PaRange], blockers: &[PaRange], end: u64, size: u64, align: u64) -> Option<PaRange> {
    let start = end.checked_sub(size)? & !(align - 1);
    let (lo, hi) = (start as u128, end as u128);
    (covered(ram, lo, hi) && !touches_any(blockers, lo, hi)).then(|| PaRange::new(start, end - start))
}

/// The highest `size` bytes of RAM, starting at a multiple of `align`, that touch nothing in
/// `blockers`.
pub fn highest_fit(ram: &[PaRange], blockers: &[PaRange], size: u64, align: u64) -> Option<PaRange> {
    free_ranges(ram, blockers).iter().rev().find_map(|r| {
        let start = r.end().checked_sub(size)? & !(align - 1);
        (start >= r.start.raw()).then(|| PaRange::new(start, size))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_covered_keeps_what_is_covered_and_names_the_rest() {
        let ram = [r(0x4000_0000, 0x1000_0000), r(0x8000_0000, 0x100_0000), r(0x9000_0000, 0x100_0000)];
        // Everything covered: RAM as it is.
        assert_eq!(split_covered(&ram, &ram), (ram.to_vec(), Vec::new()));
        // The third range not covered (the early probe's limit), the first only in part.
        let (kept, out) = split_covered(&ram, &[r(0x4000_0000, 0x800_0000), r(0x8000_0000, 0x100_0000)]);
        assert_eq!(kept, [r(0x4000_0000, 0x800_0000), r(0x8000_0000, 0x100_0000)]);
        assert_eq!(out, [r(0x4800_0000, 0x800_0000), r(0x9000_0000, 0x100_0000)]);
    }

    fn r(start: u64, size: u64) -> PaRange {
        PaRange::new(start, size)
    }

    #[test]
    fn qemu_virt_like_layout() {
        // 1 GiB at 1 GiB; image at +2 MiB, DTB at the start of RAM, an unaligned module.
        let ram = [r(0x4000_0000, 0x4000_0000)];
        let reserved = [
            r(0x4020_0000, 0x12_3456),
            r(0x4000_0000, 0x10_0000),
            r(0x4800_0800, 0x1000),
        ];
        let free = free_ranges(&ram, &reserved);
        assert_eq!(
            free,
            vec![
                r(0x4010_0000, 0x10_0000),
                r(0x4032_4000, 0x4800_0000 - 0x4032_4000),
                r(0x4800_2000, 0x8000_0000 - 0x4800_2000),
            ]
        );
    }

    #[test]
    fn unaligned_ram_is_shrunk_and_banks_merge() {
        let ram = [
            r(0x2000, 0x1800),
            r(0x800, 0x1900),
            r(0x3800, 0x800),
            r(0x10_0000, 0xfff),
        ];
        // [0x800, 0x4000) merged; inward to [0x1000, 0x4000); the last bank holds no whole page.
        assert_eq!(free_ranges(&ram, &[]), vec![r(0x1000, 0x3000)]);
    }

    #[test]
    fn ranges_touching_the_top_of_the_address_space() {
        let top = u64::MAX - 0xffff; // 0xffff_ffff_ffff_0000
        let ram = [r(top, 0x1_0000), r(top - 0x1000, u64::MAX)];
        let reserved = [r(top + 0x4000, u64::MAX), r(0, 1)];
        assert_eq!(free_ranges(&ram, &reserved), vec![r(top - 0x1000, 0x5000)]);
        // Nothing reserved: the range runs to the last page and its size does not wrap.
        assert_eq!(
            free_ranges(&[r(top, 0x1_0000)], &[]),
            vec![r(top, 0x1_0000)]
        );
    }

    #[test]
    fn everything_reserved_or_empty() {
        assert!(free_ranges(&[], &[r(0, 0x1000)]).is_empty());
        assert!(free_ranges(&[r(0x1000, 0)], &[]).is_empty());
        assert!(free_ranges(&[r(0x1000, 0x3000)], &[r(0, 0x10_0000)]).is_empty());
    }

    #[test]
    fn total_size_adds_up() {
        assert_eq!(total_size(&[r(0, 0x1000), r(0x4000, 0x2000)]), 0x3000);
    }

    const M: u64 = 1 << 20;

    #[test]
    fn el2visor_goes_to_the_top_of_the_highest_range() {
        // QEMU virt, 1 GiB: DTB at the start, el2visor 2 MiB in, modules low.
        let ram = [r(0x4000_0000, 0x4000_0000)];
        let soft = [r(0x4000_0000, M), r(0x4020_0000, 4 * M), r(0x4900_0000, 27 * M), r(0x4c00_0000, M)];
        assert_eq!(place_top(&ram, &[], &soft, 6 * M, 100 * M, 2 * M), Some(0x8000_0000));
        // Two banks (a Pi 4 with 2 GiB or more): the higher one, whatever the order in the DT.
        let pi = [r(0x4000_0000, 0x4000_0000), r(0, 0x3c00_0000)];
        assert_eq!(place_top(&pi, &[r(0, 0x1000)], &[], 6 * M, 100 * M, 2 * M), Some(0x8000_0000));
        // A bank too small for everything is passed over.
        let small_top = [r(0, 0x3c00_0000), r(0x4000_0000, 64 * M)];
        assert_eq!(place_top(&small_top, &[], &[], 6 * M, 100 * M, 2 * M), Some(0x3c00_0000));
    }

    #[test]
    fn what_is_in_use_pushes_el2visor_down() {
        let ram = [r(0x4000_0000, 0x1000_0000)]; // 256 MiB
        // A module at the very top: the head goes below it; the rest may cover modules...
        let module = r(0x4fc0_0000, 0x40_0000);
        assert_eq!(place_top(&ram, &[], &[module], 6 * M, 100 * M, 2 * M), Some(0x4fc0_0000));
        assert_eq!(place_top(&ram, &[], &[r(0x4f00_0000, 0x80_0000)], 6 * M, 100 * M, 2 * M), Some(0x5000_0000));
        // ...but never firmware memory.
        let fw = r(0x4a00_0000, 0x1000);
        assert_eq!(place_top(&ram, &[fw], &[], 6 * M, 100 * M, 2 * M), Some(0x4a00_0000));
        // Unaligned blockers: the top is aligned down below them.
        assert_eq!(place_top(&ram, &[r(0x4f12_3456, 1)], &[], 6 * M, 16 * M, 2 * M), Some(0x4f00_0000));
        // Nothing fits.
        assert_eq!(place_top(&ram, &[], &[], 6 * M, 257 * M, 2 * M), None);
        assert_eq!(place_top(&ram, &[r(0x4000_0000, 0x1000_0000)], &[], M, M, 2 * M), None);
        // Banks that touch count as one range.
        let split = [r(0x4000_0000, 0x800_0000), r(0x4800_0000, 0x800_0000)];
        assert_eq!(place_top(&split, &[], &[], 6 * M, 200 * M, 2 * M), Some(0x5000_0000));
    }

    #[test]
    fn block_below_and_highest_fit() {
        let ram = [r(0x4000_0000, 0x4000_0000)];
        assert_eq!(block_below(&ram, &[], 0x7fa0_0000, 65 * M, 2 * M), Some(r(0x7b80_0000, 0x7fa0_0000 - 0x7b80_0000)));
        assert_eq!(block_below(&ram, &[r(0x7c00_0000, 1)], 0x7fa0_0000, 65 * M, 2 * M), None);
        assert_eq!(block_below(&ram, &[], 0x4100_0000, 32 * M, 2 * M), None);
        let hole = [r(0x7000_0000, 0x1000_0000)];
        assert_eq!(highest_fit(&ram, &hole, 64 * M, 2 * M), Some(r(0x6c00_0000, 64 * M)));
        assert_eq!(highest_fit(&ram, &[r(0x4000_0000, 0x3fff_f000)], 64 * M, 2 * M), None);
    }

    /// Unit of the generated addresses in the model test: coarse enough for a bitmap model, finer
    /// than a page so that shrinking to page boundaries is exercised.
    const CELL: u64 = 0x400;
    const CELLS: u64 = 64 * PAGE_SIZE / CELL;

    fn small_range() -> impl Strategy<Value = PaRange> {
        (0..CELLS, 0..CELLS / 2).prop_map(|(s, n)| r(s * CELL, n * CELL))
    }

    fn high_range() -> impl Strategy<Value = PaRange> {
        (0..64u64, 0..u64::MAX).prop_map(|(pages_from_top, size)| {
            r(
                u64::MAX - pages_from_top * PAGE_SIZE - (PAGE_SIZE - 1),
                size,
            )
        })
    }

    fn check_shape(free: &[PaRange]) {
        for f in free {
            assert!(f.size > 0, "empty range {f:?}");
            assert!(
                f.start.is_aligned(PAGE_SIZE) && f.size % PAGE_SIZE == 0,
                "unaligned {f:?}"
            );
            assert!(
                f.start.raw() as u128 + f.size as u128 <= SPACE_END,
                "wraps {f:?}"
            );
        }
        for w in free.windows(2) {
            let end = w[0].start.raw() as u128 + w[0].size as u128;
            assert!(
                end < w[1].start.raw() as u128,
                "not sorted, disjoint, merged: {w:?}"
            );
        }
    }

    fn in_spans(spans: &[Span], lo: u128, hi: u128) -> bool {
        spans.iter().any(|&(s, e)| s <= lo && hi <= e)
    }

    fn touches(spans: &[Span], lo: u128, hi: u128) -> bool {
        spans.iter().any(|&(s, e)| s < hi && lo < e)
    }

    proptest! {
        /// Against a model that decides page by page: a page is free exactly when all of it is RAM
        /// and none of it is reserved.
        #[test]
        fn matches_page_model(
            ram in prop::collection::vec(small_range(), 0..6),
            reserved in prop::collection::vec(small_range(), 0..6),
        ) {
            let free = free_ranges(&ram, &reserved);
            check_shape(&free);
            let mut cells_ram = [false; CELLS as usize * 2];
            let mut cells_res = [false; CELLS as usize * 2];
            for x in &ram { for c in x.start.raw() / CELL..x.end() / CELL { cells_ram[c as usize] = true; } }
            for x in &reserved { for c in x.start.raw() / CELL..x.end() / CELL { cells_res[c as usize] = true; } }
            let per_page = (PAGE_SIZE / CELL) as usize;
            for page in 0..(2 * CELLS as usize / per_page) {
                let cells = page * per_page..(page + 1) * per_page;
                let model = cells.clone().all(|c| cells_ram[c] && !cells_res[c]);
                let addr = page as u64 * PAGE_SIZE;
                let got = free.iter().any(|f| f.contains(addr));
                prop_assert_eq!(got, model, "page {:#x}", addr);
            }
        }

        /// With arbitrary (also top-of-space) ranges: no free byte is reserved, every free byte is RAM.
        #[test]
        fn never_reserved_always_ram(
            ram in prop::collection::vec(prop_oneof![small_range(), high_range()], 0..6),
            reserved in prop::collection::vec(prop_oneof![small_range(), high_range()], 0..6),
        ) {
            let free = free_ranges(&ram, &reserved);
            check_shape(&free);
            let ram_spans = normalize(&ram);
            let res_spans = normalize(&reserved);
            for f in &free {
                let (lo, hi) = span(f);
                prop_assert!(in_spans(&ram_spans, lo, hi), "{:?} is not all RAM", f);
                prop_assert!(!touches(&res_spans, lo, hi), "{:?} overlaps a reserved range", f);
            }
        }

        /// Wherever `place_top` puts el2visor, it is RAM, clear of firmware, its head clear of
        /// everything, aligned; and nothing higher would have done.
        #[test]
        fn place_top_is_valid_and_highest(
            ram in prop::collection::vec(small_range(), 1..4),
            hard in prop::collection::vec(small_range(), 0..3),
            soft in prop::collection::vec(small_range(), 0..3),
            head_pages in 1..8u64,
            extra_pages in 0..16u64,
        ) {
            let (head, total, align) = (head_pages * PAGE_SIZE, (head_pages + extra_pages) * PAGE_SIZE, 2 * PAGE_SIZE);
            let ok = |top: u64| {
                top.is_multiple_of(align) && top >= total
                    && covered(&ram, (top - total) as u128, top as u128)
                    && !touches_any(&hard, (top - total) as u128, top as u128)
                    && !touches_any(&soft, (top - head) as u128, top as u128)
            };
            let got = place_top(&ram, &hard, &soft, head, total, align);
            let limit = 2 * CELLS * CELL;
            let best = (0..=limit / align).rev().map(|i| i * align).find(|&t| ok(t));
            prop_assert_eq!(got, best);
        }
    }
}
