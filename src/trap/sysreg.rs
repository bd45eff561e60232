//! System register encodings: `SysReg` (op0, op1, CRn, CRm, op2) as a trapped MSR/MRS reports
//! it, a table of the registers a guest is likely to trap on so a log line can name them
//! (`S3_0_C10_C2_0 (MAIR_EL1)`), the registers HCR_EL2.TVM traps writes to ([`TvmReg`]) and the
//! value el2visor writes for the guest ([`tvm_write_value`]).

use core::fmt;

/// A system register or system instruction encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SysReg {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
}

impl SysReg {
    /// The ISS bits (of EC 0x18) that hold the encoding: op0, op2, op1, CRn, CRm; not Rt and
    /// not the direction. `iss & ISS_MASK == reg.iss_bits()` tests a trap for one register.
    pub const ISS_MASK: u32 = 0x003f_fc1e;

    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }

    /// The encoding from the ISS of a trapped MSR/MRS (EC 0x18): Op0 21:20, Op2 19:17,
    /// Op1 16:14, CRn 13:10, CRm 4:1.
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            op0: ((iss >> 20) & 3) as u8,
            op2: ((iss >> 17) & 7) as u8,
            op1: ((iss >> 14) & 7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
        }
    }

    /// The inverse of [`Self::from_iss`] for the encoding bits (see [`Self::ISS_MASK`]).
    pub const fn iss_bits(self) -> u32 {
        ((self.op0 as u32 & 3) << 20)
            | ((self.op2 as u32 & 7) << 17)
            | ((self.op1 as u32 & 7) << 14)
            | ((self.crn as u32 & 0xf) << 10)
            | ((self.crm as u32 & 0xf) << 1)
    }

    /// The register's architectural name, when el2visor's table knows it.
    pub fn name(self) -> Option<SysRegName> {
        if let Some(&(_, name)) = FIXED.iter().find(|(reg, _)| *reg == self) {
            return Some(SysRegName {
                prefix: name,
                index: None,
                suffix: "",
            });
        }
        indexed_name(self)
    }

    /// Which of the TVM-trapped registers this is, if any.
    pub fn tvm_register(self) -> Option<TvmReg> {
        TvmReg::ALL.iter().copied().find(|t| t.encoding() == self)
    }
}

impl fmt::Display for SysReg {
    /// `S3_0_C10_C2_0 (MAIR_EL1)`, or just the generic form when the name is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S{}_{}_C{}_C{}_{}",
            self.op0, self.op1, self.crn, self.crm, self.op2
        )?;
        match self.name() {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

/// A register name, possibly with an index (`DBGBVR3_EL1`, `PMEVCNTR12_EL0`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SysRegName {
    prefix: &'static str,
    index: Option<u8>,
    suffix: &'static str,
}

impl fmt::Display for SysRegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix)?;
        if let Some(n) = self.index {
            write!(f, "{n}")?;
        }
        f.write_str(self.suffix)
    }
}

/// The registers HCR_EL2.TVM traps guest writes to (Arm ARM, HCR_EL2.TVM): the eleven every
/// CPU has, then those that exist only with a feature (each advertised in ID_AA64MMFR3_EL1). A
/// trap for one of the latter only ever comes from a CPU that has it (elsewhere the access is
/// UNDEFINED at EL1 before any trap). POR_EL0 is also trapped when EL0 reads it; HCR_EL2.TRVM
/// (not used) would trap reads of the whole set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TvmReg {
    Sctlr,
    Ttbr0,
    Ttbr1,
    Tcr,
    Esr,
    Far,
    Afsr0,
    Afsr1,
    Mair,
    Amair,
    Contextidr,
    /// FEAT_TCR2.
    Tcr2,
    /// FEAT_SCTLR2.
    Sctlr2,
    /// FEAT_AIE: attributes 8..15, MAIR_EL1's byte format.
    Mair2,
    /// FEAT_AIE: IMPLEMENTATION DEFINED, like AMAIR_EL1.
    Amair2,
    /// FEAT_S1PIE.
    Pir,
    Pire0,
    /// FEAT_S1POE.
    Por1,
    Por0,
    /// FEAT_S2POE.
    S2por,
}

