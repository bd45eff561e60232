//! VTCR_EL2 and VTTBR_EL2 for the 4 KiB granule, computed from the CPU's ID registers.
//!
//! The IPA size is the CPU's PA size (ID_AA64MMFR0_EL1.PARange), capped at 48 bits because
//! el2visor does not use FEAT_LPA2 (52-bit addresses with 4 KiB pages need VTCR_EL2.DS = 1 and a
//! different descriptor layout); PS is capped the same way. A caller may ask for less.
//!
//! Start level and concatenation (Arm ARM, "Concatenated translation tables at the initial
//! lookup level"): with the 4 KiB granule level L resolves IPA bits down to 12 + 9 * (3 - L).
//! The bits left over at the start level select one of up to 16 concatenated tables, so a start
//! level may resolve between 1 and 13 bits. We pick the deepest start level that fits, since
//! each level saved is one memory access less on every TLB miss:
//!
//! | IPA bits | start level | root tables | root size | SL0  |
//! |----------|-------------|-------------|-----------|------|
//! | 32       | 2           | 4           | 16 KiB    | 0b00 |
//! | 36       | 1           | 1 (64 entries) | 4 KiB  | 0b01 |
//! | 40       | 1           | 2           | 8 KiB     | 0b01 |
//! | 42       | 1           | 8           | 32 KiB    | 0b01 |
//! | 44       | 0           | 1 (32 entries) | 4 KiB  | 0b10 |
//! | 48       | 0           | 1           | 4 KiB     | 0b10 |
//!
//! The root must be aligned to its size; the page source guarantees that.

use super::descriptor::{level_shift, ENTRIES};
use super::error::S2Error;
use crate::mm::addr::{Pa, PAGE_SIZE};
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, VTCR_EL2};
use core::fmt;

/// Largest IPA and output size used: 48 bits (no FEAT_LPA2).
pub const MAX_IPA_BITS: u8 = 48;
/// Smallest IPA size el2visor configures.
pub const MIN_IPA_BITS: u8 = 32;

