//! `vgic_isv0_abort`: an `ldp` from the emulated distributor gives el2visor a data abort without
//! an instruction syndrome (ESR_EL2.ISV = 0), which it cannot emulate: the guest must get a
//! synchronous external abort at EL1 (EC 0x25, DFSC 0b010000, FAR_EL1 = the address) and go on.
//! The QEMU test checks that el2visor logs the access once.

use super::abort::ABORTS_CAUGHT;
use super::Context;
use crate::sysreg;
use core::arch::global_asm;
use core::sync::atomic::Ordering;
use probe_guest::msg;
use probe_guest::msg::Msg;

// `ldp x0, x1, [x2]`: a load pair has no ISV syndrome. vectors.S resumes past
// probe_isv0_load_insn on a data abort (x0 then stays 0). C ABI: x0 = address.
global_asm!(
    ".section .text, \"ax\"",
    ".global probe_isv0_load",
    ".global probe_isv0_load_insn",
    "probe_isv0_load:",
    "    mov x2, x0",
    "    mov x0, xzr",
    "    mov x1, xzr",
    "probe_isv0_load_insn:",
    "    ldp x0, x1, [x2]",
    "    orr x0, x0, x1",
    "    ret",
);

extern "C" {
    fn probe_isv0_load(addr: u64) -> u64;
}

/// GICD_ISENABLER0: an ordinary register whose 4-byte loads el2visor emulates.
const OFFSET: u64 = 0x100;

pub fn isv0_abort(ctx: &Context) -> Result<(), Msg> {
    let gic = ctx.platform.gic.ok_or_else(|| msg!("no GIC node the probe knows in the DT"))?;
    let addr = gic.dist() + OFFSET;
    let before = ABORTS_CAUGHT.load(Ordering::Relaxed);
    // SAFETY: `addr` is the distributor, mapped Device at stage 1 (mmu.rs); reading
    // ISENABLER0/1 has no side effect, and the data abort el2visor injects is resumed past by
    // vectors.S. The stub clobbers only x0-x2.
    let value = unsafe { probe_isv0_load(addr) };
    if ABORTS_CAUGHT.load(Ordering::Relaxed) == before {
        return Err(msg!("ldp from the distributor at {addr:#x} completed (read {value:#x}) without an abort"));
    }
    let (esr, far) = (sysreg::esr(), sysreg::far());
    let (ec, dfsc) = ((esr >> 26) & 0x3f, esr & 0x3f);
    if ec != 0x25 || dfsc != 0x10 {
        return Err(msg!("ldp from {addr:#x}: ESR_EL1 {esr:#x} (EC {ec:#x}, DFSC {dfsc:#x}), expected a synchronous external abort"));
    }
    if far != addr {
        return Err(msg!("ldp from {addr:#x}: FAR_EL1 {far:#x}"));
    }
    Ok(())
}
