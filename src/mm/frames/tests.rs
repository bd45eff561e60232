//! Host tests of the frame allocator and its page sources.

use super::pages::host::HostPages;
use super::*;
use crate::mm::layout::free_ranges;
use crate::mm::PageSource;
use proptest::prelude::*;

const P: u64 = PAGE_SIZE;

fn r(start: u64, size: u64) -> PaRange {
    PaRange::new(start, size)
}

#[test]
fn alloc_is_aligned_to_the_next_power_of_two_and_keeps_only_count() {
    let mut f = Frames::new();
    assert_eq!(f.add_range(r(0x4000_0000, 64 * P)), Ok(64));
    let a = f.alloc(3).unwrap();
    assert!(a.is_aligned(4 * P));
    assert_eq!(f.free_frames(), 61, "only 3 frames taken, not 4");
    let b = f.alloc(16).unwrap();
    assert!(b.is_aligned(16 * P));
    let c = f.alloc(1).unwrap();
    assert_eq!(c, a.add(3 * P), "the tail of the 4-frame block is reused");
    f.free(a, 3);
    f.free(b, 16);
    f.free(c, 1);
    assert_eq!(f.free_frames(), 64);
    assert_eq!(f.alloc(64), Some(Pa(0x4000_0000)), "everything merged back");
    assert_eq!(f.alloc(1), None);
    assert_eq!(f.alloc(0), None);
}

#[test]
fn alloc_aligned_honours_byte_alignment() {
    let mut f = Frames::new();
    f.add_range(r(0x4000_1000, 0x40_0000)).unwrap();
    let a = f.alloc_aligned(1, SIZE_2M_TEST).unwrap();
    assert!(a.is_aligned(SIZE_2M_TEST));
    assert_eq!(f.free_frames(), 0x400 - 1);
    assert_eq!(f.alloc_aligned(1, 3 * P), None, "not a power of two");
    f.free(a, 1);
    assert_eq!(f.free_frames(), 0x400);
    assert_eq!(
        f.alloc_aligned(2, 1).map(|pa| pa.is_aligned(2 * P)),
        Some(true)
    );
}

const SIZE_2M_TEST: u64 = crate::mm::addr::SIZE_2M;

#[test]
fn refuses_overlapping_ranges_and_shrinks_to_pages() {
    let mut f = Frames::new();
    assert_eq!(f.add_range(r(0x1800, 0x3000)), Ok(2)); // whole pages 0x2000..0x4000
    assert_eq!(f.add_range(r(0x4000, 0x1000)), Ok(1), "touching is fine");
    assert_eq!(f.add_range(r(0x1000, 0x1000)), Ok(1), "below is fine");
    let err = f.add_range(r(0x3000, 0x2000)).unwrap_err();
    assert_eq!(
        err,
        FramesError::Overlap {
            new: r(0x3000, 0x2000),
            existing: r(0x2000, 0x2000)
        }
    );
    assert!(err.to_string().contains("overlaps"));
    assert_eq!(f.add_range(r(0x8000_0000, 0xfff)), Ok(0), "no whole page");
    assert_eq!(f.total_frames(), 4);
    let ranges: Vec<_> = f.ranges().collect();
    assert_eq!(
        ranges,
        vec![r(0x1000, 0x1000), r(0x2000, 0x2000), r(0x4000, 0x1000)]
    );
}

#[test]
fn range_at_the_top_of_the_address_space() {
    let mut f = Frames::new();
    assert_eq!(f.add_range(r(u64::MAX - 4 * P + 1, 4 * P)), Ok(4));
    let a = f.alloc(4).unwrap();
    assert_eq!(a.raw(), u64::MAX - 4 * P + 1);
    f.free(a, 4);
    assert_eq!(f.free_frames(), 4);
}

#[test]
#[should_panic(expected = "double free")]
fn double_free_is_caught() {
    let mut f = Frames::new();
    f.add_range(r(0, 8 * P)).unwrap();
    let a = f.alloc(2).unwrap();
    f.free(a, 2);
    f.free(a, 1);
}

#[test]
#[should_panic(expected = "not memory it manages")]
fn foreign_free_is_caught() {
    let mut f = Frames::new();
    f.add_range(r(0, 8 * P)).unwrap();
    f.free(Pa(8 * P), 1);
}

/// Frames fed from `free_ranges` never overlap what was reserved, until memory runs out.
#[test]
fn never_hands_out_reserved_memory() {
    let ram = [r(0x4000_0000, 0x100_0000), r(0x4100_0000, 0x80_0800)];
    let reserved = [
        r(0x4020_0000, 0x21_0000), // image
        r(0x4400_0000, 0x1_0800),  // DTB, unaligned end
        r(0x40ff_f000, 0x2000),    // across the bank boundary
        r(0x4130_0100, 0x10),      // a tiny /memreserve/
    ];
    let mut f = Frames::new();
    for range in free_ranges(&ram, &reserved) {
        f.add_range(range).unwrap();
    }
    let mut handed = Vec::new();
    for count in [1usize, 3, 8, 1, 64, 5, 512].iter().cycle() {
        let Some(pa) = f.alloc(*count) else { break };
        handed.push(r(pa.raw(), *count as u64 * P));
    }
    while let Some(pa) = f.alloc(1) {
        handed.push(r(pa.raw(), P));
    }
    assert_eq!(f.free_frames(), 0);
    let handed_bytes: u64 = handed.iter().map(|h| h.size).sum();
    assert_eq!(handed_bytes, f.total_frames() as u64 * P);
    for h in &handed {
        assert!(
            ram.iter()
                .any(|m| m.start.raw() <= h.start.raw() && h.end() <= m.end()),
            "{h:?} not RAM"
        );
        assert!(
            !reserved.iter().any(|res| res.overlaps(h)),
            "{h:?} overlaps a reserved range"
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    AllocAligned(usize, u32),
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..20).prop_map(Op::Alloc),
        (1usize..6, 12u32..20).prop_map(|(c, a)| Op::AllocAligned(c, a)),
        any::<usize>().prop_map(Op::Free),
    ]
}

