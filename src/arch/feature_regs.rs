//! The EL1/EL0 system registers of newer features that a guest can set and read back, each group
//! there only where the CPU has its feature: put back to 0 with the rest of EL1 when a vCPU
//! starts (`el1::reset`), saved and restored with a snapshot (`vcpu_state`). Touching one the
//! CPU lacks is UNDEFINED, so each group is read or written only where its ID register field
//! says it exists. 0 is their reset value, or what KVM chooses where it is UNKNOWN.

use core::arch::asm;

use super::cpu_features::CpuFeatures;

macro_rules! feature_regs {
    ($($name:ident => $reg:literal if $group:ident,)*) => {
        /// The registers' values, where `present` says the CPU has them (0 elsewhere).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct FeatureRegs {
            pub present: CpuFeatures,
            $(pub $name: u64,)*
        }

        impl FeatureRegs {
            /// Their reset state on a CPU with the features `present`: 0 in each.
            pub fn zero(present: CpuFeatures) -> Self {
                FeatureRegs { present, ..Default::default() }
            }

            /// Read them as the guest left them on this pCPU.
            pub fn save() -> Self {
                let mut s = Self::zero(CpuFeatures::of_this_cpu());
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
    scxtnum_el0 => "s3_3_c13_c0_7" if csv2_2,
    scxtnum_el1 => "s3_0_c13_c0_7" if csv2_2,
}
