//! Scenario tests of `Stage2`: block use for RAM and devices with exact table-page counts,
//! break-before-make sequences, merge, errors, out of memory, the FWB encoding, concatenated
//! roots, the dump, and teardown.

use super::descriptor::{MEMATTR_MASK, MEMATTR_SHIFT, XN_MASK, XN_NONE};
use super::memtype::{AttrEncoding, MemType, S2Attrs};
use super::table::{lookup, Stage2};
use super::testing::{check_bbm_order, RecordingTlb, TestPages, TlbEvent};
use super::vtcr::Vtcr;
use super::{S2Error, S2Stats};
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE, SIZE_1G, SIZE_2M};

type S2 = Stage2<TestPages, RecordingTlb>;

fn setup(pa_range: u8) -> (S2, TestPages, RecordingTlb) {
    let vtcr = Vtcr::new(pa_range, false).unwrap();
    let pages = TestPages::new();
    let tlb = RecordingTlb::checking(pages.clone(), vtcr);
    let s2 = Stage2::new(vtcr, 1, pages.clone(), tlb.clone()).unwrap();
    (s2, pages, tlb)
}

#[test]
fn two_gib_ram_maps_with_1g_blocks() {
    // 40-bit IPA: the root is two concatenated level-1 tables, so 1 GiB blocks sit in the root.
    let (mut s2, _, _) = setup(2);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), 2 * SIZE_1G, S2Attrs::ram())
        .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 2,
            blocks_2m: 0,
            pages_4k: 0,
            table_pages: 2
        }
    );
    assert_eq!(
        s2.translate(Ipa(SIZE_1G + 0x1234)),
        Some((Pa(SIZE_1G + 0x1234), S2Attrs::ram(), 1))
    );
    s2.verify().unwrap();
    // 48-bit IPA: level-0 root plus one level-1 table.
    let (mut s2, _, _) = setup(5);
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), 2 * SIZE_1G, S2Attrs::ram())
        .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 2,
            blocks_2m: 0,
            pages_4k: 0,
            table_pages: 2
        }
    );
    // PA only 2 MiB aligned: 1024 2 MiB blocks in two level-2 tables.
    let (mut s2, _, _) = setup(2);
    s2.map(
        Ipa(SIZE_1G),
        Pa(SIZE_1G + SIZE_2M),
        2 * SIZE_1G,
        S2Attrs::ram(),
    )
    .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 1024,
            pages_4k: 0,
            table_pages: 4
        }
    );
}

#[test]
fn three_mib_device_at_1mib_uses_pages_only_where_it_must() {
    let (mut s2, _, _) = setup(2);
    let (ipa, size) = (0x0910_0000u64, 3 << 20);
    s2.map(Ipa(ipa), Pa(ipa), size, S2Attrs::device()).unwrap();
    // [0x0910_0000, 0x0920_0000): 256 pages; [0x0920_0000, 0x0940_0000): one 2 MiB block.
    // Tables: 2 root pages, one level-2 table, one level-3 table.
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 1,
            pages_4k: 256,
            table_pages: 4
        }
    );
    let ranges = s2.ranges();
    assert_eq!(ranges.len(), 2);
    assert_eq!(
        (ranges[0].ipa, ranges[0].size, ranges[0].leaf_size),
        (Ipa(ipa), 1 << 20, PAGE_SIZE)
    );
    assert_eq!(
        (ranges[1].ipa, ranges[1].size, ranges[1].leaf_size),
        (Ipa(0x0920_0000), SIZE_2M, SIZE_2M)
    );
    for r in &ranges {
        assert_eq!(r.attrs, S2Attrs::device());
    }
    // Every device descriptor is execute-never, Device-nGnRE.
    for probe in [ipa, ipa + 0xf_f000, 0x0920_0000, 0x093f_f000] {
        let (level, d) = lookup(s2.pages(), s2.vtcr(), s2.root(), probe);
        assert!(level >= 2);
        assert_eq!(d & XN_MASK, XN_NONE);
        assert_eq!((d & MEMATTR_MASK) >> MEMATTR_SHIFT, 0b0001);
    }
    assert_eq!(s2.translate(Ipa(ipa - PAGE_SIZE)), None);
    assert_eq!(s2.translate(Ipa(ipa + size)), None);
    let dump = s2.dump();
    assert!(
        dump.contains("256 x 4K") && dump.contains("1 x 2M") && dump.contains("Device-nGnRE rw-"),
        "{dump}"
    );
}

