//! The guest-visible ABI between el2visor and the probe guest, in one place.
//!
//! Vendor hypervisor service calls use SMCCC owner 6 (fast calls, SMC64 convention, via HVC):
//! function ID in x0, argument in x1, result in x0. Unknown calls return -1 (NOT_SUPPORTED).
//! The MAIR override rule el2visor applies in mair-trap mode is here too, so the probe can compute
//! what a guest must read back. el2visor's own copy of the IDs is `src/trap/abi.rs`, of the rule
//! `src/coherency.rs` (`override_mair`); keep the three in step.

/// `AT_S12E1R(va)`: el2visor runs `AT S12E1R` on the caller's VA and returns PAR_EL1 as read after it.
pub const VENDOR_AT_S12E1R: u64 = 0xc600_0001;
/// `AT_S12E1W(va)`: as [`VENDOR_AT_S12E1R`] with `AT S12E1W`.
pub const VENDOR_AT_S12E1W: u64 = 0xc600_0002;
/// `TRAP_COUNTERS(which)`: TVM register writes served for the calling vCPU so far.
pub const VENDOR_TRAP_COUNTERS: u64 = 0xc600_0003;
/// `TRAP_COUNTERS` argument: writes served by the EL2 assembly fast path.
pub const TRAP_COUNTER_FAST: u64 = 0;
/// `TRAP_COUNTERS` argument: writes served by the full-context slow path.
pub const TRAP_COUNTER_SLOW: u64 = 1;
/// `COHERENCY_MODE()`: see [`CoherencyMode`].
pub const VENDOR_COHERENCY_MODE: u64 = 0xc600_0004;
/// `LOG_LINE(ipa, len)`: el2visor prints the `len` (1..=256) bytes at guest-physical `ipa` as a
/// line of its log; 0, or [`SMCCC_INVALID_PARAMETER`] for a bad length or a range not in RAM.
pub const VENDOR_LOG_LINE: u64 = 0xc600_0005;
/// The longest `LOG_LINE` text.
pub const LOG_LINE_MAX: u64 = 256;
/// SMCCC INVALID_PARAMETER (-3).
pub const SMCCC_INVALID_PARAMETER: i64 = -3;
/// pvpanic events (QEMU docs/specs/pvpanic.rst): bit 0 PANICKED.
pub const PVPANIC_PANICKED: u8 = 1;
/// `SNAPSHOT_TAKE(flags)`: 0 when taken; after a restore the same call returns 1 in x0 and the
/// number of restores in x1. Flag bit 0: log-dirty from now on (for a dirty-only restore).
pub const VENDOR_SNAPSHOT_TAKE: u64 = 0xc600_0010;
pub const SNAPSHOT_LOG_DIRTY: u64 = 1;
/// `SNAPSHOT_RESTORE(kind)`: 0 eager, 1 lazy, 2 dirty-only; does not return on success.
pub const VENDOR_SNAPSHOT_RESTORE: u64 = 0xc600_0011;
/// `SNAPSHOT_INFO(which)`: see `SnapshotInfo`.
pub const VENDOR_SNAPSHOT_INFO: u64 = 0xc600_0012;

/// `SNAPSHOT_INFO` selectors.
pub mod snapshot_info {
    pub const BLOCKS: u64 = 0;
    pub const PAGES: u64 = 1;
    pub const MISSING: u64 = 2;
    pub const DIRTY: u64 = 3;
    pub const CMO_LINES: u64 = 4;
    /// Bit 0 userfault, bit 1 log-dirty, bit 2 held to pages.
    pub const FLAGS: u64 = 5;
    pub const RESTORES: u64 = 6;
}

/// `UID()`: the service's UID (SMCCC convention); used as "is the hypervisor still answering".
pub const VENDOR_UID: u64 = 0xc600_ff01;

/// PSCI SYSTEM_OFF function ID.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// PSCI SYSTEM_RESET function ID.
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI CPU_ON (SMC64) and CPU_OFF function IDs.
pub const PSCI_CPU_ON_64: u64 = 0xc400_0003;
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// PSCI AFFINITY_INFO (SMC64) and its OFF result.
pub const PSCI_AFFINITY_INFO_64: u64 = 0xc400_0004;
pub const PSCI_AFFINITY_OFF: u64 = 1;
/// PSCI PSCI_VERSION function ID.
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// PSCI ALREADY_ON return code (-4).
pub const PSCI_ALREADY_ON: i64 = -4;

/// SMCCC_VERSION, SMCCC_ARCH_FEATURES and the architecture workaround calls (SMC32 IDs).
pub const SMCCC_VERSION: u64 = 0x8000_0000;
pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
pub const SMCCC_ARCH_WORKAROUNDS: [u64; 3] = [0x8000_8000, 0x8000_7fff, 0x8000_3fff];

/// True when an SMCCC result is NOT_SUPPORTED: -1 in x0, or -1 in w0 with the upper half clear
/// (what a 32-bit-only implementation returns).
pub fn is_not_supported(x0: u64) -> bool {
    x0 == u64::MAX || x0 == 0xffff_ffff
}