/// The physical address size an ID_AA64MMFR0_EL1.PARange value stands for.
pub const fn pa_range_bits(pa_range: u8) -> Option<u8> {
    match pa_range {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

/// A Stage-2 translation configuration: everything VTCR_EL2 encodes plus what the table code
/// derives from it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Vtcr {
    /// PARange field as the CPU reported it.
    pub pa_range: u8,
    /// Output (physical) address bits used: the CPU's, capped at 48.
    pub pa_bits: u8,
    /// IPA bits: 64 - T0SZ.
    pub ipa_bits: u8,
    /// Level of the root table (0, 1 or 2).
    pub start_level: u8,
    /// Number of concatenated 4 KiB tables forming the root (1 to 16).
    pub root_tables: usize,
    /// 8 or 16.
    pub vmid_bits: u8,
}

impl Vtcr {
    /// The largest IPA space the CPU supports, from the raw ID_AA64MMFR0_EL1 (PARange, bits 3:0)
    /// and ID_AA64MMFR1_EL1 (VMIDBits, bits 7:4: 0b0010 = 16 bits, anything else 8 bits).
    pub fn from_id_regs(mmfr0: u64, mmfr1: u64) -> Result<Self, S2Error> {
        let vmid16 = ID_AA64MMFR1_EL1::VMIDBits::Bits16.matches_all(mmfr1);
        Self::new(ID_AA64MMFR0_EL1::PARange.read(mmfr0) as u8, vmid16)
    }

    /// The largest IPA space for a PARange value.
    pub fn new(pa_range: u8, vmid16: bool) -> Result<Self, S2Error> {
        let bits = pa_range_bits(pa_range).ok_or(S2Error::UnsupportedPaRange(pa_range))?;
        let pa_bits = if bits > MAX_IPA_BITS {
            MAX_IPA_BITS
        } else {
            bits
        };
        let mut v = Self {
            pa_range,
            pa_bits,
            ipa_bits: pa_bits,
            start_level: 0,
            root_tables: 1,
            vmid_bits: if vmid16 { 16 } else { 8 },
        };
        v.set_ipa_bits(pa_bits);
        Ok(v)
    }

    /// The same configuration with a smaller IPA space (`32..=pa_bits`).
    pub fn with_ipa_bits(mut self, ipa_bits: u8) -> Result<Self, S2Error> {
        if !(MIN_IPA_BITS..=self.pa_bits).contains(&ipa_bits) {
            return Err(S2Error::UnsupportedIpaBits {
                requested: ipa_bits,
                max: self.pa_bits,
            });
        }
        self.set_ipa_bits(ipa_bits);
        Ok(self)
    }

    fn set_ipa_bits(&mut self, ipa_bits: u8) {
        // Deepest start level whose leftover bits fit in 16 concatenated tables (9 + 4 bits).
        let level = (0..=2u8)
            .rev()
            .find(|&l| ipa_bits as u32 - level_shift(l) <= 13)
            .unwrap_or(0);
        let resolved = ipa_bits as u32 - level_shift(level);
        self.ipa_bits = ipa_bits;
        self.start_level = level;
        self.root_tables = if resolved > 9 { 1 << (resolved - 9) } else { 1 };
    }

    /// VTCR_EL2.T0SZ.
    pub const fn t0sz(&self) -> u64 {
        64 - self.ipa_bits as u64
    }

    /// VTCR_EL2.SL0 for the 4 KiB granule: 0b00 level 2, 0b01 level 1, 0b10 level 0.
    pub const fn sl0(&self) -> u64 {
        use VTCR_EL2::SL0::Value::*;
        (match self.start_level {
            0 => Granule4KBLevel0,
            1 => Granule4KBLevel1,
            _ => Granule4KBLevel2,
        }) as u64
    }

    /// VTCR_EL2.PS: the PARange value, capped at 0b101 (48 bits).
    pub const fn ps(&self) -> u64 {
        let max = VTCR_EL2::PS::Value::PA_48B_256TB as u64;
        if self.pa_range as u64 > max {
            max
        } else {
            self.pa_range as u64
        }
    }

    /// The VTCR_EL2 value: T0SZ, SL0, IRGN0 = ORGN0 = write-back read/write-allocate,
    /// SH0 = Inner Shareable, TG0 = 4 KiB, PS, VS, and RES1 bit 31.
    pub const fn value(&self) -> u64 {
        use VTCR_EL2::*;
        let vs = if self.vmid_bits == 16 { VS::Bits16 } else { VS::Bits8 };
        T0SZ.val(self.t0sz()).value
            | SL0.val(self.sl0()).value
            | IRGN0::NormalWBRAWA.value
            | ORGN0::NormalWBRAWA.value
            | SH0::Inner.value
            | TG0::Granule4KB.value
            | PS.val(self.ps()).value
            | vs.value
            | RES1::SET.value
    }

    /// Number of descriptors in the (possibly concatenated) root.
    pub const fn root_entries(&self) -> usize {
        1 << (self.ipa_bits as u32 - level_shift(self.start_level))
    }

    /// Root size in bytes; the root must be aligned to it.
    pub const fn root_size(&self) -> u64 {
        self.root_tables as u64 * PAGE_SIZE
    }

    /// One past the highest IPA.
    pub const fn ipa_limit(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// One past the highest output address.
    pub const fn pa_limit(&self) -> u64 {
        1 << self.pa_bits
    }

    /// The largest VMID.
    pub const fn max_vmid(&self) -> u16 {
        if self.vmid_bits == 16 {
            u16::MAX
        } else {
            u8::MAX as u16
        }
    }

    /// VTTBR_EL2 = root (BADDR) | VMID << 48. CnP stays 0. The caller (the table code) has
    /// checked that `vmid` fits and that `root` is aligned to `root_size()`.
    pub fn vttbr(&self, root: Pa, vmid: u16) -> u64 {
        debug_assert!(vmid <= self.max_vmid() && root.is_aligned(self.root_size()));
        root.raw() | (vmid as u64) << 48
    }
}

impl fmt::Display for Vtcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VTCR_EL2 {:#x}: {}-bit IPA, {}-bit PA, start level {}, {} root table{} ({} entries), {}-bit VMID",
            self.value(),
            self.ipa_bits,
            self.pa_bits,
            self.start_level,
            self.root_tables,
            if self.root_tables == 1 { "" } else { "s" },
            self.root_entries(),
            self.vmid_bits
        )
    }
}

const _: () = assert!(ENTRIES == 512);

#[cfg(test)]
mod tests {
    use super::*;

