//! Stage-2 descriptors for the 4 KiB granule and 48-bit output addresses: building them,
//! decoding them, and `check()`, which rejects every bit pattern el2visor must never write.
//!
//! Layout (Arm ARM, VMSAv8-64 Stage 2): valid bit 0; bit 1 = table (levels 0-2) or page
//! (level 3), 0 = block (levels 1-2 only); next-level table or output address in bits 47:12;
//! leaf attributes MemAttr 5:2, S2AP 7:6 (6 = read, 7 = write), SH 9:8, AF 10, XN 54:53.
//! Invalid entries are always written as 0, so a stale bit in an invalid entry is a bug.

use super::memtype::{AttrEncoding, MemType, S2Attrs};
use crate::mm::addr::Pa;

pub const VALID: u64 = 1 << 0;
/// Table at levels 0-2, page at level 3.
pub const TABLE_OR_PAGE: u64 = 1 << 1;
pub const MEMATTR_SHIFT: u32 = 2;
pub const MEMATTR_MASK: u64 = 0xf << MEMATTR_SHIFT;
pub const S2AP_R: u64 = 1 << 6;
pub const S2AP_W: u64 = 1 << 7;
pub const SH_SHIFT: u32 = 8;
pub const SH_MASK: u64 = 0b11 << SH_SHIFT;
pub const AF: u64 = 1 << 10;
pub const XN_SHIFT: u32 = 53;
pub const XN_MASK: u64 = 0b11 << XN_SHIFT;
/// XN[1:0] = 0b10: not executable at EL1 or EL0 (with or without FEAT_XNX).
pub const XN_NONE: u64 = 0b10 << XN_SHIFT;
/// Output / next-table address bits 47:12.
pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Every attribute bit a leaf written by el2visor may carry.
pub const LEAF_ATTR_MASK: u64 = MEMATTR_MASK | S2AP_R | S2AP_W | SH_MASK | AF | XN_MASK;

/// Number of descriptors in one 4 KiB table.
pub const ENTRIES: usize = 512;

/// The lowest IPA bit a level resolves: 39, 30, 21, 12 for levels 0..=3.
pub const fn level_shift(level: u8) -> u32 {
    12 + 9 * (3 - level as u32)
}

/// The span of one entry at `level`: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
pub const fn level_size(level: u8) -> u64 {
    1 << level_shift(level)
}

/// Whether a leaf (block or page) may live at `level` with the 4 KiB granule.
pub const fn leaf_allowed(level: u8) -> bool {
    level >= 1 && level <= 3
}

/// A decoded descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Descriptor {
    Invalid,
    /// Points at the next-level table.
    Table(Pa),
    /// A block (levels 1-2) or page (level 3) mapping `oa` with `attrs`.
    Leaf {
        oa: Pa,
        attrs: S2Attrs,
    },
}

/// A table descriptor pointing at the 4 KiB table at `next`.
pub fn table(next: Pa) -> u64 {
    debug_assert!(
        next.raw() & !OA_MASK == 0,
        "table address {next:?} not a 48-bit page address"
    );
    (next.raw() & OA_MASK) | TABLE_OR_PAGE | VALID
}

/// A block (levels 1-2) or page (level 3) descriptor. `oa` must be aligned to the level's size
/// and `attrs` must pass `S2Attrs::validate`; the callers in this module check both.
pub fn leaf(oa: Pa, level: u8, attrs: S2Attrs, enc: AttrEncoding) -> u64 {
    debug_assert!(leaf_allowed(level), "no leaf at level {level}");
    debug_assert!(oa.is_aligned(level_size(level)) && oa.raw() & !OA_MASK == 0);
    debug_assert!(attrs.validate().is_ok());
    let mut d = (oa.raw() & OA_MASK) | VALID | AF;
    if level == 3 {
        d |= TABLE_OR_PAGE;
    }
    d |= attrs.mem.memattr(enc) << MEMATTR_SHIFT;
    d |= attrs.mem.shareability() << SH_SHIFT;
    if attrs.read {
        d |= S2AP_R;
    }
    if attrs.write {
        d |= S2AP_W;
    }
    if !attrs.exec {
        d |= XN_NONE;
    }
    d
}

