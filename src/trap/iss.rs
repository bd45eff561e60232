//! Decoded instruction-specific syndromes (ESR.ISS) of the exception classes el2visor handles:
//! data and instruction aborts (with every fault status code named), trapped MSR/MRS, the
//! immediate of HVC/SMC/SVC, and WFx. Each has a `Display` that says it in words.

use core::fmt;

use super::sysreg::SysReg;

/// A fault status code (DFSC/IFSC, ISS bits 5:0). Levels are −1..=3 (level −1 exists with
/// FEAT_LPA2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultStatus {
    AddressSize {
        level: i8,
    },
    Translation {
        level: i8,
    },
    AccessFlag {
        level: i8,
    },
    Permission {
        level: i8,
    },
    /// Synchronous External abort, not on a translation table walk.
    SyncExternal,
    /// Synchronous Tag Check Fault (FEAT_MTE2).
    TagCheck,
    SyncExternalOnWalk {
        level: i8,
    },
    /// Synchronous parity or ECC error on a memory access, not on a walk.
    SyncParity,
    SyncParityOnWalk {
        level: i8,
    },
    Alignment,
    /// Granule Protection Fault on a translation table walk (FEAT_RME).
    GranuleProtectionOnWalk {
        level: i8,
    },
    /// Granule Protection Fault, not on a walk (FEAT_RME).
    GranuleProtection,
    TlbConflict,
    /// Unsupported atomic hardware update (FEAT_HAFDBS).
    UnsupportedAtomicUpdate,
    /// IMPLEMENTATION DEFINED fault (lockdown).
    ImpDefLockdown,
    /// IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic access).
    ImpDefAtomic,
    /// Section domain fault (AArch32 short descriptors only).
    SectionDomain,
    /// Page domain fault (AArch32 short descriptors only).
    PageDomain,
    /// A code the architecture leaves reserved.
    Reserved(u8),
}

impl FaultStatus {
    /// Decode a 6-bit DFSC/IFSC.
    pub const fn from_code(code: u8) -> Self {
        let code = code & 0x3f;
        let level = (code & 3) as i8;
        match code {
            0b00_0000..=0b00_0011 => Self::AddressSize { level },
            0b10_1001 => Self::AddressSize { level: -1 },
            0b00_0100..=0b00_0111 => Self::Translation { level },
            0b10_1011 => Self::Translation { level: -1 },
            0b00_1000..=0b00_1011 => Self::AccessFlag { level },
            0b00_1100..=0b00_1111 => Self::Permission { level },
            0b01_0000 => Self::SyncExternal,
            0b01_0001 => Self::TagCheck,
            0b01_0011 => Self::SyncExternalOnWalk { level: -1 },
            0b01_0100..=0b01_0111 => Self::SyncExternalOnWalk { level },
            0b01_1000 => Self::SyncParity,
            0b01_1011 => Self::SyncParityOnWalk { level: -1 },
            0b01_1100..=0b01_1111 => Self::SyncParityOnWalk { level },
            0b10_0001 => Self::Alignment,
            0b10_0011 => Self::GranuleProtectionOnWalk { level: -1 },
            0b10_0100..=0b10_0111 => Self::GranuleProtectionOnWalk { level },
            0b10_1000 => Self::GranuleProtection,
            0b11_0000 => Self::TlbConflict,
            0b11_0001 => Self::UnsupportedAtomicUpdate,
            0b11_0100 => Self::ImpDefLockdown,
            0b11_0101 => Self::ImpDefAtomic,
            0b11_1101 => Self::SectionDomain,
            0b11_1110 => Self::PageDomain,
            other => Self::Reserved(other),
        }
    }

