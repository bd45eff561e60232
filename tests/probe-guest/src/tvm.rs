//! The eleven registers HCR_EL2.TVM traps, the value the probe writes to each, and what it must
//! read back. Pure logic: the register access itself is in the binary (`sysreg.rs`).

use crate::abi::{mair_override, CoherencyMode};
use core::fmt;

/// A register whose EL1 writes HCR_EL2.TVM traps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// Two values per register: the probe writes the first unless the register already holds it.
fn pick(current: u64, a: u64, b: u64) -> u64 {
    if current == a {
        b
    } else {
        a
    }
}

/// MAIR bytes 3..7 the `tvm_mair` probe writes (indices 0..2 are live and stay):
/// Normal-NC, WT RaWa, Device-GRE, outer NC inner WB, WB Ra no-Wa.
pub const MAIR_PROBE_HIGH: u64 = 0xee4f_0cbb_4400_0000;

impl TvmReg {
    /// All eleven, in the order the probes run.
    pub const ALL: [TvmReg; 11] = [
        TvmReg::Sctlr,
        TvmReg::Ttbr0,
        TvmReg::Ttbr1,
        TvmReg::Tcr,
        TvmReg::Esr,
        TvmReg::Far,
        TvmReg::Afsr0,
        TvmReg::Afsr1,
        TvmReg::Mair,
        TvmReg::Amair,
        TvmReg::Contextidr,
    ];

    /// The probe name (`tvm_<reg>`).
    pub fn probe_name(self) -> &'static str {
        match self {
            TvmReg::Sctlr => "tvm_sctlr",
            TvmReg::Ttbr0 => "tvm_ttbr0",
            TvmReg::Ttbr1 => "tvm_ttbr1",
            TvmReg::Tcr => "tvm_tcr",
            TvmReg::Esr => "tvm_esr",
            TvmReg::Far => "tvm_far",
            TvmReg::Afsr0 => "tvm_afsr0",
            TvmReg::Afsr1 => "tvm_afsr1",
            TvmReg::Mair => "tvm_mair",
            TvmReg::Amair => "tvm_amair",
            TvmReg::Contextidr => "tvm_contextidr",
        }
    }

    /// A value that differs from `current` (so a dropped write is caught) and is safe to hold
    /// while the probe runs with its MMU on:
    /// SCTLR flips UCT (bit 15, EL0 CTR access: no EL0 here); TTBR0 flips ASID bit 0 (all
    /// mappings are global); TTBR1 takes an aligned table address (TCR.EPD1 = 1, never walked);
    /// TCR flips TBI1 (bit 38, upper VA range unused); MAIR keeps indices 0..2 and sets 3..7 to
    /// [`MAIR_PROBE_HIGH`]; the rest take arbitrary patterns.
    pub fn test_value(self, current: u64) -> u64 {
        match self {
            TvmReg::Sctlr => current ^ (1 << 15),
            TvmReg::Ttbr0 => current ^ (1 << 48),
            TvmReg::Ttbr1 => pick(current, 0x005a_0000_7654_3000, 0x00a5_0000_1234_5000),
            TvmReg::Tcr => current ^ (1 << 38),
            TvmReg::Esr => pick(current, 0x9600_0045, 0x5e00_0000),
            TvmReg::Far => pick(current, 0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4320),
            TvmReg::Afsr0 | TvmReg::Afsr1 => pick(current, 0x5a5a_a5a5, 0xa5a5_5a5a),
            TvmReg::Mair => (current & 0x00ff_ffff) | MAIR_PROBE_HIGH,
            TvmReg::Amair => pick(current, 0x4400_0000, 0xbb00_0000),
            TvmReg::Contextidr => pick(current, 0x1234, 0x4321),
        }
    }

    /// Check what was read back after writing `written`. `mode` is el2visor's coherency mode, or
    /// `None` when no el2visor answers (then nothing rewrites the value).
    /// MAIR reads back the override in mair-trap modes (TVM traps writes only; el2visor writes the
    /// overridden value). AFSR0/1 and AMAIR are IMPLEMENTATION DEFINED and may be RAZ/WI, so 0 is
    /// accepted for them as well; for AMAIR in mair-trap modes the MAIR override of the value is
    /// accepted too (el2visor writes AMAIR unchanged, but the issue allowed either).
    pub fn check(
        self,
        written: u64,
        read: u64,
        mode: Option<CoherencyMode>,
    ) -> Result<(), Mismatch> {
        let overrides = mode.map(|m| m.overrides_mair()).unwrap_or(false);
        let expected = match self {
            TvmReg::Mair if overrides => mair_override(written),
            _ => written,
        };
        let raz_ok = matches!(self, TvmReg::Afsr0 | TvmReg::Afsr1 | TvmReg::Amair);
        let amair_override_ok =
            self == TvmReg::Amair && overrides && read == mair_override(written);
        if read == expected || (raz_ok && read == 0) || amair_override_ok {
            Ok(())
        } else {
            Err(Mismatch {
                written,
                expected,
                read,
                raz_ok,
            })
        }
    }
}

