//! The CPU features el2visor configures guests by and saves guest registers for, decoded from
//! the ID registers. Pure: `vcpu::regs` builds the EL2 register values from it (its host tests
//! mount this file), `feature_regs` decides which EL1 registers exist; [`CpuFeatures::of_this_cpu`]
//! reads the ID registers on the target.

use aarch64_cpu::registers::{ID_AA64DFR0_EL1, ID_AA64ISAR1_EL1, ID_AA64PFR0_EL1, ID_AA64PFR1_EL1};
use super::sysreg_ext::{ID_AA64ISAR2_EL1, ID_AA64MMFR1_EL1_EXT, ID_AA64MMFR3_EL1, ID_AA64PFR0_EL1_EXT, ID_AA64PFR1_EL1_EXT, PMCR_EL0};

/// CPU features that change how a guest must be configured, from the ID registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub sve: bool,
    pub sme: bool,
    /// FEAT_MTE2 or later: tag accesses must be allowed (HCR_EL2.ATA).
    pub mte: bool,
    /// FEAT_PAuth: its instructions and keys must not trap (HCR_EL2.API/APK).
    pub pauth: bool,
    /// FEAT_CSV2_2 or later: SCXTNUM_ELx must not trap (HCR_EL2.EnSCXT).
    pub csv2_2: bool,
    /// FEAT_HCX: HCRX_EL2 exists and gates newer features.
    pub hcx: bool,
    pub mops: bool,
    pub tcr2: bool,
    pub sctlr2: bool,
    /// FEAT_S1PIE: PIR_EL1, PIRE0_EL1.
    pub s1pie: bool,
    /// FEAT_S1POE: POR_EL1, POR_EL0.
    pub s1poe: bool,
    /// FEAT_S2POE: S2POR_EL1.
    pub s2poe: bool,
    /// FEAT_AIE: MAIR2_EL1, AMAIR2_EL1.
    pub aie: bool,
    /// FEAT_GCS: the Guarded Control Stack must be enabled for EL1 (HCRX_EL2.GCSEn).
    pub gcs: bool,
    /// Event counters the PMU has (PMCR_EL0.N), all given to the guest.
    pub pmu_counters: u8,
    /// ID_AA64DFR0_EL1.PMUVer: which PMUv3 (0 none, 1 PMUv3, 4 v3p1, 5 v3p4, 6 v3p5, ...; 0xf an
    /// IMPLEMENTATION DEFINED PMU, not PMUv3). Set by [`CpuFeatures::with_dfr0`].
    pub pmu_ver: u8,
}

impl CpuFeatures {
    /// From ID_AA64PFR0/PFR1, ISAR1/ISAR2, MMFR1/MMFR3 and PMCR_EL0.
    #[allow(clippy::too_many_arguments)]
    pub fn from_id_regs(pfr0: u64, pfr1: u64, isar1: u64, isar2: u64, mmfr1: u64, mmfr3: u64, pmcr: u64) -> Self {
        CpuFeatures {
            sve: ID_AA64PFR0_EL1::SVE.read(pfr0) != 0,
            sme: ID_AA64PFR1_EL1_EXT::SME.read(pfr1) != 0,
            // 2 = FEAT_MTE2 (1 is instructions only, no tags in memory).
            mte: ID_AA64PFR1_EL1::MTE.read(pfr1) >= 2,
            // Any of the address or generic authentication algorithms.
            pauth: ID_AA64ISAR1_EL1::APA.read(isar1) != 0
                || ID_AA64ISAR1_EL1::API.read(isar1) != 0
                || ID_AA64ISAR1_EL1::GPA.read(isar1) != 0
                || ID_AA64ISAR1_EL1::GPI.read(isar1) != 0
                || ID_AA64ISAR2_EL1::APA3.read(isar2) != 0
                || ID_AA64ISAR2_EL1::GPA3.read(isar2) != 0,
            // 2 = FEAT_CSV2_2 (SCXTNUM_ELx).
            csv2_2: ID_AA64PFR0_EL1_EXT::CSV2.read(pfr0) >= 2,
            hcx: ID_AA64MMFR1_EL1_EXT::HCX.read(mmfr1) != 0,
            mops: ID_AA64ISAR2_EL1::MOPS.read(isar2) != 0,
            tcr2: ID_AA64MMFR3_EL1::TCRX.read(mmfr3) != 0,
            sctlr2: ID_AA64MMFR3_EL1::SCTLRX.read(mmfr3) != 0,
            s1pie: ID_AA64MMFR3_EL1::S1PIE.read(mmfr3) != 0,
            s1poe: ID_AA64MMFR3_EL1::S1POE.read(mmfr3) != 0,
            s2poe: ID_AA64MMFR3_EL1::S2POE.read(mmfr3) != 0,
            aie: ID_AA64MMFR3_EL1::AIE.read(mmfr3) != 0,
            // ID_AA64PFR1_EL1.GCS, bits 47:44.
            gcs: (pfr1 >> 44) & 0xf != 0,
            pmu_counters: PMCR_EL0::N.read(pmcr) as u8,
            pmu_ver: 0,
        }
    }

    /// Add what ID_AA64DFR0_EL1 says (the PMU version).
    pub fn with_dfr0(self, dfr0: u64) -> Self {
        CpuFeatures { pmu_ver: ID_AA64DFR0_EL1::PMUVer.read(dfr0) as u8, ..self }
    }

    /// FEAT_PMUv3p1 or later: MDCR_EL2.HPMD exists.
    pub fn pmuv3p1(&self) -> bool {
        (4..0xf).contains(&self.pmu_ver)
    }

    /// FEAT_PMUv3p5 or later: MDCR_EL2.HCCD exists.
    pub fn pmuv3p5(&self) -> bool {
        (6..0xf).contains(&self.pmu_ver)
    }
}

#[cfg(target_os = "none")]
impl CpuFeatures {
    /// This CPU's, from its ID registers and (with PMUv3, where it exists) PMCR_EL0.
    pub fn of_this_cpu() -> Self {
        use super::sysreg;
        let dfr0 = sysreg::id_aa64dfr0_el1();
        // PMCR_EL0 is UNDEFINED without PMUv3 (PMUVer 1 to 14; 15 is an IMPLEMENTATION DEFINED PMU).
        let pmcr = if matches!((dfr0 >> 8) & 0xf, 1..=14) { sysreg::pmcr_el0() } else { 0 };
        CpuFeatures::from_id_regs(
            sysreg::id_aa64pfr0_el1(),
            sysreg::id_aa64pfr1_el1(),
            sysreg::id_aa64isar1_el1(),
            sysreg::id_aa64isar2_el1(),
            sysreg::id_aa64mmfr1_el1(),
            sysreg::id_aa64mmfr3_el1(),
            pmcr,
        )
        .with_dfr0(dfr0)
    }
}
