//! The exception syndrome (ESR_EL2) of a trap from a guest: its exception class, and a `Display`
//! that says in words what the guest did, for log lines and the guest fault report.
//!
//! The ISS of the classes el2visor handles is decoded by [`super::iss`]; this module owns the
//! class table and the top-level field split: EC bits 31:26, IL bit 25, ISS bits 24:0, ISS2 bits
//! 36:32, as aarch64-cpu's `ESR_EL2` defines them.

use aarch64_cpu::registers::ESR_EL2;
use core::fmt;
use tock_registers::fields::Field;

use super::iss::{DataAbort, InstructionAbort, SvcImm, SysRegAccess, Wfx};

/// A raw ESR_ELx value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Esr(pub u64);

/// `field` of an ESR value (`Field::read`, usable in `const fn`).
const fn read(esr: u64, field: Field<u64, ESR_EL2::Register>) -> u64 {
    (esr >> field.shift) & field.mask
}

impl Esr {
    /// Exception class, bits 31:26.
    pub const fn ec(self) -> u8 {
        read(self.0, ESR_EL2::EC) as u8
    }

    /// Instruction length, bit 25: true for a 32-bit instruction (always true for an AArch64
    /// trapped instruction; false for a 16-bit T32 instruction and for some classes where the
    /// bit is defined as 1 anyway).
    pub const fn il(self) -> bool {
        read(self.0, ESR_EL2::IL) != 0
    }

    /// Instruction-specific syndrome, bits 24:0.
    pub const fn iss(self) -> u32 {
        read(self.0, ESR_EL2::ISS) as u32
    }

    /// ISS2, bits 36:32 (FEAT_LS64 and friends; zero otherwise).
    pub const fn iss2(self) -> u8 {
        read(self.0, ESR_EL2::ISS2) as u8
    }

    /// The decoded exception class.
    pub fn class(self) -> ExceptionClass {
        ExceptionClass::from_ec(self.ec())
    }

    /// The ISS as a data abort, when this is one (EC 0x24 or 0x25).
    pub fn data_abort(self) -> Option<DataAbort> {
        matches!(
            self.class(),
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame
        )
        .then(|| DataAbort::from_iss(self.iss()))
    }

    /// The ISS as an instruction abort, when this is one (EC 0x20 or 0x21).
    pub fn instruction_abort(self) -> Option<InstructionAbort> {
        matches!(
            self.class(),
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame
        )
        .then(|| InstructionAbort::from_iss(self.iss()))
    }

    /// The ISS as a trapped MSR/MRS/system instruction, when this is one (EC 0x18).
    pub fn sysreg(self) -> Option<SysRegAccess> {
        (self.class() == ExceptionClass::SysReg).then(|| SysRegAccess::from_iss(self.iss()))
    }

    /// The immediate of an HVC, SMC or SVC from AArch64 or AArch32 (EC 0x11..0x17).
    pub fn imm16(self) -> Option<SvcImm> {
        use ExceptionClass::*;
        matches!(self.class(), Svc32 | Hvc32 | Smc32 | Svc64 | Hvc64 | Smc64)
            .then(|| SvcImm::from_iss(self.iss()))
    }

    /// The ISS as a trapped WFI/WFE/WFIT/WFET, when this is one (EC 0x01).
    pub fn wfx(self) -> Option<Wfx> {
        (self.class() == ExceptionClass::Wfx).then(|| Wfx::from_iss(self.iss()))
    }
}

/// Each class: its variant, its EC value, aarch64-cpu's name for that value (checked at compile
/// time to be the same), and what it means.
macro_rules! classes {
    ($($variant:ident = $code:literal ($ec:ident), $text:literal;)*) => {
        $(const _: () = assert!(
            $code == ESR_EL2::EC::Value::$ec as u8,
            concat!("EC of ", stringify!($variant), " differs from aarch64-cpu's ", stringify!($ec))
        );)*

        /// Every exception class a guest can cause at EL2, by ESR.EC.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub enum ExceptionClass {
            $(#[doc = $text] $variant,)*
            /// An EC value the architecture does not define for an exception taken to EL2.
            Reserved,
        }

        impl ExceptionClass {
            /// The class of an EC value.
            pub const fn from_ec(ec: u8) -> Self {
                match ec {
                    $($code => Self::$variant,)*
                    _ => Self::Reserved,
                }
            }

            /// The EC value, or `None` for [`Self::Reserved`].
            pub const fn code(self) -> Option<u8> {
                match self {
                    $(Self::$variant => Some($code),)*
                    Self::Reserved => None,
                }
            }

            /// What the class means, in words.
            pub const fn describe(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Reserved => "reserved exception class",
                }
            }
        }
    };
}

