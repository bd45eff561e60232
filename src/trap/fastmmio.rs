//! The decision of the lean emulated-MMIO path (`trap::dispatch_fast`): from ESR_EL2 alone,
//! whether an exit is a single-register load or store at Stage 2 that can be emulated at once,
//! and its operands. Pure, so the host tests check it against the generic decoder
//! (`trap::iss::DataAbort`), which the slow path uses.

#![forbid(unsafe_code)]

/// A load or store the syndrome fully describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// The transfer register (31 = XZR).
    pub rt: u8,
    /// Sign-extend a load (SSE) …
    pub sse: bool,
    /// … to 64 bits (SF), else to 32 with bits 63:32 zero.
    pub sf: bool,
}

const EC_DABT_LOWER: u64 = 0x24;
const ISV: u64 = 1 << 24;
/// CM (cache maintenance / AT), S1PTW (a Stage-1 walk) and VNCR: not a plain load or store.
const NOT_PLAIN: u64 = (1 << 8) | (1 << 7) | (1 << 13);
/// DFSC: translation or access-flag fault, any level (0b0001xx or 0b0010xx), the faults an
/// unmapped emulated region takes; permission and external aborts go the general way.
fn dfsc_is_translation_or_af(esr: u64) -> bool {
    matches!(esr & 0x3f, 0x04..=0x0b)
}

/// The access a data abort from the guest with syndrome `esr` makes, if it is one the lean path
/// takes: EC 0x24 with a valid instruction syndrome, no cache maintenance, no Stage-1 walk,
/// a translation or access-flag fault.
pub fn decode(esr: u64) -> Option<Access> {
    if esr >> 26 & 0x3f != EC_DABT_LOWER || esr & ISV == 0 || esr & NOT_PLAIN != 0 || !dfsc_is_translation_or_af(esr) {
        return None;
    }
    Some(Access {
        write: esr & (1 << 6) != 0,
        size: 1 << ((esr >> 22) & 3),
        rt: ((esr >> 16) & 0x1f) as u8,
        sse: esr & (1 << 21) != 0,
        sf: esr & (1 << 15) != 0,
    })
}

impl Access {
    /// The value a load puts in Rt: sign- or zero-extended from the access size as SSE says,
    /// bits 63:32 cleared for a 32-bit register.
    pub fn load_value(&self, raw: u64) -> u64 {
        let shift = 64 - 8 * self.size as u32;
        let v = if self.sse { (((raw << shift) as i64) >> shift) as u64 } else { (raw << shift) >> shift };
        if self.sf {
            v
        } else {
            v & 0xffff_ffff
        }
    }

    /// The bytes a store writes from Rt's value.
    pub fn store_value(&self, reg: u64) -> u64 {
        if self.size == 8 {
            reg
        } else {
            reg & ((1u64 << (8 * self.size as u32)) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trap::iss::DataAbort;

    /// Every ISS the lean decoder accepts decodes as the generic decoder says, and it refuses
    /// what the generic path must see (ISV = 0, CM, S1PTW, permission faults, other classes).
    #[test]
    fn agrees_with_the_generic_decoder() {
        let mut accepted = 0;
        for sas in 0..4u64 {
            for flags in 0..32u64 {
                for dfsc in [0x04u64, 0x05, 0x06, 0x07, 0x09, 0x0b, 0x0d, 0x0f, 0x10, 0x21] {
                    for rt in [0u64, 5, 30, 31] {
                        let iss = (flags & 1) << 24 | sas << 22 | (flags >> 1 & 1) << 21 | rt << 16 | (flags >> 2 & 1) << 15
                            | (flags >> 3 & 1) << 6 | (flags >> 4 & 1) << 8 | dfsc;
                        let esr = EC_DABT_LOWER << 26 | 1 << 25 | iss;
                        let g = DataAbort::from_iss(iss as u32);
                        match decode(esr) {
                            Some(a) => {
                                accepted += 1;
                                assert!(g.isv && !g.cm && (0x04..=0x0b).contains(&dfsc));
                                assert_eq!((a.size, a.rt, a.sse, a.sf, a.write), (1 << g.sas, g.srt, g.sse, g.sf, g.wnr));
                                for raw in [0u64, 0x80, 0xdead_beef_cafe_ba80, u64::MAX] {
                                    assert_eq!(a.load_value(raw), g.load_value(raw), "esr {esr:#x} raw {raw:#x}");
                                }
                            }
                            None => assert!(!g.isv || g.cm || !(0x04..=0x0b).contains(&dfsc), "esr {esr:#x} refused"),
                        }
                    }
                }
            }
        }
        assert!(accepted > 0);
        // Another class, an S1PTW fault, a VNCR access: the general way.
        assert_eq!(decode(0x25 << 26 | 1 << 24 | 0x07), None);
        assert_eq!(decode(EC_DABT_LOWER << 26 | 1 << 24 | 1 << 7 | 0x07), None);
        assert_eq!(decode(EC_DABT_LOWER << 26 | 1 << 24 | 1 << 13 | 0x07), None);
    }

    #[test]
    fn store_value_keeps_the_access_size() {
        let a = |size| Access { write: true, size, rt: 0, sse: false, sf: true };
        assert_eq!(a(1).store_value(0x1234), 0x34);
        assert_eq!(a(4).store_value(u64::MAX), 0xffff_ffff);
        assert_eq!(a(8).store_value(u64::MAX), u64::MAX);
    }
}