/// Whether `desc` is a valid leaf at `level`.
pub const fn is_leaf(desc: u64, level: u8) -> bool {
    desc & VALID != 0 && (level == 3 || desc & TABLE_OR_PAGE == 0)
}

/// Whether `desc` is a valid table descriptor at `level`.
pub const fn is_table(desc: u64, level: u8) -> bool {
    desc & VALID != 0 && level < 3 && desc & TABLE_OR_PAGE != 0
}

/// The address field (next table or output address).
pub const fn address(desc: u64) -> Pa {
    Pa(desc & OA_MASK)
}

/// Check `desc` as a descriptor at `level` under encoding `enc`, then decode it.
pub fn decode(desc: u64, level: u8, enc: AttrEncoding) -> Result<Descriptor, &'static str> {
    check(desc, level, enc)?;
    if desc & VALID == 0 {
        return Ok(Descriptor::Invalid);
    }
    if is_table(desc, level) {
        return Ok(Descriptor::Table(address(desc)));
    }
    let memattr = (desc & MEMATTR_MASK) >> MEMATTR_SHIFT;
    let mem = MemType::from_memattr(memattr, enc).ok_or("MemAttr outside the policy")?;
    let attrs = S2Attrs {
        mem,
        read: desc & S2AP_R != 0,
        write: desc & S2AP_W != 0,
        exec: desc & XN_MASK == 0,
    };
    Ok(Descriptor::Leaf {
        oa: address(desc),
        attrs,
    })
}