impl TvmReg {
    /// The eleven every CPU has, in architectural order, then the feature ones.
    pub const ALL: [TvmReg; 20] = [
        Self::Sctlr,
        Self::Ttbr0,
        Self::Ttbr1,
        Self::Tcr,
        Self::Esr,
        Self::Far,
        Self::Afsr0,
        Self::Afsr1,
        Self::Mair,
        Self::Amair,
        Self::Contextidr,
        Self::Tcr2,
        Self::Sctlr2,
        Self::Mair2,
        Self::Amair2,
        Self::Pir,
        Self::Pire0,
        Self::Por1,
        Self::Por0,
        Self::S2por,
    ];

    /// The register's encoding as MSR/MRS name it.
    pub const fn encoding(self) -> SysReg {
        match self {
            Self::Sctlr => SysReg::new(3, 0, 1, 0, 0),
            Self::Sctlr2 => SysReg::new(3, 0, 1, 0, 3),
            Self::Ttbr0 => SysReg::new(3, 0, 2, 0, 0),
            Self::Ttbr1 => SysReg::new(3, 0, 2, 0, 1),
            Self::Tcr => SysReg::new(3, 0, 2, 0, 2),
            Self::Tcr2 => SysReg::new(3, 0, 2, 0, 3),
            Self::Afsr0 => SysReg::new(3, 0, 5, 1, 0),
            Self::Afsr1 => SysReg::new(3, 0, 5, 1, 1),
            Self::Esr => SysReg::new(3, 0, 5, 2, 0),
            Self::Far => SysReg::new(3, 0, 6, 0, 0),
            Self::Mair => SysReg::new(3, 0, 10, 2, 0),
            Self::Mair2 => SysReg::new(3, 0, 10, 2, 1),
            Self::Pire0 => SysReg::new(3, 0, 10, 2, 2),
            Self::Pir => SysReg::new(3, 0, 10, 2, 3),
            Self::Por1 => SysReg::new(3, 0, 10, 2, 4),
            Self::S2por => SysReg::new(3, 0, 10, 2, 5),
            Self::Amair => SysReg::new(3, 0, 10, 3, 0),
            Self::Amair2 => SysReg::new(3, 0, 10, 3, 1),
            Self::Por0 => SysReg::new(3, 3, 10, 2, 4),
            Self::Contextidr => SysReg::new(3, 0, 13, 0, 1),
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Sctlr => "SCTLR_EL1",
            Self::Ttbr0 => "TTBR0_EL1",
            Self::Ttbr1 => "TTBR1_EL1",
            Self::Tcr => "TCR_EL1",
            Self::Esr => "ESR_EL1",
            Self::Far => "FAR_EL1",
            Self::Afsr0 => "AFSR0_EL1",
            Self::Afsr1 => "AFSR1_EL1",
            Self::Mair => "MAIR_EL1",
            Self::Amair => "AMAIR_EL1",
            Self::Contextidr => "CONTEXTIDR_EL1",
            Self::Tcr2 => "TCR2_EL1",
            Self::Sctlr2 => "SCTLR2_EL1",
            Self::Mair2 => "MAIR2_EL1",
            Self::Amair2 => "AMAIR2_EL1",
            Self::Pir => "PIR_EL1",
            Self::Pire0 => "PIRE0_EL1",
            Self::Por1 => "POR_EL1",
            Self::Por0 => "POR_EL0",
            Self::S2por => "S2POR_EL1",
        }
    }
}