classes! {
    Unknown = 0x00 (Unknown), "unknown reason (undefined instruction)";
    Wfx = 0x01 (TrappedWFIorWFE), "WFI/WFE trapped";
    Cp15McrMrc = 0x03 (TrappedMCRorMRC), "MCR/MRC cp15 trapped (AArch32)";
    Cp15McrrMrrc = 0x04 (TrappedMCRRorMRRC), "MCRR/MRRC cp15 trapped (AArch32)";
    Cp14McrMrc = 0x05 (TrappedMCRorMRC2), "MCR/MRC cp14 trapped (AArch32)";
    Cp14LdcStc = 0x06 (TrappedLDCorSTC), "LDC/STC cp14 trapped (AArch32)";
    FpAccess = 0x07 (TrappedFP), "SVE/SIMD/FP access trapped";
    PauthInstruction = 0x09 (TrappedPointerAuth), "pointer authentication instruction trapped";
    Ls64 = 0x0a (TrappedNotCovered), "LD64B/ST64B trapped";
    Cp14Mrrc = 0x0c (TrappedMRRC), "MRRC cp14 trapped (AArch32)";
    BranchTarget = 0x0d (BranchTarget), "branch target exception (BTI)";
    IllegalState = 0x0e (IllegalExecutionState), "illegal execution state";
    Svc32 = 0x11 (SVC32), "SVC from AArch32";
    Hvc32 = 0x12 (HVC32), "HVC from AArch32";
    Smc32 = 0x13 (SMC32), "SMC from AArch32";
    Svc64 = 0x15 (SVC64), "SVC from AArch64";
    Hvc64 = 0x16 (HVC64), "HVC from AArch64";
    Smc64 = 0x17 (SMC64), "SMC from AArch64";
    SysReg = 0x18 (TrappedMsrMrs), "MSR/MRS/system instruction trapped";
    Sve = 0x19 (TrappedSve), "SVE access trapped";
    Eret = 0x1a (TrappedERET), "ERET/ERETAA/ERETAB trapped";
    Tstart = 0x1b (TrappedTSTART), "TSTART trapped";
    PacFailure = 0x1c (PointerAuth), "pointer authentication failure";
    Sme = 0x1d (TrappedSME), "SME access trapped";
    InstrAbortLower = 0x20 (InstrAbortLowerEL), "instruction abort from a lower EL";
    InstrAbortSame = 0x21 (InstrAbortCurrentEL), "instruction abort from the same EL";
    PcAlignment = 0x22 (PCAlignmentFault), "PC alignment fault";
    DataAbortLower = 0x24 (DataAbortLowerEL), "data abort from a lower EL";
    DataAbortSame = 0x25 (DataAbortCurrentEL), "data abort from the same EL";
    SpAlignment = 0x26 (SPAlignmentFault), "SP alignment fault";
    MemoryOp = 0x27 (MemoryOperationException), "memory copy/set (MOPS) exception";
    Fp32 = 0x28 (TrappedFP32), "floating-point exception (AArch32)";
    Fp64 = 0x2c (TrappedFP64), "floating-point exception (AArch64)";
    SError = 0x2f (SError), "SError interrupt";
    BreakpointLower = 0x30 (BreakpointLowerEL), "breakpoint from a lower EL";
    BreakpointSame = 0x31 (BreakpointCurrentEL), "breakpoint from the same EL";
    StepLower = 0x32 (SoftwareStepLowerEL), "software step from a lower EL";
    StepSame = 0x33 (SoftwareStepCurrentEL), "software step from the same EL";
    WatchpointLower = 0x34 (WatchpointLowerEL), "watchpoint from a lower EL";
    WatchpointSame = 0x35 (WatchpointCurrentEL), "watchpoint from the same EL";
    Bkpt32 = 0x38 (Bkpt32), "BKPT (AArch32)";
    VectorCatch32 = 0x3a (VectorCatch32), "vector catch (AArch32)";
    Brk64 = 0x3c (Brk64), "BRK (AArch64)";
}

impl fmt::Display for Esr {
    /// `EC 0x24 data abort from a lower EL: write, 4 bytes, x3, translation fault level 3, ISV=1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EC {:#04x} {}: ", self.ec(), self.class().describe())?;
        if let Some(da) = self.data_abort() {
            return write!(f, "{da}");
        }
        if let Some(ia) = self.instruction_abort() {
            return write!(f, "{ia}");
        }
        if let Some(sr) = self.sysreg() {
            return write!(f, "{sr}");
        }
        if let Some(imm) = self.imm16() {
            return write!(f, "{imm}");
        }
        if let Some(w) = self.wfx() {
            return write!(f, "{w}");
        }
        write!(f, "ISS {:#09x}", self.iss())?;
        if !self.il() {
            f.write_str(", 16-bit instruction")?;
        }
        Ok(())
    }
}

