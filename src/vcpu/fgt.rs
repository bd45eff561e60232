//! The fine-grained trap registers (FEAT_FGT) for a VM's vCPUs: nothing trapped. Pure: built
//! from the CPU's ID registers; `el2` writes them.
//!
//! Each pCPU runs one vCPU and el2visor keeps no EL1 or EL0 register of the guest's on its
//! behalf, so nothing needs a fine-grained trap. The registers reset to UNKNOWN values on
//! hardware (QEMU: zero), and both polarities matter:
//! - a positive bit traps when 1: every one is written 0;
//! - a negative bit (`nTPIDR2_EL0`, `nPIR_EL1` …) traps when 0, so zero would send the guest's
//!   accesses to that feature's registers to EL2, where el2visor has nothing to do with them
//!   (an SME guest's first TPIDR2_EL0 access). Each is set where its feature is implemented,
//!   and left 0 where it is not: the bit is RES0 then (Linux's `__init_el2_fgt` does the same for
//!   its own EL1).
//!
//! HAFGRTR_EL2 (activity monitors) exists with FEAT_AMUv1 only and has positive bits alone.
//! FEAT_FGT2's registers (HFGRTR2_EL2 …) are not written: their controls are negative and each
//! needs its own feature's ID field (docs/architecture.md, section 6). Writing these registers
//! needs SCR_EL3.FGTEn set by the firmware, as Linux requires of it.
//!
//! With BRBE the guest also gets the branch record buffer: [`brbcr_el2`] is what EL2's own
//! control must hold then.

/// The ID registers the values depend on.
#[derive(Clone, Copy, Debug, Default)]
pub struct FgtIds {
    pub mmfr0: u64,
    pub mmfr3: u64,
    pub pfr0: u64,
    pub pfr1: u64,
    pub isar1: u64,
    pub dfr0: u64,
}

/// The values to write, FEAT_FGT only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fgt {
    pub hfgrtr: u64,
    pub hfgwtr: u64,
    pub hfgitr: u64,
    pub hdfgrtr: u64,
    pub hdfgwtr: u64,
    /// HAFGRTR_EL2, where FEAT_AMUv1 makes it exist.
    pub hafgrtr: Option<u64>,
}

/// The 4-bit ID field at `shift`.
fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

const fn bit(n: u32) -> u64 {
    1 << n
}

/// HFGRTR_EL2 and HFGWTR_EL2 (the same layout; every negative bit names a read-write register).
mod hfgxtr {
    use super::bit;
    pub const N_AMAIR2_EL1: u64 = bit(63);
    pub const N_MAIR2_EL1: u64 = bit(62);
    pub const N_S2POR_EL1: u64 = bit(61);
    pub const N_POR_EL1: u64 = bit(60);
    pub const N_POR_EL0: u64 = bit(59);
    pub const N_PIR_EL1: u64 = bit(58);
    pub const N_PIRE0_EL1: u64 = bit(57);
    pub const N_RCWMASK_EL1: u64 = bit(56);
    pub const N_TPIDR2_EL0: u64 = bit(55);
    pub const N_SMPRI_EL1: u64 = bit(54);
    pub const N_GCS_EL1: u64 = bit(53);
    pub const N_GCS_EL0: u64 = bit(52);
    pub const N_ACCDATA_EL1: u64 = bit(50);
}

/// HFGITR_EL2's negative bits.
mod hfgitr {
    use super::bit;
    pub const N_GCSEPP: u64 = bit(59);
    pub const N_GCSSTR_EL1: u64 = bit(58);
    pub const N_GCSPUSHM_EL1: u64 = bit(57);
    pub const N_BRBIALL: u64 = bit(56);
    pub const N_BRBINJ: u64 = bit(55);
}

/// HDFGRTR_EL2 and HDFGWTR_EL2's negative bits (BRBIDR is read-only: RES0 in the write one).
mod hdfgxtr {
    use super::bit;
    pub const N_PMSNEVFR_EL1: u64 = bit(62);
    pub const N_BRBDATA: u64 = bit(61);
    pub const N_BRBCTL: u64 = bit(60);
    pub const N_BRBIDR: u64 = bit(59);
}

