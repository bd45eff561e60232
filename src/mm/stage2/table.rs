//! One VM's Stage-2 translation tables: creation, the public map / unmap / protect / translate
//! operations, and teardown. The recursive engine behind the operations is in `walk.rs`; the
//! read-only views (leaves, ranges, dump, self-check) are in `inspect.rs`.
//!
//! Semantics:
//! - `map` replaces whatever the range held (break-before-make on live entries). It uses 1 GiB and
//!   2 MiB blocks wherever both the IPA and the PA are aligned, 4 KiB pages elsewhere; with
//!   [`Stage2::set_ram_pages`], Normal write-back memory (guest RAM) takes 4 KiB pages only.
//! - `protect` changes the attributes of every mapped page of the range; holes stay holes.
//! - `unmap` removes every mapping of the range; holes are fine.
//! - A block that is partly changed is split; a table that becomes uniform (every entry valid,
//!   contiguous output, equal attributes) is merged back into a block, and an empty table is
//!   freed, so the tables always have their minimal shape.
//! - On error (out of memory for a table page) every page of the range holds either its old or
//!   its new mapping, and every descriptor is still well formed.
//! - Each live change is break-before-make in the architecture's order: write invalid, DSB,
//!   TLBI IPAS2E1IS, DSB, TLBI VMALLE1IS (the combined Stage 1+2 entries), DSB, ISB, then the
//!   new entry; a replaced table entry takes TLBI VMALLS12E1IS, DSB, ISB instead of the two
//!   TLBIs. A leaf that only gains write permission needs no break: it is written in place and
//!   its maintenance is done once at the end of the operation (DSB, TLBI IPAS2E1IS, DSB, TLBI
//!   VMALLE1IS, DSB, ISB for one leaf; DSB, TLBI VMALLS12E1IS, DSB, ISB for more, as KVM does for
//!   a large range). An operation that wrote descriptors ends with a DSB.

use super::descriptor::{
    address, decode, is_leaf, is_table, level_shift, level_size, Descriptor, ENTRIES, OA_MASK,
};
use super::error::S2Error;
use super::memtype::{AttrEncoding, S2Attrs};
use super::tlb::TlbOps;
use super::vtcr::Vtcr;
use super::op::{Op, OpCtx, TableRef};
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE};
use crate::mm::PageSource;

/// A VM's Stage-2 tables, their root and VMID, the page source that holds their pages and the
/// TLB maintenance used when they change.
pub struct Stage2<P: PageSource, T: TlbOps> {
    pub(super) cfg: Vtcr,
    pub(super) enc: AttrEncoding,
    pub(super) vmid: u16,
    pub(super) root: Pa,
    pub(super) pages: P,
    pub(super) tlb: T,
    /// Table pages below the root.
    pub(super) tables: usize,
    /// Regions with flags (userfault, log-dirty): see `region`.
    pub(super) regions: alloc::vec::Vec<super::region_state::Region>,
    /// Normal write-back mappings (guest RAM) take 4 KiB pages only ([`Stage2::set_ram_pages`]).
    pub(super) ram_pages: bool,
}

/// The descriptors of one table page, each read and written with a single aligned volatile
/// 64-bit access: the hardware walker is the other reader of these words, and never sees a torn
/// descriptor. Loops over many entries of one page take it once ([`Slots::of`]).
pub(super) struct Slots(*mut u64);

impl Slots {
    /// The table page at `table`.
    pub(super) fn of<P: PageSource>(pages: &P, table: Pa) -> Self {
        Slots(pages.page_ptr(table))
    }

    /// The page of the table (or concatenated root) at `table` that holds descriptor `idx`, and
    /// the descriptor's index in it.
    fn holding<P: PageSource>(pages: &P, table: Pa, idx: usize) -> (Self, usize) {
        (Self::of(pages, table.add((idx / ENTRIES) as u64 * PAGE_SIZE)), idx % ENTRIES)
    }

    pub(super) fn get(&self, idx: usize) -> u64 {
        assert!(idx < ENTRIES);
        // SAFETY: `page_ptr` gives the page's ENTRIES descriptors, owned by this Stage2, and
        // idx < ENTRIES.
        unsafe { self.0.add(idx).read_volatile() }
    }

    pub(super) fn set(&self, idx: usize, value: u64) {
        assert!(idx < ENTRIES);
        // SAFETY: as in `get`.
        unsafe { self.0.add(idx).write_volatile(value) }
    }

    /// Write `count` page descriptors from `first`: `template` (a leaf without its output
    /// address) with output addresses `pa`, `pa + 4 KiB`, and so on. One bounds check for all.
    pub(super) fn fill(&self, first: usize, count: usize, template: u64, pa: u64) {
        assert!(first <= ENTRIES && count <= ENTRIES - first);
        let mut at = pa;
        for i in first..first + count {
            // SAFETY: as in `get`; i < ENTRIES by the assertion above.
            unsafe { self.0.add(i).write_volatile(template | (at & OA_MASK)) };
            at += PAGE_SIZE;
        }
    }
}

