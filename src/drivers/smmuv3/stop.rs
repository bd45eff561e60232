//! Making an SMMU abort every transaction with register writes alone (no command queue, no
//! tables): GBPA.ABORT first, then SMMUEN = 0. In that order: GBPA only applies while SMMUEN = 0,
//! so setting it while the SMMU is (or may be) on changes nothing yet, and the moment it is off
//! incoming transactions abort. The other order lets DMA bypass translation in between when the
//! SMMU was on with GBPA.ABORT = 0 (firmware's choice at takeover). Linux's
//! `arm_smmu_device_reset` does the same. Used at takeover and when an SMMU fails (`vm::smmu`).
//!
//! Written against [`Access`] so that the order is host-tested with a register model.

#![forbid(unsafe_code)]

use super::regs::{CR0, CR0ACK, GBPA, GBPA_ABORT, GBPA_UPDATE};

/// 32-bit register access to one SMMU's frame (`mmio::Regs` on the target).
pub trait Access {
    fn read32(&self, off: usize) -> u32;
    fn write32(&self, off: usize, v: u32);
}

/// The GBPA value that sets ABORT and asks for the update (GBPA.Update = 1), keeping the other
/// fields as they are (IHI 0070 6.3.14: software writes the register with Update = 1 and waits for
/// the SMMU to clear it).
pub const fn gbpa_abort(gbpa: u32) -> u32 {
    gbpa | GBPA_ABORT | GBPA_UPDATE
}

fn wait(spins: u32, mut done: impl FnMut() -> bool) -> bool {
    (0..spins).any(|_| {
        let ok = done();
        core::hint::spin_loop();
        ok
    })
}

/// Set GBPA.ABORT (waiting out an update in progress, then for ours), then clear CR0 and wait for
/// CR0ACK. When GBPA cannot be updated the SMMU is left on: off with the old GBPA might mean
/// bypass. Each wait polls at most `spins` times.
pub fn abort_all(r: &impl Access, spins: u32) -> Result<(), &'static str> {
    let idle = || r.read32(GBPA) & GBPA_UPDATE == 0;
    if !wait(spins, idle) {
        return Err("a GBPA update never completes, so it was left on");
    }
    r.write32(GBPA, gbpa_abort(r.read32(GBPA)));
    if !wait(spins, idle) {
        return Err("it does not complete the GBPA.ABORT update, so it was left on");
    }
    r.write32(CR0, 0);
    if !wait(spins, || r.read32(CR0ACK) == 0) {
        return Err("it does not acknowledge being disabled (CR0ACK)");
    }
    Ok(())
}