#[test]
fn block_split_and_merge_follow_break_before_make() {
    let (mut s2, pages, tlb) = setup(2);
    let base = 0x4000_0000u64;
    tlb.clear();
    s2.map(Ipa(base), Pa(base), SIZE_2M, S2Attrs::ram())
        .unwrap();
    // Filling invalid entries needs no TLBI: only the publishing DSBs.
    assert!(
        tlb.events().iter().all(|e| *e == TlbEvent::Dsb),
        "{:?}",
        tlb.events()
    );
    assert_eq!(s2.table_pages(), 3);

    tlb.clear();
    s2.protect(Ipa(base + PAGE_SIZE), PAGE_SIZE, S2Attrs::ram().read_only())
        .unwrap();
    assert_eq!(
        tlb.events(),
        [
            TlbEvent::Dsb,
            TlbEvent::Ipa {
                vmid: 1,
                ipa: base,
                level: 2
            },
            TlbEvent::Dsb,
            TlbEvent::Stage1 { vmid: 1 },
            TlbEvent::Dsb,
            TlbEvent::Isb,
            TlbEvent::Dsb,
        ]
    );
    assert_eq!(s2.stats().pages_4k, 512);
    assert_eq!(
        s2.translate(Ipa(base + PAGE_SIZE)).unwrap().1,
        S2Attrs::ram().read_only()
    );
    assert_eq!(s2.table_pages(), 4);

    // Write permission back: in place, no break (the page stays valid). The now uniform table
    // is merged back into the block first (its break takes the whole VMID); the page's own
    // TLBIs come at the end of the operation.
    tlb.clear();
    s2.protect(Ipa(base + PAGE_SIZE), PAGE_SIZE, S2Attrs::ram())
        .unwrap();
    assert_eq!(
        tlb.events(),
        [
            TlbEvent::Dsb,
            TlbEvent::VmidAll { vmid: 1 },
            TlbEvent::Dsb,
            TlbEvent::Isb,
            TlbEvent::Dsb,
            TlbEvent::Relax {
                vmid: 1,
                ipa: base + PAGE_SIZE,
                level: 3
            },
            TlbEvent::Dsb,
            TlbEvent::Stage1 { vmid: 1 },
            TlbEvent::Dsb,
            TlbEvent::Isb,
        ]
    );
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 1,
            pages_4k: 0,
            table_pages: 3
        }
    );
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
    assert_eq!(pages.in_use(), 3);
    s2.verify().unwrap();
}

#[test]
fn bbm_order_checker_wants_stage1_and_isb_before_the_new_entry() {
    use TlbEvent::*;
    let ipa = Ipa {
        vmid: 1,
        ipa: 0x4000_0000,
        level: 3,
    };
    let good = [Dsb, ipa, Dsb, Stage1 { vmid: 1 }, Dsb, Isb, Dsb];
    check_bbm_order(&good).unwrap();
    check_bbm_order(&[Dsb, VmidAll { vmid: 1 }, Dsb, Isb]).unwrap();
    // The old order: Stage 1 invalidated once, after the new entries were written.
    assert!(check_bbm_order(&[Dsb, ipa, Dsb, Dsb, Stage1 { vmid: 1 }, Dsb]).is_err());
    // No ISB, Stage-1 TLBI before the IPA one, no DSB between them, stray Stage-1 TLBI.
    assert!(check_bbm_order(&[Dsb, ipa, Dsb, Stage1 { vmid: 1 }, Dsb]).is_err());
    assert!(check_bbm_order(&[Dsb, Stage1 { vmid: 1 }, Dsb, ipa, Dsb, Isb]).is_err());
    assert!(check_bbm_order(&[Dsb, ipa, Stage1 { vmid: 1 }, Dsb, Isb]).is_err());
    assert!(check_bbm_order(&[ipa, Dsb, Stage1 { vmid: 1 }, Dsb, Isb]).is_err());
    assert!(check_bbm_order(&[Dsb, VmidAll { vmid: 1 }, Dsb]).is_err());
}