/// Read descriptor `idx` of the table at `table`.
pub(super) fn read_slot<P: PageSource>(pages: &P, table: Pa, idx: usize) -> u64 {
    let (page, i) = Slots::holding(pages, table, idx);
    page.get(i)
}

/// Walk from `root` to the last descriptor that translates `ipa`: the first one that is not a
/// table descriptor. Returns its level and value (0 when the IPA is unmapped).
pub(crate) fn lookup<P: PageSource>(pages: &P, cfg: &Vtcr, root: Pa, ipa: u64) -> (u8, u64) {
    let mut level = cfg.start_level;
    let mut table = root;
    let mut idx = (ipa >> level_shift(level)) as usize & (cfg.root_entries() - 1);
    loop {
        let d = read_slot(pages, table, idx);
        if !is_table(d, level) {
            return (level, d);
        }
        table = address(d);
        level += 1;
        idx = (ipa >> level_shift(level)) as usize & (ENTRIES - 1);
    }
}

impl<P: PageSource, T: TlbOps> Stage2<P, T> {
    /// Empty tables for `vmid` with the classic (HCR_EL2.FWB = 0) attribute encoding.
    pub fn new(vtcr: Vtcr, vmid: u16, pages: P, tlb: T) -> Result<Self, S2Error> {
        Self::with_encoding(vtcr, vmid, AttrEncoding::Classic, pages, tlb)
    }

    /// Empty tables for `vmid`, encoding memory types for the given HCR_EL2.FWB setting.
    pub fn with_encoding(
        vtcr: Vtcr,
        vmid: u16,
        enc: AttrEncoding,
        mut pages: P,
        mut tlb: T,
    ) -> Result<Self, S2Error> {
        if vmid > vtcr.max_vmid() {
            return Err(S2Error::VmidTooLarge {
                vmid,
                bits: vtcr.vmid_bits,
            });
        }
        let root = pages
            .alloc_zeroed(vtcr.root_tables)
            .ok_or(S2Error::OutOfMemory)?;
        if !root.is_aligned(vtcr.root_size()) {
            pages.free(root, vtcr.root_tables);
            return Err(S2Error::MisalignedRoot {
                root: root.raw(),
                align: vtcr.root_size(),
            });
        }
        tlb.bind(vtcr.vttbr(root, vmid));
        Ok(Self {
            cfg: vtcr,
            enc,
            vmid,
            root,
            pages,
            tlb,
            tables: 0,
            regions: alloc::vec::Vec::new(),
            ram_pages: false,
        })
    }

    /// Map Normal write-back memory (guest RAM) with 4 KiB pages only, from the next operation
    /// on: no block is created for it and no table of its pages is merged into one. Device and
    /// Normal-NC mappings keep their blocks. Why a VM would want this: an emulator's software
    /// TLB (QEMU's) records each translation with the larger of its Stage-1 and Stage-2 page
    /// sizes, treats any TLBI by VA inside a recorded large page as a flush of everything, and
    /// so with Stage-2 blocks turns each of the guest's page invalidations into a full flush.
    pub fn set_ram_pages(&mut self, on: bool) {
        self.ram_pages = on;
    }

    /// Whether a block mapping with `attrs` is allowed by the RAM-pages policy.
    pub(super) fn block_allowed_for(&self, attrs: S2Attrs) -> bool {
        !(self.ram_pages && attrs.mem == super::memtype::MemType::NormalWb)
    }

    /// Map `[ipa, ipa + size)` to `[pa, pa + size)` with `attrs`, replacing what was there.
    pub fn map(&mut self, ipa: Ipa, pa: Pa, size: u64, attrs: S2Attrs) -> Result<(), S2Error> {
        attrs.validate().map_err(S2Error::InvalidAttrs)?;
        let end = self.check_range(ipa, size)?;
        if !pa.is_aligned(PAGE_SIZE) {
            return Err(S2Error::Unaligned {
                what: "PA",
                value: pa.raw(),
            });
        }
        let pa_end = pa.raw().checked_add(size);
        if pa_end.is_none_or(|e| e > self.cfg.pa_limit()) {
            return Err(S2Error::OutOfRange {
                what: "PA range",
                end: pa.raw().saturating_add(size),
                limit: self.cfg.pa_limit(),
            });
        }
        self.run(
            ipa.raw(),
            end,
            Op::Map {
                ipa0: ipa.raw(),
                pa0: pa.raw(),
                attrs,
            },
        )
    }

    /// Remove every mapping in `[ipa, ipa + size)`.
    pub fn unmap(&mut self, ipa: Ipa, size: u64) -> Result<(), S2Error> {
        let end = self.check_range(ipa, size)?;
        self.run(ipa.raw(), end, Op::Unmap)
    }

    /// Give every mapped page in `[ipa, ipa + size)` the attributes `attrs`, keeping its output
    /// address. Unmapped pages stay unmapped.
    pub fn protect(&mut self, ipa: Ipa, size: u64, attrs: S2Attrs) -> Result<(), S2Error> {
        attrs.validate().map_err(S2Error::InvalidAttrs)?;
        let end = self.check_range(ipa, size)?;
        self.run(ipa.raw(), end, Op::Protect(attrs))
    }

