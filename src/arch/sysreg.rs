//! System-register access through aarch64-cpu's register types (`aarch64_cpu::registers`, and
//! [`super::sysreg_ext`] for the few it lacks). Each accessor is one `mrs`/`msr` (the crate's
//! `get`/`set` are inlined); reads have no side effects, and the writes here only change
//! guest-facing or trap configuration, never EL2's own translation — the few that do
//! (SCTLR_EL2, TTBR0_EL2, TCR_EL2, MAIR_EL2) are `unsafe fn` with their contract.

use super::sysreg_ext::{
    AMAIR2_EL1, BRBCR_EL2, CNTHP_CVAL_EL2, GCSCR_EL1, HAFGRTR_EL2, HCRX_EL2, HDFGRTR_EL2, HDFGWTR_EL2, HFGITR_EL2, HFGRTR_EL2, HFGWTR_EL2, ID_AA64ISAR2_EL1, ID_AA64MMFR3_EL1, ID_AA64SMFR0_EL1, MAIR2_EL1, PIRE0_EL1, PIR_EL1,
    PMCR_EL0, POR_EL0, POR_EL1, S2POR_EL1, SCTLR2_EL1, SMCR_EL2, TCR2_EL1, VPIDR_EL2, ZCR_EL2,
};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::sync::atomic::{compiler_fence, Ordering};