    /// (PARange, IPA bits, start level, root tables, root entries, VTCR_EL2 with 8-bit VMID).
    const TABLE: [(u8, u8, u8, usize, usize, u64); 7] = [
        (0, 32, 2, 4, 2048, 0x8000_3520),
        (1, 36, 1, 1, 64, 0x8001_355c),
        (2, 40, 1, 2, 1024, 0x8002_3558),
        (3, 42, 1, 8, 4096, 0x8003_3556),
        (4, 44, 0, 1, 32, 0x8004_3594),
        (5, 48, 0, 1, 512, 0x8005_3590),
        (6, 48, 0, 1, 512, 0x8005_3590),
    ];

    #[test]
    fn every_pa_range() {
        for (pa_range, ipa, level, tables, entries, value) in TABLE {
            let v = Vtcr::new(pa_range, false).unwrap();
            assert_eq!(v.ipa_bits, ipa, "PARange {pa_range}");
            assert_eq!(v.pa_bits, ipa);
            assert_eq!(v.start_level, level, "PARange {pa_range}");
            assert_eq!(v.root_tables, tables, "PARange {pa_range}");
            assert_eq!(v.root_entries(), entries, "PARange {pa_range}");
            assert_eq!(v.root_size(), tables as u64 * 4096);
            assert_eq!(v.value(), value, "PARange {pa_range}: {v}");
            assert_eq!(v.t0sz(), 64 - ipa as u64);
            let v16 = Vtcr::new(pa_range, true).unwrap();
            assert_eq!(v16.value(), value | 1 << 19);
            assert_eq!(v16.max_vmid(), u16::MAX);
        }
        assert_eq!(Vtcr::new(7, false), Err(S2Error::UnsupportedPaRange(7)));
    }

    #[test]
    fn root_covers_exactly_the_ipa_space() {
        for (pa_range, ..) in TABLE {
            let v = Vtcr::new(pa_range, false).unwrap();
            let covered = v.root_entries() as u64 * (1 << level_shift(v.start_level));
            assert_eq!(covered, v.ipa_limit());
            assert!(v.root_tables <= 16 && v.root_entries() <= v.root_tables * 512);
        }
    }

    #[test]
    fn from_id_registers() {
        // QEMU cortex-a72: ID_AA64MMFR0_EL1 = 0x1124 (PARange 4), MMFR1 VMIDBits = 0 (8 bits).
        let v = Vtcr::from_id_regs(0x1124, 0).unwrap();
        assert_eq!((v.ipa_bits, v.vmid_bits, v.start_level), (44, 8, 0));
        // 52-bit PA with 16-bit VMIDs: capped at 48 bits.
        let v = Vtcr::from_id_regs(0x6, 0x20).unwrap();
        assert_eq!(
            (v.ipa_bits, v.pa_bits, v.ps(), v.vmid_bits),
            (48, 48, 5, 16)
        );
        // Reserved VMIDBits values fall back to 8 bits, which always works.
        assert_eq!(Vtcr::from_id_regs(0x5, 0x10).unwrap().vmid_bits, 8);
        assert_eq!(Vtcr::from_id_regs(0x5, 0x30).unwrap().vmid_bits, 8);
        // Only VMIDBits (7:4) and PARange (3:0) count.
        let v = Vtcr::from_id_regs(0xffff_fff0 | 0x2, 0xffff_ff0f | 0x20).unwrap();
        assert_eq!((v.pa_range, v.vmid_bits, v.value()), (2, 16, 0x800a_3558));
    }

    #[test]
    fn smaller_ipa_and_vttbr() {
        let v = Vtcr::new(5, true).unwrap().with_ipa_bits(40).unwrap();
        assert_eq!((v.start_level, v.root_tables, v.ps()), (1, 2, 5));
        assert_eq!(v.value() & 0x3f, 24);
        assert!(Vtcr::new(2, false).unwrap().with_ipa_bits(44).is_err());
        assert!(Vtcr::new(2, false).unwrap().with_ipa_bits(31).is_err());
        assert_eq!(v.vttbr(Pa(0x8000_2000), 0x1234), 0x1234_0000_8000_2000);
        let v33 = Vtcr::new(2, false).unwrap().with_ipa_bits(33).unwrap();
        assert_eq!((v33.start_level, v33.root_tables), (2, 8));
        let v35 = Vtcr::new(2, false).unwrap().with_ipa_bits(35).unwrap();
        assert_eq!((v35.start_level, v35.root_tables), (1, 1));
    }
}
