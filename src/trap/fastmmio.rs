//! The decisions of the lean paths (`trap::dispatch_fast`): from ESR_EL2 alone, whether an exit
//! is a single-register load or store at Stage 2 that can be emulated at once, and its operands;
//! or a guest's write of ICC_SGI1R_EL1 (a GICv3 IPI), and its register. Pure, so the host tests check it against the generic decoder
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
#[inline(always)]
fn dfsc_is_translation_or_af(esr: u64) -> bool {
    matches!(esr & 0x3f, 0x04..=0x0b)
}

/// The access a data abort from the guest with syndrome `esr` makes, if it is one the lean path
/// takes: EC 0x24 with a valid instruction syndrome, no cache maintenance, no Stage-1 walk,
/// a translation or access-flag fault.
#[inline(always)]
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

/// ESR_EL2[31:0] of `msr icc_sgi1r_el1, x0`: EC 0x18, IL, op0 3, op2 5, op1 0, CRn 12, CRm 11,
/// direction 0 (write); Rt (bits 9:5) is the only field that varies.
const ESR_SGI1R_WRITE: u64 = 0x18 << 26 | 1 << 25 | 3 << 20 | 5 << 17 | 12 << 10 | 11 << 1;

/// Whether syndrome `esr` is a trapped access to a GICv3 CPU-interface register (EC 0x18, op0 3,
/// op1 0, CRn 12: the ICC_* registers `gic::lrs::icc_trap` may have trapped), any CRm/op2/Rt/way.
#[inline(always)]
pub fn is_icc_access(esr: u64) -> bool {
    esr & (0x3f << 26 | 3 << 20 | 7 << 14 | 0xf << 10) == (0x18 << 26 | 3 << 20 | 12 << 10)
}

/// The register a guest's ICC_SGI1R_EL1 write (syndrome `esr`) takes its value from (31 = XZR),
/// if the exit is one.
#[inline(always)]
pub fn sgi1r_write_rt(esr: u64) -> Option<u8> {
    (esr & 0xffff_fc1f == ESR_SGI1R_WRITE).then_some(((esr >> 5) & 0x1f) as u8)
}

impl Access {
    /// The value a load puts in Rt: sign- or zero-extended from the access size as SSE says,
    /// bits 63:32 cleared for a 32-bit register.
    #[inline(always)]
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
    #[inline(always)]
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

    /// The SGI1R key matches exactly the MSR of (3, 0, 12, 11, 5) for every Rt, as the generic
    /// sysreg decoder reads it, and nothing differing in one other bit.
    #[test]
    fn sgi1r_write_is_recognised_exactly() {
        use crate::trap::iss::SysRegAccess;
        for rt in 0..32u64 {
            let esr = ESR_SGI1R_WRITE | rt << 5;
            let a = SysRegAccess::from_iss((esr & 0x1ff_ffff) as u32);
            assert_eq!((a.reg.op0, a.reg.op1, a.reg.crn, a.reg.crm, a.reg.op2, a.read), (3, 0, 12, 11, 5, false));
            assert_eq!(sgi1r_write_rt(esr), Some(rt as u8));
            assert!(is_icc_access(esr) && is_icc_access(esr | 1) && is_icc_access(esr ^ 0xff << 1));
            for bit in (0..32).filter(|b| !(5..10).contains(b)) {
                assert_eq!(sgi1r_write_rt(esr ^ 1 << bit), None, "bit {bit}");
            }
        }
    }

    /// The ICC test is exactly the generic decoder's (op0, op1, CRn) = (3, 0, 12) on EC 0x18.
    #[test]
    fn icc_access_is_op0_op1_crn() {
        use crate::trap::iss::SysRegAccess;
        for iss in (0..1u64 << 22).step_by(997) {
            let a = SysRegAccess::from_iss(iss as u32);
            let want = (a.reg.op0, a.reg.op1, a.reg.crn) == (3, 0, 12);
            assert_eq!(is_icc_access(0x18 << 26 | 1 << 25 | iss), want, "iss {iss:#x}");
            assert!(!is_icc_access(0x17 << 26 | 1 << 25 | iss));
        }
    }

    #[test]
    fn store_value_keeps_the_access_size() {
        let a = |size| Access { write: true, size, rt: 0, sse: false, sf: true };
        assert_eq!(a(1).store_value(0x1234), 0x34);
        assert_eq!(a(4).store_value(u64::MAX), 0xffff_ffff);
        assert_eq!(a(8).store_value(u64::MAX), u64::MAX);
    }
}