#[test]
fn replacing_a_live_page_invalidates_stage1_before_the_new_entry() {
    let (mut s2, _, tlb) = setup(2);
    let base = 0x4000_0000u64;
    s2.map(Ipa(base), Pa(base), PAGE_SIZE, S2Attrs::ram())
        .unwrap();
    tlb.clear();
    s2.map(Ipa(base), Pa(base + SIZE_2M), PAGE_SIZE, S2Attrs::ram())
        .unwrap();
    // The checking recorder saw the entry still invalid at the TLBI by IPA, the TLBI VMALLE1IS
    // and the ISB: the new entry came after all three.
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
    check_bbm_order(&tlb.events()).unwrap();
    assert_eq!(
        tlb.events(),
        [
            TlbEvent::Dsb,
            TlbEvent::Ipa {
                vmid: 1,
                ipa: base,
                level: 3
            },
            TlbEvent::Dsb,
            TlbEvent::Stage1 { vmid: 1 },
            TlbEvent::Dsb,
            TlbEvent::Isb,
            TlbEvent::Dsb,
        ]
    );
    assert_eq!(s2.translate(Ipa(base)).unwrap().0, Pa(base + SIZE_2M));
}

#[test]
fn pages_mapped_one_by_one_merge_into_blocks() {
    let (mut s2, pages, tlb) = setup(2);
    let base = 0x8000_0000u64;
    for i in (0..512u64).rev() {
        s2.map(
            Ipa(base + i * PAGE_SIZE),
            Pa(base + i * PAGE_SIZE),
            PAGE_SIZE,
            S2Attrs::ram(),
        )
        .unwrap();
    }
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 1,
            pages_4k: 0,
            table_pages: 3
        }
    );
    // 511 more 2 MiB blocks complete the GiB: the level-2 table merges into a 1 GiB block.
    s2.map(
        Ipa(base + SIZE_2M),
        Pa(base + SIZE_2M),
        SIZE_1G - SIZE_2M,
        S2Attrs::ram(),
    )
    .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 1,
            blocks_2m: 0,
            pages_4k: 0,
            table_pages: 2
        }
    );
    assert_eq!(pages.in_use(), 2);
    assert!(tlb.violations().is_empty());
    // A different PA for one page splits the block down to pages again.
    s2.map(Ipa(base), Pa(0x1000_0000), PAGE_SIZE, S2Attrs::ram())
        .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 511,
            pages_4k: 512,
            table_pages: 4
        }
    );
    s2.verify().unwrap();
}

#[test]
fn errors_are_reported_and_change_nothing() {
    let (mut s2, _, tlb) = setup(2);
    tlb.clear();
    let limit = 1u64 << 40;
    assert_eq!(
        s2.map(Ipa(0x1001), Pa(0), PAGE_SIZE, S2Attrs::ram()),
        Err(S2Error::Unaligned {
            what: "IPA",
            value: 0x1001
        })
    );
    assert_eq!(
        s2.map(Ipa(0), Pa(0x10), PAGE_SIZE, S2Attrs::ram()),
        Err(S2Error::Unaligned {
            what: "PA",
            value: 0x10
        })
    );
    assert_eq!(
        s2.unmap(Ipa(0), 100),
        Err(S2Error::Unaligned {
            what: "size",
            value: 100
        })
    );
    assert_eq!(
        s2.map(Ipa(limit - PAGE_SIZE), Pa(0), 2 * PAGE_SIZE, S2Attrs::ram()),
        Err(S2Error::OutOfRange {
            what: "IPA range",
            end: limit + PAGE_SIZE,
            limit
        })
    );
    assert!(matches!(
        s2.map(Ipa(0), Pa(limit), PAGE_SIZE, S2Attrs::ram()),
        Err(S2Error::OutOfRange { .. })
    ));
    assert!(matches!(
        s2.unmap(Ipa(PAGE_SIZE), u64::MAX - 4095),
        Err(S2Error::OutOfRange { .. })
    ));
    let exec_dev = S2Attrs {
        exec: true,
        ..S2Attrs::device()
    };
    assert!(matches!(
        s2.map(Ipa(0), Pa(0), PAGE_SIZE, exec_dev),
        Err(S2Error::InvalidAttrs(_))
    ));
    assert!(matches!(
        s2.protect(Ipa(0), PAGE_SIZE, exec_dev),
        Err(S2Error::InvalidAttrs(_))
    ));
    assert!(tlb.events().is_empty() && s2.ranges().is_empty());
    // The last page of the IPA space is usable; an empty range is a no-op.
    s2.map(
        Ipa(limit - PAGE_SIZE),
        Pa(limit - PAGE_SIZE),
        PAGE_SIZE,
        S2Attrs::device(),
    )
    .unwrap();
    s2.unmap(Ipa(0), 0).unwrap();
    assert_eq!(s2.stats().pages_4k, 1);
    let msg = std::format!(
        "{}",
        S2Error::OutOfRange {
            what: "IPA range",
            end: 0x10,
            limit: 0x8
        }
    );
    assert!(msg.contains("0x10") && msg.contains("0x8"));

    let vtcr = Vtcr::new(2, false).unwrap();
    let r = Stage2::new(vtcr, 256, TestPages::new(), RecordingTlb::new());
    assert_eq!(r.err(), Some(S2Error::VmidTooLarge { vmid: 256, bits: 8 }));
}

