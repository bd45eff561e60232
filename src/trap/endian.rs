//! The byte order of a guest's emulated MMIO access, as the Arm ARM gives it and KVM applies it
//! (`kvm_vcpu_is_be`, `vcpu_data_guest_to_host`, `vcpu_data_host_to_guest`): a big-endian
//! access's register value is byte-swapped, within the access size, on its way to the device
//! model (a store) and from it (a load, before the sign extension ESR ISS.SSE asks for). Device
//! models see little-endian values only. Single-byte accesses have no byte order.
//!
//! Whether the access is big-endian follows the guest's PSTATE at the trap (SPSR_EL2) and its
//! SCTLR_EL1: AArch32 (SPSR.M[4], EL0 only under el2visor) by PSTATE.E (SPSR bit 9); AArch64
//! EL0 by SCTLR_EL1.E0E; AArch64 EL1 by SCTLR_EL1.EE. Pure: the callers read the registers
//! (`trap::mmio`, `trap::dispatch_fast`).

#![forbid(unsafe_code)]

/// SCTLR_EL1.EE: data accesses at EL1 (and its stage-1 table walks) are big-endian.
pub const SCTLR_EL1_EE: u64 = 1 << 25;
/// SCTLR_EL1.E0E: data accesses at EL0 (AArch64) are big-endian.
pub const SCTLR_EL1_E0E: u64 = 1 << 24;
/// SPSR.M[4]: the guest was in AArch32 state.
const SPSR_AARCH32: u64 = 1 << 4;
/// An AArch32 SPSR's E bit (PSTATE.E, bit 9): data accesses big-endian. In an AArch64 SPSR this
/// bit is D, the debug mask, which says nothing of the byte order.
const SPSR_A32_E: u64 = 1 << 9;
/// SPSR.M[3:2] of AArch64: the Exception level the guest was at.
const SPSR_EL_SHIFT: u64 = 2;

/// Whether the data access the guest made with PSTATE `spsr` (SPSR_EL2 at the trap) and
/// SCTLR_EL1 `sctlr_el1` is big-endian.
#[inline(always)]
pub const fn is_big_endian(spsr: u64, sctlr_el1: u64) -> bool {
    // The common case first, in the fewest instructions (the distributor's lean path takes
    // this on every access): neither SCTLR_EL1 bit set and AArch64, so little-endian. SPSR.M[4]
    // shifted onto E0E makes it one test (bit 5, which lands on EE, only sends an access the
    // long way below).
    if (sctlr_el1 | spsr << 20) & (SCTLR_EL1_EE | SCTLR_EL1_E0E) == 0 {
        return false;
    }
    if spsr & SPSR_AARCH32 != 0 {
        return spsr & SPSR_A32_E != 0;
    }
    let bit = if (spsr >> SPSR_EL_SHIFT) & 3 == 0 { SCTLR_EL1_E0E } else { SCTLR_EL1_EE };
    sctlr_el1 & bit != 0
}

/// The low `size` bytes (1, 2, 4 or 8) of `value` in the other byte order; the bits above them
/// are zero. One byte is itself.
#[inline(always)]
pub const fn swap(value: u64, size: u8) -> u64 {
    match size {
        1 => value & 0xff,
        2 => (value as u16).swap_bytes() as u64,
        4 => (value as u32).swap_bytes() as u64,
        _ => value.swap_bytes(),
    }
}

