//! The TLB maintenance the Stage-2 table code needs, as a trait so the table logic runs in host
//! tests (which record the calls) and on the target (`hw::HwTlb`, real `TLBI`/`DSB`/`ISB`).

/// TLB maintenance for one VM's Stage-2 tables.
///
/// The table code calls these in the architecture's break-before-make order whenever a live
/// valid leaf is replaced or removed:
///
/// 1. write the invalid entry, `dsb()`;
/// 2. `invalidate_ipa()` (`TLBI IPAS2E1IS`), `dsb()`;
/// 3. `invalidate_vmid_stage1()` (`TLBI VMALLE1IS`: combined Stage 1+2 entries may still hold
///    the old output address or attributes), `dsb()`, `isb()`;
/// 4. only then write the new entry (if any).
///
/// When a live table entry is replaced, step 2 and 3 are one `invalidate_vmid_all()`
/// (`TLBI VMALLS12E1IS`, which covers Stage 1 as well) followed by `dsb()`, `isb()`.
///
/// A live leaf that only gains write permission (same output address, attributes and level) is
/// rewritten in place, with no break: the Arm ARM requires break-before-make for a change of
/// output address, memory type, shareability or block size, not of permissions (KVM relaxes
/// Stage-2 permissions the same way). The new entry is written first, `dsb()`, then
/// `relax_ipa()`, `dsb()`, `invalidate_vmid_stage1()`, `dsb()`, `isb()`, so that no TLB keeps
/// faulting on the old read-only entry.
pub trait TlbOps {
    /// Called once by `Stage2::new` with the VM's VTTBR_EL2 value (root and VMID), for
    /// implementations that must load it around TLBI instructions.
    fn bind(&mut self, _vttbr: u64) {}
    /// `DSB ISH`: complete earlier table writes and TLB maintenance, inner shareable domain.
    fn dsb(&mut self);
    /// `ISB`: the completed maintenance takes effect for the instructions that follow.
    fn isb(&mut self);
    /// `TLBI IPAS2E1IS`: drop cached Stage-2 entries (every level, walk caches included) that
    /// translate `ipa` for `vmid`. `level` is the level of the entry that changed (a hint).
    fn invalidate_ipa(&mut self, vmid: u16, ipa: crate::mm::addr::Ipa, level: u8);
    /// `TLBI IPAS2E1IS` after a leaf gained write permission in place (no break before it).
    fn relax_ipa(&mut self, vmid: u16, ipa: crate::mm::addr::Ipa, level: u8) {
        self.invalidate_ipa(vmid, ipa, level)
    }
    /// `TLBI VMALLE1IS`: drop the VM's Stage-1 (and combined Stage 1+2) entries, which may hold
    /// translations through a Stage-2 entry that just changed.
    fn invalidate_vmid_stage1(&mut self, vmid: u16);
    /// `TLBI VMALLS12E1IS`: drop every Stage-1 and Stage-2 entry of the VM. Used when a table
    /// entry covering many IPAs is replaced, and when the tables are torn down.
    fn invalidate_vmid_all(&mut self, vmid: u16);
}
