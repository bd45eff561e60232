//! System-register access. Each accessor is one `mrs`/`msr`; reads have no side effects, and the
//! writes here only change guest-facing or trap configuration, never EL2's own translation — the
//! few that do (SCTLR_EL2, TTBR0_EL2, TCR_EL2, MAIR_EL2) are `unsafe fn` with their contract.

macro_rules! read_fn {
    ($(#[$m:meta])* $fn:ident, $reg:literal) => {
        $(#[$m])*
        #[inline]
        pub fn $fn() -> u64 {
            let v: u64;
            // SAFETY: reading this system register has no side effects and touches no memory.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
    };
}

macro_rules! write_fn {
    ($(#[$m:meta])* $fn:ident, $reg:literal) => {
        $(#[$m])*
        #[inline]
        pub fn $fn(v: u64) {
            // SAFETY: this register configures guests or traps, not EL2's own memory view; callers
            // add the ISB where the new value must take effect before the next instruction.
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack, preserves_flags)) };
        }
    };
}

macro_rules! write_unsafe_fn {
    ($(#[$m:meta])* $fn:ident, $reg:literal) => {
        $(#[$m])*
        ///
        /// # Safety
        /// Changes how EL2 itself translates or caches memory: the caller guarantees the new
        /// value keeps every address el2visor uses mapped as before, and adds the barriers.
        #[inline]
        pub unsafe fn $fn(v: u64) {
            // SAFETY: the caller upholds this function's contract.
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

read_fn!(/// Exception level in bits [3:2].
    current_el_raw, "CurrentEL");
read_fn!(mpidr_el1, "mpidr_el1");
read_fn!(midr_el1, "midr_el1");
read_fn!(id_aa64mmfr0_el1, "id_aa64mmfr0_el1");
read_fn!(id_aa64mmfr1_el1, "id_aa64mmfr1_el1");
read_fn!(id_aa64mmfr2_el1, "id_aa64mmfr2_el1");
read_fn!(id_aa64pfr0_el1, "id_aa64pfr0_el1");
read_fn!(id_aa64pfr1_el1, "id_aa64pfr1_el1");
read_fn!(id_aa64isar1_el1, "id_aa64isar1_el1");
read_fn!(id_aa64isar2_el1, "s3_0_c0_c6_2");
read_fn!(id_aa64mmfr3_el1, "s3_0_c0_c7_3");
read_fn!(cntfrq_el0, "cntfrq_el0");
read_fn!(cntpct_el0, "cntpct_el0");
read_fn!(esr_el2, "esr_el2");
read_fn!(elr_el2, "elr_el2");
read_fn!(far_el2, "far_el2");
read_fn!(hpfar_el2, "hpfar_el2");
read_fn!(spsr_el2, "spsr_el2");
read_fn!(par_el1, "par_el1");
read_fn!(sctlr_el2, "sctlr_el2");
read_fn!(hcr_el2, "hcr_el2");
read_fn!(vttbr_el2, "vttbr_el2");
read_fn!(vtcr_el2, "vtcr_el2");
read_fn!(sctlr_el1, "sctlr_el1");
read_fn!(tcr_el1, "tcr_el1");
read_fn!(ttbr0_el1, "ttbr0_el1");
read_fn!(ttbr1_el1, "ttbr1_el1");
read_fn!(mair_el1, "mair_el1");
read_fn!(esr_el1, "esr_el1");
read_fn!(far_el1, "far_el1");
read_fn!(vbar_el1, "vbar_el1");
read_fn!(elr_el1, "elr_el1");
read_fn!(spsr_el1, "spsr_el1");
read_fn!(sp_el1, "sp_el1");
read_fn!(sp_el0, "sp_el0");
read_fn!(actlr_el1, "actlr_el1");
read_fn!(afsr0_el1, "afsr0_el1");
read_fn!(afsr1_el1, "afsr1_el1");
read_fn!(amair_el1, "amair_el1");
read_fn!(contextidr_el1, "contextidr_el1");

write_fn!(set_hcr_el2, "hcr_el2");
write_fn!(set_vttbr_el2, "vttbr_el2");
write_fn!(set_vtcr_el2, "vtcr_el2");
write_fn!(set_vmpidr_el2, "vmpidr_el2");
write_fn!(set_vpidr_el2, "vpidr_el2");
write_fn!(set_cntvoff_el2, "cntvoff_el2");
write_fn!(set_cnthctl_el2, "cnthctl_el2");
write_fn!(set_cptr_el2, "cptr_el2");
write_fn!(set_mdcr_el2, "mdcr_el2");
write_fn!(set_hcrx_el2, "s3_4_c1_c2_2");
write_fn!(set_zcr_el2, "s3_4_c1_c2_0");
write_fn!(set_smcr_el2, "s3_4_c1_c2_6");
write_fn!(set_par_el1, "par_el1");
write_fn!(set_vbar_el1, "vbar_el1");
write_fn!(set_ttbr0_el1, "ttbr0_el1");
write_fn!(set_ttbr1_el1, "ttbr1_el1");
write_fn!(set_tcr_el1, "tcr_el1");
write_fn!(set_afsr0_el1, "afsr0_el1");
write_fn!(set_afsr1_el1, "afsr1_el1");
write_fn!(set_amair_el1, "amair_el1");
write_fn!(set_contextidr_el1, "contextidr_el1");
write_fn!(set_sctlr_el1, "sctlr_el1");
write_fn!(set_mair_el1, "mair_el1");
write_fn!(set_esr_el1, "esr_el1");
write_fn!(set_far_el1, "far_el1");
write_fn!(set_elr_el1, "elr_el1");
write_fn!(set_spsr_el1, "spsr_el1");

write_unsafe_fn!(/// MAIR_EL2.
    set_mair_el2, "mair_el2");
write_unsafe_fn!(/// TCR_EL2.
    set_tcr_el2, "tcr_el2");
write_unsafe_fn!(/// TTBR0_EL2.
    set_ttbr0_el2, "ttbr0_el2");
write_unsafe_fn!(/// SCTLR_EL2.
    set_sctlr_el2, "sctlr_el2");

/// Current exception level, 0..=3.
pub fn current_el() -> u8 {
    ((current_el_raw() >> 2) & 3) as u8
}

/// Instruction synchronization barrier.
#[inline]
pub fn isb() {
    // SAFETY: a barrier has no memory-safety effects.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

/// Data synchronization barrier, inner shareable.
#[inline]
pub fn dsb_ish() {
    // SAFETY: a barrier has no memory-safety effects.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// Invalidate every EL2 TLB entry on this CPU.
pub fn tlbi_alle2() {
    // SAFETY: dropping cached translations is always safe; the walk refetches them.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle2", "dsb ish", "isb", options(nostack)) };
}
