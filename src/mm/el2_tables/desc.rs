//! Descriptor bits of the non-VHE EL2 stage-1 regime (4 KiB granule, one VA range: TTBR0_EL2).
//!
//! In this regime bit 54 is XN (there is no PXN/UXN split and bit 53 is RES0), only AP[2]
//! (bit 7, read-only when set) controls access, and AP[1] (bit 6) is set as RES1, as KVM's nVHE
//! tables do. Memory types come from MAIR_EL2 through AttrIndx[4:2]; see
//! [`mair_el2`](super::regs::mair_el2) for the three attributes used.

use super::El2Mem;
use crate::mm::addr::Pa;

/// Bit 0: the descriptor is valid.
pub const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0–2) or page (level 3); clear for a block.
pub const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDX_SHIFT: u32 = 2;
const ATTR_INDX_MASK: u64 = 0b111 << ATTR_INDX_SHIFT;
/// AP[1]: RES1 in a single-privilege regime.
const AP1: u64 = 1 << 6;
/// AP[2]: read-only.
pub const AP_RO: u64 = 1 << 7;
const SH_SHIFT: u32 = 8;
const SH_MASK: u64 = 0b11 << SH_SHIFT;
const SH_INNER: u64 = 0b11 << SH_SHIFT;
/// Access flag: set on every leaf so the first access does not fault.
pub const AF: u64 = 1 << 10;
/// Execute-never for the EL2 regime.
pub const XN: u64 = 1 << 54;
/// Output address bits [47:12].
pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// MAIR_EL2 index of Device-nGnRE.
pub const ATTR_DEVICE: u64 = 0;
/// MAIR_EL2 index of Normal write-back, read/write-allocate, inner and outer.
pub const ATTR_NORMAL_WB: u64 = 1;
/// MAIR_EL2 index of Normal non-cacheable.
pub const ATTR_NORMAL_NC: u64 = 2;

/// Attribute bits of a leaf for `mem` (everything but the address and the type bits).
pub const fn leaf_attrs(mem: El2Mem) -> u64 {
    let normal = (ATTR_NORMAL_WB << ATTR_INDX_SHIFT) | SH_INNER | AF | AP1;
    match mem {
        El2Mem::Device => (ATTR_DEVICE << ATTR_INDX_SHIFT) | AF | AP1 | XN,
        El2Mem::Code => normal | AP_RO,
        El2Mem::ReadOnly => normal | AP_RO | XN,
        El2Mem::ReadWrite => normal | XN,
        // Never written as a leaf (`build` leaves holes invalid); an invalid descriptor if it were.
        El2Mem::Unmapped => 0,
    }
}

/// A block (level 1 or 2) or page (level 3) descriptor mapping `pa` as `mem`.
pub const fn leaf(pa: Pa, level: u8, mem: El2Mem) -> u64 {
    let kind = if level == 3 {
        VALID | TABLE_OR_PAGE
    } else {
        VALID
    };
    (pa.raw() & OA_MASK) | leaf_attrs(mem) | kind
}

/// A table descriptor pointing at the next-level table at `pa`.
pub const fn table(pa: Pa) -> u64 {
    (pa.raw() & OA_MASK) | VALID | TABLE_OR_PAGE
}

/// The memory kind a leaf descriptor encodes, or `None` when its attribute bits are not exactly
/// one of the four this module produces (a writable or device mapping that is executable, a
/// missing access flag, a stray bit).
pub fn decode_leaf(desc: u64) -> Option<El2Mem> {
    let attrs = desc & !(OA_MASK | VALID | TABLE_OR_PAGE);
    [
        El2Mem::Device,
        El2Mem::Code,
        El2Mem::ReadOnly,
        El2Mem::ReadWrite,
    ]
    .into_iter()
    .find(|&mem| leaf_attrs(mem) == attrs)
}

/// MAIR index of a descriptor (for dumps and tests).
pub const fn attr_index(desc: u64) -> u64 {
    (desc & ATTR_INDX_MASK) >> ATTR_INDX_SHIFT
}

/// Shareability field of a descriptor (3 = inner shareable).
pub const fn shareability(desc: u64) -> u64 {
    (desc & SH_MASK) >> SH_SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let pa = Pa(0x4020_0000);
        let code = leaf(pa, 3, El2Mem::Code);
        assert_eq!(
            code,
            0x4020_0000 | 0b11 | (1 << 2) | (0b11 << 8) | (1 << 10) | (0b11 << 6)
        );
        assert_eq!(code & XN, 0, "code is executable");
        let rw = leaf(pa, 2, El2Mem::ReadWrite);
        assert_eq!(rw & 0b11, 0b01, "a level-2 leaf is a block");
        assert!(rw & XN != 0 && rw & AP_RO == 0);
        let dev = leaf(Pa(0x0900_0000), 1, El2Mem::Device);
        assert_eq!(attr_index(dev), ATTR_DEVICE);
        assert_eq!(shareability(dev), 0);
        assert!(dev & XN != 0);
        let ro = leaf(pa, 3, El2Mem::ReadOnly);
        assert!(ro & XN != 0 && ro & AP_RO != 0 && shareability(ro) == 3);
        assert_eq!(table(Pa(0x1234_5000)), 0x1234_5003);
    }

    #[test]
    fn decode_round_trips_and_rejects_others() {
        for mem in [
            El2Mem::Device,
            El2Mem::Code,
            El2Mem::ReadOnly,
            El2Mem::ReadWrite,
        ] {
            for level in 1..=3 {
                assert_eq!(decode_leaf(leaf(Pa(0x4000_0000), level, mem)), Some(mem));
            }
        }
        let writable_exec = leaf(Pa(0), 3, El2Mem::ReadWrite) & !XN;
        assert_eq!(decode_leaf(writable_exec), None);
        assert_eq!(decode_leaf(leaf(Pa(0), 3, El2Mem::Code) & !AF), None);
        assert_eq!(decode_leaf(leaf(Pa(0), 3, El2Mem::Device) & !XN), None);
    }
}