/// A read-back that the architecture and el2visor do not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub written: u64,
    pub expected: u64,
    pub read: u64,
    /// 0 would also have been accepted.
    pub raz_ok: bool,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {:#x} read {:#x} expected {:#x}",
            self.written, self.read, self.expected
        )?;
        if self.raz_ok {
            write!(f, " or 0")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn test_values_differ_from_current() {
        for reg in TvmReg::ALL {
            for current in [
                0u64,
                0x00ff_4404,
                0x005a_0000_7654_3000,
                0x9600_0045,
                0x1234,
                0x4400_0000,
            ] {
                assert_ne!(reg.test_value(current), current, "{reg:?}");
            }
        }
    }

    #[test]
    fn mair_value_keeps_live_indices() {
        let v = TvmReg::Mair.test_value(0x00ff_4404);
        assert_eq!(v & 0xff_ffff, 0x00ff_4404);
        assert_eq!(v, 0xee4f_0cbb_44ff_4404);
    }

    #[test]
    fn mair_expectation_follows_mode() {
        let w = 0xee4f_0cbb_44ff_4404;
        assert!(TvmReg::Mair.check(w, w, None).is_ok());
        assert!(TvmReg::Mair.check(w, w, Some(CoherencyMode::Fwb)).is_ok());
        assert!(TvmReg::Mair
            .check(w, w, Some(CoherencyMode::MairTrap))
            .is_err());
        let o = 0xeeff_0cff_ffff_ff04;
        assert!(TvmReg::Mair
            .check(w, o, Some(CoherencyMode::MairTrap))
            .is_ok());
        assert!(TvmReg::Mair
            .check(w, o, Some(CoherencyMode::MairTrapSlow))
            .is_ok());
        assert!(TvmReg::Mair
            .check(w, 0, Some(CoherencyMode::MairTrap))
            .is_err());
    }

    #[test]
    fn raz_only_for_implementation_defined_registers() {
        assert!(TvmReg::Amair.check(0x4400_0000, 0, None).is_ok());
        assert!(TvmReg::Amair
            .check(0x4400_0000, 0xff00_0000, Some(CoherencyMode::MairTrap))
            .is_ok());
        let trap = Some(CoherencyMode::MairTrap);
        assert!(TvmReg::Amair.check(0x4400_0000, 0x4400_0000, trap).is_ok());
        assert!(TvmReg::Amair.check(0x4400_0000, 0xff00_0000, None).is_err());
        assert!(TvmReg::Afsr1.check(0x5a5a_a5a5, 0, None).is_ok());
        assert!(TvmReg::Esr.check(0x9600_0045, 0, None).is_err());
        let e = TvmReg::Far.check(1, 2, None).unwrap_err();
        assert_eq!(std::format!("{e}"), "wrote 0x1 read 0x2 expected 0x1");
    }
}