/// The value of a `size`-byte access as its other side sees it: `value` itself for a
/// little-endian access, [`swap`]ped for a big-endian one. Used both ways: a store's register
/// value (already cut to the access size) to the device, and a load's value from the device to
/// the register (before sign extension). Byte-swapping is its own inverse.
#[inline(always)]
pub const fn convert(value: u64, size: u8, big_endian: bool) -> u64 {
    if big_endian {
        swap(value, size)
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trap::iss::DataAbort;

    /// SPSR M[3:0] values: EL0t, EL1t, EL1h; AArch32 User (0x10) and others.
    const EL0T: u64 = 0b0000;
    const EL1T: u64 = 0b0100;
    const EL1H: u64 = 0b0101;
    const A32_USR: u64 = 0x10;

    #[test]
    fn el1_follows_ee_and_el0_follows_e0e() {
        for el1 in [EL1T, EL1H] {
            assert!(!is_big_endian(el1, 0));
            assert!(is_big_endian(el1, SCTLR_EL1_EE));
            assert!(!is_big_endian(el1, SCTLR_EL1_E0E), "E0E is EL0's");
            assert!(is_big_endian(el1 | 0x3c0, SCTLR_EL1_EE | SCTLR_EL1_E0E));
        }
        assert!(!is_big_endian(EL0T, 0));
        assert!(is_big_endian(EL0T, SCTLR_EL1_E0E));
        assert!(!is_big_endian(EL0T, SCTLR_EL1_EE), "EE is EL1's");
        // The AArch64 D bit (9) is no byte order; bit 5 (RES0 from AArch64) only fails the
        // quick test.
        assert!(!is_big_endian(EL1H | SPSR_A32_E, 0));
        assert!(!is_big_endian(EL0T | SPSR_A32_E, 0));
        assert!(!is_big_endian(EL1H | 1 << 5, 0) && !is_big_endian(EL0T | 1 << 5, SCTLR_EL1_EE));
        assert!(is_big_endian(EL1H | 1 << 5, SCTLR_EL1_EE));
    }

    #[test]
    fn aarch32_follows_pstate_e_only() {
        for m in [A32_USR, A32_USR | 0x20] {
            assert!(!is_big_endian(m, 0));
            assert!(!is_big_endian(m, SCTLR_EL1_EE | SCTLR_EL1_E0E), "SCTLR_EL1 is AArch64's");
            assert!(is_big_endian(m | SPSR_A32_E, 0));
            assert!(is_big_endian(m | SPSR_A32_E, SCTLR_EL1_EE | SCTLR_EL1_E0E));
        }
    }

    #[test]
    fn swap_within_the_access_size() {
        let v = 0x1122_3344_5566_7788u64;
        assert_eq!(swap(v, 1), 0x88);
        assert_eq!(swap(v, 2), 0x8877);
        assert_eq!(swap(v, 4), 0x8877_6655);
        assert_eq!(swap(v, 8), 0x8877_6655_4433_2211);
        for size in [1u8, 2, 4, 8] {
            let mask = if size == 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
            assert_eq!(swap(swap(v, size), size), v & mask, "size {size}");
            assert_eq!(convert(v & mask, size, false), v & mask);
            assert_eq!(convert(v, size, true), swap(v, size));
        }
        assert_eq!(convert(0xab, 1, true), 0xab, "one byte has no byte order");
    }

    /// A big-endian `ldrsh w1` of a device halfword 0x0080 (bytes 80 00 in memory): the register
    /// sees 0x8000 before sign extension, so 0xffff8000; little-endian it is 0x80.
    #[test]
    fn load_swaps_before_sign_extension() {
        // ISV, SAS = 1 (halfword), SSE, SRT = 1, SF = 0, DFSC translation fault L3.
        let ldrsh_w1 = DataAbort::from_iss((1 << 24) | (1 << 22) | (1 << 21) | (1 << 16) | 0x07);
        assert_eq!(ldrsh_w1.load_value(convert(0x0080, 2, false)), 0x80);
        assert_eq!(ldrsh_w1.load_value(convert(0x0080, 2, true)), 0xffff_8000);
        // ldrsw x1 (SAS = 2, SF) of device word 0x0000_0080: 0xffff_ffff_8000_0000 big-endian.
        let ldrsw_x1 = DataAbort::from_iss((1 << 24) | (2 << 22) | (1 << 21) | (1 << 16) | (1 << 15) | 0x07);
        assert_eq!(ldrsw_x1.load_value(convert(0x80, 4, true)), 0xffff_ffff_8000_0000);
    }
}
