//! A paused vCPU's SVE state (FEAT_SVE), saved and loaded with its snapshot state: Z0-Z31,
//! P0-P15 and FFR at the CPU's maximum vector length, and ZCR_EL1.
//!
//! The guest's SVE registers stay live across every exit (SVE is not trapped: `vcpu::regs`
//! clears CPTR_EL2.TZ, and el2visor is soft-float). Only a pause touches them: `FpState` loads
//! V0-V31 with Advanced SIMD instructions, which zero each Z register above bit 127, and a
//! restore must bring back the snapshot's predicates, FFR and vector length too. So a pause
//! saves them here, and the resume loads them after `FpState` (the low 128 bits of each Z
//! register are V0-V31 again).
//!
//! The accesses run at EL2 with ZCR_EL2.LEN at its maximum (`vcpu::el2::configure` sets it;
//! written again here), so the buffer holds every bit any guest vector length can reach. Not covered:
//! SME (a vCPU paused in streaming mode keeps no SVE state here, and its ZA is not saved).

use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;

use super::plan::{sve_layout, SveLayout};
use crate::arch::sysreg;

/// The guest's SVE registers and ZCR_EL1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SveState {
    /// The vector length (bytes) the buffer was saved at.
    vl: usize,
    /// Z0-Z31, then P0-P15 and FFR (`SveLayout`).
    buf: Vec<u128>,
    pub zcr_el1: u64,
}

/// FEAT_SVE: ID_AA64PFR0_EL1.SVE (35:32).
fn has_sve() -> bool {
    (sysreg::id_aa64pfr0_el1() >> 32) & 0xf != 0
}

/// PSTATE.SM: the guest left the CPU in SME streaming mode (SVE instructions would run at the
/// streaming vector length, and FFR would not exist).
fn streaming() -> bool {
    if (sysreg::id_aa64pfr1_el1() >> 24) & 0xf == 0 {
        return false;
    }
    let svcr: u64;
    // SAFETY: an MRS of SVCR, present (FEAT_SME, checked above); no side effect.
    unsafe { asm!("mrs {v}, s3_3_c4_c2_2", v = out(reg) svcr, options(nomem, nostack, preserves_flags)) };
    svcr & 1 != 0
}

/// Set ZCR_EL2.LEN to its maximum and read the vector length EL2 then has (bytes).
fn max_vl() -> usize {
    // A LEN above the implemented maximum selects the maximum.
    sysreg::set_zcr_el2(crate::arch::sysreg_ext::ZCR_EL2::LEN.mask);
    sysreg::isb();
    let vl: u64;
    // SAFETY: RDVL only reads the vector length into a general register; SVE is implemented
    // (callers check) and not trapped at EL2 (CPTR_EL2.TZ clear, `vcpu::regs::cptr_el2`).
    unsafe { asm!(".arch_extension sve", "rdvl {v}, #1", v = out(reg) vl, options(nomem, nostack, preserves_flags)) };
    vl as usize
}

impl SveState {
    /// Save the guest's SVE state on this pCPU, where the CPU has SVE and the guest is not in
    /// streaming mode.
    pub fn save() -> Option<Self> {
        if !has_sve() || streaming() {
            return None;
        }
        let vl = max_vl();
        let SveLayout { p, words } = sve_layout(vl)?;
        let mut buf = vec![0u128; words];
        let z = buf.as_mut_ptr() as usize;
        let pp = z + p;
        let zcr_el1: u64;
        // SAFETY: `z` is `words` 16-byte words, at least 32 * VL + 17 * VL / 8 bytes
        // (`sve_layout`); the Z stores write [z, z + 32 * VL), the P and FFR stores [pp, pp + 17 *
        // VL / 8), with VL the length RDVL just read. The registers are the guest's
        // (el2visor's soft-float code never uses them); P0 is reloaded after it carried FFR.
        unsafe {
            asm!(
                ".arch_extension sve",
                "str z0, [{z}, #0, mul vl]",
                "str z1, [{z}, #1, mul vl]",
                "str z2, [{z}, #2, mul vl]",
                "str z3, [{z}, #3, mul vl]",
                "str z4, [{z}, #4, mul vl]",
                "str z5, [{z}, #5, mul vl]",
                "str z6, [{z}, #6, mul vl]",
                "str z7, [{z}, #7, mul vl]",
                "str z8, [{z}, #8, mul vl]",
                "str z9, [{z}, #9, mul vl]",
                "str z10, [{z}, #10, mul vl]",
                "str z11, [{z}, #11, mul vl]",
                "str z12, [{z}, #12, mul vl]",
                "str z13, [{z}, #13, mul vl]",
                "str z14, [{z}, #14, mul vl]",
                "str z15, [{z}, #15, mul vl]",
                "str z16, [{z}, #16, mul vl]",
                "str z17, [{z}, #17, mul vl]",
                "str z18, [{z}, #18, mul vl]",
                "str z19, [{z}, #19, mul vl]",
                "str z20, [{z}, #20, mul vl]",
                "str z21, [{z}, #21, mul vl]",
                "str z22, [{z}, #22, mul vl]",
                "str z23, [{z}, #23, mul vl]",
                "str z24, [{z}, #24, mul vl]",
                "str z25, [{z}, #25, mul vl]",
                "str z26, [{z}, #26, mul vl]",
                "str z27, [{z}, #27, mul vl]",
                "str z28, [{z}, #28, mul vl]",
                "str z29, [{z}, #29, mul vl]",
                "str z30, [{z}, #30, mul vl]",
                "str z31, [{z}, #31, mul vl]",
                "str p0, [{p}, #0, mul vl]",
                "str p1, [{p}, #1, mul vl]",
                "str p2, [{p}, #2, mul vl]",
                "str p3, [{p}, #3, mul vl]",
                "str p4, [{p}, #4, mul vl]",
                "str p5, [{p}, #5, mul vl]",
                "str p6, [{p}, #6, mul vl]",
                "str p7, [{p}, #7, mul vl]",
                "str p8, [{p}, #8, mul vl]",
                "str p9, [{p}, #9, mul vl]",
                "str p10, [{p}, #10, mul vl]",
                "str p11, [{p}, #11, mul vl]",
                "str p12, [{p}, #12, mul vl]",
                "str p13, [{p}, #13, mul vl]",
                "str p14, [{p}, #14, mul vl]",
                "str p15, [{p}, #15, mul vl]",
                "rdffr p0.b",
                "str p0, [{p}, #16, mul vl]",
                "ldr p0, [{p}, #0, mul vl]",
                "mrs {zcr}, s3_0_c1_c2_0",
                z = in(reg) z,
                p = in(reg) pp,
                zcr = out(reg) zcr_el1,
                options(nostack, preserves_flags),
            );
        }
        Some(SveState { vl, buf, zcr_el1 })
    }

