//! The coherency policy: how el2visor keeps a guest that maps RAM uncached (Normal-NC,
//! write-through) coherent with the caches, and the pure MAIR_EL1 rewrite behind it.
//!
//! # Modes
//! - `fwb`: HCR_EL2.FWB = 1 and guest RAM at Stage 2 with MemAttr 0b0110 (forced write-back);
//!   needs FEAT_S2FWB (ID_AA64MMFR2_EL1.FWB). Nothing is trapped.
//! - `mair-trap`: HCR_EL2.TVM = 1. Every guest write to the eleven TVM registers traps; writes to
//!   MAIR_EL1 are rewritten by [`override_mair`] so every Normal attribute the guest can pick is
//!   write-back, and Stage 2 (Device for devices, Normal WB for RAM) alone decides. A fast path
//!   in the EL2 vector serves these writes; `fastpath=off` sends them all to the Rust slow path.
//! - `off`: no override; the guest's attributes combine with Stage 2 as the architecture says.
//!
//! `coherency=auto` (the default) picks `fwb` when the CPU has it and `mair-trap` otherwise.
//!
//! # What the guest reads back
//! HCR_EL2.TVM traps writes only. A guest that reads MAIR_EL1 reads the hardware register, which
//! holds the rewritten value. el2visor does not set HCR_EL2.TRVM to hide that, because TRVM traps
//! reads of all eleven registers, ESR_EL1 and FAR_EL1 included, so every guest exception handler
//! would take two extra traps. Linux never reads MAIR_EL1 back for anything but diagnostics. The
//! value the guest wrote is kept per CPU (`percpu::PerCpu::guest_mair`, by the fast and the slow
//! path alike) and shown in the guest fault report beside the value in effect.
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

use core::fmt;
use core::str::FromStr;


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
