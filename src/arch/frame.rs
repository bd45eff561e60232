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
    /// 16-bit one. The one place an emulated instruction's PC step is made; the PSTATE that
    /// follows is [`stepped_spsr`]'s.
    pub fn skip_instruction(&mut self, esr: u64) {
        self.elr = stepped_pc(self.elr, esr, self.spsr);
        self.spsr = stepped_spsr(self.spsr);
    }
    /// Set register `n` (31, XZR, discards the write).
    pub fn set_reg(&mut self, n: usize, v: u64) {
        if n < 31 {
            self.x[n] = v;
        }
    }
}

/// PSTATE.SS in an SPSR: a software step in progress (bit 21 from AArch64 and AArch32 alike).
pub const SPSR_SS: u64 = 1 << 21;
/// PSTATE.BTYPE in an SPSR from AArch64 (FEAT_BTI): the branch type a guarded page checks.
pub const SPSR_BTYPE: u64 = 3 << 10;
/// SPSR.M[4]: the exception came from AArch32 (with HCR_EL2.RW = 1, from EL0 only).
pub const SPSR_AARCH32: u64 = 1 << 4;
/// An AArch32 SPSR's IT[7:2] (bits 15:10) and IT[1:0] (bits 26:25): the T32 IT block state.
const SPSR_IT_HIGH: u64 = 0x3f << 10;
const SPSR_IT_LOW: u64 = 3 << 25;

/// The length of the trapped instruction: 4 bytes, or 2 where ESR_EL2.IL (bit 25) is clear (a
/// 16-bit T32 instruction).
#[inline(always)]
pub const fn step_len(esr: u64) -> u64 {
    if esr & (1 << 25) != 0 { 4 } else { 2 }
}

/// The guest's PC past the trapped instruction (syndrome `esr`, PSTATE `spsr`): an AArch32 PC
/// is 32 bits wide and wraps there.
#[inline(always)]
pub const fn stepped_pc(elr: u64, esr: u64, spsr: u64) -> u64 {
    let pc = elr.wrapping_add(step_len(esr));
    if spsr & SPSR_AARCH32 != 0 { pc & 0xffff_ffff } else { pc }
}

/// The guest's PSTATE (as SPSR_EL2) once an emulated instruction has completed. A software step
/// in progress (SS) is over, as KVM does: the step exception comes before the next instruction
/// rather than after it. From AArch64 the instruction was no branch: BTYPE is 0 for the next
/// one, which a guarded page would otherwise check against the branch that reached the emulated
/// instruction (KVM clears it too). From AArch32 those bits are IT[3:2], not BTYPE: a T32
/// instruction inside an IT block moves the block on instead (the Arm ARM's `ITAdvance`), so the
/// next instruction gets its own condition and the block ends after its last one.
#[inline(always)]
pub const fn stepped_spsr(spsr: u64) -> u64 {
    if spsr & SPSR_AARCH32 == 0 {
        return spsr & !(SPSR_SS | SPSR_BTYPE);
    }
    let it = aarch32_itstate(spsr);
    let next = if it & 0b111 == 0 { 0 } else { (it & 0xe0) | ((it << 1) & 0x1f) };
    (spsr & !(SPSR_SS | SPSR_IT_HIGH | SPSR_IT_LOW)) | ((next & 0xfc) << 8) | ((next & 3) << 25)
}

/// ITSTATE (IT[7:0]) of an AArch32 SPSR: IT[7:4] is the condition of the instruction at the PC,
/// 0 outside an IT block.
#[inline(always)]
pub const fn aarch32_itstate(spsr: u64) -> u64 {
    ((spsr & SPSR_IT_HIGH) >> 8) | ((spsr & SPSR_IT_LOW) >> 25)
}

