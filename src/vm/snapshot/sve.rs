//! A paused vCPU's SVE state (FEAT_SVE), saved and loaded with its snapshot state: Z0-Z31,
//! P0-P15 and FFR at the CPU's maximum vector length (ZCR_EL1 is `arch::feature_regs`', restored
//! before these).
//!
//! The guest's SVE registers stay live across every exit (SVE is not trapped: `vcpu::regs`
//! clears CPTR_EL2.TZ, and el2visor is soft-float). Only a pause touches them: `FpState` loads
//! V0-V31 with Advanced SIMD instructions, which zero each Z register above bit 127, and a
//! restore must bring back the snapshot's predicates, FFR and vector length too. So a pause
//! saves them here, and the resume loads them after `FpState` (the low 128 bits of each Z
//! register are V0-V31 again).
//!
//! The accesses run at EL2 with ZCR_EL2.LEN at its maximum (`vcpu::el2::configure` sets it;
//! written again here), so the buffer holds every bit any guest vector length can reach. A vCPU
//! paused in SME's streaming mode has its Z and P registers at the streaming length instead:
//! [`super::sme`] keeps those.

use alloc::vec;
use alloc::vec::Vec;

use super::plan::{sve_layout, SveLayout};
use crate::arch::cpu_features::CpuFeatures;
use crate::arch::sve_regs;

/// The guest's SVE registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SveState {
    /// The vector length (bytes) the buffer was saved at.
    vl: usize,
    /// Z0-Z31, then P0-P15 and FFR (`SveLayout`).
    buf: Vec<u128>,
}

impl SveState {
    /// Save the guest's SVE state on this pCPU (whose features are `f`), where the CPU has SVE
    /// and the guest is not in streaming mode.
    pub fn save(f: &CpuFeatures) -> Option<Self> {
        if !f.sve || (f.sme && sve_regs::svcr() & sve_regs::SVCR_SM != 0) {
            return None;
        }
        let vl = sve_regs::max_vl();
        let SveLayout { p, words } = sve_layout(vl)?;
        let mut buf = vec![0u128; words];
        let z = buf.as_mut_ptr() as usize;
        // SAFETY: `buf` is `words` 16-byte words, at least 32 * VL + 17 * VL / 8 bytes
        // (`sve_layout`) with VL the length RDVL just read: Z at its start, the 17 P slots at
        // `p`; SVE is implemented and the PE is not in streaming mode (FFR accessible).
        unsafe {
            sve_regs::store_zp(z, z + p);
            sve_regs::store_ffr(z + p);
        }
        Some(SveState { vl, buf })
    }

    /// Load them for the guest (it runs next on this pCPU), after `FpState::restore`.
    pub fn restore(&self) {
        let vl = sve_regs::max_vl();
        if vl != self.vl {
            // Another vector length than the save's (a pCPU unlike the one it was saved on): the
            // buffer's slots would not line up.
            log::warn!("snapshot: SVE state saved at {} bytes cannot load at {vl}; Z, P and FFR not restored", self.vl);
            return;
        }
        let Some(SveLayout { p, .. }) = sve_layout(self.vl) else { return };
        let z = self.buf.as_ptr() as usize;
        // SAFETY: as in `save`, loads only, at the same vector length, out of streaming mode
        // (`el2::reset_el1` cleared SVCR); FFR goes first, through P0, which `load_zp` loads.
        unsafe {
            sve_regs::load_ffr(z + p);
            sve_regs::load_zp(z, z + p);
        }
    }
}