    /// True for the faults a Stage-2 table el2visor controls can cause: translation, access
    /// flag, permission and address size faults.
    pub const fn is_translation_related(self) -> bool {
        matches!(
            self,
            Self::AddressSize { .. }
                | Self::Translation { .. }
                | Self::AccessFlag { .. }
                | Self::Permission { .. }
        )
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::AddressSize { level } => write!(f, "address size fault level {level}"),
            Self::Translation { level } => write!(f, "translation fault level {level}"),
            Self::AccessFlag { level } => write!(f, "access flag fault level {level}"),
            Self::Permission { level } => write!(f, "permission fault level {level}"),
            Self::SyncExternal => f.write_str("synchronous external abort"),
            Self::TagCheck => f.write_str("synchronous tag check fault"),
            Self::SyncExternalOnWalk { level } => {
                write!(f, "synchronous external abort on table walk level {level}")
            }
            Self::SyncParity => f.write_str("synchronous parity/ECC error"),
            Self::SyncParityOnWalk { level } => {
                write!(
                    f,
                    "synchronous parity/ECC error on table walk level {level}"
                )
            }
            Self::Alignment => f.write_str("alignment fault"),
            Self::GranuleProtectionOnWalk { level } => {
                write!(f, "granule protection fault on table walk level {level}")
            }
            Self::GranuleProtection => f.write_str("granule protection fault"),
            Self::TlbConflict => f.write_str("TLB conflict abort"),
            Self::UnsupportedAtomicUpdate => {
                f.write_str("unsupported atomic hardware update fault")
            }
            Self::ImpDefLockdown => f.write_str("IMPLEMENTATION DEFINED fault (lockdown)"),
            Self::ImpDefAtomic => {
                f.write_str("IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic access)")
            }
            Self::SectionDomain => f.write_str("section domain fault"),
            Self::PageDomain => f.write_str("page domain fault"),
            Self::Reserved(code) => write!(f, "reserved fault status {code:#08b}"),
        }
    }
}

const fn bit(iss: u32, n: u32) -> bool {
    iss & (1 << n) != 0
}

/// The ISS of a data abort (EC 0x24/0x25).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DataAbort {
    /// Bit 24: the syndrome fields SAS..AR describe the access (a single-register load/store).
    pub isv: bool,
    /// Bits 23:22: access size is `1 << sas` bytes (valid with ISV).
    pub sas: u8,
    /// Bit 21: the load sign-extends (valid with ISV).
    pub sse: bool,
    /// Bits 20:16: the transfer register (31 = XZR/WZR; valid with ISV).
    pub srt: u8,
    /// Bit 15: the register is 64-bit (valid with ISV).
    pub sf: bool,
    /// Bit 14: acquire/release semantics (valid with ISV).
    pub ar: bool,
    /// Bit 13: the fault came from a VNCR_EL2-relative access (FEAT_NV2).
    pub vncr: bool,
    /// Bit 10: FAR is not valid.
    pub fnv: bool,
    /// Bit 9: IMPLEMENTATION DEFINED classification of an external abort.
    pub ea: bool,
    /// Bit 8: the fault came from a cache maintenance or address translation instruction.
    pub cm: bool,
    /// Bit 7: a Stage-2 fault on the guest's own stage-1 table walk.
    pub s1ptw: bool,
    /// Bit 6: write (true) or read (false).
    pub wnr: bool,
    /// Bits 5:0.
    pub dfsc: FaultStatus,
}

impl DataAbort {
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            isv: bit(iss, 24),
            sas: ((iss >> 22) & 3) as u8,
            sse: bit(iss, 21),
            srt: ((iss >> 16) & 0x1f) as u8,
            sf: bit(iss, 15),
            ar: bit(iss, 14),
            vncr: bit(iss, 13),
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            cm: bit(iss, 8),
            s1ptw: bit(iss, 7),
            wnr: bit(iss, 6),
            dfsc: FaultStatus::from_code((iss & 0x3f) as u8),
        }
    }

    /// Access size in bytes, when the syndrome is valid.
    pub const fn access_bytes(&self) -> Option<u8> {
        if self.isv {
            Some(1 << self.sas)
        } else {
            None
        }
    }

    /// The value an emulated load (ISV = 1) leaves in its register Xt, given `raw`, the value
    /// read from the device (only its low `1 << SAS` bytes count). As the load instruction
    /// would: with SSE the value is sign-extended to the register's width, 64 bits with SF
    /// (`ldrsb x1`), 32 bits without, and then, as every write to a W register, zero-extended
    /// (`ldrsb w1` leaves bits 63:32 zero); without SSE it is zero-extended (`ldrb w1`,
    /// `ldr x1`).
    pub const fn load_value(&self, raw: u64) -> u64 {
        let shift = 64 - (8u32 << self.sas);
        let value = if self.sse {
            (((raw << shift) as i64) >> shift) as u64
        } else {
            (raw << shift) >> shift
        };
        if self.sf {
            value
        } else {
            value & 0xffff_ffff
        }
    }
}

