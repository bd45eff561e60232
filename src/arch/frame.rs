//! The trap frame `SAVE_FRAME` in boot/vectors.S builds for every exception, and the few things
//! done to it everywhere (register operands, the PC step over a trapped instruction). Pure, so
//! the host tests mount this file (`vcpu`) and check it.

#![forbid(unsafe_code)]

/// General-purpose context saved by `SAVE_FRAME` in boot/vectors.S (same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    _pad: u64,
    pub elr: u64,
    pub spsr: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 0x110);

impl TrapFrame {
    /// A frame that enters EL1h at `pc` with DAIF masked and `x0 = arg0`.
    pub fn new_el1(pc: u64, arg0: u64) -> Self {
        let mut f = Self { elr: pc, spsr: SPSR_EL1H_DAIF_MASKED, ..Default::default() };
        f.x[0] = arg0;
        f
    }
    /// All zero (EL0t, PC 0): a placeholder until a real frame is copied in.
    pub const fn zeroed() -> Self {
        Self { x: [0; 31], _pad: 0, elr: 0, spsr: 0 }
    }
    /// Register `n` as an instruction operand sees it (31 is XZR).
    pub fn reg(&self, n: usize) -> u64 {
        if n < 31 { self.x[n] } else { 0 }
    }
    /// Step over the trapped instruction: 4 bytes, or 2 where ESR_EL2.IL (bit 25) says it was a
    /// 16-bit one. The one place an emulated instruction's PC step is made. The instruction has
    /// completed, so a software step in progress (SPSR.SS, bit 21) is over, as KVM does: the
    /// step exception comes before the next instruction rather than after it.
    pub fn skip_instruction(&mut self, esr: u64) {
        self.elr += if esr & (1 << 25) != 0 { 4 } else { 2 };
        self.spsr &= !(1 << 21);
    }
    /// Set register `n` (31, XZR, discards the write).
    pub fn set_reg(&mut self, n: usize, v: u64) {
        if n < 31 {
            self.x[n] = v;
        }
    }
}

/// SPSR for EL1h with D, A, I and F masked.
pub const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

#[cfg(test)]
mod tests {
    use super::*;

    /// ESR_EL2.IL (bit 25): 1 for a 32-bit instruction, 0 for a 16-bit one (a T32 instruction, or
    /// an exception with no instruction length). The step follows it and nothing else.
    #[test]
    fn skip_instruction_steps_by_esr_il() {
        let mut f = TrapFrame::new_el1(0x4008_0000, 0);
        // A data abort with IL = 1 (EC 0x24) and one with IL = 0.
        f.skip_instruction((0x24 << 26) | (1 << 25) | 0x46);
        assert_eq!(f.elr, 0x4008_0004);
        f.skip_instruction((0x24 << 26) | 0x46);
        assert_eq!(f.elr, 0x4008_0006);
        // Only bit 25 matters: every other bit set, IL clear, is still a 2-byte step.
        f.skip_instruction(!(1u64 << 25));
        assert_eq!(f.elr, 0x4008_0008);
        f.skip_instruction(1 << 25);
        assert_eq!(f.elr, 0x4008_000c);
        // A step in progress (SPSR.SS) is over once the emulated instruction is.
        f.spsr |= 1 << 21;
        f.skip_instruction(1 << 25);
        assert_eq!((f.elr, f.spsr), (0x4008_0010, SPSR_EL1H_DAIF_MASKED));
    }

    #[test]
    fn xzr_reads_zero_and_ignores_writes() {
        let mut f = TrapFrame::new_el1(0, 7);
        assert_eq!((f.reg(0), f.spsr), (7, SPSR_EL1H_DAIF_MASKED));
        let z = TrapFrame::zeroed();
        assert_eq!((z.x, z.elr, z.spsr), ([0; 31], 0, 0));
        f.set_reg(31, 5);
        assert_eq!(f.reg(31), 0);
        f.set_reg(30, 9);
        assert_eq!(f.reg(30), 9);
    }
}