/// The memory-type policy el2visor runs the calling VM under (`COHERENCY_MODE` result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoherencyMode {
    /// No override: stage 1 and stage 2 combine as the architecture says.
    Off,
    /// FEAT_S2FWB: stage 2 forces RAM to Normal write-back.
    Fwb,
    /// HCR_EL2.TVM with the MAIR override, served by the EL2 fast path.
    MairTrap,
    /// As [`CoherencyMode::MairTrap`] with the fast path disabled (every write takes the slow path).
    MairTrapSlow,
}

impl CoherencyMode {
    /// Decode a `COHERENCY_MODE` result; `None` for a value this ABI does not define.
    pub fn from_raw(x0: u64) -> Option<Self> {
        match x0 {
            0 => Some(Self::Off),
            1 => Some(Self::Fwb),
            2 => Some(Self::MairTrap),
            3 => Some(Self::MairTrapSlow),
            _ => None,
        }
    }

    /// The name el2visor's command line uses for the mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Fwb => "fwb",
            Self::MairTrap => "mair-trap",
            Self::MairTrapSlow => "mair-trap (fast path off)",
        }
    }

    /// Whether MAIR_EL1 writes are rewritten by el2visor.
    pub fn overrides_mair(self) -> bool {
        matches!(self, Self::MairTrap | Self::MairTrapSlow)
    }

    /// Whether guest writes to the eleven TVM registers trap to el2visor.
    pub fn traps_tvm(self) -> bool {
        self.overrides_mair()
    }

    /// PAR_EL1.ATTR expected for guest RAM the guest mapped Normal-NC at stage 1.
    pub fn expected_ram_nc_attr(self) -> u8 {
        match self {
            Self::Off => 0x44,
            Self::Fwb | Self::MairTrap | Self::MairTrapSlow => 0xff,
        }
    }

    /// PAR_EL1.ATTR values accepted for guest RAM mapped Normal WB at stage 1 while
    /// SCTLR_EL1.C = 0 (every stage-1 data access Non-cacheable): write-back under FWB (stage 2
    /// forces it) and mair-trap (el2visor keeps SCTLR_EL1.C set while the MMU is on). Without an
    /// override the architecture gives Normal-NC (0x44, PAR reflects SCTLR_EL1.C), but QEMU 10.0's
    /// `AT` ignores SCTLR_EL1.C and reports 0xff, so off mode accepts both.
    pub fn accepted_c0_attrs(self) -> &'static [u8] {
        match self {
            Self::Off => &[0x44, 0xff],
            Self::Fwb | Self::MairTrap | Self::MairTrapSlow => &[0xff],
        }
    }

    /// PAR_EL1.ATTR expected for guest RAM with the stage-1 MMU off (SCTLR_EL1.M = 0): data
    /// accesses are Device-nGnRnE (0x00) without an override; write-back under FWB and under
    /// mair-trap (el2visor sets HCR_EL2.DC while the guest's MMU is off).
    pub fn expected_mmu_off_attr(self) -> u8 {
        match self {
            Self::Off => 0x00,
            Self::Fwb | Self::MairTrap | Self::MairTrapSlow => 0xff,
        }
    }
}

/// SCTLR_EL1.M, C and I.
pub const SCTLR_M: u64 = 1 << 0;
/// See [`SCTLR_M`].
pub const SCTLR_C: u64 = 1 << 2;
/// See [`SCTLR_M`].
pub const SCTLR_I: u64 = 1 << 12;

/// The SCTLR_EL1 value el2visor puts in the register when the guest writes `value` in mair-trap
/// mode (the same rule as el2visor's `coherency::override_sctlr`): with the MMU on (M = 1), C and
/// I are set, so no stage-1 access can be made Non-cacheable by them; with the MMU off the value
/// stays (el2visor makes MMU-off accesses write-back with HCR_EL2.DC instead).
pub fn sctlr_override(value: u64) -> u64 {
    if value & SCTLR_M != 0 {
        value | SCTLR_C | SCTLR_I
    } else {
        value
    }
}

/// The TCR_EL1 cacheability fields of the table walks: IRGN0 9:8, ORGN0 11:10, IRGN1 25:24,
/// ORGN1 27:26.
pub const TCR_RGN_SHIFTS: [u32; 4] = [8, 10, 24, 26];

/// The TCR_EL1 value el2visor puts in the register when the guest writes `value` in mair-trap
/// mode (el2visor's `coherency::override_tcr`): every walk cacheability field that is not
/// write-back (0b00 Non-cacheable, 0b10 write-through) becomes 0b01 (write-back RaWa); 0b01 and
/// 0b11 (write-back, no write-allocate) stay.
pub fn tcr_override(value: u64) -> u64 {
    let mut v = value;
    for shift in TCR_RGN_SHIFTS {
        if (v >> shift) & 1 == 0 {
            v = (v & !(0b11 << shift)) | (0b01 << shift);
        }
    }
    v
}

