//! What the HVC fast path in the vector (boot/hvc_fastpath.S) answers, and the one piece of boot
//! data it reads: the host firmware's SMCCC_ARCH_FEATURES answers for the three workaround calls.
//! The function IDs and answers are the SMCCC/PSCI ones `trap::abi` defines; a host test there
//! (`trap::smccc`) checks these copies against them and against the slow path's answers (this
//! layer is below `trap`, so it cannot name them itself).

#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// ESR_EL2 of an `hvc #0` from AArch64 (EC 0x16, IL): the syndrome the fast path takes.
pub const ESR_HVC64_IMM0: u32 = 0x5a00_0000;

/// The syndrome the vector compares ESR_EL2 with to take the fast path: [`ESR_HVC64_IMM0`], or
/// 0xffffffff (EC 0x3f, which no exception reports) once [`disable`] ran.
pub static HVC_FAST_KEY: AtomicU32 = AtomicU32::new(ESR_HVC64_IMM0);

/// Send every HVC to the slow path (boot CPU, before any guest runs): `trace=psci` wants a line
/// for each call, and only the slow path prints it.
pub fn disable() {
    HVC_FAST_KEY.store(u32::MAX, Ordering::Release);
}

/// SMCCC_VERSION (SMC32 fast call).
pub const FID_SMCCC_VERSION: u32 = 0x8000_0000;
/// SMCCC_ARCH_FEATURES.
pub const FID_ARCH_FEATURES: u32 = 0x8000_0001;
/// PSCI_VERSION.
pub const FID_PSCI_VERSION: u32 = 0x8400_0000;
/// SMCCC_ARCH_WORKAROUND_1, _2, _3, in [`HVC_FAST_WORKAROUNDS`] order.
pub const FID_WORKAROUNDS: [u32; 3] = [0x8000_8000, 0x8000_7fff, 0x8000_3fff];
/// What SMCCC_VERSION and PSCI_VERSION answer: 1.1.
pub const ANSWER_1_1: u32 = 0x0001_0001;
/// NOT_SUPPORTED as x0 holds it.
pub const NOT_SUPPORTED: u64 = u64::MAX;

/// SMCCC_ARCH_FEATURES' answer for each workaround call as x0 holds it (the sign-extended 32-bit
/// value), NOT_SUPPORTED until [`publish_workarounds`] runs at boot.
pub static HVC_FAST_WORKAROUNDS: [AtomicU64; 3] = [const { AtomicU64::new(NOT_SUPPORTED) }; 3];

/// Give the fast path the firmware's answers (boot CPU, before any guest runs).
pub fn publish_workarounds(answers: [i64; 3]) {
    for (slot, a) in HVC_FAST_WORKAROUNDS.iter().zip(answers) {
        slot.store(a as u64, Ordering::Release);
    }
}

/// The fast path's answer to call `fid` with x1 = `x1`, `None` for a call it leaves to the slow
/// path: the rule boot/hvc_fastpath.S implements, for the host tests.
pub fn answer(fid: u32, x1: u64, workarounds: [i64; 3]) -> Option<u64> {
    match fid {
        FID_SMCCC_VERSION | FID_PSCI_VERSION => Some(ANSWER_1_1 as u64),
        FID_ARCH_FEATURES => {
            let q = x1 as u32;
            Some(match FID_WORKAROUNDS.iter().position(|&w| w == q) {
                _ if q == FID_SMCCC_VERSION || q == FID_ARCH_FEATURES => 0,
                Some(i) => workarounds[i] as u64,
                None => NOT_SUPPORTED,
            })
        }
        _ => None,
    }
}
