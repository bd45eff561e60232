//! The coherency policy: how el2visor keeps a guest that maps RAM uncached (Normal-NC,
//! write-through) coherent with the caches, and the pure MAIR_EL1 rewrite behind it.
//!
//! # Modes
//! - `fwb`: HCR_EL2.FWB = 1 and guest RAM at Stage 2 with MemAttr 0b0110 (forced write-back);
//!   needs FEAT_S2FWB (ID_AA64MMFR2_EL1.FWB). Nothing is trapped.
//! - `mair-trap`: HCR_EL2.TVM = 1. Every guest write to the registers TVM traps (the eleven of
//!   every CPU and the feature ones, `trap::sysreg::TvmReg`) reaches el2visor, which rewrites
//!   each way a guest has to make its RAM accesses uncached (below), so Stage 2 (Device for
//!   devices, Normal WB for RAM) alone decides. A fast path in the EL2 vector serves the writes
//!   that need no more than the MAIR rewrite; `fastpath=off` sends them all to the Rust slow path.
//! - `off`: no override; the guest's attributes combine with Stage 2 as the architecture says.
//!
//! `coherency=auto` (the default) picks `fwb` when the CPU has it and `mair-trap` otherwise.
//!
//! # Every way to uncached RAM, closed in mair-trap mode
//! - MAIR_EL1 and MAIR2_EL1 (FEAT_AIE, same byte format): [`override_mair`].
//! - SCTLR_EL1.C = 0 with the MMU on makes every stage-1 data access and table walk
//!   Non-cacheable, whatever MAIR says; SCTLR_EL1.I = 0 does the same to instruction fetches in
//!   unified caches. [`override_sctlr`] sets both while M = 1. Neither changes what a correct
//!   guest may rely on: invalidations from EL1 are clean-and-invalidate while HCR_EL2.VM = 1, and
//!   instruction-cache maintenance is needed with I = 0 as well (Arm ARM D7.5.7).
//! - SCTLR_EL1.M = 0 turns stage 1 off, and data accesses are then Device-nGnRnE: an uncached
//!   view of RAM that no MAIR rewrite reaches. HCR_EL2.DC = 1 makes stage 1 (off) produce Normal
//!   write-back instead, for data, instruction fetches and walks, whatever SCTLR_EL1.{C, I}
//!   say. But DC also makes the PE behave as if SCTLR_EL1.M were 0 for everything except a read
//!   of the register: set while the guest's MMU is on, it would switch the guest's translation
//!   off. So DC follows the guest's M ([`hcr_dc`]): set while M = 0, clear while M = 1, changed
//!   on each trapped SCTLR_EL1 write. That needs TVM: without the trap el2visor could not see the
//!   MMU go on and clear DC in time. DC may be cached in TLBs, so each change of DC is followed
//!   by a TLB invalidation of the VMID's stage-1 entries. A direct read of SCTLR_EL1.M still
//!   returns what the guest wrote; HCR_EL2.TRVM is not involved.
//! - TCR_EL1.IRGN0/ORGN0/IRGN1/ORGN1 make table walks Non-cacheable or write-through:
//!   [`override_tcr`] makes every one write-back (0b01), keeping 0b11.
//! - Set/way maintenance (DC ISW/CSW/CISW) is not trapped: see docs/coherency.md for why it has
//!   nothing left to break once every access above is cacheable.
//!
//! # What the guest reads back
//! HCR_EL2.TVM traps writes only. A guest that reads MAIR_EL1 (SCTLR_EL1, TCR_EL1) reads the
//! hardware register, which holds the rewritten value. el2visor does not set HCR_EL2.TRVM to hide that, because TRVM traps
//! reads of all eleven registers, ESR_EL1 and FAR_EL1 included, so every guest exception handler
//! would take two extra traps. Linux never reads MAIR_EL1 back for anything but diagnostics. The
//! values the guest wrote are kept per CPU (`percpu::PerCpu::guest_mair`, by the fast and the slow
//! path alike; `guest_sctlr` and `guest_tcr` by the slow path, which serves those two) and shown
//! in the guest fault report beside the values in effect.
//!
//! # MAIR attribute bytes
//! High nibble 0: Device (low nibble 0x0 nGnRnE, 0x4 nGnRE, 0x8 nGRE, 0xc GRE; other low nibbles
//! are FEAT_XS variants or UNPREDICTABLE). Otherwise Normal: outer = high nibble, inner = low
//! nibble, each 0b0100 non-cacheable, 0b00RW / 0b10RW write-through, 0b01RW (RW ≠ 00) / 0b11RW
//! write-back, RW = read/write-allocate hints.
//!
//! [`override_mair`] keeps Device bytes (Stage 2 keeps device regions Device, and a guest that
//! maps RAM as Device is merely slow, not incoherent), keeps Normal bytes whose outer and inner
//! halves are both write-back (the guest's allocation hints included), and turns every other
//! Normal byte into 0xff (write-back, read/write-allocate, non-transient).
//!
//! Reserved encodings with a non-zero high nibble and a low nibble of 0000: with a write-back
//! outer half they are kept as they are, because 0xf0 is Tagged Normal WB with FEAT_MTE2 and
//! rewriting it would silently drop a guest's MTE tag checking, and the rest of that family is
//! cacheable on the outer level whatever it means. With a non-write-back outer half (0x40 and
//! 0xa0 are FEAT_XS Normal-NC and write-through) they become 0xff like any non-write-back byte.
//!
//! # AMAIR_EL1
//! AMAIR_EL1 holds IMPLEMENTATION DEFINED auxiliary attributes, with no architected format.
//! el2visor writes the guest's value unchanged: the MAIR byte rewrite has no meaning for it, and
//! applying it anyway would set bits whose effect nobody can know on an unknown core. On the
//! cores el2visor targets (Cortex-A72, QEMU's `max`), AMAIR_EL1 has no effect at all (RES0 or
//! RAZ/WI). The memory type a guest access gets is the MAIR + Stage 2 combination that AT/PAR_EL1
//! reports, which is what the probe guest checks.

