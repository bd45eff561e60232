//! Host-test doubles for Stage 2: a `PageSource` backed by heap pages that catches double frees,
//! wrong counts and use after free, and a `TlbOps` that records every call and can check, at
//! each step of a break-before-make (TLBI by IPA, Stage-1 TLBI, ISB), that the entry being
//! replaced is still invalid, so the new entry was not written early. `check_bbm_order` checks
//! a recorded sequence against the architecture's order.
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
    Isb,
    Ipa { vmid: u16, ipa: u64, level: u8 },
    /// The TLBI by IPA after a leaf gained write permission in place.
    Relax { vmid: u16, ipa: u64, level: u8 },
    Stage1 { vmid: u16 },
    VmidAll { vmid: u16 },
}

/// Check that every break-before-make in `events` follows the architecture's order:
/// `DSB, TLBI IPAS2E1IS, DSB, TLBI VMALLE1IS, DSB, ISB` for a leaf, `DSB, TLBI VMALLS12E1IS, DSB,
/// ISB` for a table entry, and that no Stage-1 TLBI or ISB appears outside such a sequence.
/// (Teardown's `DSB, TLBI VMALLS12E1IS, DSB` is not a break-before-make; don't pass it here.)
pub fn check_bbm_order(events: &[TlbEvent]) -> Result<(), String> {
    use TlbEvent::*;
    let mut i = 0;
    while i < events.len() {
        let tail: &[TlbEvent] = match events[i] {
            Ipa { vmid, .. } | Relax { vmid, .. } => &[Dsb, Stage1 { vmid }, Dsb, Isb],
            VmidAll { .. } => &[Dsb, Isb],
            Stage1 { .. } | Isb => {
                return Err(std::format!(
                    "{:?} at {i} outside a break-before-make: {events:?}",
                    events[i]
                ))
            }
            Dsb | Bind(_) => {
                i += 1;
                continue;
            }
        };
        if i == 0 || events[i - 1] != Dsb {
            return Err(std::format!(
                "{:?} at {i} not preceded by a DSB: {events:?}",
                events[i]
            ));
        }
        let got = &events[i + 1..events.len().min(i + 1 + tail.len())];
        if got != tail {
            return Err(std::format!(
                "{:?} at {i} followed by {got:?}, not {tail:?}: {events:?}",
                events[i]
            ));
        }
        i += 1 + tail.len();
    }
    Ok(())
}

/// Records every call. With `checking`, it also looks at the tables at each TLBI by IPA, and
/// again at the Stage-1 TLBI and the ISB that follow it, and notes a violation unless the walk
/// for that IPA stops at an invalid entry of that level each time: the new entry must not be
/// written before the whole break-before-make sequence is done.
#[derive(Clone, Default)]
pub struct RecordingTlb {
    log: Rc<RefCell<Vec<TlbEvent>>>,
    violations: Rc<RefCell<Vec<String>>>,
    probe: Option<(TestPages, Vtcr)>,
    root: Pa,
    /// The IPA and level of the last TLBI by IPA, until the ISB that ends its sequence.
    pending: Option<(u64, u8)>,
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

    /// With `checking`: note a violation unless the walk for `ipa` stops at an invalid entry at
    /// `level`. `what` names the step for the message.
    fn expect_invalid(&self, what: &str, ipa: u64, level: u8) {
        if let Some((pages, vtcr)) = &self.probe {
            let (at, d) = lookup(pages, vtcr, self.root, ipa);
            if d != 0 || at != level {
                self.violations.borrow_mut().push(std::format!(
                    "{what} for IPA {ipa:#x} level {level}: walk found {d:#x} at level {at}"
                ));
            }
        }
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

    fn isb(&mut self) {
        if let Some((ipa, level)) = self.pending.take() {
            self.expect_invalid("ISB", ipa, level);
        }
        self.log.borrow_mut().push(TlbEvent::Isb);
    }

    fn invalidate_ipa(&mut self, vmid: u16, ipa: Ipa, level: u8) {
        self.expect_invalid("TLBI IPAS2E1IS", ipa.raw(), level);
        self.pending = Some((ipa.raw(), level));
        self.log.borrow_mut().push(TlbEvent::Ipa {
            vmid,
            ipa: ipa.raw(),
            level,
        });
    }

    fn relax_ipa(&mut self, vmid: u16, ipa: Ipa, level: u8) {
        // No break: the entry is valid (and writable) by design; nothing to probe.
        self.log.borrow_mut().push(TlbEvent::Relax {
            vmid,
            ipa: ipa.raw(),
            level,
        });
    }

    fn invalidate_vmid_stage1(&mut self, vmid: u16) {
        if let Some((ipa, level)) = self.pending {
            self.expect_invalid("TLBI VMALLE1IS", ipa, level);
        }
        self.log.borrow_mut().push(TlbEvent::Stage1 { vmid });
    }

    fn invalidate_vmid_all(&mut self, vmid: u16) {
        self.log.borrow_mut().push(TlbEvent::VmidAll { vmid });
    }
}