#[test]
fn out_of_memory_leaves_consistent_tables() {
    let vtcr = Vtcr::new(2, false).unwrap();
    let pages = TestPages::new();
    pages.set_limit(Some(4));
    let tlb = RecordingTlb::checking(pages.clone(), vtcr);
    let mut s2 = Stage2::new(vtcr, 1, pages.clone(), tlb.clone()).unwrap();
    // Root (2), one level-2 and one level-3 table fit: the head of the range is mapped with
    // pages and the aligned middle with blocks; the tail's level-3 table does not fit.
    let r = s2.map(Ipa(PAGE_SIZE), Pa(PAGE_SIZE), 4 * SIZE_2M, S2Attrs::ram());
    assert_eq!(r, Err(S2Error::OutOfMemory));
    s2.verify().unwrap();
    assert_eq!(s2.table_pages(), pages.in_use());
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 3,
            pages_4k: 511,
            table_pages: 4
        }
    );
    s2.for_each_leaf(|l| assert_eq!(l.ipa.raw(), l.pa.raw()));
    pages.set_limit(None);
    s2.map(Ipa(PAGE_SIZE), Pa(PAGE_SIZE), 4 * SIZE_2M, S2Attrs::ram())
        .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 3,
            pages_4k: 512,
            table_pages: 5
        }
    );
    drop(s2);
    assert_eq!(pages.in_use(), 0);
    assert!(tlb.violations().is_empty());
    // No memory for the root at all.
    let none = TestPages::new();
    none.set_limit(Some(1));
    assert_eq!(
        Stage2::new(vtcr, 1, none, RecordingTlb::new()).err(),
        Some(S2Error::OutOfMemory)
    );
}

#[test]
fn fwb_encoding_is_used_in_descriptors() {
    let vtcr = Vtcr::new(5, true).unwrap();
    let mut s2 = Stage2::with_encoding(
        vtcr,
        7,
        AttrEncoding::Fwb,
        TestPages::new(),
        RecordingTlb::new(),
    )
    .unwrap();
    s2.map(Ipa(0x4000_0000), Pa(0x4000_0000), SIZE_2M, S2Attrs::ram())
        .unwrap();
    s2.map(
        Ipa(0x1000_0000),
        Pa(0x1000_0000),
        PAGE_SIZE,
        S2Attrs::normal_nc(),
    )
    .unwrap();
    let (_, d) = lookup(s2.pages(), s2.vtcr(), s2.root(), 0x4000_0000);
    assert_eq!((d & MEMATTR_MASK) >> MEMATTR_SHIFT, 0b0110);
    let (_, d) = lookup(s2.pages(), s2.vtcr(), s2.root(), 0x1000_0000);
    assert_eq!((d & MEMATTR_MASK) >> MEMATTR_SHIFT, 0b0101);
    assert_eq!(
        s2.translate(Ipa(0x4000_0000)).unwrap().1.mem,
        MemType::NormalWb
    );
    assert_eq!(s2.vttbr() >> 48, 7);
    s2.verify().unwrap();
}

