//! The recursive engine behind `map`, `unmap` and `protect`: walks the entries a range covers,
//! writes leaves where they fit, splits blocks and creates tables where they do not, merges
//! uniform tables back into blocks, frees empty tables, and does break-before-make on every
//! change to a live entry.
//!
//! "Live" means reachable by the hardware walker. A table created during an operation is not
//! live until its parent entry is written, so it is filled without any TLB maintenance and
//! published with a DSB before the table descriptor that links it.

use super::descriptor::{
    address, decode, is_leaf, is_table, leaf, leaf_allowed, level_size, table, Descriptor, ENTRIES,
    LEAF_ATTR_MASK, OA_MASK, S2AP_W, VALID,
};
use super::error::S2Error;
use super::memtype::S2Attrs;
use super::table::{Slots, Stage2};
use super::tlb::TlbOps;
use crate::mm::addr::{Ipa, Pa, PAGE_SIZE as PAGE};
use crate::mm::PageSource;

use super::op::{Op, OpCtx, TableRef};

impl<P: PageSource, T: TlbOps> Stage2<P, T> {
    /// Apply `op` to `[start, end)`, which lies inside table `t`.
    pub(super) fn apply(
        &mut self,
        t: TableRef,
        start: u64,
        end: u64,
        op: Op,
        live: bool,
        ctx: &mut OpCtx,
    ) -> Result<(), S2Error> {
        if let (3, Op::Map { ipa0, pa0, attrs }) = (t.level, op) {
            self.map_pages(t, start, end, pa0 + (start - ipa0), attrs, live, ctx);
            return Ok(());
        }
        let size = level_size(t.level);
        let mut ipa = start;
        while ipa < end {
            let idx = ((ipa - t.base) / size) as usize;
            let e_start = t.base + idx as u64 * size;
            let c_end = end.min(e_start + size);
            self.apply_entry(t, idx, e_start, ipa, c_end, op, live, ctx)?;
            ipa = c_end;
        }
        Ok(())
    }

    /// Map the pages `[start, end)` of level-3 table `t` to consecutive PAs from `pa`: what
    /// [`Self::apply_entry`] does for each page, without its per-entry decisions (a page always
    /// fits a level-3 entry). One descriptor is built and its address stepped, so the 4 KiB pages
    /// of a VM's RAM (`s2_ram=pages`: 237 000 for 926 MiB) cost a few instructions each.
    #[allow(clippy::too_many_arguments)]
    fn map_pages(&mut self, t: TableRef, start: u64, end: u64, pa: u64, attrs: S2Attrs, live: bool, ctx: &mut OpCtx) {
        let first = ((start - t.base) / PAGE) as usize;
        let count = ((end - start) / PAGE) as usize;
        let template = leaf(Pa(pa), 3, attrs, self.enc) & !OA_MASK;
        let slots = Slots::of(&self.pages, t.pa);
        if !live {
            // A table no walker can reach yet (just created, or just split from a block): every
            // entry is written as it is, with no read of the old one (a level-3 entry points to
            // no subtree) and no maintenance. This is how a VM's RAM is mapped at creation.
            slots.fill(first, count, template, pa);
            ctx.wrote |= count > 0;
            return;
        }
        for k in 0..count {
            let idx = first + k;
            let new = template | ((pa + k as u64 * PAGE) & OA_MASK);
            let old = slots.get(idx);
            if old & VALID == 0 {
                // Nothing a walker can have cached: written as `replace` would, without its checks.
                slots.set(idx, new);
                ctx.wrote = true;
            } else {
                self.replace(t, idx, t.base + idx as u64 * PAGE, old, new, live, ctx);
            }
        }
    }

    /// Apply `op` to `[start, end)`, the part of entry `idx` of `t` (which begins at `e_start`)
    /// that the operation covers.
    #[allow(clippy::too_many_arguments)]
    fn apply_entry(
        &mut self,
        t: TableRef,
        idx: usize,
        e_start: u64,
        start: u64,
        end: u64,
        op: Op,
        live: bool,
        ctx: &mut OpCtx,
    ) -> Result<(), S2Error> {
        let level = t.level;
        let size = level_size(level);
        let full = start == e_start && end == e_start + size;
        let old = self.read(t.pa, idx);
        // A region held to pages (userfault, log-dirty, not yet collapsed) takes no block, nor
        // does RAM under the RAM-pages policy.
        let block_ok = level == 3
            || (!self.pages_only(e_start, size) && !matches!(op, Op::Map { attrs, .. } if !self.block_allowed_for(attrs)));
        match op {
            Op::Map { ipa0, pa0, attrs } => {
                if full && leaf_allowed(level) && block_ok {
                    let pa = pa0 + (e_start - ipa0);
                    if pa.is_multiple_of(size) {
                        let new = leaf(Pa(pa), level, attrs, self.enc);
                        self.replace(t, idx, e_start, old, new, live, ctx);
                        return Ok(());
                    }
                }
            }
            Op::Unmap => {
                if old & VALID == 0 {
                    return Ok(());
                }
                if full {
                    self.replace(t, idx, e_start, old, 0, live, ctx);
                    return Ok(());
                }
            }
            Op::Protect(attrs) => {
                if old & VALID == 0 {
                    return Ok(());
                }
                if full && is_leaf(old, level) && block_ok {
                    let new = leaf(address(old), level, attrs, self.enc);
                    self.replace(t, idx, e_start, old, new, live, ctx);
                    return Ok(());
                }
            }
        }
        // The entry must be (or become) a table: pages always fit at level 3, so we are above it.
        assert!(
            level < 3,
            "stage 2: level-3 entry {idx} at {e_start:#x} not resolved by {op:?}"
        );
        let child_level = level + 1;
        let (child, fresh) = if is_table(old, level) {
            (address(old), false)
        } else {
            let pa = self.pages.alloc_zeroed(1).ok_or(S2Error::OutOfMemory)?;
            self.tables += 1;
            if is_leaf(old, level) {
                self.fill_split(pa, old, level);
            }
            (pa, true)
        };
        let child_ref = TableRef {
            pa: child,
            level: child_level,
            base: e_start,
        };
        let result = self.apply(child_ref, start, end, op, live && !fresh, ctx);
        match (self.collapse(child, child_level, level, e_start), fresh) {
            // A new table that stays: link it (publishing its contents first).
            (None, true) => self.replace(t, idx, e_start, old, table(child), live, ctx),
            // A new table that collapsed before it was ever linked: nothing cached it.
            (Some(new), true) => {
                self.free_tree(child, child_level);
                self.replace(t, idx, e_start, old, new, live, ctx);
            }
            // An existing table that became uniform or empty: break it, then free it.
            (Some(new), false) => self.replace(t, idx, e_start, old, new, live, ctx),
            (None, false) => {}
        }
        result
    }