/// True for a MAIR cache-policy nibble that is write-back: 0b01RW with RW != 00 (transient) or
/// 0b11RW (non-transient), whatever the allocation hints.
pub fn nibble_is_write_back(n: u8) -> bool {
    let n = n & 0xf;
    (n >> 2 == 0b11) || (n >> 2 == 0b01 && n & 0b11 != 0)
}

/// The override el2visor applies to one MAIR attribute byte in mair-trap mode (the same rule as
/// el2visor's `coherency::override_mair`): Device bytes (high nibble 0) stay as written; Normal
/// bytes whose outer and inner halves are both write-back stay; so does the reserved family with a
/// write-back outer half and a 0000 inner half (0xf0 is Tagged Normal WB with FEAT_MTE2); every
/// other Normal byte (non-cacheable, write-through, or a mix) becomes 0xff (WB RaWa).
pub fn mair_attr_override(attr: u8) -> u8 {
    let (hi, lo) = (attr >> 4, attr & 0xf);
    if hi == 0 || (nibble_is_write_back(hi) && (lo == 0 || nibble_is_write_back(lo))) {
        attr
    } else {
        0xff
    }
}

/// [`mair_attr_override`] applied to all eight bytes of a MAIR_EL1 value.
pub fn mair_override(value: u64) -> u64 {
    let mut out = 0u64;
    for i in 0..8 {
        let byte = (value >> (i * 8)) as u8;
        out |= u64::from(mair_attr_override(byte)) << (i * 8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_keeps_device_and_write_back() {
        for dev in [0x00u8, 0x04, 0x08, 0x0c] {
            assert_eq!(mair_attr_override(dev), dev);
        }
        for wb in [0xffu8, 0xee, 0xcc, 0x77, 0x55, 0xf7, 0xf0, 0x50, 0xc0] {
            assert_eq!(mair_attr_override(wb), wb, "{wb:#x}");
        }
    }

    #[test]
    fn override_rewrites_other_normal_bytes() {
        for other in [0x44u8, 0xbb, 0x88, 0x4f, 0xf4, 0x40, 0xa0, 0x33, 0x11, 0x10] {
            assert_eq!(mair_attr_override(other), 0xff, "{other:#x}");
        }
    }

    #[test]
    fn override_of_every_byte_is_device_or_write_back() {
        for b in 0..=255u8 {
            let o = mair_attr_override(b);
            assert!(
                o >> 4 == 0 || nibble_is_write_back(o >> 4),
                "{b:#x} -> {o:#x}"
            );
            assert_eq!(
                mair_attr_override(o),
                o,
                "override is idempotent for {b:#x}"
            );
        }
    }

    #[test]
    fn override_works_per_byte() {
        assert_eq!(mair_override(0x0000_0000_00ff_4404), 0x0000_0000_00ff_ff04);
        assert_eq!(mair_override(0xee4f_0cbb_44ff_4404), 0xeeff_0cff_ffff_ff04);
    }

    #[test]
    fn sctlr_rule_sets_c_and_i_only_with_the_mmu_on() {
        assert_eq!(sctlr_override(0x30d0_1985), 0x30d0_1985, "C and I already set");
        assert_eq!(sctlr_override(0x30d0_0801), 0x30d0_1805, "MMU on: C and I forced");
        assert_eq!(sctlr_override(0x30d0_0800), 0x30d0_0800, "MMU off: unchanged");
        assert_eq!(sctlr_override(0x30d0_1004), 0x30d0_1004);
    }

    #[test]
    fn tcr_rule_makes_every_walk_write_back() {
        // NC (00) and WT (10) become WB RaWa (01); 01 and 11 stay; nothing else moves.
        assert_eq!(tcr_override(0), 0x0500_0500);
        assert_eq!(tcr_override(0x0a00_0a00), 0x0500_0500);
        assert_eq!(tcr_override(0x0f00_0f00), 0x0f00_0f00);
        assert_eq!(tcr_override(0x0d00_0700), 0x0d00_0700);
        assert_eq!(tcr_override(0x0800_0200), 0x0500_0500);
        assert_eq!(tcr_override(0xffff_ffff_f0ff_f0ff), 0xffff_ffff_f5ff_f5ff);
        for v in [0u64, 0x1234_5678_9abc_def0, u64::MAX, 0x0a00_0a00] {
            assert_eq!(tcr_override(tcr_override(v)), tcr_override(v));
            assert_eq!(tcr_override(v) & !0x0f00_0f00, v & !0x0f00_0f00);
        }
    }

    #[test]
    fn modes_decode() {
        assert_eq!(CoherencyMode::from_raw(2), Some(CoherencyMode::MairTrap));
        assert_eq!(CoherencyMode::from_raw(4), None);
        assert_eq!(CoherencyMode::Off.expected_ram_nc_attr(), 0x44);
        assert!(
            is_not_supported(u64::MAX) && is_not_supported(0xffff_ffff) && !is_not_supported(0)
        );
    }
}