proptest! {
    /// Random alloc/free sequences against a model of outstanding blocks: blocks are aligned, in
    /// managed memory, never overlap, and the free count always balances.
    #[test]
    fn model(
        ranges in prop::collection::vec((0u64..256, 1u64..96), 1..4),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut f = Frames::new();
        let mut added = Vec::new();
        for (start, len) in ranges {
            let range = r(0x8000_0000 + start * P, len * P);
            match f.add_range(range) {
                Ok(n) => { prop_assert_eq!(n as u64, len); added.push(range) }
                Err(FramesError::Overlap { .. }) => {
                    prop_assert!(added.iter().any(|a| a.overlaps(&range)));
                }
            }
        }
        let mut live: Vec<(Pa, usize)> = Vec::new();
        for op in ops {
            let got = match op {
                Op::Alloc(c) => f.alloc(c).map(|pa| (pa, c, P)),
                Op::AllocAligned(c, a) => f.alloc_aligned(c, 1 << a).map(|pa| (pa, c, 1 << a)),
                Op::Free(i) => {
                    if !live.is_empty() {
                        let (pa, c) = live.swap_remove(i % live.len());
                        f.free(pa, c);
                    }
                    None
                }
            };
            if let Some((pa, c, align)) = got {
                let new = r(pa.raw(), c as u64 * P);
                prop_assert!(pa.is_aligned(align) && pa.is_aligned(c.next_power_of_two() as u64 * P));
                // Adjacent ranges merge into one buddy block, so check page by page.
                for page in (new.start.raw()..new.end()).step_by(P as usize) {
                    prop_assert!(added.iter().any(|a| a.contains(page)), "{:#x} is not managed", page);
                }
                for &(other, oc) in &live {
                    prop_assert!(!new.overlaps(&r(other.raw(), oc as u64 * P)), "{:?} handed out twice", new);
                }
                live.push((pa, c));
            }
            let outstanding: usize = live.iter().map(|&(_, c)| c).sum();
            prop_assert_eq!(f.free_frames() + outstanding, f.total_frames());
        }
        for (pa, c) in live.drain(..) {
            f.free(pa, c);
        }
        prop_assert_eq!(f.free_frames(), f.total_frames());
    }
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

#[test]
fn zeroing_pages_zero_what_they_hand_out() {
    let mut backing: Vec<Page> = (0..8).map(|_| Page([0xa5; 4096])).collect();
    let base = backing.as_mut_ptr() as u64;
    let mut f = Frames::new();
    f.add_range(r(base, 8 * P)).unwrap();
    // SAFETY: the frames are the pages of `backing`, which outlives `pages` and is not otherwise used.
    let mut pages = unsafe { ZeroingPages::new(&mut f, pages::identity) };
    let pa = pages.alloc_zeroed(2).unwrap();
    assert!(pa.is_aligned(2 * P));
    // SAFETY: both pages were just handed out from `backing`.
    let words = unsafe { core::slice::from_raw_parts(pages.page_ptr(pa), 1024) };
    assert!(words.iter().all(|&w| w == 0));
    pages.free(pa, 2);
    assert_eq!(f.free_frames(), 8);
    let handed = (pa.raw() - base) / P;
    for (i, page) in backing.iter().enumerate() {
        let zeroed = i as u64 == handed || i as u64 == handed + 1;
        assert_eq!(
            page.0[7] == 0,
            zeroed,
            "page {i}: only the pages handed out are zeroed"
        );
    }
}

#[test]
fn boot_pool_hands_out_aligned_zeroed_pages_until_full() {
    let mut backing: Vec<Page> = (0..5).map(|_| Page([0xff; 4096])).collect();
    let base = backing.as_mut_ptr() as u64;
    // SAFETY: the pool is `backing`, which outlives `pool` and is not otherwise used.
    let mut pool = unsafe { BootPool::new(r(base, 5 * P), pages::identity) };
    assert_eq!(pool.capacity(), 5);
    let first = pool.alloc_zeroed(1).unwrap();
    assert_eq!(first.raw(), base);
    let two = pool.alloc_zeroed(2).unwrap();
    assert!(two.is_aligned(2 * P));
    pool.free(two, 2);
    let again = pool.alloc_zeroed(2).unwrap();
    assert_eq!(again, two, "the last allocation can be given back");
    while pool.alloc_zeroed(1).is_some() {}
    assert_eq!(pool.pages_used(), 5);
    assert!(backing[0].0.iter().all(|&b| b == 0));
}

#[test]
fn host_pages_track_use() {
    let mut h = HostPages::with_limit(3);
    let a = h.alloc_zeroed(2).unwrap();
    assert!(a.is_aligned(2 * P));
    assert_eq!(h.alloc_zeroed(2), None);
    h.free(a, 2);
    assert_eq!(h.in_use(), 0);
}