#![forbid(unsafe_code)]

use aarch64_cpu::registers::{HCR_EL2, SCTLR_EL1, TCR_EL1};
use core::fmt;
use core::str::FromStr;
use tock_registers::fields::Field;

/// The coherency mode a VM runs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Fwb,
    MairTrap,
    Off,
}

/// What the command line asked for (`coherency=auto|fwb|mair-trap|off`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Request {
    #[default]
    Auto,
    Fwb,
    MairTrap,
    Off,
}

/// A coherency request that cannot be honoured or parsed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CoherencyError {
    /// `coherency=fwb` on a CPU without FEAT_S2FWB.
    FwbUnavailable,
    /// A `coherency=` value that is not one of the four.
    UnknownRequest(alloc::string::String),
}

impl fmt::Display for CoherencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FwbUnavailable => f.write_str(
                "coherency=fwb was asked for, but this CPU does not implement FEAT_S2FWB \
                 (ID_AA64MMFR2_EL1.FWB = 0); use coherency=auto or coherency=mair-trap",
            ),
            Self::UnknownRequest(value) => write!(
                f,
                "unknown coherency mode {value:?}: expected coherency=auto, fwb, mair-trap or off"
            ),
        }
    }
}

impl FromStr for Request {
    type Err = CoherencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "fwb" => Ok(Self::Fwb),
            "mair-trap" => Ok(Self::MairTrap),
            "off" => Ok(Self::Off),
            other => Err(CoherencyError::UnknownRequest(other.into())),
        }
    }
}

/// The mode to run in for a request on a CPU that has (or lacks) FEAT_S2FWB.
pub fn resolve(req: Request, cpu_has_fwb: bool) -> Result<Mode, CoherencyError> {
    match req {
        Request::Auto if cpu_has_fwb => Ok(Mode::Fwb),
        Request::Auto => Ok(Mode::MairTrap),
        Request::Fwb if cpu_has_fwb => Ok(Mode::Fwb),
        Request::Fwb => Err(CoherencyError::FwbUnavailable),
        Request::MairTrap => Ok(Mode::MairTrap),
        Request::Off => Ok(Mode::Off),
    }
}

/// FEAT_S2FWB from ID_AA64MMFR2_EL1 (FWB field, bits 43:40, non-zero when implemented).
pub const fn has_fwb(id_aa64mmfr2: u64) -> bool {
    (id_aa64mmfr2 >> 40) & 0xf != 0
}

/// The mode's name as the banner and the command line spell it.
pub const fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Fwb => "fwb",
        Mode::MairTrap => "mair-trap",
        Mode::Off => "off",
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(mode_name(*self))
    }
}