/// The values for a CPU with these ID registers; `None` without FEAT_FGT (the registers are
/// UNDEFINED then).
pub fn fine_grained_traps(ids: &FgtIds) -> Option<Fgt> {
    // ID_AA64MMFR0_EL1.FGT, bits 59:56.
    if field(ids.mmfr0, 56) == 0 {
        return None;
    }
    let mmfr3 = |shift| field(ids.mmfr3, shift) != 0;
    let pfr1 = |shift| field(ids.pfr1, shift) != 0;
    // ID_AA64MMFR3_EL1: AIE 27:24, S2POE 23:20, S1POE 19:16, S1PIE 11:8.
    let aie = mmfr3(24);
    let s2poe = mmfr3(20);
    let s1poe = mmfr3(16);
    let s1pie = mmfr3(8);
    // ID_AA64PFR1_EL1: THE 51:48, GCS 47:44, SME 27:24.
    let the = pfr1(48);
    let gcs = pfr1(44);
    let sme = pfr1(24);
    // ID_AA64ISAR1_EL1.LS64, bits 63:60: 3 is FEAT_LS64_ACCDATA.
    let accdata = field(ids.isar1, 60) >= 3;
    // ID_AA64DFR0_EL1: BRBE 55:52; PMSVer 35:32, 3 or more is FEAT_SPEv1p2 (PMSNEVFR_EL1).
    let brbe = field(ids.dfr0, 52) != 0;
    let spe_nevfr = field(ids.dfr0, 32) >= 3;

    let when = |on: bool, bits: u64| if on { bits } else { 0 };
    use hfgxtr::*;
    let hfgxtr = when(aie, N_AMAIR2_EL1 | N_MAIR2_EL1)
        | when(s2poe, N_S2POR_EL1)
        | when(s1poe, N_POR_EL1 | N_POR_EL0)
        | when(s1pie, N_PIR_EL1 | N_PIRE0_EL1)
        | when(the, N_RCWMASK_EL1)
        | when(sme, N_TPIDR2_EL0 | N_SMPRI_EL1)
        | when(gcs, N_GCS_EL1 | N_GCS_EL0)
        | when(accdata, N_ACCDATA_EL1);
    let hfgitr = when(gcs, hfgitr::N_GCSEPP | hfgitr::N_GCSSTR_EL1 | hfgitr::N_GCSPUSHM_EL1)
        | when(brbe, hfgitr::N_BRBIALL | hfgitr::N_BRBINJ);
    let hdfgwtr = when(spe_nevfr, hdfgxtr::N_PMSNEVFR_EL1) | when(brbe, hdfgxtr::N_BRBDATA | hdfgxtr::N_BRBCTL);
    let hdfgrtr = hdfgwtr | when(brbe, hdfgxtr::N_BRBIDR);
    // ID_AA64PFR0_EL1.AMU, bits 47:44.
    let hafgrtr = (field(ids.pfr0, 44) != 0).then_some(0);
    Some(Fgt { hfgrtr: hfgxtr, hfgwtr: hfgxtr, hfgitr, hdfgrtr, hdfgwtr, hafgrtr })
}

