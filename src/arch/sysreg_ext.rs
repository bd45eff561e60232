//! What aarch64-cpu 11.2 does not define, in its style, defined once here: fields with
//! `tock_registers::register_bitfields!`, registers as zero-sized values implementing
//! `tock_registers::interfaces::{Readable, Writeable}` (one `mrs`/`msr` each, inlined).
//!
//! - Registers aarch64-cpu lacks: [`HCRX_EL2`], [`ZCR_EL2`], [`SMCR_EL2`], [`ID_AA64ISAR2_EL1`],
//!   [`ID_AA64MMFR3_EL1`], [`CTR_EL0`], [`PMCR_EL0`], [`VPIDR_EL2`] (fields and accessor), [`CNTHP_CVAL_EL2`] (accessor only), and the
//!   feature-gated registers HCR_EL2.TVM traps (TCR2_EL1, SCTLR2_EL1, MAIR2_EL1, AMAIR2_EL1,
//!   PIR_EL1, PIRE0_EL1, POR_EL1, POR_EL0, S2POR_EL1: accessor only), and GCSCR_EL1 (read only). The newer ones are named by
//!   their encoding (`s3_4_c1_c2_2` …), which every assembler accepts.
//! - Fields aarch64-cpu lacks on registers it has: `<REGISTER>_EXT` (fields only; the register
//!   itself is read and written through `aarch64_cpu::registers`).
//!
//! Only the fields el2visor uses are named. The field definitions are plain constants that the
//! host tests of the value builders use too: `arch` is built for the bare-metal target only, so
//! `vcpu::regs` mounts this same file on the host, where the accessors are left out.

use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// Extended Hypervisor Configuration Register (FEAT_HCX).
    pub HCRX_EL2 [
        /// SCTLR2_EL1 is accessible at EL1.
        SCTLR2En OFFSET(15) NUMBITS(1) [],
        /// TCR2_EL1 is accessible at EL1.
        TCR2En OFFSET(14) NUMBITS(1) [],
        /// The FEAT_MOPS instructions are enabled at EL1 and EL0.
        MSCEn OFFSET(11) NUMBITS(1) [],
        /// MOPS exceptions from EL1 are taken to EL2 (el2visor leaves it clear).
        MCE2 OFFSET(10) NUMBITS(1) [],
        /// The Guarded Control Stack is usable at EL1 and EL0 (FEAT_GCS).
        GCSEn OFFSET(22) NUMBITS(1) [],
    ],

    /// SVE Control Register for EL2 (FEAT_SVE).
    pub ZCR_EL2 [
        /// Vector length: (LEN + 1) × 128 bits, at most what the CPU implements.
        LEN OFFSET(0) NUMBITS(4) [],
    ],

    /// SME Control Register for EL2 (FEAT_SME).
    pub SMCR_EL2 [
        /// Full A64 instruction set in Streaming SVE mode at EL1 and EL0 (FEAT_SME_FA64).
        FA64 OFFSET(31) NUMBITS(1) [],
        /// ZT0 accessible at EL1 and EL0, not trapped to EL2 (FEAT_SME2).
        EZT0 OFFSET(30) NUMBITS(1) [],
        /// Streaming vector length: (LEN + 1) × 128 bits, at most what the CPU implements.
        LEN OFFSET(0) NUMBITS(4) [],
    ],

    /// AArch64 Instruction Set Attribute Register 2.
    pub ID_AA64ISAR2_EL1 [
        /// FEAT_MOPS.
        MOPS OFFSET(16) NUMBITS(4) [],
        /// FEAT_PACQARMA3 address authentication.
        APA3 OFFSET(12) NUMBITS(4) [],
        /// FEAT_PACQARMA3 generic authentication.
        GPA3 OFFSET(8) NUMBITS(4) [],
    ],

    /// AArch64 Memory Model Feature Register 3.
    pub ID_AA64MMFR3_EL1 [
        /// FEAT_AIE: MAIR2_EL1, AMAIR2_EL1.
        AIE OFFSET(24) NUMBITS(4) [],
        /// FEAT_S2POE: S2POR_EL1.
        S2POE OFFSET(20) NUMBITS(4) [],
        /// FEAT_S1POE: POR_EL1, POR_EL0.
        S1POE OFFSET(16) NUMBITS(4) [],
        /// FEAT_S1PIE: PIR_EL1, PIRE0_EL1.
        S1PIE OFFSET(8) NUMBITS(4) [],
        /// FEAT_SCTLR2.
        SCTLRX OFFSET(4) NUMBITS(4) [],
        /// FEAT_TCR2.
        TCRX OFFSET(0) NUMBITS(4) [],
    ],

    /// Cache Type Register.
    pub CTR_EL0 [
        /// Instruction-cache invalidation is not needed for data-to-instruction coherence.
        DIC OFFSET(29) NUMBITS(1) [],
        /// Data-cache clean to the PoU is not needed for data-to-instruction coherence.
        IDC OFFSET(28) NUMBITS(1) [],
        /// Log2 of the words in the smallest data-cache line.
        DminLine OFFSET(16) NUMBITS(4) [],
    ],

    /// Performance Monitors Control Register.
    pub PMCR_EL0 [
        /// Number of event counters implemented.
        N OFFSET(11) NUMBITS(5) [],
    ],

    /// ID_AA64PFR0_EL1 fields aarch64-cpu does not name.
    pub ID_AA64PFR0_EL1_EXT [
        /// FEAT_CSV2 (1), FEAT_CSV2_2 (2), FEAT_CSV2_3 (3).
        CSV2 OFFSET(56) NUMBITS(4) [],
    ],

    /// ID_AA64PFR1_EL1 fields aarch64-cpu does not name.
    pub ID_AA64PFR1_EL1_EXT [
        /// FEAT_SME.
        SME OFFSET(24) NUMBITS(4) [],
    ],

    /// ID_AA64MMFR1_EL1 fields aarch64-cpu does not name.
    pub ID_AA64MMFR1_EL1_EXT [
        /// FEAT_HCX: HCRX_EL2 is implemented.
        HCX OFFSET(40) NUMBITS(4) [],
    ],

    /// CPTR_EL2 fields with HCR_EL2.E2H = 0 (aarch64-cpu names only TAM).
    pub CPTR_EL2_EXT [
        /// Traps CPACR_EL1 accesses.
        TCPAC OFFSET(31) NUMBITS(1) [],
        /// Traps trace register accesses.
        TTA OFFSET(20) NUMBITS(1) [],
        /// Traps SME; RES1 where SME is not implemented.
        TSM OFFSET(12) NUMBITS(1) [],
        /// Traps FP/SIMD.
        TFP OFFSET(10) NUMBITS(1) [],
        /// Traps SVE; RES1 where SVE is not implemented.
        TZ OFFSET(8) NUMBITS(1) [],
    ],

    /// SCTLR_EL1 fields aarch64-cpu does not name: each is RES1 on a CPU without its feature.
    pub SCTLR_EL1_EXT [
        /// Load/store multiple atomicity and ordering (AArch32 EL0).
        LSMAOE OFFSET(29) NUMBITS(1) [],
        /// No trap on load/store multiple to Device memory (AArch32 EL0).
        nTLSMD OFFSET(28) NUMBITS(1) [],
        /// PSTATE.PAN is left unchanged on exception entry (FEAT_PAN).
        SPAN OFFSET(23) NUMBITS(1) [],
        /// Exception entry is context synchronizing (FEAT_ExS).
        EIS OFFSET(22) NUMBITS(1) [],
        /// EL0 access to SCXTNUM_EL0 is disabled (FEAT_CSV2_2).
        TSCXT OFFSET(20) NUMBITS(1) [],
        /// Exception exit is context synchronizing (FEAT_ExS).
        EOS OFFSET(11) NUMBITS(1) [],
    ],
}

