//! Regions with flags on a VM's Stage-2 tables: the Stage-2 half of KVM_MEM_USERFAULT and of
//! dirty logging, reusable by anything that must see a guest's first touch of a page (a lazy
//! restore, dirty-only restore, a background copy that write-protects what it has not copied).
//!
//! A region is a linear piece of guest RAM: `[ipa, ipa + size)` backed by `[pa, pa + size)`
//! with the attributes `attrs`. It may carry two flags:
//! - **userfault**: every page starts *missing*. Turning the flag on zaps (unmaps) the region's
//!   Stage-2 entries with break-before-make and TLB invalidation. A guest access to a missing
//!   page faults at Stage 2 and [`Stage2::region_fault`] answers `Missing`: the caller supplies
//!   the page's contents (and cleans it to the PoC where FWB is off) and calls
//!   [`Stage2::fill`], which maps that one page. Turning the flag off maps the pages still
//!   missing (their contents are what RAM holds) and leaves every page mapping in place.
//! - **log-dirty**: every mapped page is write-protected; a guest's first write to a page sets
//!   its bit in the dirty bitmap and makes it writable again (`Dirtied`); el2visor's own writes
//!   are not logged. [`Stage2::clear_dirty`] write-protects the dirty pages again and clears
//!   their bits (a new round); turning the flag off makes every mapped page writable.
//!
//! While a flag is set, and after it until [`Stage2::collapse_region`] is asked for, the region
//! is *held to pages*: the walker creates no block over any of its pages (a `map` uses pages,
//! a uniform table is not merged). Collapse is a step of its own, allowed only with both flags
//! off: it remaps the region with blocks where aligned, break-before-make on each table it
//! replaces. The dirty bits are exact: a page's bit is set only by a guest write fault on it, or
//! by [`Stage2::mark_dirty`] for what el2visor writes itself.
#![forbid(unsafe_code)]

use super::error::S2Error;
pub use super::region_state::{Bitmap, Region, RegionId};
use super::memtype::S2Attrs;
use super::table::Stage2;
use super::tlb::TlbOps;
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE};
use crate::mm::PageSource;

/// What a Stage-2 fault on a region's page means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionFault {
    /// The page is missing (userfault): supply its contents at `pa`, then [`Stage2::fill`].
    Missing { region: RegionId, page: usize, ipa: u64, pa: u64 },
    /// A first write under log-dirty: the bit is set and the page writable; run the access again.
    Dirtied,
    /// Nothing to do any more (another vCPU resolved it meanwhile): run the access again.
    Retry,
    /// Not a fault the region explains (outside every region, or a page mapped with rights
    /// that already forbid the access for another reason).
    NotOurs,
}

impl<P: PageSource, T: TlbOps> Stage2<P, T> {
    /// Whether a block over `[ipa, ipa + size)` would cover a page of a region held to pages.
    pub(super) fn pages_only(&self, ipa: u64, size: u64) -> bool {
        self.regions.iter().any(|r| r.held && ipa < r.ipa + r.size && r.ipa < ipa + size)
    }

    /// Make `[ipa, ipa + size)` -> `[pa, pa + size)` with `attrs` a region (no flag set yet; the
    /// mapping itself is not changed). Regions may not overlap.
    pub fn add_region(&mut self, ipa: Ipa, pa: Pa, size: u64, attrs: S2Attrs) -> Result<RegionId, S2Error> {
        attrs.validate().map_err(S2Error::InvalidAttrs)?;
        for (what, v) in [("IPA", ipa.raw()), ("PA", pa.raw()), ("size", size)] {
            if !v.is_multiple_of(PAGE_SIZE) {
                return Err(S2Error::Unaligned { what, value: v });
            }
        }
        if size == 0 {
            return Err(S2Error::Region("a region needs at least one page"));
        }
        if self.regions.iter().any(|r| ipa.raw() < r.ipa + r.size && r.ipa < ipa.raw() + size) {
            return Err(S2Error::Region("regions may not overlap"));
        }
        let pages = (size / PAGE_SIZE) as usize;
        // Two bitmaps, 32 KiB each per GiB: a VM too large for the heap gets no region, not a
        // fatal allocation failure.
        let (Some(missing), Some(dirty)) = (Bitmap::try_new(pages), Bitmap::try_new(pages)) else {
            return Err(S2Error::OutOfMemory);
        };
        self.regions.push(Region {
            ipa: ipa.raw(),
            pa: pa.raw(),
            size,
            attrs,
            userfault: false,
            log_dirty: false,
            held: false,
            missing,
            dirty,
        });
        Ok(RegionId(self.regions.len() - 1))
    }

    /// Drop the regions added after the first `len`, none of whose flags was ever set (their
    /// entries are as `map` made them): for a caller that could not add all it needed.
    pub fn truncate_regions(&mut self, len: usize) {
        debug_assert!(self.regions[len.min(self.regions.len())..].iter().all(|r| !r.held));
        self.regions.truncate(len);
    }

