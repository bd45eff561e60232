//! Delivering an exception into the guest: the register sequence around the pure computation in
//! [`super::inject`]. The guest's ELR/SPSR go to ELR_EL1/SPSR_EL1, the syndrome to ESR_EL1 (and
//! the address to FAR_EL1 for an abort), and the guest resumes at its own vector.

use crate::arch::exception::TrapFrame;
use crate::arch::sysreg;
use crate::trap::esr::Esr;
use crate::trap::inject::{inject_target, syndrome_for_alignment_fault, syndrome_for_injected_abort, syndrome_for_undef, EntryState};

fn feat_pan() -> bool {
    (sysreg::id_aa64mmfr1_el1() >> 20) & 0xf != 0
}

/// The PSTATE an exception entry to the guest's EL1 computes from its system registers and the
/// features it sees: ID_AA64PFR1_EL1.MTE (bits 11:8, 2 and up has the tag checks TCO
/// overrides), NMI (bits 39:36) and GCS (bits 47:44, whose GCSCR_EL1 exists only then).
fn entry_state() -> EntryState {
    let pfr1 = sysreg::id_aa64pfr1_el1();
    let field = |shift: u32| (pfr1 >> shift) & 0xf;
    let entry = EntryState::from_sctlr_el1(sysreg::sctlr_el1(), feat_pan(), field(8) >= 2, field(36) != 0);
    if field(44) != 0 { entry.with_gcscr_el1(sysreg::gcscr_el1()) } else { entry }
}

fn deliver(frame: &mut TrapFrame, esr_el1: u64, far: Option<u64>) -> Result<(), &'static str> {
    let entry = entry_state();
    let target = inject_target(frame.spsr, sysreg::vbar_el1(), entry).map_err(|_| "the guest is in a mode it cannot take an exception from")?;
    sysreg::set_elr_el1(frame.elr);
    sysreg::set_spsr_el1(frame.spsr);
    sysreg::set_esr_el1(esr_el1);
    if let Some(far) = far {
        sysreg::set_far_el1(far);
    }
    frame.elr = target.elr;
    frame.spsr = target.spsr;
    Ok(())
}

/// Inject a synchronous external abort for the abort described by `esr` at guest VA `far`.
pub fn abort(frame: &mut TrapFrame, esr: Esr, far: u64) -> Result<(), &'static str> {
    let syn = syndrome_for_injected_abort(esr, frame.spsr).ok_or("not an abort")?;
    deliver(frame, syn, Some(far))
}

/// Inject an alignment fault for the data abort described by `esr` at guest VA `far`.
pub fn alignment_fault(frame: &mut TrapFrame, esr: Esr, far: u64) -> Result<(), &'static str> {
    let syn = syndrome_for_alignment_fault(esr, frame.spsr).ok_or("not a data abort")?;
    deliver(frame, syn, Some(far))
}

/// Inject an undefined-instruction exception for the trapped instruction.
pub fn undef(frame: &mut TrapFrame, esr: Esr) -> Result<(), &'static str> {
    deliver(frame, syndrome_for_undef(esr), None)
}

/// Give the guest the BRK it executed (EC 0x3c, its immediate in the syndrome), which MDCR_EL2.TDE
/// routed to EL2 while GDB is attached: the guest's own (Linux's BUG and WARN), not the debugger's.
pub fn brk(frame: &mut TrapFrame, esr: Esr) -> Result<(), &'static str> {
    deliver(frame, esr.0 & 0xffff_ffff, None)
}
