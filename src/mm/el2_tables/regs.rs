//! Register values for the EL2 stage-1 MMU (non-VHE, HCR_EL2.E2H = 0): TCR_EL2, MAIR_EL2 and the
//! SCTLR_EL2 bits. Pure values; the boot code writes them.

use super::desc::{ATTR_DEVICE, ATTR_NORMAL_NC, ATTR_NORMAL_WB};
use aarch64_cpu::registers::{MAIR_EL2, SCTLR_EL2, TCR_EL2};

// The attribute bytes are encoded with the fields of attribute 0 (bits 7:0), then shifted to
// the index the descriptors use.
use MAIR_EL2::{Attr0_Device as Device, Attr0_Normal_Inner as Inner, Attr0_Normal_Outer as Outer};

/// MAIR attribute: Device-nGnRE (0x04).
pub const MAIR_DEVICE_NGNRE: u8 = Device::nonGathering_nonReordering_EarlyWriteAck.value as u8;
/// MAIR attribute: Normal, inner and outer write-back non-transient, read- and write-allocate
/// (0xff).
pub const MAIR_NORMAL_WB: u8 = (Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | Inner::WriteBack_NonTransient_ReadWriteAlloc.value) as u8;
/// MAIR attribute: Normal, inner and outer non-cacheable (0x44).
pub const MAIR_NORMAL_NC: u8 = (Outer::NonCacheable.value | Inner::NonCacheable.value) as u8;

/// MAIR_EL2 with the attributes the descriptors index.
pub const fn mair_el2() -> u64 {
    ((MAIR_DEVICE_NGNRE as u64) << (8 * ATTR_DEVICE))
        | ((MAIR_NORMAL_WB as u64) << (8 * ATTR_NORMAL_WB))
        | ((MAIR_NORMAL_NC as u64) << (8 * ATTR_NORMAL_NC))
}

/// Physical (and so identity-mapped virtual) address bits for ID_AA64MMFR0_EL1.PARange, capped at
/// 48: a 52-bit PA needs FEAT_LPA2 descriptors, which these tables do not use.
pub const fn va_bits(parange: u8) -> u32 {
    match parange & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    }
}

/// The TCR_EL2.PS encoding matching [`va_bits`].
const fn ps(parange: u8) -> u64 {
    match parange & 0xf {
        p @ 0..=4 => p as u64,
        _ => TCR_EL2::PS::Value::Bits_48 as u64,
    }
}

/// The level the walk starts at for a `va_bits` input size with a 4 KiB granule.
pub const fn start_level(va_bits: u32) -> u8 {
    if va_bits > 39 {
        0
    } else if va_bits > 30 {
        1
    } else {
        2
    }
}

/// TCR_EL2 bits 31 and 23: RES1 with E2H = 0, not fields.
const TCR_RES1: u64 = (1 << 31) | (1 << 23);

/// TCR_EL2 for an identity map of the whole PA range the CPU reports: T0SZ = 64 − PA bits, 4 KiB
/// granule, walks inner-shareable write-back read/write-allocate, PS = PARange (capped at 48 bits).
pub const fn tcr_el2(parange: u8) -> u64 {
    use TCR_EL2::*;
    let t0sz = (64 - va_bits(parange)) as u64;
    TCR_RES1
        | T0SZ.val(t0sz).value
        | IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
        | ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
        | SH0::Inner.value
        | TG0::KiB_4.value
        | PS.val(ps(parange)).value
}

/// SCTLR_EL2 bits that are RES1 when HCR_EL2.E2H = 0: 4, 5, 16, 18, 23, 28 and 29, which are
/// not fields there, and EOS (11) and EIS (22), which are RES1 without FEAT_ExS and are set
/// (exception exit and entry context synchronizing) with it.
pub const SCTLR_EL2_RES1: u64 = (1 << 4)
    | (1 << 5)
    | SCTLR_EL2::EOS::IsSynch.value
    | (1 << 16)
    | (1 << 18)
    | SCTLR_EL2::EIS::IsSynch.value
    | (1 << 23)
    | (1 << 28)
    | (1 << 29);