const fn r(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> SysReg {
    SysReg::new(op0, op1, crn, crm, op2)
}

/// Registers with a single fixed encoding. Indexed families are in [`indexed_name`].
static FIXED: &[(SysReg, &str)] = &[
    // The TVM registers and their EL1 neighbours.
    (r(3, 0, 1, 0, 0), "SCTLR_EL1"),
    (r(3, 0, 1, 0, 1), "ACTLR_EL1"),
    (r(3, 0, 1, 0, 2), "CPACR_EL1"),
    (r(3, 0, 1, 0, 3), "SCTLR2_EL1"),
    (r(3, 0, 1, 2, 0), "ZCR_EL1"),
    (r(3, 0, 2, 0, 0), "TTBR0_EL1"),
    (r(3, 0, 2, 0, 1), "TTBR1_EL1"),
    (r(3, 0, 2, 0, 2), "TCR_EL1"),
    (r(3, 0, 2, 0, 3), "TCR2_EL1"),
    (r(3, 0, 4, 0, 0), "SPSR_EL1"),
    (r(3, 0, 4, 0, 1), "ELR_EL1"),
    (r(3, 0, 4, 1, 0), "SP_EL0"),
    (r(3, 0, 5, 1, 0), "AFSR0_EL1"),
    (r(3, 0, 5, 1, 1), "AFSR1_EL1"),
    (r(3, 0, 5, 2, 0), "ESR_EL1"),
    (r(3, 0, 5, 3, 0), "ERRIDR_EL1"),
    (r(3, 0, 5, 3, 1), "ERRSELR_EL1"),
    (r(3, 0, 6, 0, 0), "FAR_EL1"),
    (r(3, 0, 7, 4, 0), "PAR_EL1"),
    (r(3, 0, 10, 2, 0), "MAIR_EL1"),
    (r(3, 0, 10, 2, 1), "MAIR2_EL1"),
    (r(3, 0, 10, 2, 2), "PIRE0_EL1"),
    (r(3, 0, 10, 2, 3), "PIR_EL1"),
    (r(3, 0, 10, 2, 4), "POR_EL1"),
    (r(3, 0, 10, 2, 5), "S2POR_EL1"),
    (r(3, 0, 10, 3, 0), "AMAIR_EL1"),
    (r(3, 0, 10, 3, 1), "AMAIR2_EL1"),
    (r(3, 3, 10, 2, 4), "POR_EL0"),
    (r(3, 0, 10, 4, 0), "LORSA_EL1"),
    (r(3, 0, 10, 4, 1), "LOREA_EL1"),
    (r(3, 0, 10, 4, 2), "LORN_EL1"),
    (r(3, 0, 10, 4, 3), "LORC_EL1"),
    (r(3, 0, 10, 4, 7), "LORID_EL1"),
    (r(3, 0, 12, 0, 0), "VBAR_EL1"),
    (r(3, 0, 12, 1, 1), "DISR_EL1"),
    (r(3, 0, 13, 0, 1), "CONTEXTIDR_EL1"),
    (r(3, 0, 13, 0, 4), "TPIDR_EL1"),
    (r(3, 3, 13, 0, 2), "TPIDR_EL0"),
    (r(3, 3, 13, 0, 3), "TPIDRRO_EL0"),
    (r(3, 0, 14, 1, 0), "CNTKCTL_EL1"),
    // Identification registers (HCR_EL2.TID1..TID3).
    (r(3, 0, 0, 0, 0), "MIDR_EL1"),
    (r(3, 0, 0, 0, 5), "MPIDR_EL1"),
    (r(3, 0, 0, 0, 6), "REVIDR_EL1"),
    (r(3, 0, 0, 1, 0), "ID_PFR0_EL1"),
    (r(3, 0, 0, 1, 1), "ID_PFR1_EL1"),
    (r(3, 0, 0, 1, 2), "ID_DFR0_EL1"),
    (r(3, 0, 0, 1, 3), "ID_AFR0_EL1"),
    (r(3, 0, 0, 1, 4), "ID_MMFR0_EL1"),
    (r(3, 0, 0, 1, 5), "ID_MMFR1_EL1"),
    (r(3, 0, 0, 1, 6), "ID_MMFR2_EL1"),
    (r(3, 0, 0, 1, 7), "ID_MMFR3_EL1"),
    (r(3, 0, 0, 2, 0), "ID_ISAR0_EL1"),
    (r(3, 0, 0, 2, 1), "ID_ISAR1_EL1"),
    (r(3, 0, 0, 2, 2), "ID_ISAR2_EL1"),
    (r(3, 0, 0, 2, 3), "ID_ISAR3_EL1"),
    (r(3, 0, 0, 2, 4), "ID_ISAR4_EL1"),
    (r(3, 0, 0, 2, 5), "ID_ISAR5_EL1"),
    (r(3, 0, 0, 2, 6), "ID_MMFR4_EL1"),
    (r(3, 0, 0, 2, 7), "ID_ISAR6_EL1"),
    (r(3, 0, 0, 3, 0), "MVFR0_EL1"),
    (r(3, 0, 0, 3, 1), "MVFR1_EL1"),
    (r(3, 0, 0, 3, 2), "MVFR2_EL1"),
    (r(3, 0, 0, 3, 4), "ID_PFR2_EL1"),
    (r(3, 0, 0, 3, 5), "ID_DFR1_EL1"),
    (r(3, 0, 0, 3, 6), "ID_MMFR5_EL1"),
    (r(3, 0, 0, 4, 0), "ID_AA64PFR0_EL1"),
    (r(3, 0, 0, 4, 1), "ID_AA64PFR1_EL1"),
    (r(3, 0, 0, 4, 2), "ID_AA64PFR2_EL1"),
    (r(3, 0, 0, 4, 4), "ID_AA64ZFR0_EL1"),
    (r(3, 0, 0, 4, 5), "ID_AA64SMFR0_EL1"),
    (r(3, 0, 0, 5, 0), "ID_AA64DFR0_EL1"),
    (r(3, 0, 0, 5, 1), "ID_AA64DFR1_EL1"),
    (r(3, 0, 0, 5, 4), "ID_AA64AFR0_EL1"),
    (r(3, 0, 0, 5, 5), "ID_AA64AFR1_EL1"),
    (r(3, 0, 0, 6, 0), "ID_AA64ISAR0_EL1"),
    (r(3, 0, 0, 6, 1), "ID_AA64ISAR1_EL1"),
    (r(3, 0, 0, 6, 2), "ID_AA64ISAR2_EL1"),
    (r(3, 0, 0, 7, 0), "ID_AA64MMFR0_EL1"),
    (r(3, 0, 0, 7, 1), "ID_AA64MMFR1_EL1"),
    (r(3, 0, 0, 7, 2), "ID_AA64MMFR2_EL1"),
    (r(3, 0, 0, 7, 3), "ID_AA64MMFR3_EL1"),
    (r(3, 0, 0, 7, 4), "ID_AA64MMFR4_EL1"),
    (r(3, 1, 0, 0, 0), "CCSIDR_EL1"),
    (r(3, 1, 0, 0, 1), "CLIDR_EL1"),
    (r(3, 1, 0, 0, 2), "CCSIDR2_EL1"),
    (r(3, 1, 0, 0, 7), "AIDR_EL1"),
    (r(3, 2, 0, 0, 0), "CSSELR_EL1"),
    (r(3, 3, 0, 0, 1), "CTR_EL0"),
    (r(3, 3, 0, 0, 7), "DCZID_EL0"),
    // GICv3 CPU interface (ICC_SRE_EL2 decides whether these trap).
    (r(3, 0, 4, 6, 0), "ICC_PMR_EL1"),
    (r(3, 0, 12, 8, 0), "ICC_IAR0_EL1"),
    (r(3, 0, 12, 8, 1), "ICC_EOIR0_EL1"),
    (r(3, 0, 12, 8, 2), "ICC_HPPIR0_EL1"),
    (r(3, 0, 12, 8, 3), "ICC_BPR0_EL1"),
    (r(3, 0, 12, 11, 1), "ICC_DIR_EL1"),
    (r(3, 0, 12, 11, 3), "ICC_RPR_EL1"),
    (r(3, 0, 12, 11, 5), "ICC_SGI1R_EL1"),
    (r(3, 0, 12, 11, 6), "ICC_ASGI1R_EL1"),
    (r(3, 0, 12, 11, 7), "ICC_SGI0R_EL1"),
    (r(3, 0, 12, 12, 0), "ICC_IAR1_EL1"),
    (r(3, 0, 12, 12, 1), "ICC_EOIR1_EL1"),
    (r(3, 0, 12, 12, 2), "ICC_HPPIR1_EL1"),
    (r(3, 0, 12, 12, 3), "ICC_BPR1_EL1"),
    (r(3, 0, 12, 12, 4), "ICC_CTLR_EL1"),
    (r(3, 0, 12, 12, 5), "ICC_SRE_EL1"),
    (r(3, 0, 12, 12, 6), "ICC_IGRPEN0_EL1"),
    (r(3, 0, 12, 12, 7), "ICC_IGRPEN1_EL1"),
    // Generic timer.
    (r(3, 3, 14, 0, 0), "CNTFRQ_EL0"),
    (r(3, 3, 14, 0, 1), "CNTPCT_EL0"),
    (r(3, 3, 14, 0, 2), "CNTVCT_EL0"),
    (r(3, 3, 14, 0, 5), "CNTPCTSS_EL0"),
    (r(3, 3, 14, 0, 6), "CNTVCTSS_EL0"),
    (r(3, 3, 14, 2, 0), "CNTP_TVAL_EL0"),
    (r(3, 3, 14, 2, 1), "CNTP_CTL_EL0"),
    (r(3, 3, 14, 2, 2), "CNTP_CVAL_EL0"),
    (r(3, 3, 14, 3, 0), "CNTV_TVAL_EL0"),
    (r(3, 3, 14, 3, 1), "CNTV_CTL_EL0"),
    (r(3, 3, 14, 3, 2), "CNTV_CVAL_EL0"),
    // Debug (MDCR_EL2.TDOSA/TDA/TDRA).
    (r(2, 0, 0, 0, 2), "OSDTRRX_EL1"),
    (r(2, 0, 0, 2, 0), "MDCCINT_EL1"),
    (r(2, 0, 0, 2, 2), "MDSCR_EL1"),
    (r(2, 0, 0, 3, 2), "OSDTRTX_EL1"),
    (r(2, 0, 0, 6, 2), "OSECCR_EL1"),
    (r(2, 0, 1, 0, 0), "MDRAR_EL1"),
    (r(2, 0, 1, 0, 4), "OSLAR_EL1"),
    (r(2, 0, 1, 1, 4), "OSLSR_EL1"),
    (r(2, 0, 1, 3, 4), "OSDLR_EL1"),
    (r(2, 0, 1, 4, 4), "DBGPRCR_EL1"),
    (r(2, 0, 7, 8, 6), "DBGCLAIMSET_EL1"),
    (r(2, 0, 7, 9, 6), "DBGCLAIMCLR_EL1"),
    (r(2, 0, 7, 14, 6), "DBGAUTHSTATUS_EL1"),
    (r(2, 3, 0, 1, 0), "MDCCSR_EL0"),
    (r(2, 3, 0, 4, 0), "DBGDTR_EL0"),
    (r(2, 3, 0, 5, 0), "DBGDTRRX_EL0"),
    // Performance monitors (MDCR_EL2.TPM/TPMCR).
    (r(3, 0, 9, 14, 1), "PMINTENSET_EL1"),
    (r(3, 0, 9, 14, 2), "PMINTENCLR_EL1"),
    (r(3, 0, 9, 14, 6), "PMMIR_EL1"),
    (r(3, 3, 9, 12, 0), "PMCR_EL0"),
    (r(3, 3, 9, 12, 1), "PMCNTENSET_EL0"),
    (r(3, 3, 9, 12, 2), "PMCNTENCLR_EL0"),
    (r(3, 3, 9, 12, 3), "PMOVSCLR_EL0"),
    (r(3, 3, 9, 12, 4), "PMSWINC_EL0"),
    (r(3, 3, 9, 12, 5), "PMSELR_EL0"),
    (r(3, 3, 9, 12, 6), "PMCEID0_EL0"),
    (r(3, 3, 9, 12, 7), "PMCEID1_EL0"),
    (r(3, 3, 9, 13, 0), "PMCCNTR_EL0"),
    (r(3, 3, 9, 13, 1), "PMXEVTYPER_EL0"),
    (r(3, 3, 9, 13, 2), "PMXEVCNTR_EL0"),
    (r(3, 3, 9, 14, 0), "PMUSERENR_EL0"),
    (r(3, 3, 9, 14, 3), "PMOVSSET_EL0"),
    (r(3, 3, 14, 15, 7), "PMCCFILTR_EL0"),
    // Set/way cache maintenance (HCR_EL2.TSW), as system instructions.
    (r(1, 0, 7, 6, 2), "DC ISW"),
    (r(1, 0, 7, 10, 2), "DC CSW"),
    (r(1, 0, 7, 14, 2), "DC CISW"),
];

/// The indexed families: debug breakpoint/watchpoint registers, PMU event counters and types,
/// GICv3 active priority registers.
fn indexed_name(reg: SysReg) -> Option<SysRegName> {
    let named = |prefix, index: u8, suffix| {
        Some(SysRegName {
            prefix,
            index: Some(index),
            suffix,
        })
    };
    match (reg.op0, reg.op1, reg.crn, reg.crm, reg.op2) {
        (2, 0, 0, n, 4) => named("DBGBVR", n, "_EL1"),
        (2, 0, 0, n, 5) => named("DBGBCR", n, "_EL1"),
        (2, 0, 0, n, 6) => named("DBGWVR", n, "_EL1"),
        (2, 0, 0, n, 7) => named("DBGWCR", n, "_EL1"),
        (3, 3, 14, crm @ 8..=11, op2) if !(crm == 11 && op2 == 7) => {
            named("PMEVCNTR", ((crm - 8) << 3) | op2, "_EL0")
        }
        (3, 3, 14, crm @ 12..=15, op2) if !(crm == 15 && op2 == 7) => {
            named("PMEVTYPER", ((crm - 12) << 3) | op2, "_EL0")
        }
        (3, 0, 12, 8, n @ 4..=7) => named("ICC_AP0R", n - 4, "_EL1"),
        (3, 0, 12, 9, n @ 0..=3) => named("ICC_AP1R", n, "_EL1"),
        _ => None,
    }
}

/// The value el2visor writes to the hardware register when the guest writes `value` to the TVM
/// register `reg` in `mode`. In mair-trap mode: MAIR_EL1 and MAIR2_EL1 through
/// [`override_mair`], SCTLR_EL1 through [`override_sctlr`], TCR_EL1 through [`override_tcr`]
/// (`crate::coherency`); everything else (AMAIR_EL1 and AMAIR2_EL1 included, see the coherency
/// module docs) and every other mode: the guest's value. The slow path calls this; the assembly
/// fast path implements the MAIR_EL1 rule and serves only registers written unchanged otherwise
/// (SCTLR_EL1, TCR_EL1 and MAIR2_EL1 go to the slow path in mair-trap mode).
///
/// [`override_mair`]: crate::coherency::override_mair
/// [`override_sctlr`]: crate::coherency::override_sctlr
/// [`override_tcr`]: crate::coherency::override_tcr
pub fn tvm_write_value(mode: crate::coherency::Mode, reg: TvmReg, value: u64) -> u64 {
    use crate::coherency::{override_mair, override_sctlr, override_tcr, Mode};
    match (mode, reg) {
        (Mode::MairTrap, TvmReg::Mair | TvmReg::Mair2) => override_mair(value),
        (Mode::MairTrap, TvmReg::Sctlr) => override_sctlr(value),
        (Mode::MairTrap, TvmReg::Tcr) => override_tcr(value),
        _ => value,
    }
}

#[cfg(test)]
#[path = "sysreg_tests.rs"]
mod tests;