/// Whether HPFAR_EL2 holds the faulting IPA of the Stage-2 abort with syndrome `esr`. The
/// architecture writes it for a fault on a stage-1 table walk (ISS.S1PTW) and for translation,
/// access flag and address size faults; for a permission fault of the access itself it is UNKNOWN
/// (Arm ARM, HPFAR_EL2), and some cores leave the last abort's address there. KVM and Xen
/// translate FAR_EL2 through the guest's stage 1 for those (`AT S1E1R`); so does el2visor.
/// On the distributor's fast path: two bit tests (DFSC 0b0011xx is a permission fault).
#[inline(always)]
pub const fn hpfar_valid(esr: u64) -> bool {
    let s1ptw = esr & (1 << 7) != 0;
    s1ptw || esr & 0x3c != 0x0c
}

/// What the fault status code (ISS bits 5:0, DFSC or IFSC) of an abort taken to EL2 from the
/// guest says it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum S2Fault {
    /// A translation (levels -1 to 3), access flag or permission fault: el2visor's own doing
    /// (an emulated device left unmapped, a page not copied or write-protected yet), resolved
    /// or emulated at the faulting IPA.
    Mapping,
    /// A synchronous external abort or parity/ECC error on the access itself (a device's bus
    /// error): HPFAR_EL2 is not to be trusted and there is nothing to emulate.
    ExternalAccess,
    /// The same on a translation table walk.
    ExternalWalk,
    /// An alignment fault that stage 2's Device type made (an unaligned access or a DC ZVA on
    /// a passed-through device the guest maps Normal).
    Alignment,
    /// A TLB conflict abort (overlapping TLB entries for the address).
    TlbConflict,
    /// Anything else: address size, granule protection, unsupported atomic hardware update,
    /// IMPLEMENTATION DEFINED faults.
    Other,
}

/// The kind of a Stage-2 abort with syndrome `esr` (Arm ARM, ESR_ELx DFSC encodings).
pub const fn s2_fault(esr: u64) -> S2Fault {
    match esr & 0x3f {
        0x04..=0x0f | 0x2b => S2Fault::Mapping,
        0x10 | 0x18 => S2Fault::ExternalAccess,
        // 0x11 is a tag check fault, a stage-1 matter.
        0x12..=0x17 | 0x19..=0x1f => S2Fault::ExternalWalk,
        0x21 => S2Fault::Alignment,
        0x30 => S2Fault::TlbConflict,
        _ => S2Fault::Other,
    }
}