    /// What `ipa` translates to: output address, attributes and the level of the leaf.
    pub fn translate(&self, ipa: Ipa) -> Option<(Pa, S2Attrs, u8)> {
        if ipa.raw() >= self.cfg.ipa_limit() {
            return None;
        }
        let (level, d) = lookup(&self.pages, &self.cfg, self.root, ipa.raw());
        if !is_leaf(d, level) {
            return None;
        }
        match decode(d, level, self.enc) {
            Ok(Descriptor::Leaf { oa, attrs }) => {
                Some((oa.add(ipa.raw() & (level_size(level) - 1)), attrs, level))
            }
            _ => None,
        }
    }

    /// Table pages in use, the root's (possibly concatenated) pages included.
    pub fn table_pages(&self) -> usize {
        self.cfg.root_tables + self.tables
    }

    /// Physical address of the root table.
    pub fn root(&self) -> Pa {
        self.root
    }

    /// The VTTBR_EL2 value for this VM: root | VMID << 48.
    pub fn vttbr(&self) -> u64 {
        self.cfg.vttbr(self.root, self.vmid)
    }

    /// The translation configuration the tables are built for.
    pub fn vtcr(&self) -> &Vtcr {
        &self.cfg
    }

    pub fn vmid(&self) -> u16 {
        self.vmid
    }

    pub fn encoding(&self) -> AttrEncoding {
        self.enc
    }

    /// The TLB maintenance implementation (tests read the recorded calls through it).
    pub fn tlb(&self) -> &T {
        &self.tlb
    }

    /// The page source holding the table pages.
    pub fn pages(&self) -> &P {
        &self.pages
    }

    fn check_range(&self, ipa: Ipa, size: u64) -> Result<u64, S2Error> {
        if !ipa.is_aligned(PAGE_SIZE) {
            return Err(S2Error::Unaligned {
                what: "IPA",
                value: ipa.raw(),
            });
        }
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(S2Error::Unaligned {
                what: "size",
                value: size,
            });
        }
        match ipa.raw().checked_add(size) {
            Some(end) if end <= self.cfg.ipa_limit() => Ok(end),
            _ => Err(S2Error::OutOfRange {
                what: "IPA range",
                end: ipa.raw().saturating_add(size),
                limit: self.cfg.ipa_limit(),
            }),
        }
    }

    /// Apply `op` to `[start, end)` from the root, then finish the TLB maintenance once.
    fn run(&mut self, start: u64, end: u64, op: Op) -> Result<(), S2Error> {
        if start == end {
            return Ok(());
        }
        let mut ctx = OpCtx::default();
        let root = self.root_ref();
        let result = self.apply(root, start, end, op, true, &mut ctx);
        if let Some((ipa, level)) = ctx.relaxed {
            // The leaves that gained write permission in place: one TLBI by IPA for a single
            // leaf, the whole VMID for more (one broadcast instead of two per page).
            self.tlb.dsb();
            if ctx.relaxed_count == 1 {
                self.tlb.relax_ipa(self.vmid, Ipa(ipa), level);
                self.tlb.dsb();
                self.tlb.invalidate_vmid_stage1(self.vmid);
            } else {
                self.tlb.invalidate_vmid_all(self.vmid);
            }
            self.tlb.dsb();
            self.tlb.isb();
        } else if ctx.wrote {
            self.tlb.dsb();
        }
        result
    }

    pub(super) fn root_ref(&self) -> TableRef {
        TableRef {
            pa: self.root,
            level: self.cfg.start_level,
            base: 0,
        }
    }

    pub(super) fn read(&self, table: Pa, idx: usize) -> u64 {
        read_slot(&self.pages, table, idx)
    }

    pub(super) fn write(&mut self, table: Pa, idx: usize, value: u64) {
        let (page, i) = Slots::holding(&self.pages, table, idx);
        page.set(i, value);
    }

    /// Number of descriptors in the table `t` (the root may hold fewer or more than 512).
    pub(super) fn entries(&self, t: &TableRef) -> usize {
        if t.pa == self.root && t.level == self.cfg.start_level {
            self.cfg.root_entries()
        } else {
            ENTRIES
        }
    }
}

impl<P: PageSource, T: TlbOps> Drop for Stage2<P, T> {
    /// Tear down: the VM must no longer run anywhere. Its VMID's TLB entries are dropped (the
    /// VMID will be reused), then every table page goes back to the page source.
    fn drop(&mut self) {
        self.tlb.dsb();
        self.tlb.invalidate_vmid_all(self.vmid);
        self.tlb.dsb();
        let root = self.root_ref();
        for idx in 0..self.cfg.root_entries() {
            let d = self.read(root.pa, idx);
            if is_table(d, root.level) {
                self.free_tree(address(d), root.level + 1);
            }
        }
        self.pages.free(self.root, self.cfg.root_tables);
    }
}