/// A VM's coherency mode together with whether the TVM fast path serves its traps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setting {
    pub mode: Mode,
    /// `false` with `fastpath=off`: every TVM write goes through the Rust slow path.
    pub fast_path: bool,
}

impl Setting {
    /// The value the vendor call `COHERENCY_MODE` returns: 0 off, 1 fwb, 2 mair-trap,
    /// 3 mair-trap with the fast path disabled.
    pub const fn abi_code(self) -> u64 {
        match (self.mode, self.fast_path) {
            (Mode::Off, _) => 0,
            (Mode::Fwb, _) => 1,
            (Mode::MairTrap, true) => 2,
            (Mode::MairTrap, false) => 3,
        }
    }
}

/// Outer or inner half of a Normal attribute: write-back (transient 0b01RW with RW ≠ 00, or
/// non-transient 0b11RW).
const fn nibble_is_write_back(n: u8) -> bool {
    match n >> 2 {
        0b11 => true,
        0b01 => n & 0b11 != 0,
        _ => false,
    }
}

/// Whether [`override_mair`] leaves the attribute byte as it is: Device, Normal write-back on
/// both levels, or the reserved write-back-outer family with a 0000 low nibble (0xf0 tagged).
pub const fn attr_is_kept(attr: u8) -> bool {
    let (hi, lo) = (attr >> 4, attr & 0xf);
    hi == 0 || (nibble_is_write_back(hi) && (lo == 0 || nibble_is_write_back(lo)))
}

/// Rewrite a guest MAIR_EL1 value so no Normal attribute is anything but write-back: every
/// byte that [`attr_is_kept`] rejects becomes 0xff. See the module docs for the rules.
pub const fn override_mair(value: u64) -> u64 {
    let mut out = 0u64;
    let mut i = 0;
    while i < 8 {
        let attr = (value >> (i * 8)) as u8;
        let new = if attr_is_kept(attr) { attr } else { 0xff };
        out |= (new as u64) << (i * 8);
        i += 1;
    }
    out
}

/// SCTLR_EL1 as el2visor writes it when the guest writes `value` in mair-trap mode: with the
/// MMU on (M = 1), C and I set, so no stage-1 access is made Non-cacheable by them; with the MMU
/// off, unchanged (HCR_EL2.DC makes those accesses write-back, see [`hcr_dc`]).
pub const fn override_sctlr(value: u64) -> u64 {
    if value & SCTLR_EL1::M::Enable.value != 0 {
        value | SCTLR_EL1::C::Cacheable.value | SCTLR_EL1::I::Cacheable.value
    } else {
        value
    }
}

/// The four TCR_EL1 fields giving the cacheability of table walks (IRGN0, ORGN0, IRGN1, ORGN1).
const TCR_WALK_FIELDS: [Field<u64, TCR_EL1::Register>; 4] =
    [TCR_EL1::IRGN0, TCR_EL1::ORGN0, TCR_EL1::IRGN1, TCR_EL1::ORGN1];

/// TCR_EL1 as el2visor writes it when the guest writes `value` in mair-trap mode: each walk
/// cacheability field that is not write-back (0b00 Non-cacheable, 0b10 write-through) becomes
/// 0b01 (write-back, read/write-allocate); 0b01 and 0b11 (write-back, no write-allocate) stay.
pub fn override_tcr(value: u64) -> u64 {
    TCR_WALK_FIELDS.iter().fold(value, |v, f| {
        // Bit 0 of the field set = write-back (0b01 or 0b11).
        if f.read(v) & 1 == 0 {
            (v & !(f.mask << f.shift)) | (0b01 << f.shift)
        } else {
            v
        }
    })
}