/// The faulting IPA of a Stage-2 abort: HPFAR_EL2.FIPA (bits 43:4) holds IPA bits 51:12 (bits
/// 47:12 without FEAT_LPA, the rest RES0), and the page offset comes from FAR_EL2. Bit 63 (NS,
/// with FEAT_RME) and the other RES0 bits of HPFAR are ignored. When the abort's ISS has FnV=1
/// the FAR is not valid and the page offset of the result is meaningless.
pub const fn hpfar_to_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0000_0fff_ffff_fff0) << 8) | (far & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn hpfar_is_trusted_except_for_a_permission_fault_of_the_access_itself() {
        // EC 0x24 (data abort, lower EL), IL; DFSC in the low six bits, S1PTW bit 7.
        let dabt = |iss: u64| 0x24 << 26 | 1 << 25 | iss;
        for fsc in [0x04, 0x05, 0x06, 0x07, 0x2b, 0x08, 0x0b, 0x00, 0x03, 0x29] {
            assert!(hpfar_valid(dabt(fsc)), "FSC {fsc:#x}");
        }
        for fsc in [0x0c, 0x0d, 0x0e, 0x0f] {
            assert!(!hpfar_valid(dabt(fsc | 1 << 6)), "permission fault, FSC {fsc:#x}");
            assert!(hpfar_valid(dabt(fsc | 1 << 7)), "permission fault on a stage-1 walk, FSC {fsc:#x}");
        }
        // An instruction abort's IFSC sits in the same place.
        assert!(!hpfar_valid(0x20 << 26 | 1 << 25 | 0x0f));
    }

    #[test]
    fn only_translation_access_flag_and_permission_faults_are_resolved_at_an_ipa() {
        let dabt = |fsc: u64| 0x24 << 26 | 1 << 25 | fsc;
        for fsc in (0x04..=0x0f).chain([0x2b]) {
            assert_eq!(s2_fault(dabt(fsc)), S2Fault::Mapping, "FSC {fsc:#x}");
        }
        // On the access (an external abort, parity/ECC), and on a walk at levels -1 to 3.
        for fsc in [0x10, 0x18] {
            assert_eq!(s2_fault(dabt(fsc)), S2Fault::ExternalAccess, "FSC {fsc:#x}");
        }
        for fsc in [0x13, 0x14, 0x17, 0x1b, 0x1c, 0x1f] {
            assert_eq!(s2_fault(dabt(fsc)), S2Fault::ExternalWalk, "FSC {fsc:#x}");
        }
        assert_eq!(s2_fault(dabt(0x21)), S2Fault::Alignment);
        assert_eq!(s2_fault(dabt(0x30)), S2Fault::TlbConflict);
        // Address size (levels 0-3, -1), tag check, granule protection, atomic update, IMPDEF.
        for fsc in [0x00, 0x03, 0x29, 0x11, 0x23, 0x28, 0x31, 0x34, 0x35] {
            assert_eq!(s2_fault(dabt(fsc)), S2Fault::Other, "FSC {fsc:#x}");
        }
        // Other ISS bits (WnR, S1PTW, CM, ISV) do not change it.
        assert_eq!(s2_fault(dabt(0x07 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 24)), S2Fault::Mapping);
    }

    #[test]
    fn splits_fields() {
        let esr = Esr(0x0000_001f_6230_2804);
        assert_eq!(esr.ec(), 0x18);
        assert!(esr.il());
        assert_eq!(esr.iss(), 0x30_2804);
        assert_eq!(esr.iss2(), 0x1f);
        assert_eq!(esr.class(), ExceptionClass::SysReg);
        let ones = Esr(u64::MAX);
        assert_eq!((ones.ec(), ones.il(), ones.iss(), ones.iss2()), (0x3f, true, 0x1ff_ffff, 0x1f));
        let il_only = Esr(1 << 25);
        assert_eq!((il_only.ec(), il_only.il(), il_only.iss(), il_only.iss2()), (0, true, 0, 0));
        let no_il = Esr(!(1u64 << 25));
        assert_eq!((no_il.ec(), no_il.il(), no_il.iss(), no_il.iss2()), (0x3f, false, 0x1ff_ffff, 0x1f));
    }

    #[test]
    fn class_table_round_trips() {
        for ec in 0u8..64 {
            let class = ExceptionClass::from_ec(ec);
            match class.code() {
                Some(code) => assert_eq!(code, ec),
                None => assert_eq!(class, ExceptionClass::Reserved),
            }
        }
        assert_eq!(ExceptionClass::from_ec(0x02), ExceptionClass::Reserved);
        assert_eq!(ExceptionClass::from_ec(0x3c), ExceptionClass::Brk64);
    }

    #[test]
    fn displays_data_abort_in_words() {
        // str w3, [x1] to an unmapped IPA: ISV=1, SAS=2 (4 bytes), SRT=3, WnR=1, DFSC=7.
        let esr = Esr((0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (3 << 16) | (1 << 6) | 7);
        assert_eq!(
            format!("{esr}"),
            "EC 0x24 data abort from a lower EL: write, 4 bytes, x3, translation fault level 3, ISV=1"
        );
    }

    #[test]
    fn displays_sysreg_trap() {
        let esr = Esr(0x6230_2804);
        assert_eq!(
            format!("{esr}"),
            "EC 0x18 MSR/MRS/system instruction trapped: write S3_0_C10_C2_0 (MAIR_EL1) from x0"
        );
    }

    #[test]
    fn displays_undecoded_class_with_raw_iss() {
        let esr = Esr((0x07 << 26) | (1 << 25) | 0x1e0_0000);
        assert_eq!(
            format!("{esr}"),
            "EC 0x07 SVE/SIMD/FP access trapped: ISS 0x1e00000"
        );
        let reserved = Esr(0x02 << 26);
        assert_eq!(
            format!("{reserved}"),
            "EC 0x02 reserved exception class: ISS 0x0000000, 16-bit instruction"
        );
    }

    #[test]
    fn hpfar_gives_page_and_far_gives_offset() {
        // IPA 0x1_2345_6789 -> HPFAR FIPA = 0x123456 << 4.
        assert_eq!(
            hpfar_to_ipa(0x12_3456 << 4, 0xffff_0000_dead_b789),
            0x1_2345_6789
        );
        // Top of a 52-bit IPA space and a stray NS bit.
        assert_eq!(
            hpfar_to_ipa((1 << 63) | (0xff_ffff_ffff << 4), 0),
            0x000f_ffff_ffff_f000
        );
        // Low RES0 bits of HPFAR do not leak into the IPA.
        assert_eq!(hpfar_to_ipa(0xf, 0x10), 0x10);
    }
}