    /// Write `new` over `old` at entry `idx` of `t`, with break-before-make if `old` is a live
    /// valid entry, freeing the subtree `old` pointed to once no walker can reach it.
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        t: TableRef,
        idx: usize,
        e_start: u64,
        old: u64,
        new: u64,
        live: bool,
        ctx: &mut OpCtx,
    ) {
        if old == new {
            return;
        }
        let level = t.level;
        if live && old & VALID != 0 && is_leaf(old, level) && new == old | S2AP_W {
            // Write permission granted, nothing else changed: in place (see `TlbOps`); the TLB
            // maintenance is done once at the end of the operation (`Stage2::run`).
            self.write(t.pa, idx, new);
            ctx.relaxed.get_or_insert((e_start, level));
            ctx.relaxed_count += 1;
            ctx.wrote = true;
            return;
        }
        let mut synced = false;
        if live && old & VALID != 0 {
            self.write(t.pa, idx, 0);
            self.tlb.dsb();
            if is_table(old, level) {
                // Cached leaves anywhere below this entry may exist: drop the whole VMID, its
                // Stage-1 and combined entries included.
                self.tlb.invalidate_vmid_all(self.vmid);
                self.tlb.dsb();
            } else {
                self.tlb.invalidate_ipa(self.vmid, Ipa(e_start), level);
                self.tlb.dsb();
                // Combined Stage 1+2 entries may still translate through the old entry; they
                // must be gone before the new entry can be walked.
                self.tlb.invalidate_vmid_stage1(self.vmid);
                self.tlb.dsb();
            }
            self.tlb.isb();
            synced = true;
        }
        if is_table(old, level) {
            self.free_tree(address(old), level + 1);
        }
        if live && !synced && is_table(new, level) {
            // The new table's contents must be visible before the walker can reach it.
            self.tlb.dsb();
        }
        self.write(t.pa, idx, new);
        ctx.wrote = true;
    }

    /// Fill the fresh table at `child` with the 512 leaves equivalent to leaf `old` at `level`.
    fn fill_split(&mut self, child: Pa, old: u64, level: u8) {
        let Ok(Descriptor::Leaf { oa, attrs }) = decode(old, level, self.enc) else {
            panic!("stage 2: splitting a malformed leaf {old:#x} at level {level}");
        };
        let step = level_size(level + 1);
        for i in 0..ENTRIES {
            let d = leaf(oa.add(i as u64 * step), level + 1, attrs, self.enc);
            self.write(child, i, d);
        }
    }

    /// What the parent entry (at `parent_level`) of the table at `child` should become instead
    /// of a table descriptor: 0 if the table is empty, a block if it is uniform and blocks are
    /// allowed at `parent_level` (and the table, which translates from `ipa`, is not in a region
    /// held to pages), `None` if it must stay a table.
    pub(super) fn collapse(&self, child: Pa, child_level: u8, parent_level: u8, ipa: u64) -> Option<u64> {
        let first = self.read(child, 0);
        if first == 0 {
            return (1..ENTRIES).all(|i| self.read(child, i) == 0).then_some(0);
        }
        if !leaf_allowed(parent_level) || !is_leaf(first, child_level) {
            return None;
        }
        if self.pages_only(ipa, level_size(parent_level)) {
            return None;
        }
        if self.ram_pages {
            match decode(first, child_level, self.enc) {
                Ok(Descriptor::Leaf { attrs, .. }) if self.block_allowed_for(attrs) => {}
                _ => return None,
            }
        }
        let oa0 = address(first).raw();
        if !oa0.is_multiple_of(level_size(parent_level)) {
            return None;
        }
        let attr = first & LEAF_ATTR_MASK;
        let step = level_size(child_level);
        let uniform = (1..ENTRIES).all(|i| {
            let d = self.read(child, i);
            is_leaf(d, child_level)
                && address(d).raw() == oa0 + i as u64 * step
                && d & LEAF_ATTR_MASK == attr
        });
        if !uniform {
            return None;
        }
        let Ok(Descriptor::Leaf { attrs, .. }) = decode(first, child_level, self.enc) else {
            return None;
        };
        Some(leaf(Pa(oa0), parent_level, attrs, self.enc))
    }

    /// Free the table at `pa` (at `level`) and every table below it.
    pub(super) fn free_tree(&mut self, pa: Pa, level: u8) {
        if level < 3 {
            for i in 0..ENTRIES {
                let d = self.read(pa, i);
                if is_table(d, level) {
                    self.free_tree(address(d), level + 1);
                }
            }
        }
        self.pages.free(pa, 1);
        self.tables -= 1;
    }
}