    pub fn region(&self, id: RegionId) -> &Region {
        &self.regions[id.0]
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region holding `ipa`.
    pub fn region_at(&self, ipa: u64) -> Option<RegionId> {
        self.regions.iter().position(|r| r.contains(ipa)).map(RegionId)
    }

    /// Turn userfault on (every page missing, the region's entries zapped with break-before-
    /// make) or off (the pages still missing mapped, every page mapping left in place).
    pub fn set_userfault(&mut self, id: RegionId, on: bool) -> Result<(), S2Error> {
        let r = &mut self.regions[id.0];
        if r.userfault == on {
            return Ok(());
        }
        let (ipa, size) = (r.ipa, r.size);
        if on {
            r.held = true;
            r.userfault = true;
            r.missing.fill();
            return self.unmap(Ipa(ipa), size);
        }
        let mut at = 0;
        while let Some(page) = self.regions[id.0].missing.next_one(at) {
            at = page + 1;
            self.fill(id, page, false)?;
        }
        self.regions[id.0].userfault = false;
        Ok(())
    }

    /// Turn log-dirty on (the dirty bitmap cleared, every mapped page write-protected, blocks
    /// split) or off (every mapped page writable again; the bitmap stays for the caller to read).
    pub fn set_log_dirty(&mut self, id: RegionId, on: bool) -> Result<(), S2Error> {
        let r = &mut self.regions[id.0];
        if r.log_dirty == on {
            return Ok(());
        }
        let (ipa, size, attrs) = (r.ipa, r.size, r.attrs);
        r.log_dirty = on;
        if on {
            r.held = true;
            r.dirty.clear_all();
            self.protect(Ipa(ipa), size, attrs.read_only())
        } else {
            self.protect(Ipa(ipa), size, attrs)
        }
    }

    /// Start a new dirty round: write-protect every page dirtied so far and clear its bit.
    pub fn clear_dirty(&mut self, id: RegionId) -> Result<(), S2Error> {
        let r = &self.regions[id.0];
        if !r.log_dirty {
            self.regions[id.0].dirty.clear_all();
            return Ok(());
        }
        let ro = r.attrs.read_only();
        let mut at = 0;
        while let Some(page) = self.regions[id.0].dirty.next_one(at) {
            at = page + 1;
            let (ipa, _) = self.regions[id.0].page(page);
            self.protect(Ipa(ipa), PAGE_SIZE, ro)?;
            self.regions[id.0].dirty.clear(page);
        }
        Ok(())
    }

    /// el2visor wrote `[ipa, ipa + len)` of guest RAM itself (a reboot's reload of the images):
    /// the pages of log-dirty regions in it count as dirty, as if the guest had written them, so
    /// that a dirty-only restore undoes the write too. Their Stage-2 entries stay as they are (a
    /// guest write to one still faults once, and finds its bit set).
    pub fn mark_dirty(&mut self, ipa: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = ipa.saturating_add(len);
        for r in self.regions.iter_mut().filter(|r| r.log_dirty && ipa < r.ipa + r.size && r.ipa < end) {
            let first = r.page_of(ipa.max(r.ipa));
            let last = r.page_of(end.min(r.ipa + r.size) - 1);
            for page in first..=last {
                r.dirty.set(page);
            }
        }
    }

    /// Give the region its blocks back (where IPA and PA are aligned): only with both flags off.
    pub fn collapse_region(&mut self, id: RegionId) -> Result<(), S2Error> {
        let r = &mut self.regions[id.0];
        if r.userfault || r.log_dirty {
            return Err(S2Error::Region("cannot collapse a region while userfault or log-dirty is on"));
        }
        r.held = false;
        let (ipa, pa, size, attrs) = (r.ipa, r.pa, r.size, r.attrs);
        self.map(Ipa(ipa), Pa(pa), size, attrs)
    }

    /// Map the missing page `page` of region `id` (its contents supplied), writable at once when
    /// `write` (the faulting access was a write: under log-dirty it is dirty too).
    pub fn fill(&mut self, id: RegionId, page: usize, write: bool) -> Result<(), S2Error> {
        let r = &self.regions[id.0];
        if page >= r.pages() {
            return Err(S2Error::Region("page index outside the region"));
        }
        let (ipa, pa) = r.page(page);
        // A page already dirty stays writable (its bit is set; no further write is news).
        let attrs = if write || r.dirty.get(page) { r.attrs } else { r.clean_attrs() };
        self.map(Ipa(ipa), Pa(pa), PAGE_SIZE, attrs)?;
        let r = &mut self.regions[id.0];
        r.missing.clear(page);
        if write && r.log_dirty {
            r.dirty.set(page);
        }
        Ok(())
    }

    /// What a guest's Stage-2 fault at `ipa` (a write when `write`) means for the regions; a
    /// log-dirty first write is resolved here (any fault on a write-protected page of a log-dirty
    /// region counts as a write).
    pub fn region_fault(&mut self, ipa: u64, write: bool) -> Result<RegionFault, S2Error> {
        let Some(id) = self.region_at(ipa) else {
            return Ok(RegionFault::NotOurs);
        };
        let r = &self.regions[id.0];
        let page = r.page_of(ipa);
        if r.is_missing(page) {
            let (ipa, pa) = r.page(page);
            return Ok(RegionFault::Missing { region: id, page, ipa, pa });
        }
        let log_dirty = r.log_dirty;
        let (page_ipa, _) = r.page(page);
        let attrs = r.attrs;
        match self.translate(Ipa(page_ipa)) {
            // A fault on a mapped write-protected page is a write, whatever WnR says: a stage-1
            // walk's hardware update of a descriptor there (FEAT_HAFDBS) reports S1PTW, and
            // not every implementation sets WnR for it.
            Some((_, a, _)) if !a.write && log_dirty => {
                self.protect(Ipa(page_ipa), PAGE_SIZE, attrs)?;
                self.regions[id.0].dirty.set(page);
                Ok(RegionFault::Dirtied)
            }
            Some((_, a, _)) if !write || a.write => Ok(RegionFault::Retry),
            _ => Ok(RegionFault::NotOurs),
        }
    }
}
