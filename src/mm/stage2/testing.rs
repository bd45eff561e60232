//! Host-test doubles for Stage 2: a `PageSource` backed by heap pages that catches double frees,
//! wrong counts and use after free, and a `TlbOps` that records every call and can check, at
//! each TLBI by IPA, that the entry being invalidated really is invalid (break-before-make).
//! Test-only; other modules' tests may use them to build VMs on the host.

use super::table::lookup;
use super::tlb::TlbOps;
use super::vtcr::Vtcr;
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE};
use crate::mm::PageSource;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

type Page = [u64; 512];

struct Mem {
    pages: BTreeMap<u64, *mut Page>,
    allocs: BTreeMap<u64, usize>,
    next: u64,
    limit: Option<usize>,
    in_use: usize,
}

impl Drop for Mem {
    fn drop(&mut self) {
        for (_, p) in core::mem::take(&mut self.pages) {
            // SAFETY: every pointer in `pages` came from Box::into_raw and is freed once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Heap-backed table pages at fake physical addresses that are never reused, so a stale
/// pointer to a freed table panics in `page_ptr` instead of reading someone else's page.
#[derive(Clone)]
pub struct TestPages {
    mem: Rc<RefCell<Mem>>,
}

impl Default for TestPages {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPages {
    pub fn new() -> Self {
        let mem = Mem {
            pages: BTreeMap::new(),
            allocs: BTreeMap::new(),
            next: 0x1_0000_0000,
            limit: None,
            in_use: 0,
        };
        Self {
            mem: Rc::new(RefCell::new(mem)),
        }
    }

    /// At most `pages` pages in use at once; allocations beyond return `None`.
    pub fn set_limit(&self, pages: Option<usize>) {
        self.mem.borrow_mut().limit = pages;
    }

    /// Pages currently handed out and not yet freed.
    pub fn in_use(&self) -> usize {
        self.mem.borrow().in_use
    }
}

impl PageSource for TestPages {
    fn alloc_zeroed(&mut self, count: usize) -> Option<Pa> {
        let mut m = self.mem.borrow_mut();
        if m.limit.is_some_and(|l| m.in_use + count > l) {
            return None;
        }
        let align = count as u64 * PAGE_SIZE;
        let pa = m.next.div_ceil(align) * align;
        m.next = pa + align;
        for i in 0..count as u64 {
            let p = Box::into_raw(Box::new([0u64; 512]));
            m.pages.insert(pa + i * PAGE_SIZE, p);
        }
        m.allocs.insert(pa, count);
        m.in_use += count;
        Some(Pa(pa))
    }

    fn free(&mut self, pa: Pa, count: usize) {
        let mut m = self.mem.borrow_mut();
        let got = m.allocs.remove(&pa.raw());
        assert_eq!(
            got,
            Some(count),
            "free({pa:?}, {count}) does not match an allocation"
        );
        for i in 0..count as u64 {
            let p = m
                .pages
                .remove(&(pa.raw() + i * PAGE_SIZE))
                .expect("page of allocation");
            // SAFETY: came from Box::into_raw in alloc_zeroed, removed from the map just now.
            drop(unsafe { Box::from_raw(p) });
        }
        m.in_use -= count;
    }

    fn page_ptr(&self, pa: Pa) -> *mut u64 {
        let m = self.mem.borrow();
        match m.pages.get(&pa.raw()) {
            Some(&p) => p.cast::<u64>(),
            None => panic!("page_ptr({pa:?}): not an allocated page (use after free?)"),
        }
    }
}

/// One recorded TLB maintenance call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TlbEvent {
    Bind(u64),
    Dsb,
    Ipa { vmid: u16, ipa: u64, level: u8 },
    Stage1 { vmid: u16 },
    VmidAll { vmid: u16 },
}

/// Records every call. With `checking`, it also looks at the tables at each TLBI by IPA and
/// notes a violation unless the walk for that IPA stops at an invalid entry of that level.
#[derive(Clone, Default)]
pub struct RecordingTlb {
    log: Rc<RefCell<Vec<TlbEvent>>>,
    violations: Rc<RefCell<Vec<String>>>,
    probe: Option<(TestPages, Vtcr)>,
    root: Pa,
}

impl RecordingTlb {
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that checks break-before-make against the tables in `pages`.
    pub fn checking(pages: TestPages, vtcr: Vtcr) -> Self {
        Self {
            probe: Some((pages, vtcr)),
            ..Self::default()
        }
    }

    pub fn events(&self) -> Vec<TlbEvent> {
        self.log.borrow().clone()
    }

    pub fn clear(&self) {
        self.log.borrow_mut().clear();
    }

    /// Break-before-make violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.borrow().clone()
    }
}

impl TlbOps for RecordingTlb {
    fn bind(&mut self, vttbr: u64) {
        self.root = Pa(vttbr & 0x0000_ffff_ffff_fffe);
        self.log.borrow_mut().push(TlbEvent::Bind(vttbr));
    }

    fn dsb(&mut self) {
        self.log.borrow_mut().push(TlbEvent::Dsb);
    }

    fn invalidate_ipa(&mut self, vmid: u16, ipa: Ipa, level: u8) {
        if let Some((pages, vtcr)) = &self.probe {
            let (at, d) = lookup(pages, vtcr, self.root, ipa.raw());
            if d != 0 || at != level {
                self.violations.borrow_mut().push(std::format!(
                    "TLBI IPA {:#x} level {level}: walk found {d:#x} at level {at}",
                    ipa.raw()
                ));
            }
        }
        self.log.borrow_mut().push(TlbEvent::Ipa {
            vmid,
            ipa: ipa.raw(),
            level,
        });
    }

    fn invalidate_vmid_stage1(&mut self, vmid: u16) {
        self.log.borrow_mut().push(TlbEvent::Stage1 { vmid });
    }

    fn invalidate_vmid_all(&mut self, vmid: u16) {
        self.log.borrow_mut().push(TlbEvent::VmidAll { vmid });
    }
}