/// Write a register number the way a disassembler would: `x3`, or `xzr` for 31.
fn write_reg(f: &mut fmt::Formatter<'_>, rt: u8) -> fmt::Result {
    if rt == 31 {
        f.write_str("xzr")
    } else {
        write!(f, "x{rt}")
    }
}

impl fmt::Display for DataAbort {
    /// `write, 4 bytes, x3, translation fault level 3, ISV=1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.wnr { "write" } else { "read" })?;
        if let Some(bytes) = self.access_bytes() {
            write!(f, ", {bytes} byte{}, ", if bytes == 1 { "" } else { "s" })?;
            write_reg(f, self.srt)?;
            if self.sse {
                f.write_str(", sign-extended")?;
            }
            if self.ar {
                f.write_str(", acquire/release")?;
            }
        }
        write!(f, ", {}", self.dfsc)?;
        if self.s1ptw {
            f.write_str(", on stage-1 table walk")?;
        }
        if self.cm {
            f.write_str(", cache maintenance")?;
        }
        if self.ea {
            f.write_str(", external abort")?;
        }
        if self.vncr {
            f.write_str(", VNCR")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        write!(f, ", ISV={}", self.isv as u8)
    }
}

/// The ISS of an instruction abort (EC 0x20/0x21).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InstructionAbort {
    /// Bit 10: FAR is not valid.
    pub fnv: bool,
    /// Bit 9: IMPLEMENTATION DEFINED classification of an external abort.
    pub ea: bool,
    /// Bit 7: a Stage-2 fault on the guest's own stage-1 table walk.
    pub s1ptw: bool,
    /// Bits 5:0.
    pub ifsc: FaultStatus,
}

impl InstructionAbort {
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            s1ptw: bit(iss, 7),
            ifsc: FaultStatus::from_code((iss & 0x3f) as u8),
        }
    }
}

impl fmt::Display for InstructionAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ifsc)?;
        if self.s1ptw {
            f.write_str(", on stage-1 table walk")?;
        }
        if self.ea {
            f.write_str(", external abort")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        Ok(())
    }
}

/// The ISS of a trapped MSR/MRS/system instruction (EC 0x18).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SysRegAccess {
    /// The register or system instruction, from op0/op1/CRn/CRm/op2.
    pub reg: SysReg,
    /// Bits 9:5: the general-purpose register (31 = XZR).
    pub rt: u8,
    /// Bit 0: true for a read (MRS), false for a write (MSR).
    pub read: bool,
}

impl SysRegAccess {
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            reg: SysReg::from_iss(iss),
            rt: ((iss >> 5) & 0x1f) as u8,
            read: bit(iss, 0),
        }
    }
}

impl fmt::Display for SysRegAccess {
    /// `write S3_0_C10_C2_0 (MAIR_EL1) from x0` / `read S3_3_C14_C0_1 (CNTPCT_EL0) into x5`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.read {
            write!(f, "read {} into ", self.reg)?;
        } else {
            write!(f, "write {} from ", self.reg)?;
        }
        write_reg(f, self.rt)
    }
}

/// The ISS of an HVC, SMC or SVC: its 16-bit immediate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SvcImm(pub u16);

impl SvcImm {
    pub const fn from_iss(iss: u32) -> Self {
        Self(iss as u16)
    }
}

impl fmt::Display for SvcImm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "imm16 {:#06x}", self.0)
    }
}

/// Which wait instruction trapped (ISS bits 1:0, TI).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WfxKind {
    Wfi,
    Wfe,
    /// WFI with timeout (FEAT_WFxT).
    Wfit,
    /// WFE with timeout (FEAT_WFxT).
    Wfet,
}

/// The ISS of a trapped WFx (EC 0x01).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Wfx {
    pub kind: WfxKind,
    /// For WFIT/WFET with RV (bit 2) set: the register holding the timeout (bits 9:5).
    pub timeout_reg: Option<u8>,
}

