//! A vCPU's EL1/EL0 system registers put back to their reset state before it starts (PSCI
//! CPU_ON, a VM reset). Each pCPU runs one vCPU and its EL1 registers stay live in the hardware,
//! so whatever the vCPU's previous life left there would otherwise be what the new one sees.

use core::arch::asm;

/// Load the reset state: SCTLR_EL1 = `sctlr` (the boot protocol's: MMU and caches off), and 0 in
/// every other EL1/EL0 register a guest can set and read back: translation (TCR, TTBR0/1,
/// MAIR, AMAIR, CONTEXTIDR), exception state (VBAR, ELR, SPSR, ESR, FAR, AFSR0/1, PAR), stack
/// pointers and thread IDs (SP_EL0, SP_EL1, TPIDR_EL0/EL1, TPIDRRO_EL0), CPACR_EL1, the EL1
/// timers and their control (CNTV/CNTP CTL and CVAL, CNTKCTL), MDSCR_EL1, CSSELR_EL1, the
/// FP/SIMD registers (V0-V31, FPCR, FPSR; with SVE the Z registers, P0-P15 and FFR too); and,
/// where the CPU has their features, the
/// newer ones (`feature_regs`: TCR2, SCTLR2, PIR, POR, MAIR2, GCS, SME, SVE, MTE, SCXTNUM), the
/// pointer-authentication keys, SME's streaming mode and ZA (off), and the PMU (counters, their
/// interrupts and overflow flags off). Their architectural reset values are 0 or UNKNOWN; 0 is
/// what KVM chooses for most of them too. The timers stop first, so none fires into the new
/// life.
pub fn reset(sctlr: u64) {
    reset_common(sctlr);
    let f = super::cpu_features::CpuFeatures::of_this_cpu();
    // Out of SME streaming mode, ZA off (SVCR = 0), as out of reset.
    if f.sme {
        super::sve_regs::set_svcr(0);
    }
    // V0-V31 (and with them the Z registers' upper bits), FPCR, FPSR and the predicates zero, as
    // KVM resets them: nothing of the previous life's data stays in the registers.
    super::vcpu_state::FpState::default().restore();
    if f.sve {
        super::sve_regs::zero_predicates();
    }
    super::feature_regs::FeatureRegs::zero(f).restore();
    super::vcpu_state::PauthKeys::reset();
    reset_pmu();
}

/// The PMU back to its reset state, where the CPU has PMUv3 (ID_AA64DFR0_EL1.PMUVer, bits 11:8,
/// 1 to 14; 15 is an IMPLEMENTATION DEFINED PMU): every counter and overflow interrupt
/// disabled, overflow flags clear, the counters zeroed (PMCR_EL0.P and C, E clear, LC as KVM),
/// no EL0 access, PMSELR_EL0 and PMCCFILTR_EL0 at 0. The guest owns every counter (MDCR_EL2.HPMN),
/// so this is all of it; left as it was, an enabled counter of the previous life could raise
/// its overflow interrupt into the new one.
fn reset_pmu() {
    let (dfr0, pfr0) = (super::sysreg::id_aa64dfr0_el1(), super::sysreg::id_aa64pfr0_el1());
    if !matches!((dfr0 >> 8) & 0xf, 1..=14) {
        return;
    }
    // PMCR_EL0.P and C (zero the counters); LC (bit 6) set where EL0 has no AArch32, where it
    // is RES1 (KVM's reset value).
    let aarch32_el0 = pfr0 & 0xf == 2;
    let pmcr = 0b110u64 | if aarch32_el0 { 0 } else { 1 << 6 };
    // SAFETY: the guest's PMU registers (PMUv3, checked above), written at EL2 while the vCPU
    // does not run; el2visor counts nothing with the PMU itself.
    unsafe {
        asm!(
            "msr pmcntenclr_el0, {all}",
            "msr pmintenclr_el1, {all}",
            "msr pmovsclr_el0, {all}",
            "msr pmcr_el0, {pc}",
            "msr pmuserenr_el0, xzr",
            "msr pmselr_el0, xzr",
            "msr pmccfiltr_el0, xzr",
            "isb",
            all = in(reg) u64::from(u32::MAX),
            pc = in(reg) pmcr,
            options(nomem, nostack, preserves_flags),
        )
    };
}

/// The registers every AArch64 CPU has: see [`reset`].
fn reset_common(sctlr: u64) {
    // SAFETY: these are the running guest's EL1/EL0 registers, not EL2's; el2visor uses none of
    // them (its own stack is SP_EL2, its translation TTBR0_EL2) and the vCPU is not running.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            "msr cntp_ctl_el0, xzr",
            "msr cntv_cval_el0, xzr",
            "msr cntp_cval_el0, xzr",
            "msr cntkctl_el1, xzr",
            "msr sctlr_el1, {sctlr}",
            "isb",
            "msr tcr_el1, xzr",
            "msr ttbr0_el1, xzr",
            "msr ttbr1_el1, xzr",
            "msr mair_el1, xzr",
            "msr amair_el1, xzr",
            "msr contextidr_el1, xzr",
            "msr vbar_el1, xzr",
            "msr elr_el1, xzr",
            "msr spsr_el1, xzr",
            "msr esr_el1, xzr",
            "msr far_el1, xzr",
            "msr afsr0_el1, xzr",
            "msr afsr1_el1, xzr",
            "msr par_el1, xzr",
            "msr sp_el0, xzr",
            "msr sp_el1, xzr",
            "msr tpidr_el0, xzr",
            "msr tpidr_el1, xzr",
            "msr tpidrro_el0, xzr",
            "msr cpacr_el1, xzr",
            "msr mdscr_el1, xzr",
            "msr csselr_el1, xzr",
            "isb",
            sctlr = in(reg) sctlr,
            options(nostack),
        )
    };
}
