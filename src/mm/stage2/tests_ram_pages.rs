//! Tests of the RAM-pages policy (`Stage2::set_ram_pages`) and of the write-permission grants
//! whose TLB maintenance is done once at the end of an operation.

use super::memtype::S2Attrs;
use super::table::Stage2;
use super::testing::{check_bbm_order, RecordingTlb, TestPages, TlbEvent};
use super::vtcr::Vtcr;
use super::S2Stats;
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE, SIZE_1G, SIZE_2M};

type S2 = Stage2<TestPages, RecordingTlb>;

fn setup(ram_pages: bool) -> (S2, TestPages, RecordingTlb) {
    let vtcr = Vtcr::new(2, false).unwrap();
    let pages = TestPages::new();
    let tlb = RecordingTlb::checking(pages.clone(), vtcr);
    let mut s2 = Stage2::new(vtcr, 1, pages.clone(), tlb.clone()).unwrap();
    s2.set_ram_pages(ram_pages);
    (s2, pages, tlb)
}

#[test]
fn ram_takes_pages_and_devices_keep_their_blocks() {
    let (mut s2, pages, _) = setup(true);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), 4 * SIZE_2M, S2Attrs::ram()).unwrap();
    s2.map(Ipa(0x800_0000), Pa(0x800_0000), SIZE_2M, S2Attrs::device()).unwrap();
    s2.map(Ipa(0x1000_0000), Pa(0x1000_0000), SIZE_2M, S2Attrs::normal_nc()).unwrap();
    // Root (two concatenated tables), one level-2 table for the RAM with four level-3 tables
    // under it, one level-2 table for both device blocks.
    assert_eq!(
        s2.stats(),
        S2Stats { blocks_1g: 0, blocks_2m: 2, pages_4k: 4 * 512, table_pages: 2 + 1 + 4 + 1 }
    );
    assert_eq!(pages.in_use(), 2 + 1 + 4 + 1);
    assert_eq!(s2.translate(Ipa(SIZE_1G + SIZE_2M + 0x1234)), Some((Pa(SIZE_1G + SIZE_2M + 0x1234), S2Attrs::ram(), 3)));
    s2.verify().unwrap();
}

#[test]
fn a_uniform_table_of_ram_pages_is_not_merged() {
    let (mut s2, _, _) = setup(true);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), SIZE_2M, S2Attrs::ram()).unwrap();
    // Read-only and back: the table is uniform again, and stays a table.
    s2.protect(Ipa(SIZE_1G), SIZE_2M, S2Attrs::ram().read_only()).unwrap();
    s2.protect(Ipa(SIZE_1G), SIZE_2M, S2Attrs::ram()).unwrap();
    assert_eq!(s2.stats().pages_4k, 512);
    assert_eq!(s2.stats().blocks_2m, 0);
    // The same with blocks allowed merges it back into one block.
    let (mut s2, _, _) = setup(false);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), SIZE_2M, S2Attrs::ram()).unwrap();
    s2.protect(Ipa(SIZE_1G), PAGE_SIZE, S2Attrs::ram().read_only()).unwrap();
    assert_eq!(s2.stats().pages_4k, 512);
    s2.protect(Ipa(SIZE_1G), PAGE_SIZE, S2Attrs::ram()).unwrap();
    assert_eq!((s2.stats().blocks_2m, s2.stats().pages_4k), (1, 0));
}

#[test]
fn granting_write_to_many_pages_takes_one_vmid_invalidation() {
    let (mut s2, _, tlb) = setup(true);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), SIZE_2M, S2Attrs::ram().read_only()).unwrap();
    tlb.clear();
    s2.protect(Ipa(SIZE_1G), SIZE_2M, S2Attrs::ram()).unwrap();
    // 512 leaves written in place, then one DSB, TLBI VMALLS12E1IS, DSB, ISB (not 512 pairs).
    let ev = tlb.events();
    assert_eq!(ev, [TlbEvent::Dsb, TlbEvent::VmidAll { vmid: 1 }, TlbEvent::Dsb, TlbEvent::Isb]);
    check_bbm_order(&ev).unwrap();
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
    for i in 0..512 {
        assert_eq!(s2.translate(Ipa(SIZE_1G + i * PAGE_SIZE)).unwrap().1, S2Attrs::ram());
    }
}

#[test]
fn granting_write_to_one_page_takes_its_ipa_invalidation() {
    let (mut s2, _, tlb) = setup(true);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), SIZE_2M, S2Attrs::ram().read_only()).unwrap();
    tlb.clear();
    s2.protect(Ipa(SIZE_1G + 5 * PAGE_SIZE), PAGE_SIZE, S2Attrs::ram()).unwrap();
    let ev = tlb.events();
    assert_eq!(
        ev,
        [
            TlbEvent::Dsb,
            TlbEvent::Relax { vmid: 1, ipa: SIZE_1G + 5 * PAGE_SIZE, level: 3 },
            TlbEvent::Dsb,
            TlbEvent::Stage1 { vmid: 1 },
            TlbEvent::Dsb,
            TlbEvent::Isb,
        ]
    );
    check_bbm_order(&ev).unwrap();
}

#[test]
fn removing_write_still_breaks_each_page() {
    let (mut s2, _, tlb) = setup(true);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), 4 * PAGE_SIZE, S2Attrs::ram()).unwrap();
    tlb.clear();
    s2.protect(Ipa(SIZE_1G), 4 * PAGE_SIZE, S2Attrs::ram().read_only()).unwrap();
    let ev = tlb.events();
    assert_eq!(ev.iter().filter(|e| matches!(e, TlbEvent::Ipa { .. })).count(), 4);
    check_bbm_order(&ev[..ev.len() - 1]).unwrap();
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
}