/// Whether a trapped AArch32 instruction passes its condition (syndrome `esr`, guest PSTATE
/// `spsr`). A conditional instruction that fails its condition may still trap (the Arm ARM
/// leaves it to the implementation); it must then do nothing but move the PC on, not be
/// emulated nor answered with an UNDEF. The classes with a condition in their syndrome (EC
/// 0x01, 0x03..0x07, 0x0c: WFI/WFE and the coprocessor accesses) give it in ISS.COND where
/// ISS.CV (bit 24) is set, else (a T32 instruction) it is ITSTATE's. Everything from AArch64 and
/// every other class passes.
pub const fn aarch32_condition_passed(esr: u64, spsr: u64) -> bool {
    let ec = (esr >> 26) & 0x3f;
    if spsr & SPSR_AARCH32 == 0 || !matches!(ec, 0x01 | 0x03..=0x07 | 0x0c) {
        return true;
    }
    let cond = if esr & (1 << 24) != 0 {
        (esr >> 20) & 0xf
    } else {
        let it = aarch32_itstate(spsr);
        if it == 0 { 0xe } else { it >> 4 }
    };
    let (n, z, c, v) = ((spsr >> 31) & 1 != 0, (spsr >> 30) & 1 != 0, (spsr >> 29) & 1 != 0, (spsr >> 28) & 1 != 0);
    let base = match cond >> 1 {
        0 => z,
        1 => c,
        2 => n,
        3 => v,
        4 => c && !z,
        5 => n == v,
        6 => !z && n == v,
        // AL, and 0b1111 (unconditional encodings): always.
        _ => return true,
    };
    // An odd condition is the inverse of the even one below it.
    base != (cond & 1 != 0)
}

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

    /// AArch32 ITSTATE as an SPSR holds it: IT[7:2] in bits 15:10, IT[1:0] in bits 26:25.
    fn with_it(spsr: u64, it: u64) -> u64 {
        spsr | ((it & 0xfc) << 8) | ((it & 3) << 25)
    }

    /// AArch32 User mode, T32 (T, bit 5), interrupts unmasked.
    const USR_T32: u64 = 0x10 | (1 << 5);

    /// A T32 instruction inside an IT block moves the block on (`ITAdvance`) rather than having
    /// IT[3:2] cleared as if they were BTYPE; the PC wraps at 32 bits; SS ends either way.
    #[test]
    fn aarch32_step_advances_the_it_block() {
        // `ite eq` (firstcond 0b0000, mask 0b1100): ITSTATE 0x0c, the first instruction EQ.
        let mut f = TrapFrame { elr: 0x8000, spsr: with_it(USR_T32, 0x0c) | SPSR_SS, ..TrapFrame::zeroed() };
        assert_eq!(aarch32_itstate(f.spsr), 0x0c);
        // A 16-bit data abort (IL = 0): the next instruction is the `e` one, NE (ITSTATE 0x18).
        f.skip_instruction(0x24 << 26);
        assert_eq!((f.elr, aarch32_itstate(f.spsr), f.spsr & SPSR_SS), (0x8002, 0x18, 0));
        assert_eq!(f.spsr & !(SPSR_IT_HIGH | SPSR_IT_LOW), USR_T32, "nothing else changes");
        // Its last instruction: the block ends.
        f.skip_instruction((0x24 << 26) | (1 << 25));
        assert_eq!((f.elr, aarch32_itstate(f.spsr)), (0x8006, 0));
        // `itttt ne` (firstcond 0b0001, mask 0b1111): four NE instructions, IT[7:5] staying and
        // IT[4:0] shifting left, until IT[3:0] = 0b1000 (the last one) ends the block.
        let mut it = 0x1f;
        for want in [0x1e, 0x1c, 0x18, 0] {
            it = aarch32_itstate(stepped_spsr(with_it(USR_T32, it)));
            assert_eq!(it, want);
        }
        // Outside an IT block nothing changes but SS; the PC wraps at 4 GiB.
        let mut f = TrapFrame { elr: 0xffff_fffe, spsr: USR_T32 | (3 << 10), ..TrapFrame::zeroed() };
        f.skip_instruction(0x24 << 26);
        assert_eq!(f.elr, 0);
        let mut f = TrapFrame { elr: 0xffff_fffc, spsr: 0x10, ..TrapFrame::zeroed() };
        f.skip_instruction((0x01 << 26) | (1 << 25));
        assert_eq!((f.elr, f.spsr), (0, 0x10));
        // AArch64 keeps a 64-bit PC and clears BTYPE.
        assert_eq!(stepped_pc(0xffff_fffc, 1 << 25, 0x3c5), 0x1_0000_0000);
        assert_eq!(stepped_spsr(0x3c5 | SPSR_BTYPE | SPSR_SS | (3 << 25)), 0x3c5 | (3 << 25));
    }

    /// The conditions of the Arm ARM's `ConditionHolds`, from ISS.COND or from ITSTATE.
    #[test]
    fn aarch32_conditions() {
        const N: u64 = 1 << 31;
        const Z: u64 = 1 << 30;
        const C: u64 = 1 << 29;
        const V: u64 = 1 << 28;
        // A WFI (EC 0x01) from A32 with ISS.CV = 1 and COND `cond`.
        let wfi = |cond: u64| (0x01 << 26) | (1 << 25) | (1 << 24) | (cond << 20);
        let a32 = 0x10;
        let table: [(u64, u64, bool); 20] = [
            (0x0, Z, true), (0x0, 0, false), (0x1, 0, true), (0x1, Z, false),
            (0x2, C, true), (0x3, C, false), (0x4, N, true), (0x5, N, false),
            (0x6, V, true), (0x7, V, false), (0x8, C, true), (0x8, C | Z, false),
            (0x9, Z, true), (0xa, N | V, true), (0xb, N, true), (0xc, N | V, true),
            (0xc, Z, false), (0xd, Z, true), (0xe, 0, true), (0xf, 0, true),
        ];
        for (cond, flags, pass) in table {
            assert_eq!(aarch32_condition_passed(wfi(cond), a32 | flags), pass, "cond {cond:#x} flags {flags:#x}");
        }
        // CV = 0 (T32): the condition is ITSTATE's, AL outside a block.
        let t32_wfi = (0x01 << 26) | (0xe << 20);
        assert!(!aarch32_condition_passed(t32_wfi, with_it(USR_T32, 0x0c)), "EQ with Z clear");
        assert!(aarch32_condition_passed(t32_wfi, with_it(USR_T32, 0x0c) | Z));
        assert!(aarch32_condition_passed(t32_wfi, USR_T32));
        // A coprocessor access (EC 0x03) has the field too; a data abort (EC 0x24) has none,
        // and nothing from AArch64 is conditional.
        assert!(!aarch32_condition_passed((0x03 << 26) | (1 << 24), a32));
        assert!(aarch32_condition_passed((0x24 << 26) | (1 << 24), a32));
        assert!(aarch32_condition_passed(wfi(0), 0x3c5));
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