/// HCR_EL2 with DC as it must be while SCTLR_EL1 holds `sctlr`: set exactly when TVM is set
/// (mair-trap mode, where el2visor sees every SCTLR_EL1 write and can clear DC again when the MMU
/// goes on) and the guest's stage-1 MMU is off. Every other bit of `hcr` is kept.
pub const fn hcr_dc(hcr: u64, sctlr: u64) -> u64 {
    let tvm = hcr & HCR_EL2::TVM::SET.value != 0;
    let mmu_off = sctlr & SCTLR_EL1::M::Enable.value == 0;
    if tvm && mmu_off {
        hcr | HCR_EL2::DC::SET.value
    } else {
        hcr & !HCR_EL2::DC::SET.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn resolves_requests() {
        assert_eq!(resolve(Request::Auto, true), Ok(Mode::Fwb));
        assert_eq!(resolve(Request::Auto, false), Ok(Mode::MairTrap));
        assert_eq!(resolve(Request::Fwb, true), Ok(Mode::Fwb));
        assert_eq!(
            resolve(Request::Fwb, false),
            Err(CoherencyError::FwbUnavailable)
        );
        assert_eq!(resolve(Request::MairTrap, true), Ok(Mode::MairTrap));
        assert_eq!(resolve(Request::Off, true), Ok(Mode::Off));
        let msg = CoherencyError::FwbUnavailable.to_string();
        assert!(
            msg.contains("FEAT_S2FWB") && msg.contains("coherency=mair-trap"),
            "{msg}"
        );
    }

    #[test]
    fn parses_command_line_values_and_names_modes() {
        for (text, req, mode) in [
            ("fwb", Request::Fwb, Mode::Fwb),
            ("mair-trap", Request::MairTrap, Mode::MairTrap),
            ("off", Request::Off, Mode::Off),
        ] {
            assert_eq!(text.parse::<Request>(), Ok(req));
            assert_eq!(mode_name(mode), text);
            assert_eq!(mode.to_string(), text);
        }
        assert_eq!("auto".parse::<Request>(), Ok(Request::Auto));
        let err = "mair".parse::<Request>().unwrap_err();
        assert_eq!(err, CoherencyError::UnknownRequest("mair".into()));
        assert!(err.to_string().contains("\"mair\""));
    }

    #[test]
    fn fwb_field() {
        assert!(!has_fwb(0));
        assert!(has_fwb(1 << 40));
        assert!(!has_fwb(0xffff_f0ff_ffff_ffff), "other fields do not count");
        assert!(
            has_fwb((1 << 40) | 0x0011_0000_1011),
            "FWB = 1 among other fields"
        );
        assert!(has_fwb(0xf << 40));
    }

    #[test]
    fn abi_codes() {
        let s = |mode, fast_path| Setting { mode, fast_path }.abi_code();
        assert_eq!(
            [
                s(Mode::Off, true),
                s(Mode::Fwb, true),
                s(Mode::MairTrap, true)
            ],
            [0, 1, 2]
        );
        assert_eq!(s(Mode::MairTrap, false), 3);
    }

    #[test]
    fn linux_mair_keeps_device_and_tagged_and_forces_nc_and_wt() {
        // Linux: nGnRnE 0x00, nGnRE 0x04, NC 0x44, Normal 0xff, Tagged 0xf0, WT 0xbb.
        assert_eq!(override_mair(0x0000_bbf0_ff44_0400), 0x0000_fff0_ffff_0400);
    }

    #[test]
    fn byte_rules() {
        for keep in [
            0x00, 0x04, 0x08, 0x0c, 0x01, 0xff, 0xee, 0xcc, 0x55, 0x77, 0xf7, 0x5f, 0xf0, 0x50,
        ] {
            assert_eq!(override_mair(keep), keep, "{keep:#04x} must be kept");
        }
        for force in [
            0x44, 0x4f, 0xf4, 0xbb, 0x88, 0x11, 0x33, 0x40, 0xa0, 0x10, 0xfb, 0x8f, 0x4c, 0xc4,
        ] {
            assert_eq!(override_mair(force), 0xff, "{force:#04x} must become 0xff");
        }
    }

    #[test]
    fn sctlr_rule_forces_c_and_i_only_with_the_mmu_on() {
        // Linux's INIT_SCTLR_EL1_MMU_ON-like value: M, C, I already set.
        assert_eq!(override_sctlr(0x30d0_5d25), 0x30d0_5d25);
        assert_eq!(override_sctlr(0x30d0_0801), 0x30d0_1805, "M = 1: C (bit 2) and I (bit 12)");
        assert_eq!(override_sctlr(0x30d0_1801), 0x30d0_1805);
        assert_eq!(override_sctlr(0x30d0_0800), 0x30d0_0800, "MMU off: HCR_EL2.DC's job");
        assert_eq!(override_sctlr(0x30d0_0804), 0x30d0_0804);
    }

    #[test]
    fn tcr_rule_makes_every_walk_write_back() {
        // Per field: 00 -> 01, 10 -> 01, 01 and 11 stay; fields at 9:8, 11:10, 25:24, 27:26.
        assert_eq!(override_tcr(0), 0x0500_0500);
        assert_eq!(override_tcr(0x0a00_0a00), 0x0500_0500);
        assert_eq!(override_tcr(0x0f00_0f00), 0x0f00_0f00);
        assert_eq!(override_tcr(0x0d00_0700), 0x0d00_0700);
        assert_eq!(override_tcr(0x0200_0800), 0x0500_0500);
        // Linux's TCR (T0SZ/T1SZ 16, WBWA walks, inner shareable, 4K/4K, IPS 48 bits, ASID 16).
        assert_eq!(override_tcr(0x0000_0015_b550_3510), 0x0000_0015_b550_3510);
        // The probe's: NC walks for TTBR0.
        assert_eq!(override_tcr(0x0000_0005_0080_3010), 0x0000_0005_0580_3510);
        assert_eq!(override_tcr(!0x0f00_0f00), !0x0a00_0a00);
    }

    proptest! {
        #[test]
        fn tcr_rule_only_touches_walk_fields_and_is_idempotent(v in any::<u64>()) {
            let o = override_tcr(v);
            prop_assert_eq!(o & !0x0f00_0f00, v & !0x0f00_0f00);
            prop_assert_eq!(override_tcr(o), o);
            for shift in [8, 10, 24, 26] {
                let f = (o >> shift) & 3;
                prop_assert!(f == 0b01 || f == 0b11, "field at {} is {:#b}", shift, f);
            }
        }
    }

    #[test]
    fn dc_follows_tvm_and_the_guest_mmu() {
        let tvm = 1 << 26;
        let dc = 1 << 12;
        let hcr = 0x8438_063f; // mair-trap's HCR_EL2 (TVM set)
        assert_eq!(hcr_dc(hcr, 0x30d0_0800), hcr | dc, "MMU off: DC on");
        assert_eq!(hcr_dc(hcr | dc, 0x30d0_1805), hcr, "MMU on: DC off");
        assert_eq!(hcr_dc(hcr & !tvm, 0), hcr & !tvm, "no TVM, never DC");
        assert_eq!(hcr_dc((hcr & !tvm) | dc, 0), hcr & !tvm);
        assert_eq!(hcr_dc(u64::MAX, 1), !dc);
    }

    /// The write-back nibbles, listed by hand from the Arm ARM rather than computed.
    const WB_NIBBLES: [u8; 7] = [0x5, 0x6, 0x7, 0xc, 0xd, 0xe, 0xf];

    fn bytes(v: u64) -> impl Iterator<Item = u8> {
        (0..8).map(move |i| (v >> (i * 8)) as u8)
    }

    proptest! {
        #[test]
        fn override_is_idempotent(v in any::<u64>()) {
            prop_assert_eq!(override_mair(override_mair(v)), override_mair(v));
        }

        #[test]
        fn device_and_write_back_bytes_are_preserved(v in any::<u64>()) {
            for (a, b) in bytes(v).zip(bytes(override_mair(v))) {
                let both_wb = WB_NIBBLES.contains(&(a >> 4)) && WB_NIBBLES.contains(&(a & 0xf));
                if a >> 4 == 0 || both_wb {
                    prop_assert_eq!(a, b, "byte {:#04x} of {:#x} changed", a, v);
                } else if b != a {
                    prop_assert_eq!(b, 0xff);
                }
            }
        }

        #[test]
        fn every_result_byte_is_write_back_or_device(v in any::<u64>()) {
            for b in bytes(override_mair(v)) {
                let device = b >> 4 == 0;
                let outer_wb = WB_NIBBLES.contains(&(b >> 4));
                let inner_ok = b & 0xf == 0 || WB_NIBBLES.contains(&(b & 0xf));
                prop_assert!(device || (outer_wb && inner_ok), "byte {:#04x} of {:#x}", b, v);
            }
        }

        #[test]
        fn only_the_tagged_family_keeps_a_zero_inner_half(v in any::<u64>()) {
            for (a, b) in bytes(v).zip(bytes(override_mair(v))) {
                if b >> 4 != 0 && b & 0xf == 0 {
                    prop_assert_eq!(a, b, "a zero inner half is only ever kept, never produced");
                }
            }
        }
    }
}