    /// Load them for the guest (it runs next on this pCPU), after `FpState::restore`.
    pub fn restore(&self) {
        if max_vl() != self.vl {
            // Another vector length than the save's (a pCPU unlike the one it was saved on): the
            // buffer's slots would not line up.
            log::warn!("snapshot: SVE state saved at {} bytes cannot load at {}; Z, P and FFR not restored", self.vl, max_vl());
            return;
        }
        let Some(SveLayout { p, .. }) = sve_layout(self.vl) else { return };
        let z = self.buf.as_ptr() as usize;
        let pp = z + p;
        // SAFETY: as in `save`, loads only, at the same vector length. FFR goes first through
        // P0, which is then loaded with its own value; the guest is not running on this pCPU.
        unsafe {
            asm!(
                ".arch_extension sve",
                "ldr p0, [{p}, #16, mul vl]",
                "wrffr p0.b",
                "ldr p0, [{p}, #0, mul vl]",
                "ldr p1, [{p}, #1, mul vl]",
                "ldr p2, [{p}, #2, mul vl]",
                "ldr p3, [{p}, #3, mul vl]",
                "ldr p4, [{p}, #4, mul vl]",
                "ldr p5, [{p}, #5, mul vl]",
                "ldr p6, [{p}, #6, mul vl]",
                "ldr p7, [{p}, #7, mul vl]",
                "ldr p8, [{p}, #8, mul vl]",
                "ldr p9, [{p}, #9, mul vl]",
                "ldr p10, [{p}, #10, mul vl]",
                "ldr p11, [{p}, #11, mul vl]",
                "ldr p12, [{p}, #12, mul vl]",
                "ldr p13, [{p}, #13, mul vl]",
                "ldr p14, [{p}, #14, mul vl]",
                "ldr p15, [{p}, #15, mul vl]",
                "ldr z0, [{z}, #0, mul vl]",
                "ldr z1, [{z}, #1, mul vl]",
                "ldr z2, [{z}, #2, mul vl]",
                "ldr z3, [{z}, #3, mul vl]",
                "ldr z4, [{z}, #4, mul vl]",
                "ldr z5, [{z}, #5, mul vl]",
                "ldr z6, [{z}, #6, mul vl]",
                "ldr z7, [{z}, #7, mul vl]",
                "ldr z8, [{z}, #8, mul vl]",
                "ldr z9, [{z}, #9, mul vl]",
                "ldr z10, [{z}, #10, mul vl]",
                "ldr z11, [{z}, #11, mul vl]",
                "ldr z12, [{z}, #12, mul vl]",
                "ldr z13, [{z}, #13, mul vl]",
                "ldr z14, [{z}, #14, mul vl]",
                "ldr z15, [{z}, #15, mul vl]",
                "ldr z16, [{z}, #16, mul vl]",
                "ldr z17, [{z}, #17, mul vl]",
                "ldr z18, [{z}, #18, mul vl]",
                "ldr z19, [{z}, #19, mul vl]",
                "ldr z20, [{z}, #20, mul vl]",
                "ldr z21, [{z}, #21, mul vl]",
                "ldr z22, [{z}, #22, mul vl]",
                "ldr z23, [{z}, #23, mul vl]",
                "ldr z24, [{z}, #24, mul vl]",
                "ldr z25, [{z}, #25, mul vl]",
                "ldr z26, [{z}, #26, mul vl]",
                "ldr z27, [{z}, #27, mul vl]",
                "ldr z28, [{z}, #28, mul vl]",
                "ldr z29, [{z}, #29, mul vl]",
                "ldr z30, [{z}, #30, mul vl]",
                "ldr z31, [{z}, #31, mul vl]",
                "msr s3_0_c1_c2_0, {zcr}",
                "isb",
                z = in(reg) z,
                p = in(reg) pp,
                zcr = in(reg) self.zcr_el1,
                options(nostack, preserves_flags),
            );
        }
    }
}
