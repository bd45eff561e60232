//! `TlbOps` on the real CPU: `DSB ISH` and the EL2 `TLBI` instructions.
//!
//! Each `TlbOps` call is exactly its instruction, so the table code's calls are the instruction
//! stream: for a replaced leaf `str xzr; dsb ish; tlbi ipas2e1is; dsb ish; tlbi vmalle1is;
//! dsb ish; isb; str new`, the architecture's break-before-make order.
//!
//! `TLBI IPAS2E1IS`, `TLBI VMALLE1IS` and `TLBI VMALLS12E1IS` act on the VMID held in VTTBR_EL2
//! *at the time they execute*, not on a VMID operand. When VTTBR_EL2 already holds this VM's
//! value (a trap from the VM) the TLBI runs as it is; otherwise the invalidation loads the VM's
//! own VTTBR_EL2 (root and VMID, given once through `TlbOps::bind`), runs the TLBI, waits for it
//! with `DSB ISH`, and puts the previous VTTBR_EL2 back. The real root is loaded rather than a bare
//! VMID so that a speculative EL1&0 walk in that window (some cores' errata) can only ever see
//! this VM's genuine tables. Nothing else on this CPU may change VTTBR_EL2 meanwhile: call the
//! table code with EL2 interrupts masked or from a context whose handlers leave VTTBR_EL2 alone.
//! The `level` hint is not encoded in the TLBI operand (that needs FEAT_TTL and a leaf level).
//!
//! The same tables are walked by the SMMU for a VM's DMA masters (`vm::smmu`). Its TLBs are
//! invalidated in the same place: an invalidator registered at boot ([`register_invalidator`]) is
//! called right after each Stage-2 TLBI by IPA or for the whole VMID, before the table code's
//! next step, and returns once the SMMU has completed it. Stage-1 invalidation needs no SMMU
//! counterpart: the SMMU's streams translate with stage 2 only.

use super::tlb::TlbOps;
use crate::mm::addr::Ipa;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, VTTBR_EL2};
use core::arch::asm;

/// The other walkers of the VMs' Stage-2 tables: `f(vmid, Some(ipa))` after a TLBI by IPA,
/// `f(vmid, None)` after one for the whole VMID. Called with the VM's Stage-2 lock held.
pub type Invalidator = fn(vmid: u16, ipa: Option<Ipa>);

static INVALIDATOR: spin::Once<Invalidator> = spin::Once::new();

/// Register the SMMU's half of Stage-2 TLB maintenance (once, at boot, before any VM exists).
pub fn register_invalidator(f: Invalidator) {
    INVALIDATOR.call_once(|| f);
}

fn others(vmid: u16, ipa: Option<Ipa>) {
    if let Some(f) = INVALIDATOR.get() {
        // The CPU's TLBI must have completed: the SMMU must not refill from the old entry after
        // the CPU side is done.
        barrier::dsb(barrier::ISH);
        f(vmid, ipa);
    }
}

/// TLB maintenance for one VM on the running CPU; broadcast to the inner shareable domain.
#[derive(Debug, Default)]
pub struct HwTlb {
    vttbr: u64,
}

impl HwTlb {
    /// Not yet bound: `Stage2::new` binds it to the VM's VTTBR_EL2.
    pub const fn new() -> Self {
        Self { vttbr: 0 }
    }

    /// Run `tlbi` with this VM's VTTBR_EL2 loaded, then restore the previous one. When it is
    /// already loaded, only `tlbi` runs: completing it is the caller's next `dsb()`.
    fn with_vm_loaded(&mut self, vmid: u16, tlbi: impl FnOnce()) {
        assert!(
            self.vttbr != 0 && (self.vttbr >> 48) as u16 == vmid,
            "HwTlb used for VMID {vmid} but bound to VTTBR {:#x}",
            self.vttbr
        );
        let saved = VTTBR_EL2.get();
        if saved == self.vttbr {
            tlbi();
            return;
        }
        // EL2 does not translate through Stage 2; the value is this VM's valid root and VMID,
        // and the ISB makes the following TLBI use it.
        VTTBR_EL2.set(self.vttbr);
        barrier::isb(barrier::SY);
        tlbi();
        // The DSB waits for the broadcast TLBI to complete before the VMID it used is switched
        // away; then the VTTBR_EL2 value that was live on entry goes back.
        barrier::dsb(barrier::ISH);
        barrier::isb(barrier::SY);
        VTTBR_EL2.set(saved);
        barrier::isb(barrier::SY);
    }
}

impl TlbOps for HwTlb {
    fn bind(&mut self, vttbr: u64) {
        self.vttbr = vttbr;
    }

    fn dsb(&mut self) {
        // Orders earlier descriptor stores before later maintenance.
        barrier::dsb(barrier::ISH);
    }

    fn isb(&mut self) {
        // A context synchronization event: completed TLB maintenance takes effect for the
        // instructions that follow.
        barrier::isb(barrier::SY);
    }

    fn invalidate_ipa(&mut self, vmid: u16, ipa: Ipa, _level: u8) {
        let operand = ipa.raw() >> 12;
        self.with_vm_loaded(vmid, || {
            // SAFETY: TLB invalidation by IPA for the loaded VMID; affects only cached
            // translations, never memory.
            unsafe {
                asm!("tlbi ipas2e1is, {}", in(reg) operand, options(nostack, preserves_flags))
            };
        });
        others(vmid, Some(ipa));
    }

    fn invalidate_vmid_stage1(&mut self, vmid: u16) {
        self.with_vm_loaded(vmid, || {
            // SAFETY: drops the loaded VMID's EL1&0 stage-1 entries; no memory is touched.
            unsafe { asm!("tlbi vmalle1is", options(nostack, preserves_flags)) };
        });
    }

    fn invalidate_vmid_all(&mut self, vmid: u16) {
        self.with_vm_loaded(vmid, || {
            // SAFETY: drops the loaded VMID's stage-1 and stage-2 entries; no memory is touched.
            unsafe { asm!("tlbi vmalls12e1is", options(nostack, preserves_flags)) };
        });
        others(vmid, None);
    }
}