#[cfg(target_os = "none")]
pub use self::access::*;

/// The accessors: the bare-metal target only.
#[cfg(target_os = "none")]
mod access {
    use tock_registers::interfaces::{Readable, Writeable};

    /// `$value: $Type`, a register read with `mrs $name` (and written with `msr $name` for `rw`).
    macro_rules! sysreg {
        ($(#[$m:meta])* $value:ident: $Type:ident, $name:literal, $R:ty, ro) => {
            $(#[$m])*
            pub struct $Type;

            $(#[$m])*
            pub const $value: $Type = $Type;

            impl Readable for $Type {
                type T = u64;
                type R = $R;

                #[inline]
                fn get(&self) -> u64 {
                    let v: u64;
                    // SAFETY: reading a system register has no side effects and touches no
                    // memory; every register here is readable at EL2.
                    unsafe {
                        core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v,
                            options(nomem, nostack, preserves_flags))
                    };
                    v
                }
            }
        };
        ($(#[$m:meta])* $value:ident: $Type:ident, $name:literal, $R:ty, rw) => {
            sysreg!($(#[$m])* $value: $Type, $name, $R, ro);

            impl Writeable for $Type {
                type T = u64;
                type R = $R;

                #[inline]
                fn set(&self, v: u64) {
                    // SAFETY: every writable register here configures what guests may do or
                    // where their exceptions go, never EL2's own view of memory; callers add
                    // the ISB where the new value must take effect before the next instruction.
                    unsafe {
                        core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v,
                            options(nomem, nostack, preserves_flags))
                    };
                }
            }
        };
    }

    sysreg!(/// HCRX_EL2 (FEAT_HCX only: UNDEFINED without it).
        HCRX_EL2: HcrxEl2, "s3_4_c1_c2_2", super::HCRX_EL2::Register, rw);
    sysreg!(/// ZCR_EL2 (FEAT_SVE only).
        ZCR_EL2: ZcrEl2, "s3_4_c1_c2_0", super::ZCR_EL2::Register, rw);
    sysreg!(/// SMCR_EL2 (FEAT_SME only).
        SMCR_EL2: SmcrEl2, "s3_4_c1_c2_6", super::SMCR_EL2::Register, rw);
    sysreg!(/// ID_AA64ISAR2_EL1 (reads as zero where the CPU predates it).
        ID_AA64ISAR2_EL1: IdAa64Isar2El1, "s3_0_c0_c6_2", super::ID_AA64ISAR2_EL1::Register, ro);
    sysreg!(/// ID_AA64SMFR0_EL1 (reads as zero without FEAT_SME).
        ID_AA64SMFR0_EL1: IdAa64Smfr0El1, "s3_0_c0_c4_5", (), ro);
    sysreg!(/// ID_AA64MMFR3_EL1 (reads as zero where the CPU predates it).
        ID_AA64MMFR3_EL1: IdAa64Mmfr3El1, "s3_0_c0_c7_3", super::ID_AA64MMFR3_EL1::Register, ro);
    sysreg!(/// CTR_EL0.
        CTR_EL0: CtrEl0, "ctr_el0", super::CTR_EL0::Register, ro);
    sysreg!(/// PMCR_EL0 (read only: el2visor gives the PMU to the guest).
        PMCR_EL0: PmcrEl0, "pmcr_el0", super::PMCR_EL0::Register, ro);
    sysreg!(/// VPIDR_EL2: the MIDR_EL1 value EL1 reads.
        VPIDR_EL2: VpidrEl2, "vpidr_el2", (), rw);
    sysreg!(/// CNTHP_CVAL_EL2: the EL2 physical timer's compare value (a count of CNTPCT_EL0).
        CNTHP_CVAL_EL2: CnthpCvalEl2, "cnthp_cval_el2", (), rw);
    // The fine-grained trap registers (FEAT_FGT only: UNDEFINED without it; HAFGRTR_EL2 also
    // needs FEAT_AMUv1). Values: `vcpu::fgt`.
    sysreg!(/// HFGRTR_EL2.
        HFGRTR_EL2: HfgrtrEl2, "s3_4_c1_c1_4", (), rw);
    sysreg!(/// HFGWTR_EL2.
        HFGWTR_EL2: HfgwtrEl2, "s3_4_c1_c1_5", (), rw);
    sysreg!(/// HFGITR_EL2.
        HFGITR_EL2: HfgitrEl2, "s3_4_c1_c1_6", (), rw);
    sysreg!(/// HDFGRTR_EL2.
        HDFGRTR_EL2: HdfgrtrEl2, "s3_4_c3_c1_4", (), rw);
    sysreg!(/// HDFGWTR_EL2.
        HDFGWTR_EL2: HdfgwtrEl2, "s3_4_c3_c1_5", (), rw);
    sysreg!(/// HAFGRTR_EL2.
        HAFGRTR_EL2: HafgrtrEl2, "s3_4_c3_c1_6", (), rw);
    sysreg!(/// BRBCR_EL2 (FEAT_BRBE only).
        BRBCR_EL2: BrbcrEl2, "s2_4_c9_c0_0", (), rw);
    sysreg!(/// GCSCR_EL1, the guest's Guarded Control Stack control (FEAT_GCS only).
        GCSCR_EL1: GcscrEl1, "s3_0_c2_c5_0", (), ro);

    // The guest's feature-gated TVM registers, each UNDEFINED where the CPU lacks its feature:
    // el2visor touches one only when serving a guest's trapped access to it.
    sysreg!(/// TCR2_EL1 (FEAT_TCR2).
        TCR2_EL1: Tcr2El1, "s3_0_c2_c0_3", (), rw);
    sysreg!(/// SCTLR2_EL1 (FEAT_SCTLR2).
        SCTLR2_EL1: Sctlr2El1, "s3_0_c1_c0_3", (), rw);
    sysreg!(/// MAIR2_EL1 (FEAT_AIE).
        MAIR2_EL1: Mair2El1, "s3_0_c10_c2_1", (), rw);
    sysreg!(/// AMAIR2_EL1 (FEAT_AIE).
        AMAIR2_EL1: Amair2El1, "s3_0_c10_c3_1", (), rw);
    sysreg!(/// PIRE0_EL1 (FEAT_S1PIE).
        PIRE0_EL1: Pire0El1, "s3_0_c10_c2_2", (), rw);
    sysreg!(/// PIR_EL1 (FEAT_S1PIE).
        PIR_EL1: PirEl1, "s3_0_c10_c2_3", (), rw);
    sysreg!(/// POR_EL1 (FEAT_S1POE).
        POR_EL1: PorEl1, "s3_0_c10_c2_4", (), rw);
    sysreg!(/// POR_EL0 (FEAT_S1POE).
        POR_EL0: PorEl0, "s3_3_c10_c2_4", (), rw);
    sysreg!(/// S2POR_EL1 (FEAT_S2POE).
        S2POR_EL1: S2porEl1, "s3_0_c10_c2_5", (), rw);
}
