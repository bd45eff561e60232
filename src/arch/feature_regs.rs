//! The EL1/EL0 system registers of newer features that a guest can set and read back, each group
//! there only where the CPU has its feature: put back to 0 with the rest of EL1 when a vCPU
//! starts (`el1::reset`), saved and restored with a snapshot (`vcpu_state`). Touching one the
//! CPU lacks is UNDEFINED, so each group is read or written only where its ID register field
//! says it exists. 0 is their reset value, or what KVM chooses where it is UNKNOWN.

use core::arch::asm;

/// Which of the groups this CPU has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present {
    /// FEAT_TCR2: TCR2_EL1 (ID_AA64MMFR3_EL1.TCRX, bits 3:0).
    pub tcr2: bool,
    /// FEAT_SCTLR2: SCTLR2_EL1 (SCTLRX, bits 7:4).
    pub sctlr2: bool,
    /// FEAT_S1PIE: PIR_EL1, PIRE0_EL1 (S1PIE, bits 11:8).
    pub s1pie: bool,
    /// FEAT_S1POE: POR_EL1, POR_EL0 (S1POE, bits 19:16).
    pub s1poe: bool,
    /// FEAT_S2POE: S2POR_EL1 (S2POE, bits 23:20).
    pub s2poe: bool,
    /// FEAT_AIE: MAIR2_EL1, AMAIR2_EL1 (AIE, bits 27:24).
    pub aie: bool,
    /// FEAT_GCS: GCSCR_EL1, GCSPR_EL1, GCSCRE0_EL1, GCSPR_EL0 (ID_AA64PFR1_EL1.GCS, bits 47:44).
    pub gcs: bool,
    /// FEAT_SME: TPIDR2_EL0, SMCR_EL1, SMPRI_EL1 (ID_AA64PFR1_EL1.SME, bits 27:24).
    pub sme: bool,
    /// FEAT_SVE: ZCR_EL1 (ID_AA64PFR0_EL1.SVE, bits 35:32).
    pub sve: bool,
    /// FEAT_MTE2: GCR_EL1, RGSR_EL1, TFSR_EL1, TFSRE0_EL1 (ID_AA64PFR1_EL1.MTE, bits 11:8, 2 up).
    pub mte: bool,
    /// FEAT_CSV2_2: SCXTNUM_EL0, SCXTNUM_EL1 (ID_AA64PFR0_EL1.CSV2, bits 59:56, 2 up).
    pub scxt: bool,
}

impl Present {
    /// From ID_AA64PFR0_EL1, ID_AA64PFR1_EL1 and ID_AA64MMFR3_EL1.
    pub fn from_ids(pfr0: u64, pfr1: u64, mmfr3: u64) -> Self {
        let f = |reg: u64, shift: u32| (reg >> shift) & 0xf;
        Present {
            tcr2: f(mmfr3, 0) != 0,
            sctlr2: f(mmfr3, 4) != 0,
            s1pie: f(mmfr3, 8) != 0,
            s1poe: f(mmfr3, 16) != 0,
            s2poe: f(mmfr3, 20) != 0,
            aie: f(mmfr3, 24) != 0,
            gcs: f(pfr1, 44) != 0,
            sme: f(pfr1, 24) != 0,
            sve: f(pfr0, 32) != 0,
            mte: f(pfr1, 8) >= 2,
            scxt: f(pfr0, 56) >= 2,
        }
    }

    /// This CPU's.
    pub fn of_this_cpu() -> Self {
        use super::sysreg;
        Self::from_ids(sysreg::id_aa64pfr0_el1(), sysreg::id_aa64pfr1_el1(), sysreg::id_aa64mmfr3_el1())
    }
}

macro_rules! feature_regs {
    ($($name:ident => $reg:literal if $group:ident,)*) => {
        /// The registers' values, where [`Present`] says the CPU has them (0 elsewhere).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct FeatureRegs {
            pub present: Present,
            $(pub $name: u64,)*
        }

        impl FeatureRegs {
            /// Their reset state on this CPU: 0 in each.
            pub fn zero() -> Self {
                FeatureRegs { present: Present::of_this_cpu(), ..Default::default() }
            }

            /// Read them as the guest left them on this pCPU.
            pub fn save() -> Self {
                let mut s = Self::zero();
                $(
                    if s.present.$group {
                        // SAFETY: an MRS of a guest EL1/EL0 register this CPU has (`present`);
                        // no side effect.
                        unsafe { asm!(concat!("mrs {v}, ", $reg), v = out(reg) s.$name, options(nomem, nostack, preserves_flags)) };
                    }
                )*
                s
            }

            /// Write them (the vCPU runs next on this pCPU; the guest is not running).
            pub fn restore(&self) {
                $(
                    if self.present.$group {
                        // SAFETY: an MSR of a guest EL1/EL0 register this CPU has; el2visor
                        // itself uses none of them at EL2, and CPTR_EL2 traps neither SVE nor
                        // SME there (`vcpu::regs::cptr_el2`, set before any vCPU starts).
                        unsafe { asm!(concat!("msr ", $reg, ", {v}"), v = in(reg) self.$name, options(nomem, nostack, preserves_flags)) };
                    }
                )*
                // SAFETY: a context synchronisation.
                unsafe { asm!("isb", options(nostack, preserves_flags)) };
            }
        }
    };
}

feature_regs! {
    tcr2 => "s3_0_c2_c0_3" if tcr2,
    sctlr2 => "s3_0_c1_c0_3" if sctlr2,
    pir => "s3_0_c10_c2_3" if s1pie,
    pire0 => "s3_0_c10_c2_2" if s1pie,
    por_el1 => "s3_0_c10_c2_4" if s1poe,
    por_el0 => "s3_3_c10_c2_4" if s1poe,
    s2por => "s3_0_c10_c2_5" if s2poe,
    mair2 => "s3_0_c10_c2_1" if aie,
    amair2 => "s3_0_c10_c3_1" if aie,
    gcscr => "s3_0_c2_c5_0" if gcs,
    gcspr_el1 => "s3_0_c2_c5_1" if gcs,
    gcscre0 => "s3_0_c2_c5_2" if gcs,
    gcspr_el0 => "s3_3_c2_c5_1" if gcs,
    tpidr2 => "s3_3_c13_c0_5" if sme,
    smcr_el1 => "s3_0_c1_c2_6" if sme,
    smpri => "s3_0_c1_c2_4" if sme,
    zcr_el1 => "s3_0_c1_c2_0" if sve,
    gcr => "s3_0_c1_c0_6" if mte,
    rgsr => "s3_0_c1_c0_5" if mte,
    tfsr_el1 => "s3_0_c5_c6_0" if mte,
    tfsre0 => "s3_0_c5_c6_1" if mte,
    scxtnum_el0 => "s3_3_c13_c0_7" if scxt,
    scxtnum_el1 => "s3_0_c13_c0_7" if scxt,
}
