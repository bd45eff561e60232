//! A vCPU's state that lives in the pCPU's registers while it runs, saved and loaded for a
//! snapshot: the EL1/EL0 system registers a guest can set and read back (the same set
//! `el1::reset` clears; those of newer features are `feature_regs`'), the EL1 timers, and the
//! FP/SIMD registers.
//!
//! el2visor is built soft-float and never saves the guest's FP/SIMD state (it is left live in
//! the registers across every exit). These helpers are the one place el2visor's code touches
//! V0-V31, FPCR and FPSR: each is a single `asm!` block that names the FP extension for the
//! assembler and touches no register the compiler uses.

use core::arch::asm;

/// The guest's FP/SIMD registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct FpState {
    pub v: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

impl FpState {
    /// Save V0-V31, FPCR and FPSR as the guest left them.
    pub fn save() -> Self {
        let mut s = FpState::default();
        let p = s.v.as_mut_ptr();
        let (fpcr, fpsr): (u64, u64);
        // SAFETY: `p` points at 512 bytes of `s.v`, 16-byte aligned (`repr(align(16))`); the
        // stores write exactly those bytes. Only reads of the FP registers (which hold the
        // guest's state: el2visor's soft-float code never uses them) and two MRS. CPTR_EL2 does
        // not trap FP at EL2 (vcpu::regs leaves TFP clear).
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "stp q0, q1, [{p}, #0]",
                "stp q2, q3, [{p}, #32]",
                "stp q4, q5, [{p}, #64]",
                "stp q6, q7, [{p}, #96]",
                "stp q8, q9, [{p}, #128]",
                "stp q10, q11, [{p}, #160]",
                "stp q12, q13, [{p}, #192]",
                "stp q14, q15, [{p}, #224]",
                "stp q16, q17, [{p}, #256]",
                "stp q18, q19, [{p}, #288]",
                "stp q20, q21, [{p}, #320]",
                "stp q22, q23, [{p}, #352]",
                "stp q24, q25, [{p}, #384]",
                "stp q26, q27, [{p}, #416]",
                "stp q28, q29, [{p}, #448]",
                "stp q30, q31, [{p}, #480]",
                "mrs {fpcr}, s3_3_c4_c4_0",
                "mrs {fpsr}, s3_3_c4_c4_1",
                p = in(reg) p,
                fpcr = out(reg) fpcr,
                fpsr = out(reg) fpsr,
                options(nostack, preserves_flags),
            );
        }
        s.fpcr = fpcr;
        s.fpsr = fpsr;
        s
    }

    /// Load V0-V31, FPCR and FPSR for the guest (it runs next on this pCPU).
    pub fn restore(&self) {
        let p = self.v.as_ptr();
        // SAFETY: `p` points at the 512 bytes of `self.v`, 16-byte aligned; only loads. The FP
        // registers are the guest's (el2visor's soft-float code never uses them), so overwriting
        // them breaks nothing of el2visor's.
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "ldp q0, q1, [{p}, #0]",
                "ldp q2, q3, [{p}, #32]",
                "ldp q4, q5, [{p}, #64]",
                "ldp q6, q7, [{p}, #96]",
                "ldp q8, q9, [{p}, #128]",
                "ldp q10, q11, [{p}, #160]",
                "ldp q12, q13, [{p}, #192]",
                "ldp q14, q15, [{p}, #224]",
                "ldp q16, q17, [{p}, #256]",
                "ldp q18, q19, [{p}, #288]",
                "ldp q20, q21, [{p}, #320]",
                "ldp q22, q23, [{p}, #352]",
                "ldp q24, q25, [{p}, #384]",
                "ldp q26, q27, [{p}, #416]",
                "ldp q28, q29, [{p}, #448]",
                "ldp q30, q31, [{p}, #480]",
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        }
        self.restore_control();
    }

    /// Load FPCR and FPSR only (entering SME's streaming mode resets FPSR; the V registers are
    /// then the streaming Z registers' low bits, loaded with them).
    pub fn restore_control(&self) {
        // SAFETY: two MSR of the guest's FP control and status registers, which el2visor's
        // soft-float code never uses; legal in streaming mode too.
        unsafe {
            asm!(
                "msr s3_3_c4_c4_0, {fpcr}",
                "msr s3_3_c4_c4_1, {fpsr}",
                fpcr = in(reg) self.fpcr,
                fpsr = in(reg) self.fpsr,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

macro_rules! el1_regs {
    ($($name:ident => $reg:literal),* $(,)?) => {
        /// The guest's EL1/EL0 system registers and EL1 timers (`el1::reset`'s set).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct El1State {
            $(pub $name: u64,)*
        }

        impl El1State {
            /// Read them as the guest left them on this pCPU.
            pub fn save() -> Self {
                let mut s = El1State::default();
                $(
                    // SAFETY: an MRS of a guest EL1/EL0 register, read at EL2; no side effect.
                    unsafe { asm!(concat!("mrs {v}, ", $reg), v = out(reg) s.$name, options(nomem, nostack, preserves_flags)) };
                )*
                s
            }

            /// Write them (the vCPU runs next on this pCPU), the timers last.
            pub fn restore(&self) {
                $(
                    // SAFETY: an MSR of a guest EL1/EL0 register at EL2; el2visor itself uses none
                    // of them (its stack is SP_EL2, its translation TTBR0_EL2), and the guest is
                    // not running on this pCPU.
                    unsafe { asm!(concat!("msr ", $reg, ", {v}"), v = in(reg) self.$name, options(nomem, nostack, preserves_flags)) };
                )*
                // SAFETY: a context synchronisation; no memory or register effect.
                unsafe { asm!("isb", options(nostack, preserves_flags)) };
            }
        }
    };
}

el1_regs! {
    sctlr => "sctlr_el1",
    tcr => "tcr_el1",
    ttbr0 => "ttbr0_el1",
    ttbr1 => "ttbr1_el1",
    mair => "mair_el1",
    amair => "amair_el1",
    contextidr => "contextidr_el1",
    vbar => "vbar_el1",
    elr => "elr_el1",
    spsr => "spsr_el1",
    esr => "esr_el1",
    far => "far_el1",
    afsr0 => "afsr0_el1",
    afsr1 => "afsr1_el1",
    par => "par_el1",
    sp_el0 => "sp_el0",
    sp_el1 => "sp_el1",
    tpidr_el0 => "tpidr_el0",
    tpidr_el1 => "tpidr_el1",
    tpidrro_el0 => "tpidrro_el0",
    cpacr => "cpacr_el1",
    mdscr => "mdscr_el1",
    csselr => "csselr_el1",
    cntkctl => "cntkctl_el1",
    cntv_cval => "cntv_cval_el0",
    cntp_cval => "cntp_cval_el0",
    cntv_ctl => "cntv_ctl_el0",
    cntp_ctl => "cntp_ctl_el0",
}

macro_rules! key_regs {
    ($($name:ident => $reg:literal),* $(,)?) => {
        /// The guest's pointer-authentication keys (FEAT_PAuth). Linux changes them per task, so a
        /// restored vCPU that kept the keys of the task running at the restore would fail every
        /// authentication of the snapshot's task (an FPAC oops).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PauthKeys {
            $(pub $name: u64,)*
        }

        impl PauthKeys {
            /// The keys, when the CPU has pointer authentication.
            pub fn save() -> Option<Self> {
                if !has_pauth() {
                    return None;
                }
                let mut s = PauthKeys::default();
                $(
                    // SAFETY: an MRS of a guest EL1 key register, present (checked above).
                    unsafe { asm!(concat!("mrs {v}, ", $reg), v = out(reg) s.$name, options(nomem, nostack, preserves_flags)) };
                )*
                Some(s)
            }

            /// Zero keys, where the CPU has pointer authentication (a vCPU's reset state).
            pub fn reset() {
                if has_pauth() {
                    Self::default().restore();
                }
            }

            pub fn restore(&self) {
                $(
                    // SAFETY: an MSR of a guest EL1 key register (present: `save` found it); el2visor
                    // itself does not authenticate pointers, and the guest is not running here.
                    unsafe { asm!(concat!("msr ", $reg, ", {v}"), v = in(reg) self.$name, options(nomem, nostack, preserves_flags)) };
                )*
                // SAFETY: a context synchronisation.
                unsafe { asm!("isb", options(nostack, preserves_flags)) };
            }
        }
    };
}

key_regs! {
    apia_lo => "s3_0_c2_c1_0",
    apia_hi => "s3_0_c2_c1_1",
    apib_lo => "s3_0_c2_c1_2",
    apib_hi => "s3_0_c2_c1_3",
    apda_lo => "s3_0_c2_c2_0",
    apda_hi => "s3_0_c2_c2_1",
    apdb_lo => "s3_0_c2_c2_2",
    apdb_hi => "s3_0_c2_c2_3",
    apga_lo => "s3_0_c2_c3_0",
    apga_hi => "s3_0_c2_c3_1",
}

/// FEAT_PAuth: ID_AA64ISAR1_EL1.{APA, API, GPA, GPI} or ID_AA64ISAR2_EL1.{APA3, GPA3}.
fn has_pauth() -> bool {
    let isar1: u64;
    // SAFETY: an ID register read; no side effect.
    unsafe { asm!("mrs {v}, id_aa64isar1_el1", v = out(reg) isar1, options(nomem, nostack, preserves_flags)) };
    let isar2 = super::sysreg::id_aa64isar2_el1();
    isar1 & 0xff00_ff00 != 0 || isar2 & 0xff00 != 0
}

/// Stop the guest's EL1 timers on this pCPU (its state is saved): a stopped vCPU's timer that
/// keeps its condition met would otherwise fire at its pCPU again and again while it waits.
pub fn stop_timers() {
    // SAFETY: writes of the guest's timer controls at EL2, the guest not running here; the saved
    // state puts them back before it runs again.
    unsafe { asm!("msr cntv_ctl_el0, xzr", "msr cntp_ctl_el0, xzr", "isb", options(nostack, preserves_flags)) };
}
