//! Tests of the region flags (`region`): zap on enable with break-before-make and TLB
//! invalidation, page-size mappings while set, no block created while set (by a fill, a map, a
//! merge), collapse only on request, and exact dirty bits (a model-based property test).

use super::memtype::S2Attrs;
use super::region::{Bitmap, RegionFault, RegionId};
use super::table::Stage2;
use super::testing::{check_bbm_order, RecordingTlb, TestPages, TlbEvent};
use super::vtcr::Vtcr;
use super::S2Error;
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE, SIZE_1G, SIZE_2M};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::vec::Vec;

type S2 = Stage2<TestPages, RecordingTlb>;

/// 40-bit IPA, 1 GiB of RAM at 1 GiB identity mapped with a block, and a region over 8 MiB of it
/// starting 2 MiB in (so the region sits inside the block).
const R_IPA: u64 = SIZE_1G + SIZE_2M;
const R_SIZE: u64 = 4 * SIZE_2M;

fn setup() -> (S2, RecordingTlb, RegionId) {
    let vtcr = Vtcr::new(2, false).unwrap();
    let pages = TestPages::new();
    let tlb = RecordingTlb::checking(pages.clone(), vtcr);
    let mut s2 = Stage2::new(vtcr, 1, pages, tlb.clone()).unwrap();
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), SIZE_1G, S2Attrs::ram()).unwrap();
    let id = s2.add_region(Ipa(R_IPA), Pa(R_IPA), R_SIZE, S2Attrs::ram()).unwrap();
    tlb.clear();
    (s2, tlb, id)
}

/// Leaves inside the region: (blocks, pages).
fn leaves_in_region(s2: &S2) -> (usize, usize) {
    let (mut blocks, mut pages) = (0, 0);
    s2.for_each_leaf(|l| {
        let end = l.ipa.raw() + l.size();
        if l.ipa.raw() < R_IPA + R_SIZE && R_IPA < end {
            if l.level == 3 {
                pages += 1;
            } else {
                blocks += 1;
            }
        }
    });
    (blocks, pages)
}

fn assert_clean(s2: &S2, tlb: &RecordingTlb) {
    s2.verify().unwrap();
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
    check_bbm_order(&tlb.events()).unwrap();
}

#[test]
fn userfault_on_zaps_the_region_with_break_before_make() {
    let (mut s2, tlb, id) = setup();
    assert_eq!(leaves_in_region(&s2), (1, 0), "the 1 GiB block covers the region");
    s2.set_userfault(id, true).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, 0), "nothing of the region stays mapped");
    for off in [0, PAGE_SIZE, R_SIZE - PAGE_SIZE] {
        assert_eq!(s2.translate(Ipa(R_IPA + off)), None);
    }
    // The rest of the 1 GiB stays mapped (as pages and 2 MiB blocks now).
    assert!(s2.translate(Ipa(SIZE_1G)).is_some());
    assert!(s2.translate(Ipa(R_IPA + R_SIZE)).is_some());
    // The live 1 GiB block was broken and invalidated before anything replaced it.
    let ev = tlb.events();
    assert!(ev.iter().any(|e| matches!(e, TlbEvent::Ipa { ipa, level: 1, .. } if *ipa == SIZE_1G)), "{ev:?}");
    assert_clean(&s2, &tlb);
    assert_eq!(s2.region(id).missing.count(), s2.region(id).pages());
}

#[test]
fn userfault_zap_of_pages_invalidates_every_page() {
    let (mut s2, tlb, id) = setup();
    // Pages already (log-dirty held them), then userfault zaps them one by one or by table.
    s2.set_log_dirty(id, true).unwrap();
    s2.set_log_dirty(id, false).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, R_SIZE as usize / 4096));
    tlb.clear();
    s2.set_userfault(id, true).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, 0));
    let ev = tlb.events();
    let inval = ev.iter().filter(|e| matches!(e, TlbEvent::Ipa { .. } | TlbEvent::VmidAll { .. })).count();
    assert!(inval >= 4, "each of the 4 page tables (or their pages) invalidated: {ev:?}");
    assert_clean(&s2, &tlb);
}

