//! What a single step leaves in the guest's interrupt masks. The stub masks IRQ and FIQ
//! (PSTATE.I/F) for the one instruction GDB steps, so the step ends after it and not at the
//! guest's IRQ vector; afterwards the guest must have the masks the instruction itself made:
//! its own from before the step, except those the instruction wrote (`msr daifset/daifclr`,
//! `msr daif, xN`, `eret`) or an exception it took set. QEMU's gdbstub, which holds interrupts
//! back without touching PSTATE, gives the same. Pure: `debug::target` reads the instruction
//! and the registers.

#![forbid(unsafe_code)]

/// The IRQ (I, bit 7) and FIQ (F, bit 6) masks, in PSTATE's SPSR layout (and DAIF's).
pub const IF: u64 = 0xc0;

/// A step in progress: the guest's own I/F bits, the PC stepped and the instruction there
/// (`None` where it could not be read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub saved: u64,
    pub pc: u64,
    pub insn: Option<u32>,
}

/// The I/F bits instruction `insn` writes, when it completes.
pub fn if_written(insn: u32) -> u64 {
    match insn {
        // MSR DAIFSet/DAIFClr, #imm4 (op2 0b110/0b111): imm4 is D A I F, so bits 1 and 0 are I
        // and F.
        i if i & 0xffff_f0df == 0xd503_40df => u64::from((i >> 8) & 3) << 6,
        // MSR DAIF, Xt: all of them.
        i if i & 0xffff_ffe0 == 0xd51b_4220 => IF,
        // ERET, ERETAA, ERETAB: PSTATE from SPSR_EL1.
        0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff => IF,
        _ => 0,
    }
}

/// The register `MRS Xt, DAIF` reads into (not XZR): what it read during the step is the
/// stub's masks, not the guest's.
pub fn mrs_daif(insn: u32) -> Option<usize> {
    let rt = (insn & 0x1f) as usize;
    (insn & 0xffff_ffe0 == 0xd53b_4220 && rt != 31).then_some(rt)
}

/// The I/F bits the guest keeps after a step that masked them: `saved` were its own before,
/// `after` what PSTATE holds now, `insn` the instruction stepped (`None`: unknown, or it did
/// not complete). An exception taken masks them itself, so they stay as it left them;
/// otherwise the bits the instruction wrote are as it wrote them and the others its own again.
pub fn after_step(saved: u64, after: u64, insn: Option<u32>, took_exception: bool) -> u64 {
    if took_exception {
        return after & IF;
    }
    let written = insn.map_or(0, if_written);
    (after & written) | (saved & IF & !written)
}

