//! The physical memory layout: which RAM the hypervisor may hand out.
//!
//! Platform discovery yields RAM banks and everything that already lives in them (the image, the
//! DTB, `/reserved-memory`, `/memreserve/`, loaded modules, a spin-table page). [`free_ranges`]
//! subtracts the second list from the first and keeps only whole 4 KiB pages, so the frame
//! allocator fed from it can never hand out a byte that overlaps something in use.
//!
//! All arithmetic is done on `u128` ends, so ranges that touch or cross `u64::MAX` are clipped to
//! the 64-bit address space instead of wrapping.

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

/// Total bytes in `ranges` (which must not overlap).
pub fn total_size(ranges: &[PaRange]) -> u64 {
    ranges.iter().map(|r| r.size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }
}