#[test]
fn faults_fill_pages_and_never_blocks_while_userfault_is_on() {
    let (mut s2, tlb, id) = setup();
    s2.set_userfault(id, true).unwrap();
    // Fill a whole 2 MiB worth of pages: the table stays (no merge while held).
    for i in 0..512u64 {
        let ipa = R_IPA + i * PAGE_SIZE + 8;
        let f = s2.region_fault(ipa, i % 2 == 0).unwrap();
        let RegionFault::Missing { region, page, ipa: pi, pa } = f else { panic!("{f:?}") };
        assert_eq!((region, page, pi, pa), (id, i as usize, R_IPA + i * PAGE_SIZE, R_IPA + i * PAGE_SIZE));
        s2.fill(region, page, i % 2 == 0).unwrap();
        assert_eq!(s2.region_fault(ipa, false).unwrap(), RegionFault::Retry);
    }
    assert_eq!(leaves_in_region(&s2), (0, 512));
    assert_eq!(s2.translate(Ipa(R_IPA)).unwrap().2, 3);
    // A map over the region while held also takes pages.
    s2.map(Ipa(R_IPA), Pa(R_IPA), R_SIZE, S2Attrs::ram()).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, R_SIZE as usize / 4096));
    assert_clean(&s2, &tlb);
    // A fault outside every region is not ours.
    assert_eq!(s2.region_fault(SIZE_1G, true).unwrap(), RegionFault::NotOurs);
}

#[test]
fn userfault_off_keeps_pages_and_collapse_is_a_step_of_its_own() {
    let (mut s2, tlb, id) = setup();
    s2.set_userfault(id, true).unwrap();
    s2.fill(id, 3, false).unwrap();
    assert_eq!(
        s2.collapse_region(id),
        Err(S2Error::Region("cannot collapse a region while userfault or log-dirty is on"))
    );
    s2.set_userfault(id, false).unwrap();
    // Every page mapped now (the missing ones too), still pages.
    assert_eq!(leaves_in_region(&s2), (0, R_SIZE as usize / 4096));
    assert_eq!(s2.region(id).missing.count(), 0);
    // Another operation elsewhere in the same 1 GiB does not merge the region's tables.
    s2.protect(Ipa(SIZE_1G), SIZE_2M, S2Attrs::ram()).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, R_SIZE as usize / 4096));
    assert_clean(&s2, &tlb);
    s2.collapse_region(id).unwrap();
    // Back to the single 1 GiB block.
    assert_eq!(leaves_in_region(&s2), (1, 0));
    assert_eq!(s2.translate(Ipa(R_IPA)), Some((Pa(R_IPA), S2Attrs::ram(), 1)));
    assert_clean(&s2, &tlb);
}