/// Whether the step ended by taking an exception to EL1: the PC is one of the 16 entries of
/// the guest's vector table (`vbar`), and not by falling through from the instruction before.
pub fn took_exception(pc_before: u64, pc_after: u64, vbar: u64) -> bool {
    let off = pc_after.wrapping_sub(vbar & !0x7ff);
    off < 0x800 && off.is_multiple_of(0x80) && pc_after != pc_before.wrapping_add(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: u64 = 0x80;
    const F: u64 = 0x40;
    // The encodings, as an assembler writes them.
    const DAIFCLR_I: u32 = 0xd503_42ff; // msr daifclr, #2
    const DAIFSET_I: u32 = 0xd503_42df; // msr daifset, #2
    const DAIFSET_ALL: u32 = 0xd503_4fdf; // msr daifset, #0xf
    const DAIFCLR_F: u32 = 0xd503_41ff; // msr daifclr, #1
    const MSR_DAIF_X3: u32 = 0xd51b_4223; // msr daif, x3
    const MRS_X5_DAIF: u32 = 0xd53b_4225; // mrs x5, daif
    const ERET: u32 = 0xd69f_03e0;
    const ERETAA: u32 = 0xd69f_0bff;
    const ERETAB: u32 = 0xd69f_0fff;
    const NOP: u32 = 0xd503_201f;
    // During the step both are masked: what PSTATE holds after an instruction that left them.
    const MASKED: u64 = I | F;

    #[test]
    fn instructions_that_write_the_masks_keep_what_they_wrote() {
        // `msr daifclr, #2` with IRQs masked: unmasked after it (F its own, masked by the stub).
        assert_eq!(after_step(I | F, F, Some(DAIFCLR_I), false), F);
        assert_eq!(after_step(I, F, Some(DAIFCLR_I), false), 0);
        // `msr daifset, #2` with both unmasked: IRQs masked after it, FIQs not.
        assert_eq!(after_step(0, MASKED, Some(DAIFSET_I), false), I);
        assert_eq!(after_step(0, MASKED, Some(DAIFSET_ALL), false), I | F);
        assert_eq!(after_step(I | F, I, Some(DAIFCLR_F), false), I);
        // `msr daif, x3` and the ERETs: whatever they loaded.
        for insn in [MSR_DAIF_X3, ERET, ERETAA, ERETAB] {
            assert_eq!(after_step(I | F, 0, Some(insn), false), 0, "{insn:#x}");
            assert_eq!(after_step(0, I, Some(insn), false), I, "{insn:#x}");
        }
    }

    #[test]
    fn other_instructions_get_the_guests_own_masks_back() {
        for insn in [Some(NOP), Some(MRS_X5_DAIF), None] {
            assert_eq!(after_step(0, MASKED, insn, false), 0);
            assert_eq!(after_step(F, MASKED, insn, false), F);
            assert_eq!(after_step(I | F, MASKED, insn, false), I | F);
        }
        // Other PSTATE fields of `after` are not the I/F bits.
        assert_eq!(after_step(0, 0x3c5, Some(NOP), false), 0);
        // Other MSR (immediate)s: spsel, dit, tco, ssbs.
        for insn in [0xd500_40bf, 0xd503_415f, 0xd503_419f, 0xd503_413f] {
            assert_eq!(if_written(insn), 0, "{insn:#x}");
        }
        assert_eq!(if_written(0xd51b_4200), 0, "msr nzcv, x0 is not DAIF");
    }

    #[test]
    fn an_exception_taken_masks_them_itself() {
        assert_eq!(after_step(0, MASKED, Some(NOP), true), MASKED);
        assert_eq!(after_step(0, MASKED, Some(DAIFCLR_I), true), MASKED);
        assert_eq!(after_step(0, MASKED, None, true), MASKED);
    }

    #[test]
    fn mrs_daif_is_recognised() {
        assert_eq!(mrs_daif(MRS_X5_DAIF), Some(5));
        assert_eq!(mrs_daif(0xd53b_423f), None, "into xzr");
        assert_eq!(mrs_daif(MSR_DAIF_X3), None);
        assert_eq!(mrs_daif(0xd53b_4200), None, "mrs x0, nzcv");
    }

    #[test]
    fn exceptions_are_told_from_steps_inside_the_vector_table() {
        let vbar = 0xffff_8000_1001_0800;
        // An SVC: to the lower-EL synchronous entry; an abort at EL1: the current-EL one.
        assert!(took_exception(0x40_1000, vbar + 0x400, vbar));
        assert!(took_exception(0xffff_8000_1234_0000, vbar + 0x200, vbar));
        // Stepping inside a vector entry is no exception, nor is landing beside the table.
        assert!(!took_exception(vbar + 0x280, vbar + 0x284, vbar));
        assert!(!took_exception(vbar + 0x27c, vbar + 0x280, vbar));
        assert!(!took_exception(0x40_1000, vbar + 0x800, vbar));
        assert!(!took_exception(0x40_1000, vbar - 0x80, vbar));
        // VBAR_EL1's low 11 bits are RES0.
        assert!(took_exception(0x40_1000, vbar + 0x400, vbar | 0x7ff));
    }
}
