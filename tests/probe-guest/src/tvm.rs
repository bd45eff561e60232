//! The registers HCR_EL2.TVM traps (the eleven every CPU has, [`TvmReg`], and the ones that come
//! with a feature, [`FeatReg`]), the value the probe writes to each, and what it must read back.
//! Pure logic: the register access itself is in the binary (`sysreg.rs`).

use crate::abi::{mair_override, sctlr_override, tcr_override, CoherencyMode};
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
    /// TCR flips TBI1 (bit 38, upper VA range unused) and makes the TTBR1 walks write-through
    /// (IRGN1/ORGN1 = 0b10; never walked); MAIR keeps indices 0..2 and sets 3..7 to
    /// [`MAIR_PROBE_HIGH`]; the rest take arbitrary patterns.
    pub fn test_value(self, current: u64) -> u64 {
        match self {
            TvmReg::Sctlr => current ^ (1 << 15),
            TvmReg::Ttbr0 => current ^ (1 << 48),
            TvmReg::Ttbr1 => pick(current, 0x005a_0000_7654_3000, 0x00a5_0000_1234_5000),
            TvmReg::Tcr => ((current ^ (1 << 38)) & !(0xf << 24)) | (0b1010 << 24),
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
    /// MAIR, SCTLR and TCR read back el2visor's rewrite in mair-trap modes (TVM traps writes
    /// only; el2visor writes the rewritten value): [`mair_override`], [`sctlr_override`],
    /// [`tcr_override`]. AFSR0/1 and AMAIR are IMPLEMENTATION DEFINED and may be RAZ/WI, so 0 is
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
            TvmReg::Sctlr if overrides => sctlr_override(written),
            TvmReg::Tcr if overrides => tcr_override(written),
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

/// The registers HCR_EL2.TVM traps writes to only where the CPU implements their feature (Arm
/// ARM, HCR_EL2.TVM), each advertised by a field of ID_AA64MMFR3_EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatReg {
    /// FEAT_TCR2.
    Tcr2,
    /// FEAT_SCTLR2.
    Sctlr2,
    /// FEAT_AIE: attributes 8..15 (same byte format as MAIR_EL1).
    Mair2,
    /// FEAT_AIE: IMPLEMENTATION DEFINED auxiliary attributes 8..15.
    Amair2,
    /// FEAT_S1PIE: stage-1 permission indirection, EL1 and EL0.
    Pir,
    Pire0,
    /// FEAT_S1POE: stage-1 permission overlays, EL1 and EL0.
    Por1,
    Por0,
    /// FEAT_S2POE: stage-2 permission overlay (read at EL1, used by EL2's stage 2).
    S2por,
}

/// ID_AA64MMFR3_EL1 fields (4 bits each, non-zero = implemented).
const MMFR3_TCRX: u32 = 0;
const MMFR3_SCTLRX: u32 = 4;
const MMFR3_S1PIE: u32 = 8;
const MMFR3_S1POE: u32 = 16;
const MMFR3_S2POE: u32 = 20;
const MMFR3_AIE: u32 = 24;

/// TCR2_EL1.E0POE (bit 2): permission overlays for EL0 accesses; the probe runs nothing at EL0.
pub const TCR2_E0POE: u64 = 1 << 2;

impl FeatReg {
    /// All nine, in the order the probe checks them.
    pub const ALL: [FeatReg; 9] = [
        FeatReg::Tcr2,
        FeatReg::Sctlr2,
        FeatReg::Mair2,
        FeatReg::Amair2,
        FeatReg::Pir,
        FeatReg::Pire0,
        FeatReg::Por1,
        FeatReg::Por0,
        FeatReg::S2por,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeatReg::Tcr2 => "TCR2_EL1",
            FeatReg::Sctlr2 => "SCTLR2_EL1",
            FeatReg::Mair2 => "MAIR2_EL1",
            FeatReg::Amair2 => "AMAIR2_EL1",
            FeatReg::Pir => "PIR_EL1",
            FeatReg::Pire0 => "PIRE0_EL1",
            FeatReg::Por1 => "POR_EL1",
            FeatReg::Por0 => "POR_EL0",
            FeatReg::S2por => "S2POR_EL1",
        }
    }

    fn mmfr3_field(self) -> u32 {
        match self {
            FeatReg::Tcr2 => MMFR3_TCRX,
            FeatReg::Sctlr2 => MMFR3_SCTLRX,
            FeatReg::Mair2 | FeatReg::Amair2 => MMFR3_AIE,
            FeatReg::Pir | FeatReg::Pire0 => MMFR3_S1PIE,
            FeatReg::Por1 | FeatReg::Por0 => MMFR3_S1POE,
            FeatReg::S2por => MMFR3_S2POE,
        }
    }

    /// Whether the CPU whose ID_AA64MMFR3_EL1 is `mmfr3` has the register.
    pub fn implemented(self, mmfr3: u64) -> bool {
        (mmfr3 >> self.mmfr3_field()) & 0xf != 0
    }

    /// A value to write that is safe while the probe runs and, where the register allows it,
    /// differs from `current` so that a dropped write is caught. The probe never turns on what
    /// would consult these registers (TCR2_EL1.PIE, POE, AIE; VTCR_EL2 is el2visor's), so PIR,
    /// PIRE0, POR, S2POR, MAIR2 and AMAIR2 take arbitrary patterns (POR's 4-bit fields below
    /// 0b1000, MAIR2 with Normal-NC and write-through bytes for the override). TCR2_EL1 flips
    /// E0POE where FEAT_S1POE is implemented (nothing runs at EL0) and is written back unchanged
    /// otherwise, as is SCTLR2_EL1: each of their fields belongs to a feature of its own.
    pub fn test_value(self, current: u64, mmfr3: u64) -> u64 {
        match self {
            FeatReg::Tcr2 if FeatReg::Por1.implemented(mmfr3) => current ^ TCR2_E0POE,
            FeatReg::Tcr2 | FeatReg::Sctlr2 => current,
            FeatReg::Mair2 => pick(current, 0xee4f_0cbb_44ff_f004, 0x00ff_44bb_f0ee_0c04),
            FeatReg::Amair2 => pick(current, 0x4400_0000, 0xbb00_0000),
            FeatReg::Pir | FeatReg::Pire0 => {
                pick(current, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)
            }
            FeatReg::Por1 | FeatReg::Por0 | FeatReg::S2por => {
                pick(current, 0x0123_4567_7654_3210, 0x7654_3210_0123_4567)
            }
        }
    }

    /// Check the read-back of `written`: MAIR2_EL1 reads the MAIR override in mair-trap modes;
    /// AMAIR2_EL1 (IMPLEMENTATION DEFINED) may also read 0; every other register what was
    /// written.
    pub fn check(
        self,
        written: u64,
        read: u64,
        mode: Option<CoherencyMode>,
    ) -> Result<(), Mismatch> {
        let overrides = mode.map(|m| m.overrides_mair()).unwrap_or(false);
        let expected = match self {
            FeatReg::Mair2 if overrides => mair_override(written),
            _ => written,
        };
        let raz_ok = self == FeatReg::Amair2;
        if read == expected || (raz_ok && read == 0) {
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

/// The write-back attribute nibbles: a byte made of two of them is kept by the MAIR rewrite.
const WB_NIBBLES: [u64; 7] = [0x5, 0x6, 0x7, 0xc, 0xd, 0xe, 0xf];

/// The MAIR_EL1 value the Rt sweep writes through x`n` (n < 31): the probe's live indices 0..2
/// ([`crate::pagetable::PROBE_MAIR`]), a Normal-NC and a write-through byte (both rewritten to
/// 0xff in mair-trap modes) and a write-back byte of its own (kept, so the value read back still
/// tells which register it came from).
pub fn rt_sweep_mair(n: u64) -> u64 {
    let own = (WB_NIBBLES[(n / 7) as usize] << 4) | WB_NIBBLES[(n % 7) as usize];
    (crate::pagetable::PROBE_MAIR & 0x00ff_ffff) | (0x44 << 24) | (own << 32) | (0xbb << 40)
}

/// The CONTEXTIDR_EL1 value the Rt sweep writes through x`n` (PROCID, bits 31:0).
pub fn rt_sweep_contextidr(n: u64) -> u64 {
    0xc0de_0000 | (n << 8) | n
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
    fn sctlr_and_tcr_expectations_follow_mode() {
        let trap = Some(CoherencyMode::MairTrap);
        // SCTLR with the MMU on and C = 0: reads C (and I) set in mair-trap modes only.
        let w = 0x30d0_0801;
        assert!(TvmReg::Sctlr.check(w, w, None).is_ok());
        assert!(TvmReg::Sctlr.check(w, w, trap).is_err());
        assert!(TvmReg::Sctlr.check(w, 0x30d0_1805, trap).is_ok());
        // TCR with NC walks for TTBR0 and WT for TTBR1: all write-back in mair-trap modes.
        let t = TvmReg::Tcr.test_value(0x0000_0005_00b5_3510);
        assert_eq!(t, 0x0000_0045_0ab5_3510);
        assert!(TvmReg::Tcr.check(t, t, Some(CoherencyMode::Fwb)).is_ok());
        assert!(TvmReg::Tcr.check(t, t, trap).is_err());
        assert!(TvmReg::Tcr.check(t, 0x0000_0045_05b5_3510, trap).is_ok());
    }

    #[test]
    fn feature_registers_follow_mmfr3() {
        // QEMU -cpu max style: TCRX, SCTLRX, S1PIE, S2PIE, S1POE, S2POE, AIE all 1.
        let max = 0x0111_1111;
        assert!(FeatReg::ALL.iter().all(|r| r.implemented(max)));
        assert!(!FeatReg::ALL.iter().any(|r| r.implemented(0)));
        assert!(FeatReg::Mair2.implemented(1 << 24) && !FeatReg::Mair2.implemented(1 << 28));
        assert!(FeatReg::S2por.implemented(1 << 20) && !FeatReg::S2por.implemented(1 << 12));
        assert_eq!(FeatReg::Tcr2.test_value(0x10, max), 0x14);
        assert_eq!(FeatReg::Tcr2.test_value(0x10, 1), 0x10);
        for reg in [FeatReg::Mair2, FeatReg::Pir, FeatReg::Por0, FeatReg::S2por] {
            for current in [0, 0x0123_4567_89ab_cdef, 0x0123_4567_7654_3210] {
                assert_ne!(reg.test_value(current, max), current, "{reg:?}");
            }
        }
        for nibble in 0..16 {
            assert!((FeatReg::Por1.test_value(0, max) >> (4 * nibble)) & 0x8 == 0);
        }
    }

    #[test]
    fn feature_register_expectations() {
        let trap = Some(CoherencyMode::MairTrapSlow);
        let w = FeatReg::Mair2.test_value(0, 0);
        assert!(FeatReg::Mair2.check(w, w, None).is_ok());
        assert!(FeatReg::Mair2.check(w, w, trap).is_err());
        assert!(FeatReg::Mair2.check(w, mair_override(w), trap).is_ok());
        assert!(FeatReg::Amair2.check(0x4400_0000, 0, trap).is_ok());
        assert!(FeatReg::Pir.check(5, 0, trap).is_err());
        assert!(FeatReg::Pir.check(5, 5, trap).is_ok());
    }

    #[test]
    fn rt_sweep_values_are_distinct_after_the_rewrite() {
        let mut seen = std::vec::Vec::new();
        for n in 0..31 {
            let v = rt_sweep_mair(n);
            assert_eq!(v & 0xff_ffff, crate::pagetable::PROBE_MAIR & 0xff_ffff);
            let o = mair_override(v);
            assert_ne!(o, v, "the rewrite must be exercised");
            assert_eq!(o & 0xff_ffff, mair_override(crate::pagetable::PROBE_MAIR) & 0xff_ffff);
            assert!(!seen.contains(&o) && o != 0, "x{n}");
            seen.push(o);
            let c = rt_sweep_contextidr(n);
            assert!(c != 0 && c >> 32 == 0);
            assert!((0..n).all(|m| rt_sweep_contextidr(m) != c));
        }
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
