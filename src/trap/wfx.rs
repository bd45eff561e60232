//! What a trapped WFI/WFIT makes the vCPU do (only WFI and WFIT trap, and only on GICv2 hosts
//! while a list register holds a physical interrupt: HCR_EL2.TWI). Pure: the runtime passes the decoded syndrome, the counter, the guest's registers
//! and, where it could read it, the trapped instruction.
//!
//! A WFIT whose deadline register is valid (ESR ISS.RV) waits until the guest's virtual counter
//! reaches the deadline at most, and not at all once it has passed; a WFIT without RV is a WFI (as
//! KVM). Some implementations report a trapped WFIT as a WFI with no register (QEMU 10's TCG
//! does: TI = 0, RV = 0), so on a CPU with FEAT_WFxT the instruction itself is looked at too: a
//! WFIT there has its deadline honoured all the same. WFE and WFET are never trapped; should one
//! come, it resumes at once.

#![forbid(unsafe_code)]

use super::iss::{Wfx, WfxKind};

/// What the vCPU does after the trapped instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WfxAction {
    /// Resume the guest now.
    Resume,
    /// Idle until an interrupt is pending for the vCPU, or the counter reaches the deadline.
    Idle { deadline: Option<u64> },
}

/// WFIT Xt (FEAT_WFxT): `1101 0101 0000 0011 0001 0000 001 Rt`.
const WFIT_MASK: u32 = 0xffff_ffe0;
const WFIT: u32 = 0xd503_1020;

/// The register of a WFIT instruction word, if it is one.
pub fn wfit_register(insn: u32) -> Option<u8> {
    (insn & WFIT_MASK == WFIT).then_some((insn & 0x1f) as u8)
}

/// Decide for syndrome `wfx`; `now` is the guest's CNTVCT_EL0, `reg(n)` reads its register `n`
/// (31 reads as zero), `insn` is the trapped instruction when the runtime read it.
pub fn action(wfx: Wfx, now: u64, reg: impl Fn(u8) -> u64, insn: Option<u32>) -> WfxAction {
    let deadline_reg = match (wfx.kind, wfx.timeout_reg) {
        (WfxKind::Wfe | WfxKind::Wfet, _) => return WfxAction::Resume,
        (WfxKind::Wfit, Some(rv)) => Some(rv),
        (WfxKind::Wfit, None) => None,
        (WfxKind::Wfi, _) => insn.and_then(wfit_register),
    };
    match deadline_reg.map(reg) {
        Some(deadline) if now >= deadline => WfxAction::Resume,
        deadline => WfxAction::Idle { deadline },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(n: u8) -> u64 {
        if n == 31 { 0 } else { 1000 + n as u64 }
    }

    #[test]
    fn wfi_idles_without_a_deadline() {
        let wfi = Wfx::from_iss(0);
        assert_eq!(action(wfi, 5, regs, None), WfxAction::Idle { deadline: None });
        // WFI itself (0xd503207f) is not a WFIT.
        assert_eq!(action(wfi, 5, regs, Some(0xd503_207f)), WfxAction::Idle { deadline: None });
    }

    #[test]
    fn wfit_waits_until_its_deadline_at_most() {
        // TI = 0b10, RV = 1, Rv = x3 (ISS bits 9:5).
        let wfit = Wfx::from_iss(0b10 | (1 << 2) | (3 << 5));
        assert_eq!(action(wfit, 500, regs, None), WfxAction::Idle { deadline: Some(1003) });
        assert_eq!(action(wfit, 1003, regs, None), WfxAction::Resume, "deadline reached");
        assert_eq!(action(wfit, 5000, regs, None), WfxAction::Resume, "deadline passed");
        // Rv = 31 is XZR: a deadline of 0 has always passed.
        assert_eq!(action(Wfx::from_iss(0b110 | (31 << 5)), 1, regs, None), WfxAction::Resume);
        // Without RV, a WFIT is a WFI.
        assert_eq!(action(Wfx::from_iss(0b10), 5, regs, None), WfxAction::Idle { deadline: None });
    }

    /// QEMU 10 reports a trapped WFIT as TI = WFI without RV; the instruction says what it is.
    #[test]
    fn a_wfit_reported_as_wfi_still_has_its_deadline() {
        let as_wfi = Wfx::from_iss(0);
        for rt in [0u32, 7, 30] {
            let insn = WFIT | rt;
            assert_eq!(wfit_register(insn), Some(rt as u8));
            assert_eq!(action(as_wfi, 10, regs, Some(insn)), WfxAction::Idle { deadline: Some(1000 + rt as u64) });
            assert_eq!(action(as_wfi, 2000, regs, Some(insn)), WfxAction::Resume);
        }
        // WFET (0xd5031000 | Rt) and other hints are not.
        assert_eq!(wfit_register(0xd503_1000), None);
        assert_eq!(wfit_register(0xd503_203f), None);
    }

    #[test]
    fn wfe_and_wfet_resume() {
        assert_eq!(action(Wfx::from_iss(1), 0, regs, None), WfxAction::Resume);
        assert_eq!(action(Wfx::from_iss(0b111), 0, regs, None), WfxAction::Resume);
    }
}