/// SCTLR_EL2.M: stage-1 MMU on.
pub const SCTLR_EL2_M: u64 = SCTLR_EL2::M::Enable.value;
/// SCTLR_EL2.C: data caches.
pub const SCTLR_EL2_C: u64 = SCTLR_EL2::C::Cacheable.value;
/// SCTLR_EL2.SA: stack alignment check.
pub const SCTLR_EL2_SA: u64 = SCTLR_EL2::SA::Enable.value;
/// SCTLR_EL2.I: instruction cache.
pub const SCTLR_EL2_I: u64 = SCTLR_EL2::I::Cacheable.value;
/// SCTLR_EL2.WXN: writable implies execute-never.
pub const SCTLR_EL2_WXN: u64 = SCTLR_EL2::WXN::Enable.value;

/// SCTLR_EL2 with the MMU and caches on, W^X enforced, little-endian.
pub const SCTLR_EL2_MMU_ON: u64 =
    SCTLR_EL2_RES1 | SCTLR_EL2_M | SCTLR_EL2_C | SCTLR_EL2_SA | SCTLR_EL2_I | SCTLR_EL2_WXN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mair() {
        assert_eq!((MAIR_DEVICE_NGNRE, MAIR_NORMAL_WB, MAIR_NORMAL_NC), (0x04, 0xff, 0x44));
        assert_eq!(mair_el2(), 0x44_ff_04);
    }

    #[test]
    fn tcr_for_each_parange() {
        let cases = [
            (0u8, 32u64, 0u64),
            (1, 28, 1),
            (2, 24, 2),
            (3, 22, 3),
            (4, 20, 4),
            (5, 16, 5),
            (6, 16, 5),
        ];
        for (parange, t0sz, ps) in cases {
            let tcr = tcr_el2(parange);
            assert_eq!(tcr & 0x3f, t0sz, "T0SZ for PARange {parange}");
            assert_eq!((tcr >> 16) & 0b111, ps, "PS for PARange {parange}");
            assert_eq!((tcr >> 14) & 0b11, 0, "TG0 = 4 KiB");
            assert_eq!((tcr >> 12) & 0b11, 0b11, "SH0 inner");
            assert_eq!((tcr >> 8) & 0b1111, 0b0101, "IRGN0/ORGN0 WB RaWa");
            assert_eq!(tcr & TCR_RES1, TCR_RES1);
            assert_eq!(tcr & !(TCR_RES1 | 0x7_ff3f), 0, "no other bits");
        }
        assert_eq!(tcr_el2(2), 0x8082_3518);
        let exact = [
            (0u8, 0x8080_3520u64),
            (1, 0x8081_351c),
            (2, 0x8082_3518),
            (3, 0x8083_3516),
            (4, 0x8084_3514),
            (5, 0x8085_3510),
            (6, 0x8085_3510),
            (0xf, 0x8085_3510),
            (0x12, 0x8082_3518),
        ];
        for (parange, value) in exact {
            assert_eq!(tcr_el2(parange), value, "TCR_EL2 for PARange {parange:#x}");
        }
    }

    #[test]
    fn start_levels() {
        assert_eq!(start_level(48), 0);
        assert_eq!(start_level(40), 0);
        assert_eq!(start_level(39), 1);
        assert_eq!(start_level(32), 1);
        assert_eq!(start_level(30), 2);
    }

    #[test]
    fn sctlr() {
        assert_eq!(SCTLR_EL2_RES1, 0x30c5_0830);
        assert_eq!(SCTLR_EL2_MMU_ON, 0x30cd_183d);
        assert_eq!(
            [SCTLR_EL2_M, SCTLR_EL2_C, SCTLR_EL2_SA, SCTLR_EL2_I, SCTLR_EL2_WXN],
            [1 << 0, 1 << 2, 1 << 3, 1 << 12, 1 << 19]
        );
    }
}
