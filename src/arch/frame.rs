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
    /// step exception comes before the next instruction rather than after it. And it was no
    /// branch: PSTATE.BTYPE (SPSR bits 11:10) is 0 for the next one, which a guarded page would
    /// otherwise check against the branch that reached the emulated instruction (KVM clears it
    /// too).
    pub fn skip_instruction(&mut self, esr: u64) {
        self.elr += if esr & (1 << 25) != 0 { 4 } else { 2 };
        self.spsr &= !(SPSR_SS | SPSR_BTYPE);
    }
    /// Set register `n` (31, XZR, discards the write).
    pub fn set_reg(&mut self, n: usize, v: u64) {
        if n < 31 {
            self.x[n] = v;
        }
    }
}

/// PSTATE.SS in an SPSR: a software step in progress.
pub const SPSR_SS: u64 = 1 << 21;
/// PSTATE.BTYPE in an SPSR (FEAT_BTI): the branch type a guarded page checks.
pub const SPSR_BTYPE: u64 = 3 << 10;

/// SPSR for EL1h with D, A, I and F masked.
pub const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

/// What the lean synchronous exit (`lower_sync_lean`, boot/vectors.S; issue 15) saves instead of
/// a [`TrapFrame`]: the caller-saved registers x0..x18 and x30, which the Rust it calls may
/// change, in this order: x2..x17, x18, x30, then x0 and x1 (which the vector saved first).
/// x19..x29 stay in the CPU (the Rust code preserves them), so they are not operands here:
/// [`LeanRegs::reg`] has no value for them and an exit that needs one takes the slow path.
/// ELR_EL2 and SPSR_EL2 stay in their registers too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LeanRegs {
    slots: [u64; 20],
}

const _: () = assert!(core::mem::size_of::<LeanRegs>() == 0xa0);

impl LeanRegs {
    /// The save slot of register `n`, if it is saved.
    #[inline(always)]
    fn slot(n: u8) -> Option<usize> {
        match n {
            0 | 1 => Some(18 + n as usize),
            2..=18 => Some(n as usize - 2),
            30 => Some(17),
            _ => None,
        }
    }
    /// Register `n` as an instruction operand sees it (31 is XZR), if this save holds it.
    #[inline(always)]
    pub fn reg(&self, n: u8) -> Option<u64> {
        if n == 31 {
            return Some(0);
        }
        Self::slot(n).map(|i| self.slots[i])
    }
    /// Set register `n` (31, XZR, discards the write); `false` if this save does not hold it.
    #[inline(always)]
    pub fn set_reg(&mut self, n: u8, v: u64) -> bool {
        match Self::slot(n) {
            Some(i) => {
                self.slots[i] = v;
                true
            }
            None => n == 31,
        }
    }
    /// The registers as saved, in memory order (for tests).
    pub fn from_slots(slots: [u64; 20]) -> Self {
        Self { slots }
    }
}

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
        // A step in progress (SPSR.SS) is over once the emulated instruction is, and the branch
        // type it was reached with (BTYPE) does not carry over to the next.
        f.spsr |= SPSR_SS | SPSR_BTYPE;
        f.skip_instruction(1 << 25);
        assert_eq!((f.elr, f.spsr), (0x4008_0010, SPSR_EL1H_DAIF_MASKED));
    }

    /// The slots are where boot/vectors.S's `lower_sync_lean` stores each register: x2..x17 in
    /// pairs from offset 0, x18 and x30 at 0x80, x0 and x1 (the vector's own push) at 0x90.
    #[test]
    fn lean_registers_sit_where_the_vector_saves_them() {
        let mut slots = [0u64; 20];
        for (i, s) in slots.iter_mut().enumerate() {
            *s = 100 + i as u64;
        }
        let mut r = LeanRegs::from_slots(slots);
        for n in 2..=17u8 {
            assert_eq!(r.reg(n), Some(100 + (n as u64 - 2)), "x{n}");
        }
        assert_eq!((r.reg(18), r.reg(30), r.reg(0), r.reg(1), r.reg(31)), (Some(116), Some(117), Some(118), Some(119), Some(0)));
        for n in 19..=29u8 {
            assert_eq!(r.reg(n), None, "x{n} stays in the CPU");
            assert!(!r.set_reg(n, 1));
        }
        assert!(r.set_reg(31, 5) && r.set_reg(30, 9) && r.set_reg(0, 7));
        assert_eq!((r.reg(31), r.reg(30), r.reg(0)), (Some(0), Some(9), Some(7)));
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

    /// boot/vectors.S writes the lean save by hand (its LEAN_SAVE and LEAN_RESTORE macros, which
    /// `lower_sync_lean` and `lower_irq_lean` use): every `stp`/`ldp` must put each register where [`LeanRegs`] reads it, and `LEAN_SIZE` must
    /// be its size (the vector's own push of x0/x1 is the last 16 bytes).
    #[test]
    fn the_vector_assembly_saves_where_lean_regs_reads() {
        let asm = include_str!("../../boot/vectors.S");
        let size = asm.lines().find_map(|l| l.trim().strip_prefix(".equ LEAN_SIZE, 0x")).map(|h| usize::from_str_radix(h.trim(), 16).unwrap());
        assert_eq!(size, Some(core::mem::size_of::<LeanRegs>()));
        for entry in ["lower_sync_lean:", "lower_irq_lean:"] {
            let body = &asm[asm.find(entry).unwrap_or_else(|| panic!("{entry} not in vectors.S"))..];
            let body = &body[..body.find("eret").unwrap()];
            assert!(body.contains("LEAN_SAVE") && body.contains("LEAN_RESTORE"), "{entry} saves another way");
        }
        {
            let body = &asm[asm.find(".macro LEAN_SAVE").expect("the LEAN_SAVE macro")..];
            let body = &body[..body.find(".macro LEAN_RESTORE").and_then(|i| body[i..].find(".endm").map(|j| i + j)).unwrap()];
            let entry = "the LEAN_SAVE/LEAN_RESTORE macros";
            let mut seen = 0;
            for l in body.lines().map(str::trim).filter(|l| l.starts_with("stp") || l.starts_with("ldp")) {
                // "stp     x2, x3, [sp, #0x00]"
                let ops: std::vec::Vec<&str> = l[3..].split(',').map(|o| o.trim().trim_matches(|c| c == '[' || c == ']')).collect();
                let reg = |o: &str| o.strip_prefix('x').unwrap().parse::<u8>().unwrap();
                let off = usize::from_str_radix(ops[3].trim_start_matches("#0x"), 16).unwrap();
                for (k, r) in [reg(ops[0]), reg(ops[1])].into_iter().enumerate() {
                    assert_eq!(LeanRegs::slot(r).map(|i| i * 8), Some(off + 8 * k), "{entry} {l}: x{r}");
                }
                seen += 1;
            }
            assert_eq!(seen, 19, "{entry}: 9 stp and 10 ldp (x0/x1 are the vector's push)");
        }
    }

}