/// Reject any descriptor el2visor must never write: stale bits in an invalid entry, attribute or
/// RES0 bits in a table descriptor, a block at level 0 or the reserved block encoding at level 3,
/// reserved/contiguous/DBM bits in a leaf, an output address not aligned to the block size,
/// a clear access flag, reserved shareability or XN encodings, a MemAttr the policy does not use
/// under `enc`, shareability that disagrees with the policy, or executable non-RAM.
pub fn check(desc: u64, level: u8, enc: AttrEncoding) -> Result<(), &'static str> {
    if level > 3 {
        return Err("there is no level above 3 with the 4 KiB granule");
    }
    if desc & VALID == 0 {
        return if desc == 0 {
            Ok(())
        } else {
            Err("invalid descriptor with stale bits (invalid entries are written as 0)")
        };
    }
    if level < 3 && desc & TABLE_OR_PAGE != 0 {
        if desc & !(OA_MASK | TABLE_OR_PAGE | VALID) != 0 {
            return Err("table descriptor with attribute, ignored or RES0 bits set");
        }
        return Ok(());
    }
    if level == 3 && desc & TABLE_OR_PAGE == 0 {
        return Err("block encoding at level 3 is reserved");
    }
    if level == 0 {
        return Err("block at level 0 is not allowed with the 4 KiB granule");
    }
    if desc & !(OA_MASK | LEAF_ATTR_MASK | TABLE_OR_PAGE | VALID) != 0 {
        return Err("leaf with reserved, contiguous, DBM or software bits set");
    }
    if desc & OA_MASK & (level_size(level) - 1) != 0 {
        return Err("block output address not aligned to the block size");
    }
    if desc & AF == 0 {
        return Err("leaf with the access flag clear (every access would fault)");
    }
    let sh = (desc & SH_MASK) >> SH_SHIFT;
    if sh == 0b01 {
        return Err("reserved shareability encoding 0b01");
    }
    let xn = desc & XN_MASK;
    if xn != 0 && xn != XN_NONE {
        return Err("XN encoding other than 0b00 or 0b10 (el2visor writes no others)");
    }
    let memattr = (desc & MEMATTR_MASK) >> MEMATTR_SHIFT;
    let Some(mem) = MemType::from_memattr(memattr, enc) else {
        return Err("MemAttr is not one of the policy's encodings for this FWB mode");
    };
    if sh != mem.shareability() {
        return Err("shareability does not match the memory-type policy");
    }
    if xn == 0 && !mem.is_ram() {
        return Err("executable mapping of memory that is not RAM");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttrEncoding::*;

    const ALL_ENC: [AttrEncoding; 2] = [Classic, Fwb];

    #[test]
    fn ram_block_bits() {
        let d = leaf(Pa(0x4000_0000), 1, S2Attrs::ram(), Classic);
        // valid, block, MemAttr 1111, S2AP RW, SH IS, AF, executable.
        assert_eq!(
            d,
            0x4000_0000 | 1 | (0xf << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10)
        );
        let d = leaf(Pa(0x4000_0000), 1, S2Attrs::ram(), Fwb);
        assert_eq!((d >> 2) & 0xf, 0b0110);
    }

    #[test]
    fn device_page_bits() {
        let d = leaf(Pa(0x0900_0000), 3, S2Attrs::device(), Classic);
        let want = 0x0900_0000
            | 0b11
            | (0b0001 << 2)
            | (0b11 << 6)
            | (0b10 << 8)
            | (1 << 10)
            | (0b10 << 53);
        assert_eq!(d, want);
    }

    #[test]
    fn round_trip_every_type_level_and_permission() {
        for enc in ALL_ENC {
            for mem in MemType::ALL {
                for level in 1..=3u8 {
                    for perm in 0..8u8 {
                        let attrs = S2Attrs {
                            mem,
                            read: perm & 1 != 0,
                            write: perm & 2 != 0,
                            exec: perm & 4 != 0 && mem.is_ram(),
                        };
                        let oa = Pa(level_size(level) * 3);
                        let d = leaf(oa, level, attrs, enc);
                        assert_eq!(check(d, level, enc), Ok(()), "{d:#x} level {level}");
                        assert_eq!(decode(d, level, enc), Ok(Descriptor::Leaf { oa, attrs }));
                    }
                }
            }
        }
        let t = table(Pa(0x8000_1000));
        for level in 0..=2 {
            assert_eq!(
                decode(t, level, Classic),
                Ok(Descriptor::Table(Pa(0x8000_1000)))
            );
        }
        assert_eq!(decode(0, 2, Classic), Ok(Descriptor::Invalid));
    }

    #[test]
    fn check_rejects_bad_descriptors() {
        let ram = |level| leaf(Pa(0), level, S2Attrs::ram(), Classic);
        let dev3 = leaf(Pa(0x1000), 3, S2Attrs::device(), Classic);
        let cases: &[(u64, u8, &str)] = &[
            (0x1000, 2, "stale invalid"),
            (ram(2) | (1 << 52), 2, "contiguous"),
            (ram(2) | (1 << 51), 2, "DBM"),
            (ram(2) | (1 << 11), 2, "bit 11"),
            (ram(2) | (1 << 48), 2, "OA beyond 48 bits"),
            (ram(2) | 0x1000, 2, "unaligned 2M block"),
            (ram(1) | 0x20_0000, 1, "unaligned 1G block"),
            (ram(1) & !TABLE_OR_PAGE, 0, "block at level 0"),
            (dev3 & !TABLE_OR_PAGE, 3, "block at level 3"),
            (ram(2) & !AF, 2, "AF clear"),
            ((ram(2) & !SH_MASK) | (0b01 << SH_SHIFT), 2, "SH 01"),
            (ram(2) | (0b01 << XN_SHIFT), 2, "XN 01"),
            (
                (ram(2) & !MEMATTR_MASK) | (0b0110 << 2),
                2,
                "MemAttr foreign to classic",
            ),
            (
                (ram(2) & !SH_MASK) | (0b10 << SH_SHIFT),
                2,
                "RAM not inner shareable",
            ),
            (dev3 & !XN_MASK, 3, "executable device"),
            (table(Pa(0x2000)) | S2AP_R, 1, "table with attributes"),
            (table(Pa(0x2000)) | (1 << 63), 1, "table with NSTable"),
            (ram(2), 4, "level 4"),
        ];
        for &(d, level, what) in cases {
            assert!(check(d, level, Classic).is_err(), "{what}: {d:#x} accepted");
        }
        // The FWB RAM encoding is foreign to classic mode and vice versa.
        let fwb_ram = leaf(Pa(0), 2, S2Attrs::ram(), Fwb);
        assert!(check(fwb_ram, 2, Classic).is_err());
        assert!(check(ram(2), 2, Fwb).is_err());
    }
}