#[test]
fn log_dirty_write_protects_pages_and_sets_exact_bits() {
    let (mut s2, tlb, id) = setup();
    s2.set_log_dirty(id, true).unwrap();
    assert_eq!(leaves_in_region(&s2), (0, R_SIZE as usize / 4096));
    assert_eq!(s2.translate(Ipa(R_IPA)).unwrap().1, S2Attrs::ram().read_only());
    // A stage-1 walk's descriptor update reported without WnR still dirties the page.
    assert_eq!(s2.region_fault(R_IPA + 6 * PAGE_SIZE, false).unwrap(), RegionFault::Dirtied);
    assert_eq!(s2.region_fault(R_IPA + 5 * PAGE_SIZE + 9, true).unwrap(), RegionFault::Dirtied);
    assert_eq!(s2.region_fault(R_IPA + 5 * PAGE_SIZE, true).unwrap(), RegionFault::Retry);
    assert_eq!(s2.translate(Ipa(R_IPA + 5 * PAGE_SIZE)).unwrap().1, S2Attrs::ram());
    assert_eq!(s2.region(id).dirty.ones().collect::<Vec<_>>(), [5, 6]);
    s2.clear_dirty(id).unwrap();
    assert_eq!(s2.region(id).dirty.count(), 0);
    assert_eq!(s2.translate(Ipa(R_IPA + 5 * PAGE_SIZE)).unwrap().1, S2Attrs::ram().read_only());
    assert_eq!(s2.region_fault(R_IPA + 7 * PAGE_SIZE, false).unwrap(), RegionFault::Dirtied);
    s2.clear_dirty(id).unwrap();
    s2.set_log_dirty(id, false).unwrap();
    assert_eq!(s2.translate(Ipa(R_IPA + 5 * PAGE_SIZE)).unwrap(), (Pa(R_IPA + 5 * PAGE_SIZE), S2Attrs::ram(), 3));
    assert_clean(&s2, &tlb);
}

#[test]
fn el2visors_own_writes_count_as_dirty_under_log_dirty() {
    let (mut s2, _, id) = setup();
    // Off: nothing is recorded.
    s2.mark_dirty(R_IPA, PAGE_SIZE);
    assert_eq!(s2.region(id).dirty.count(), 0);
    s2.set_log_dirty(id, true).unwrap();
    // From the page before the region (outside it) to one byte into page 2; and the last page,
    // from a range that runs past the region's end.
    s2.mark_dirty(R_IPA - PAGE_SIZE, 2 * PAGE_SIZE + PAGE_SIZE + 1);
    s2.mark_dirty(R_IPA + R_SIZE - 1, 2 * PAGE_SIZE);
    let last = (R_SIZE / PAGE_SIZE) as usize - 1;
    assert_eq!(s2.region(id).dirty.ones().collect::<Vec<_>>(), [0, 1, 2, last]);
    // The mapping is unchanged; a new round forgets them like guest-written pages.
    assert_eq!(s2.translate(Ipa(R_IPA)).unwrap().1, S2Attrs::ram().read_only());
    s2.clear_dirty(id).unwrap();
    assert_eq!(s2.region(id).dirty.count(), 0);
    s2.mark_dirty(R_IPA, 0);
    assert_eq!(s2.region(id).dirty.count(), 0, "an empty range marks nothing");
}

#[test]
fn regions_are_checked() {
    let (mut s2, _, _) = setup();
    assert!(matches!(
        s2.add_region(Ipa(R_IPA + SIZE_2M), Pa(0), SIZE_2M, S2Attrs::ram()),
        Err(S2Error::Region(_))
    ));
    assert!(matches!(s2.add_region(Ipa(0x1001), Pa(0), PAGE_SIZE, S2Attrs::ram()), Err(S2Error::Unaligned { .. })));
    assert!(matches!(s2.add_region(Ipa(0), Pa(0), 0, S2Attrs::ram()), Err(S2Error::Region(_))));
}

#[test]
fn bitmap_basics() {
    let mut b = Bitmap::new(70);
    b.fill();
    assert_eq!(b.count(), 70);
    assert!(!b.get(70));
    b.clear(3);
    b.clear(69);
    assert_eq!(b.count(), 68);
    b.clear_all();
    b.set(0);
    b.set(64);
    assert_eq!(b.ones().collect::<Vec<_>>(), [0, 64]);
    // A bitmap the heap cannot hold is refused, not a fatal allocation failure.
    assert!(Bitmap::try_new(usize::MAX).is_none());
    assert_eq!(Bitmap::try_new(70).map(|b| (b.len(), b.count())), Some((70, 0)));
}

