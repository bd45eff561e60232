//! A paused vCPU's SME state (FEAT_SME), saved and loaded with its snapshot state: SVCR
//! (PSTATE.SM and PSTATE.ZA); in streaming mode, Z0-Z31 and P0-P15 at the streaming vector
//! length (and FFR where FEAT_SME_FA64 makes it accessible there); with ZA on, ZA's rows and,
//! with SME2, ZT0. TPIDR2_EL0, SMCR_EL1 and SMPRI_EL1 are `arch::feature_regs`'.
//!
//! Like SVE's, these registers stay live across every exit and only a pause touches them. A
//! resume starts from SVCR = 0 (`el2::reset_el1`), after the FP/SIMD (and, out of streaming
//! mode, SVE) registers are loaded; [`SmeState::restore`] then enters streaming mode, which
//! zeroes Z, P and FFR and resets FPSR, loads the streaming registers and the guest's FPSR and
//! FPCR, turns ZA on and loads it. In streaming mode V0-V31 are Z0-Z31's low 128 bits, so the
//! streaming Z registers bring them back too.
//!
//! Everything runs at EL2's streaming vector length, the longest the CPU has (SMCR_EL2.LEN,
//! `vcpu::el2`), so the buffers hold every bit any guest's length reaches. FFR in streaming mode
//! and ZT0 are saved where SMCR_EL2 enables them for the guest (FA64, EZT0, as `vcpu::regs`
//! sets them from the CPU's ID registers); el2visor relies on the firmware enabling them at EL2
//! too (SMCR_EL3), as it must for the guest to use them at all.

use alloc::vec;
use alloc::vec::Vec;

use super::plan::{sve_layout, za_words, SveLayout};
use crate::arch::cpu_features::CpuFeatures;
use crate::arch::sve_regs::{self, SVCR_SM as SM, SVCR_ZA as ZA};
use crate::arch::sysreg_ext::SMCR_EL2;
use crate::arch::vcpu_state::FpState;
/// SMCR_EL2.FA64: the full A64 set (FFR among it) in streaming mode.
const FA64: u64 = SMCR_EL2::FA64::SET.value;
/// SMCR_EL2.EZT0: ZT0 untrapped, set where the CPU has SME2.
const EZT0: u64 = SMCR_EL2::EZT0::SET.value;

/// The guest's SME state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmeState {
    svcr: u64,
    /// The streaming vector length (bytes) the buffers were saved at (0 with SVCR = 0).
    svl: usize,
    /// With SVCR.SM: the streaming Z0-Z31, then P0-P15 and (with `ffr`) FFR (`SveLayout`).
    zp: Vec<u128>,
    ffr: bool,
    /// With SVCR.ZA: ZA's `svl` rows, then ZT0 (with `zt0`).
    za: Vec<u128>,
    zt0: bool,
}

impl SmeState {
    /// Save the guest's SME state on this pCPU (whose features are `f`), where the CPU has SME.
    pub fn save(f: &CpuFeatures) -> Option<Self> {
        if !f.sme {
            return None;
        }
        let svcr = sve_regs::svcr();
        let mut s = SmeState { svcr, svl: 0, zp: Vec::new(), ffr: false, za: Vec::new(), zt0: false };
        if svcr & (SM | ZA) == 0 {
            return Some(s);
        }
        let smcr = sve_regs::smcr_el2();
        s.svl = sve_regs::svl();
        if svcr & SM != 0 {
            let SveLayout { p, words } = sve_layout(s.svl)?;
            s.zp = vec![0u128; words];
            s.ffr = smcr & FA64 != 0;
            let z = s.zp.as_mut_ptr() as usize;
            // SAFETY: the PE is in streaming mode (SVCR.SM), so the stores run at the streaming
            // length RDSVL read: `zp` has 32 * SVL + 17 * SVL / 8 bytes (`sve_layout`), Z at its
            // start and the 17 P slots at `p`. FFR only where FA64 makes it accessible there.
            unsafe {
                sve_regs::store_zp(z, z + p);
                if s.ffr {
                    sve_regs::store_ffr(z + p);
                }
            }
        }
        if svcr & ZA != 0 {
            s.zt0 = smcr & EZT0 != 0;
            s.za = vec![0u128; za_words(s.svl, s.zt0)?];
            let at = s.za.as_mut_ptr() as usize;
            // SAFETY: ZA is on (SVCR.ZA); `za` holds `svl` rows of `svl` bytes, then (with
            // `zt0`, where EZT0 untraps it, so SME2 is there) 64 bytes for ZT0.
            unsafe {
                sve_regs::store_za(at, s.svl);
                if s.zt0 {
                    sve_regs::store_zt0(at + s.svl * s.svl);
                }
            }
        }
        Some(s)
    }

    /// Load them for the guest (it runs next on this pCPU), after `FpState::restore` and the SVE
    /// state's; `fp` is the FP state the snapshot has, whose FPSR and FPCR streaming mode's entry
    /// resets. SVCR is 0 on entry (`el2::reset_el1`).
    pub fn restore(&self, fp: &FpState) {
        if self.svcr & (SM | ZA) == 0 {
            return;
        }
        let svl = sve_regs::svl();
        if svl != self.svl {
            // Another streaming length than the save's (a pCPU unlike the one it was saved on):
            // the buffers would not line up. The guest at least resumes in its mode, with its
            // registers zeroed.
            log::warn!("snapshot: SME state saved at a streaming length of {} bytes cannot load at {svl}; streaming Z/P and ZA come back zeroed", self.svl);
            sve_regs::set_svcr(self.svcr & (SM | ZA));
            fp.restore_control();
            return;
        }
        if self.svcr & SM != 0 {
            sve_regs::set_svcr(SM);
            if let Some(SveLayout { p, .. }) = sve_layout(svl) {
                let z = self.zp.as_ptr() as usize;
                // SAFETY: in streaming mode now, at the save's length; loads only. FFR goes first
                // (through P0, which `load_zp` loads after it), and only if it was saved, where
                // FA64 made it accessible in streaming mode.
                unsafe {
                    if self.ffr {
                        sve_regs::load_ffr(z + p);
                    }
                    sve_regs::load_zp(z, z + p);
                }
            }
            fp.restore_control();
        }
        if self.svcr & ZA != 0 {
            sve_regs::set_svcr(self.svcr & (SM | ZA));
            let at = self.za.as_ptr() as usize;
            // SAFETY: ZA is on now, at the save's length; `za` holds its rows (and ZT0, saved only
            // where EZT0 untraps it); loads only.
            unsafe {
                sve_regs::load_za(at, svl);
                if self.zt0 {
                    sve_regs::load_zt0(at + svl * svl);
                }
            }
        }
    }
}