impl Wfx {
    pub const fn from_iss(iss: u32) -> Self {
        let kind = match iss & 3 {
            0 => WfxKind::Wfi,
            1 => WfxKind::Wfe,
            2 => WfxKind::Wfit,
            _ => WfxKind::Wfet,
        };
        let timeout_reg = if bit(iss, 2) {
            Some(((iss >> 5) & 0x1f) as u8)
        } else {
            None
        };
        Self { kind, timeout_reg }
    }
}

impl fmt::Display for Wfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            WfxKind::Wfi => "WFI",
            WfxKind::Wfe => "WFE",
            WfxKind::Wfit => "WFIT",
            WfxKind::Wfet => "WFET",
        })?;
        if let Some(reg) = self.timeout_reg {
            f.write_str(", timeout in ")?;
            write_reg(f, reg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{format, string::ToString};

    #[test]
    fn names_every_fault_status_family() {
        assert_eq!(
            FaultStatus::from_code(0x07).to_string(),
            "translation fault level 3"
        );
        assert_eq!(
            FaultStatus::from_code(0x2b).to_string(),
            "translation fault level -1"
        );
        assert_eq!(
            FaultStatus::from_code(0x09).to_string(),
            "access flag fault level 1"
        );
        assert_eq!(
            FaultStatus::from_code(0x0f).to_string(),
            "permission fault level 3"
        );
        assert_eq!(
            FaultStatus::from_code(0x02).to_string(),
            "address size fault level 2"
        );
        assert_eq!(
            FaultStatus::from_code(0x29),
            FaultStatus::AddressSize { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x10).to_string(),
            "synchronous external abort"
        );
        assert_eq!(
            FaultStatus::from_code(0x15),
            FaultStatus::SyncExternalOnWalk { level: 1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x13),
            FaultStatus::SyncExternalOnWalk { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x1e),
            FaultStatus::SyncParityOnWalk { level: 2 }
        );
        assert_eq!(FaultStatus::from_code(0x21).to_string(), "alignment fault");
        assert_eq!(
            FaultStatus::from_code(0x30).to_string(),
            "TLB conflict abort"
        );
        assert_eq!(FaultStatus::from_code(0x11), FaultStatus::TagCheck);
        assert_eq!(FaultStatus::from_code(0x28), FaultStatus::GranuleProtection);
        assert_eq!(FaultStatus::from_code(0x3f), FaultStatus::Reserved(0x3f));
        assert_eq!(
            FaultStatus::from_code(0x12).to_string(),
            "reserved fault status 0b010010"
        );
    }

    #[test]
    fn every_code_decodes_and_non_reserved_ones_are_distinct() {
        let mut seen = alloc::vec::Vec::new();
        for code in 0u8..64 {
            let fs = FaultStatus::from_code(code);
            if !matches!(fs, FaultStatus::Reserved(_)) {
                assert!(
                    !seen.contains(&fs),
                    "{code:#x} decodes like another code: {fs:?}"
                );
                seen.push(fs);
            }
        }
        assert!(seen.len() > 40);
    }

    #[test]
    fn data_abort_fields() {
        // ldrsh x7, [..] acquire: ISV, SAS=1, SSE, SRT=7, SF, AR, S1PTW, DFSC = access flag L2.
        let iss =
            (1 << 24) | (1 << 22) | (1 << 21) | (7 << 16) | (1 << 15) | (1 << 14) | (1 << 7) | 0x0a;
        let da = DataAbort::from_iss(iss);
        assert!(da.isv && da.sse && da.sf && da.ar && da.s1ptw && !da.wnr && !da.ea);
        assert_eq!((da.sas, da.srt, da.access_bytes()), (1, 7, Some(2)));
        assert_eq!(
            format!("{da}"),
            "read, 2 bytes, x7, sign-extended, acquire/release, access flag fault level 2, \
             on stage-1 table walk, ISV=1"
        );
    }

    /// The ISS of a load with syndrome into x/w1: SAS, SSE, SF as given.
    fn load(sas: u32, sse: bool, sf: bool) -> DataAbort {
        DataAbort::from_iss(
            (1 << 24) | (sas << 22) | ((sse as u32) << 21) | (1 << 16) | ((sf as u32) << 15) | 0x07,
        )
    }

    #[test]
    fn load_values_follow_sse_and_sf() {
        // Raw values have their top bit set at each size, and junk above the access.
        let raw = [
            0xdead_beef_cafe_ba80,
            0xdead_beef_cafe_8001,
            0xdead_beef_8000_0001,
        ];
        let cases: [(&str, u32, bool, bool, u64, u64); 10] = [
            ("ldrb w1", 0, false, false, raw[0], 0x80),
            ("ldrsb w1", 0, true, false, raw[0], 0xffff_ff80),
            ("ldrsb x1", 0, true, true, raw[0], 0xffff_ffff_ffff_ff80),
            ("ldrh w1", 1, false, false, raw[1], 0x8001),
            ("ldrsh w1", 1, true, false, raw[1], 0xffff_8001),
            ("ldrsh x1", 1, true, true, raw[1], 0xffff_ffff_ffff_8001),
            ("ldr w1", 2, false, false, raw[2], 0x8000_0001),
            ("ldrsw x1", 2, true, true, raw[2], 0xffff_ffff_8000_0001),
            (
                "ldr x1",
                3,
                false,
                true,
                0x8000_0000_0000_0001,
                0x8000_0000_0000_0001,
            ),
            ("ldrsb w1, positive", 0, true, false, 0x17f, 0x7f),
        ];
        for (insn, sas, sse, sf, raw, expect) in cases {
            assert_eq!(load(sas, sse, sf).load_value(raw), expect, "{insn}");
        }
        // A positive value sign-extends to itself at every size and width.
        for sas in 0..4 {
            for (sse, sf) in [(true, true), (true, false), (false, true), (false, false)] {
                let v = load(sas, sse, sf).load_value(0x11);
                assert_eq!(v, 0x11, "SAS={sas} SSE={sse} SF={sf}");
            }
        }
        let da = load(0, true, false);
        assert!(
            da.isv && da.sse && !da.sf && da.srt == 1 && !da.wnr,
            "ISS.SF is decoded"
        );
    }

    #[test]
    fn data_abort_without_syndrome_says_so() {
        let da = DataAbort::from_iss((1 << 10) | (1 << 9) | (1 << 8) | (1 << 6) | 0x10);
        assert_eq!(da.access_bytes(), None);
        assert_eq!(
            format!("{da}"),
            "write, synchronous external abort, cache maintenance, external abort, FAR not valid, ISV=0"
        );
    }

    #[test]
    fn instruction_abort_fields() {
        let ia = InstructionAbort::from_iss((1 << 7) | 0x06);
        assert!(ia.s1ptw && !ia.fnv);
        assert_eq!(
            format!("{ia}"),
            "translation fault level 2, on stage-1 table walk"
        );
    }

    #[test]
    fn sysreg_access_fields() {
        // mrs x5, cntpct_el0: (3, 3, 14, 0, 1), read.
        let iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (5 << 5) | 1;
        let acc = SysRegAccess::from_iss(iss);
        assert!(acc.read);
        assert_eq!(acc.rt, 5);
        assert_eq!(format!("{acc}"), "read S3_3_C14_C0_1 (CNTPCT_EL0) into x5");
        let xzr = SysRegAccess::from_iss(0x30_2804 | (31 << 5));
        assert_eq!(format!("{xzr}"), "write S3_0_C10_C2_0 (MAIR_EL1) from xzr");
    }

    #[test]
    fn wfx_and_imm16() {
        assert_eq!(Wfx::from_iss(0).kind, WfxKind::Wfi);
        assert_eq!(Wfx::from_iss(1).kind, WfxKind::Wfe);
        let wfit = Wfx::from_iss(2 | 4 | (9 << 5));
        assert_eq!((wfit.kind, wfit.timeout_reg), (WfxKind::Wfit, Some(9)));
        assert_eq!(format!("{wfit}"), "WFIT, timeout in x9");
        assert_eq!(Wfx::from_iss(3).to_string(), "WFET");
        assert_eq!(SvcImm::from_iss(0x1ab_cdef).0, 0xcdef);
        assert_eq!(SvcImm(0x42).to_string(), "imm16 0x0042");
    }
}
