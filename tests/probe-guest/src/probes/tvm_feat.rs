//! `tvm_feat_regs`: every register HCR_EL2.TVM traps beyond the eleven, where the CPU advertises
//! its feature in ID_AA64MMFR3_EL1 (TCR2_EL1, SCTLR2_EL1, MAIR2_EL1, AMAIR2_EL1, PIR_EL1,
//! PIRE0_EL1, POR_EL1, POR_EL0, S2POR_EL1), can be read, written and read back without an UNDEF,
//! and reads back what the architecture and el2visor allow (`probe_guest::tvm::FeatReg`). The
//! registers the CPU lacks are not touched (they are UNDEFINED there by the architecture).

use super::Context;
use crate::sysreg;
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::tvm::FeatReg;

/// Non-zero while an UNDEF is an expected outcome (vectors.S then resumes past the instruction).
#[export_name = "probe_undef_armed"]
static UNDEF_ARMED: AtomicU64 = AtomicU64::new(0);
/// UNDEFs vectors.S resumed past while armed.
#[export_name = "probe_undefs_caught"]
static UNDEFS_CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Run `f` with UNDEFs caught (vectors.S resumes past each); how many there were.
pub(super) fn undefs_in(f: impl FnOnce()) -> u64 {
    let before = UNDEFS_CAUGHT.load(Ordering::Relaxed);
    UNDEF_ARMED.store(1, Ordering::Relaxed);
    sysreg::isb();
    f();
    sysreg::isb();
    UNDEF_ARMED.store(0, Ordering::Relaxed);
    UNDEFS_CAUGHT.load(Ordering::Relaxed) - before
}

/// The CPU's ID_AA64MMFR3_EL1 and the names of the feature registers it implements (each after
/// a space), for the information line.
pub fn describe() -> (u64, Msg) {
    let mmfr3 = sysreg::id_aa64mmfr3();
    let mut names = Msg::new();
    for reg in FeatReg::ALL.into_iter().filter(|r| r.implemented(mmfr3)) {
        names = msg!("{names} {}", reg.name());
    }
    (mmfr3, names)
}

/// Write, read back and restore one register with UNDEFs caught; the values, or how many UNDEFs.
fn exercise(reg: FeatReg, mmfr3: u64) -> Result<(u64, u64), u64> {
    let before = UNDEFS_CAUGHT.load(Ordering::Relaxed);
    UNDEF_ARMED.store(1, Ordering::Relaxed);
    // The ISB's asm is a compiler memory barrier and keeps its place among the register
    // accesses' asm, so none of them is moved before the arming store (or after the disarming).
    sysreg::isb();
    let old = sysreg::read_feat(reg);
    let value = reg.test_value(old, mmfr3);
    // SAFETY: `test_value` only writes what the probe's translation never consults (see its doc).
    unsafe { sysreg::write_feat(reg, value) };
    let read = sysreg::read_feat(reg);
    // SAFETY: the value the register held.
    unsafe { sysreg::write_feat(reg, old) };
    sysreg::isb();
    UNDEF_ARMED.store(0, Ordering::Relaxed);
    match UNDEFS_CAUGHT.load(Ordering::Relaxed) - before {
        0 => Ok((value, read)),
        n => Err(n),
    }
}

pub fn tvm_feat_regs(ctx: &Context) -> Result<(), Msg> {
    let mmfr3 = sysreg::id_aa64mmfr3();
    for reg in FeatReg::ALL.into_iter().filter(|r| r.implemented(mmfr3)) {
        let (written, read) = exercise(reg, mmfr3).map_err(|n| {
            msg!(
                "{}: {n} UNDEFINED accesses (read, write, read back, restore), although ID_AA64MMFR3_EL1 = {mmfr3:#x} advertises it",
                reg.name()
            )
        })?;
        reg.check(written, read, ctx.mode_if_known())
            .map_err(|m| msg!("{}: {m}", reg.name()))?;
    }
    Ok(())
}