macro_rules! read_fn {
    ($(#[$m:meta])* $fn:ident, $reg:ident) => {
        $(#[$m])*
        #[inline]
        pub fn $fn() -> u64 {
            $reg.get()
        }
    };
}

macro_rules! write_fn {
    ($(#[$m:meta])* $fn:ident, $reg:ident) => {
        $(#[$m])*
        ///
        /// Configures guests or traps, not EL2's own memory view; callers add the ISB where the
        /// new value must take effect before the next instruction.
        #[inline]
        pub fn $fn(v: u64) {
            $reg.set(v)
        }
    };
}

macro_rules! write_unsafe_fn {
    ($(#[$m:meta])* $fn:ident, $reg:ident) => {
        $(#[$m])*
        ///
        /// # Safety
        /// Changes how EL2 itself translates or caches memory: the caller guarantees the new
        /// value keeps every address el2visor uses mapped as before, and adds the barriers.
        #[inline]
        pub unsafe fn $fn(v: u64) {
            // aarch64-cpu's `msr` is `nomem`; keep this write a compiler barrier as well, so
            // that no memory access is moved across the change of EL2's own translation.
            compiler_fence(Ordering::SeqCst);
            $reg.set(v);
            compiler_fence(Ordering::SeqCst);
        }
    };
}

read_fn!(/// Exception level in bits [3:2].
    current_el_raw, CurrentEL);
read_fn!(mpidr_el1, MPIDR_EL1);
read_fn!(/// The guest's virtual timer control (EL2 without VHE reads the vCPU's own, live).
    cntv_ctl_el0, CNTV_CTL_EL0);
read_fn!(midr_el1, MIDR_EL1);
read_fn!(id_aa64mmfr0_el1, ID_AA64MMFR0_EL1);
read_fn!(id_aa64mmfr1_el1, ID_AA64MMFR1_EL1);
read_fn!(id_aa64mmfr2_el1, ID_AA64MMFR2_EL1);
read_fn!(id_aa64pfr0_el1, ID_AA64PFR0_EL1);
read_fn!(id_aa64dfr0_el1, ID_AA64DFR0_EL1);
read_fn!(id_aa64pfr1_el1, ID_AA64PFR1_EL1);
read_fn!(id_aa64isar1_el1, ID_AA64ISAR1_EL1);
read_fn!(id_aa64isar2_el1, ID_AA64ISAR2_EL1);
read_fn!(id_aa64smfr0_el1, ID_AA64SMFR0_EL1);
read_fn!(id_aa64mmfr3_el1, ID_AA64MMFR3_EL1);
read_fn!(/// PMCR_EL0, for its N field: the event counters the guest gets.
    pmcr_el0, PMCR_EL0);
read_fn!(cntfrq_el0, CNTFRQ_EL0);
read_fn!(cntpct_el0, CNTPCT_EL0);
read_fn!(esr_el2, ESR_EL2);
read_fn!(elr_el2, ELR_EL2);
read_fn!(far_el2, FAR_EL2);
read_fn!(hpfar_el2, HPFAR_EL2);
read_fn!(spsr_el2, SPSR_EL2);
read_fn!(par_el1, PAR_EL1);
read_fn!(sctlr_el2, SCTLR_EL2);
read_fn!(hcr_el2, HCR_EL2);
read_fn!(vttbr_el2, VTTBR_EL2);
read_fn!(vtcr_el2, VTCR_EL2);
read_fn!(sctlr_el1, SCTLR_EL1);
read_fn!(tcr_el1, TCR_EL1);
read_fn!(ttbr0_el1, TTBR0_EL1);
read_fn!(ttbr1_el1, TTBR1_EL1);
read_fn!(mair_el1, MAIR_EL1);
read_fn!(esr_el1, ESR_EL1);
read_fn!(far_el1, FAR_EL1);
read_fn!(vbar_el1, VBAR_EL1);
read_fn!(elr_el1, ELR_EL1);
read_fn!(spsr_el1, SPSR_EL1);
read_fn!(sp_el1, SP_EL1);
read_fn!(sp_el0, SP_EL0);
read_fn!(actlr_el1, ACTLR_EL1);
read_fn!(afsr0_el1, AFSR0_EL1);
read_fn!(afsr1_el1, AFSR1_EL1);
read_fn!(amair_el1, AMAIR_EL1);
read_fn!(contextidr_el1, CONTEXTIDR_EL1);
read_fn!(/// TCR2_EL1: FEAT_TCR2 only (UNDEFINED without it), as the eight below need theirs.
    tcr2_el1, TCR2_EL1);
read_fn!(sctlr2_el1, SCTLR2_EL1);
read_fn!(mair2_el1, MAIR2_EL1);
read_fn!(amair2_el1, AMAIR2_EL1);
read_fn!(pir_el1, PIR_EL1);
read_fn!(pire0_el1, PIRE0_EL1);
read_fn!(por_el1, POR_EL1);
read_fn!(por_el0, POR_EL0);
read_fn!(s2por_el1, S2POR_EL1);
read_fn!(/// GCSCR_EL1: FEAT_GCS only (UNDEFINED without it).
    gcscr_el1, GCSCR_EL1);

write_fn!(set_hcr_el2, HCR_EL2);
write_fn!(/// ELR_EL2: where ERET returns (the guest's PC after an exit). Only the lean exit
    /// (`vcpu::lean`) writes it: the slow path's restore loads it from the trap frame.
    set_elr_el2, ELR_EL2);
write_fn!(/// SPSR_EL2: the PSTATE ERET restores (the lean exit's, as for ELR_EL2).
    set_spsr_el2, SPSR_EL2);
write_fn!(set_vbar_el2, VBAR_EL2);
write_fn!(set_vttbr_el2, VTTBR_EL2);
write_fn!(set_vtcr_el2, VTCR_EL2);
write_fn!(set_vmpidr_el2, VMPIDR_EL2);
write_fn!(set_vpidr_el2, VPIDR_EL2);
write_fn!(set_cntvoff_el2, CNTVOFF_EL2);
write_fn!(set_cnthctl_el2, CNTHCTL_EL2);
write_fn!(/// CNTHP_CTL_EL2: the EL2 physical timer's control (ENABLE bit 0, IMASK bit 1). Only
    /// `gic::hw`'s timed sleep uses this timer.
    set_cnthp_ctl_el2, CNTHP_CTL_EL2);
write_fn!(/// CNTHP_CVAL_EL2: when the EL2 physical timer fires (a CNTPCT_EL0 count).
    set_cnthp_cval_el2, CNTHP_CVAL_EL2);
write_fn!(set_cptr_el2, CPTR_EL2);
write_fn!(set_mdcr_el2, MDCR_EL2);
write_fn!(set_hcrx_el2, HCRX_EL2);
write_fn!(set_zcr_el2, ZCR_EL2);
write_fn!(set_smcr_el2, SMCR_EL2);
write_fn!(/// HFGRTR_EL2: FEAT_FGT only (UNDEFINED without it), as the four below.
    set_hfgrtr_el2, HFGRTR_EL2);
write_fn!(set_hfgwtr_el2, HFGWTR_EL2);
write_fn!(set_hfgitr_el2, HFGITR_EL2);
write_fn!(set_hdfgrtr_el2, HDFGRTR_EL2);
write_fn!(set_hdfgwtr_el2, HDFGWTR_EL2);
write_fn!(/// HAFGRTR_EL2: FEAT_FGT with FEAT_AMUv1 only.
    set_hafgrtr_el2, HAFGRTR_EL2);
write_fn!(/// BRBCR_EL2: FEAT_BRBE only.
    set_brbcr_el2, BRBCR_EL2);
write_fn!(set_par_el1, PAR_EL1);
write_fn!(set_vbar_el1, VBAR_EL1);
write_fn!(set_ttbr0_el1, TTBR0_EL1);
write_fn!(set_ttbr1_el1, TTBR1_EL1);
write_fn!(set_tcr_el1, TCR_EL1);
write_fn!(set_afsr0_el1, AFSR0_EL1);
write_fn!(set_afsr1_el1, AFSR1_EL1);
write_fn!(set_amair_el1, AMAIR_EL1);
write_fn!(set_contextidr_el1, CONTEXTIDR_EL1);
write_fn!(set_sctlr_el1, SCTLR_EL1);
write_fn!(set_mair_el1, MAIR_EL1);
write_fn!(set_esr_el1, ESR_EL1);
write_fn!(set_far_el1, FAR_EL1);
write_fn!(set_elr_el1, ELR_EL1);
write_fn!(set_spsr_el1, SPSR_EL1);
write_fn!(/// TCR2_EL1: FEAT_TCR2 only, as the eight below need theirs.
    set_tcr2_el1, TCR2_EL1);
write_fn!(set_sctlr2_el1, SCTLR2_EL1);
write_fn!(set_mair2_el1, MAIR2_EL1);
write_fn!(set_amair2_el1, AMAIR2_EL1);
write_fn!(set_pir_el1, PIR_EL1);
write_fn!(set_pire0_el1, PIRE0_EL1);
write_fn!(set_por_el1, POR_EL1);
write_fn!(set_por_el0, POR_EL0);
write_fn!(set_s2por_el1, S2POR_EL1);

write_unsafe_fn!(/// MAIR_EL2.
    set_mair_el2, MAIR_EL2);
write_unsafe_fn!(/// TCR_EL2.
    set_tcr_el2, TCR_EL2);
write_unsafe_fn!(/// TTBR0_EL2.
    set_ttbr0_el2, TTBR0_EL2);
write_unsafe_fn!(/// SCTLR_EL2.
    set_sctlr_el2, SCTLR_EL2);

/// Current exception level, 0..=3.
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// Instruction synchronization barrier.
#[inline]
pub fn isb() {
    barrier::isb(barrier::SY);
}

/// Data synchronization barrier, inner shareable.
#[inline]
pub fn dsb_ish() {
    barrier::dsb(barrier::ISH);
}

/// Invalidate every EL2 TLB entry on this CPU.
pub fn tlbi_alle2() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: dropping cached translations is always safe; the walk refetches them.
    unsafe { core::arch::asm!("tlbi alle2", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}