/// BRBCR_EL2 where FEAT_BRBE exists (ID_AA64DFR0_EL1.BRBE, bits 55:52): E2BRE and E0HBRE
/// clear (el2visor's own branches are never recorded where the guest reads them), CC and MPRED
/// set (cycle counts and mispredictions recorded, as Linux's booting.rst asks of the EL2 that
/// enters a kernel at EL1). It resets UNKNOWN.
pub fn brbcr_el2(dfr0: u64) -> Option<u64> {
    (field(dfr0, 52) != 0).then_some(bit(3) | bit(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FGT: u64 = 1 << 56;

    #[test]
    fn no_fgt_no_registers() {
        assert_eq!(fine_grained_traps(&FgtIds { mmfr3: u64::MAX, pfr1: u64::MAX, ..Default::default() }), None);
    }

    #[test]
    fn a_plain_fgt_cpu_traps_nothing_and_sets_no_res0_bit() {
        let f = fine_grained_traps(&FgtIds { mmfr0: FGT, ..Default::default() }).unwrap();
        assert_eq!(f, Fgt { hfgrtr: 0, hfgwtr: 0, hfgitr: 0, hdfgrtr: 0, hdfgwtr: 0, hafgrtr: None });
    }

    #[test]
    fn sme_untraps_tpidr2_and_smpri() {
        // QEMU -cpu max: SME in ID_AA64PFR1_EL1 27:24.
        let f = fine_grained_traps(&FgtIds { mmfr0: FGT, pfr1: 2 << 24, ..Default::default() }).unwrap();
        assert_eq!(f.hfgrtr, (1 << 55) | (1 << 54));
        assert_eq!(f.hfgwtr, f.hfgrtr);
        assert_eq!(f.hfgitr, 0);
    }

    #[test]
    fn each_feature_sets_its_own_negative_bits() {
        let ids = |mmfr3: u64, pfr1: u64, isar1: u64, dfr0: u64| FgtIds { mmfr0: FGT, mmfr3, pfr1, isar1, dfr0, pfr0: 0 };
        let r = |ids: FgtIds| fine_grained_traps(&ids).unwrap();
        assert_eq!(r(ids(1 << 24, 0, 0, 0)).hfgrtr, 0b11 << 62, "AIE");
        assert_eq!(r(ids(1 << 20, 0, 0, 0)).hfgrtr, 1 << 61, "S2POE");
        assert_eq!(r(ids(1 << 16, 0, 0, 0)).hfgrtr, 0b11 << 59, "S1POE");
        assert_eq!(r(ids(1 << 8, 0, 0, 0)).hfgrtr, 0b11 << 57, "S1PIE");
        // TCR2 and SCTLR2 (3:0, 7:4) and S2PIE (15:12) have no fine-grained control of their own.
        assert_eq!(r(ids(0x1011, 0, 0, 0)).hfgrtr, 0);
        assert_eq!(r(ids(0, 1 << 48, 0, 0)).hfgrtr, 1 << 56, "THE");
        let gcs = r(ids(0, 1 << 44, 0, 0));
        assert_eq!((gcs.hfgrtr, gcs.hfgitr), (0b11 << 52, 0b111 << 57), "GCS");
        assert_eq!(r(ids(0, 0, 3 << 60, 0)).hfgrtr, 1 << 50, "LS64_ACCDATA");
        assert_eq!(r(ids(0, 0, 2 << 60, 0)).hfgrtr, 0, "LS64_V has no ACCDATA_EL1");
        let brbe = r(ids(0, 0, 0, 1 << 52));
        assert_eq!((brbe.hfgitr, brbe.hdfgrtr, brbe.hdfgwtr), (0b11 << 55, 0b111 << 59, 0b11 << 60), "BRBE");
        let spe = r(ids(0, 0, 0, 3 << 32));
        assert_eq!((spe.hdfgrtr, spe.hdfgwtr), (1 << 62, 1 << 62), "SPEv1p2");
        assert_eq!(r(ids(0, 0, 0, 2 << 32)).hdfgrtr, 0, "SPEv1p1 has no PMSNEVFR_EL1");
    }

    #[test]
    fn brbe_gets_cc_and_mpred_only() {
        assert_eq!(brbcr_el2(0), None);
        assert_eq!(brbcr_el2(1 << 52), Some(0x18));
    }

    #[test]
    fn amu_makes_hafgrtr_exist() {
        let f = fine_grained_traps(&FgtIds { mmfr0: FGT, pfr0: 1 << 44, ..Default::default() }).unwrap();
        assert_eq!(f.hafgrtr, Some(0));
    }
}