#[test]
fn concatenated_and_short_roots_index_correctly() {
    // 32-bit IPA: start level 2, four concatenated root pages; 2 MiB blocks live in the root.
    let (mut s2, _, _) = setup(0);
    assert_eq!(s2.table_pages(), 4);
    s2.map(Ipa(0xc000_0000), Pa(0x8000_0000), 4 << 20, S2Attrs::ram())
        .unwrap();
    s2.map(
        Ipa(0x0020_0000),
        Pa(0x0020_0000),
        PAGE_SIZE,
        S2Attrs::device(),
    )
    .unwrap();
    assert_eq!(
        s2.stats(),
        S2Stats {
            blocks_1g: 0,
            blocks_2m: 2,
            pages_4k: 1,
            table_pages: 5
        }
    );
    assert_eq!(s2.translate(Ipa(0xc030_0000)).unwrap().0, Pa(0x8030_0000));
    assert_eq!(s2.root().raw() % (4 * PAGE_SIZE), 0);
    // 36-bit IPA: a level-1 root of only 64 entries; the last one maps the top GiB.
    let (mut s2, _, _) = setup(1);
    let top = (1u64 << 36) - SIZE_1G;
    s2.map(Ipa(top), Pa(top), SIZE_1G, S2Attrs::ram()).unwrap();
    assert_eq!(
        s2.translate(Ipa(top + 5)).unwrap(),
        (Pa(top + 5), S2Attrs::ram(), 1)
    );
    assert_eq!(s2.stats().table_pages, 1);
    s2.verify().unwrap();
}

#[test]
fn drop_flushes_the_vmid_and_returns_every_page() {
    let (mut s2, pages, tlb) = setup(5);
    s2.map(Ipa(0x4000_0000), Pa(0x4000_1000), 5 << 20, S2Attrs::ram())
        .unwrap();
    s2.map(Ipa(0x0900_0000), Pa(0x0900_0000), 0x1000, S2Attrs::device())
        .unwrap();
    assert!(pages.in_use() > 1);
    tlb.clear();
    drop(s2);
    assert_eq!(pages.in_use(), 0);
    assert_eq!(
        tlb.events(),
        [TlbEvent::Dsb, TlbEvent::VmidAll { vmid: 1 }, TlbEvent::Dsb]
    );
}

/// The lazy pristine copy's pattern (`vm::pristine_lazy`): a 2 MiB block made read-only, then
/// writable again. Taking write away is a break-before-make; giving it back is in place (the
/// block never goes invalid, so no vCPU faults on it meanwhile), with the TLBIs after.
#[test]
fn write_permission_comes_back_in_place_and_goes_with_a_break() {
    let (mut s2, _, tlb) = setup(2);
    let base = SIZE_1G + 4 * SIZE_2M;
    s2.map(Ipa(SIZE_1G), Pa(SIZE_1G), 64 * SIZE_2M, S2Attrs::ram()).unwrap();
    tlb.clear();
    s2.protect(Ipa(base), SIZE_2M, S2Attrs::ram().read_only()).unwrap();
    let ro = tlb.events();
    assert_eq!(&ro[..2], [TlbEvent::Dsb, TlbEvent::Ipa { vmid: 1, ipa: base, level: 2 }], "a break first: {ro:?}");
    assert_eq!(s2.translate(Ipa(base)), Some((Pa(base), S2Attrs::ram().read_only(), 2)));
    tlb.clear();
    s2.protect(Ipa(base), SIZE_2M, S2Attrs::ram()).unwrap();
    let rw = tlb.events();
    assert_eq!(&rw[..2], [TlbEvent::Dsb, TlbEvent::Relax { vmid: 1, ipa: base, level: 2 }], "{rw:?}");
    assert!(!rw.iter().any(|e| matches!(e, TlbEvent::Ipa { .. } | TlbEvent::VmidAll { .. })), "no break: {rw:?}");
    check_bbm_order(&rw).unwrap();
    assert_eq!(s2.translate(Ipa(base)), Some((Pa(base), S2Attrs::ram(), 2)));
    assert_eq!(s2.stats().blocks_2m, 64, "blocks stay blocks");
    assert!(tlb.violations().is_empty(), "{:?}", tlb.violations());
    // Anything more than write coming back (here: execute taken away) is a break again.
    tlb.clear();
    let noexec = S2Attrs { exec: false, ..S2Attrs::ram() };
    s2.protect(Ipa(base), SIZE_2M, noexec).unwrap();
    assert!(matches!(tlb.events()[1], TlbEvent::Ipa { .. }), "{:?}", tlb.events());
}