#[test]
fn regions_added_and_dropped_again() {
    let (mut s2, _, id) = setup();
    let n = s2.regions().len();
    s2.add_region(Ipa(R_IPA + R_SIZE), Pa(R_IPA + R_SIZE), SIZE_2M, S2Attrs::ram()).unwrap();
    s2.truncate_regions(n);
    assert_eq!(s2.regions().len(), n);
    assert_eq!(s2.region_at(R_IPA + R_SIZE), None);
    assert_eq!(s2.region_at(R_IPA), Some(id));
}

#[test]
fn next_one_walks_the_set_bits_as_ones_lists_them() {
    let mut b = Bitmap::new(200);
    assert_eq!(b.next_one(0), None);
    for i in [0, 1, 63, 64, 130, 199] {
        b.set(i);
    }
    let mut walked = Vec::new();
    let mut at = 0;
    while let Some(i) = b.next_one(at) {
        walked.push(i);
        at = i + 1;
    }
    assert_eq!(walked, b.ones().collect::<Vec<_>>());
    assert_eq!(b.next_one(65), Some(130));
    assert_eq!(b.next_one(200), None, "past the end");
    assert_eq!(b.next_one(10_000), None);
    // Bits past `len` in the last word (fill() keeps them clear; set() could not make them).
    b.fill();
    assert_eq!(b.next_one(199), Some(199));
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Read(u64),
    Write(u64),
    Clear,
    /// Userfault on then off (the page contents "supplied" untouched): dirty bits stay.
    Cycle,
}

fn step() -> impl Strategy<Value = Step> {
    let page = 0..(R_SIZE / PAGE_SIZE);
    prop_oneof![
        4 => page.clone().prop_map(Step::Read),
        6 => page.prop_map(Step::Write),
        1 => Just(Step::Clear),
        1 => Just(Step::Cycle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Dirty bits equal exactly the set of pages written since the last clear, no block ever
    /// appears in the region, and every break-before-make is well ordered.
    #[test]
    fn dirty_bits_are_exact(steps in prop::collection::vec(step(), 1..120)) {
        let (mut s2, tlb, id) = setup();
        s2.set_log_dirty(id, true).unwrap();
        let mut model = BTreeSet::new();
        for st in steps {
            match st {
                Step::Read(p) | Step::Write(p) => {
                    // An access faults only where the hardware would: a missing page, or a write
                    // to a write-protected one.
                    let write = matches!(st, Step::Write(_));
                    let ipa = R_IPA + p * PAGE_SIZE;
                    let faults = match s2.translate(Ipa(ipa)) {
                        None => true,
                        Some((_, a, _)) => write && !a.write,
                    };
                    if faults {
                        match s2.region_fault(ipa, write).unwrap() {
                            RegionFault::Missing { region, page, .. } => s2.fill(region, page, write).unwrap(),
                            RegionFault::Dirtied => prop_assert!(write && !model.contains(&(p as usize))),
                            RegionFault::Retry | RegionFault::NotOurs => prop_assert!(false, "a real fault not resolved"),
                        }
                    }
                    if write {
                        model.insert(p as usize);
                    }
                }
                Step::Clear => {
                    s2.clear_dirty(id).unwrap();
                    model.clear();
                }
                Step::Cycle => {
                    s2.set_userfault(id, true).unwrap();
                    prop_assert_eq!(leaves_in_region(&s2), (0, 0));
                    s2.set_userfault(id, false).unwrap();
                }
            }
            let got: BTreeSet<usize> = s2.region(id).dirty.ones().collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(leaves_in_region(&s2).0, 0);
            // A page is writable exactly when dirty.
            for p in [0usize, 1, 511, 512, 2047] {
                let w = s2.translate(Ipa(R_IPA + p as u64 * PAGE_SIZE)).unwrap().1.write;
                prop_assert_eq!(w, model.contains(&p));
            }
        }
        s2.verify().unwrap();
        prop_assert!(tlb.violations().is_empty());
        check_bbm_order(&tlb.events()).map_err(TestCaseError::fail)?;
    }
}
