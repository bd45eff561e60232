//! `aa32_it_block`: an emulated access from AArch32 EL0 inside a T32 IT block. el2visor steps
//! over the instruction it emulates; from AArch32 the step must move the IT block on (the Arm
//! ARM's `ITAdvance`), so that the next instruction is conditional as the block says. SPSR bits
//! 11:10, which an AArch64 step clears as PSTATE.BTYPE, are IT[3:2] there: clearing them ends the
//! block early, and an instruction that should have been skipped runs.
//!
//! The code (asm/aa32.S, at EL0 where `mmu::AA32_CODE_EL0` says): `movs r0, #0` (Z set); `ite eq`;
//! `ldreq r2, [r3]` with r3 at GICD_TYPER (the EQ slot: runs, and el2visor emulates it);
//! `movne r1, #1` (the NE slot: must not run); `svc #0`. So r1 must stay 0, r2 must be
//! GICD_TYPER as EL1 reads it, and the run must end with the SVC (EC 0x11). A CPU without
//! AArch32 at EL0 has nothing to check; without a GIC there is no emulated register to read.

use super::gic::mmio_read;
use crate::mmu::{AA32_CODE_EL0, GICD_EL0};
use core::sync::atomic::Ordering::Relaxed;
use crate::sysreg;
use probe_guest::dt::Platform;
use probe_guest::msg;
use probe_guest::msg::Msg;

extern "C" {
    /// Run the T32 code at `entry` in AArch32 User mode with r3 = `r3`, until its first
    /// exception; returns ESR_EL1 and leaves r0..r3 in `probe_aa32_regs` (asm/aa32.S).
    fn probe_aa32_run(entry: u64, r3: u64) -> u64;
}

/// r0..r3 as the AArch32 code left them (written by asm/aa32.S).
#[no_mangle]
static mut probe_aa32_regs: [u32; 4] = [0; 4];

/// GICD_TYPER's offset.
const GICD_TYPER: u64 = 0x004;
/// SCTLR_EL1.ITD: IT blocks of more than one instruction are UNDEFINED at EL0.
const SCTLR_ITD: u64 = 1 << 7;
/// ESR_ELx.EC of an SVC from AArch32.
const EC_SVC32: u64 = 0x11;

pub fn aa32_it_block(p: &Platform) -> Result<(), Msg> {
    // ID_AA64PFR0_EL1.EL0, bits 3:0: 2 means AArch64 and AArch32.
    if sysreg::id_aa64pfr0() & 0xf != 2 {
        println!("probe: aa32_it_block: no AArch32 at EL0 on this CPU, nothing to check");
        return Ok(());
    }
    let (code, gicd) = (AA32_CODE_EL0.load(Relaxed), GICD_EL0.load(Relaxed));
    let Some(gic) = p.gic.filter(|_| gicd != 0) else {
        println!("probe: aa32_it_block: no GIC in the DT, no emulated register to read");
        return Ok(());
    };
    let typer = mmio_read(gic.dist() + GICD_TYPER);
    let sctlr = sysreg::sctlr();
    // SAFETY: ITD only changes which T32 encodings are UNDEFINED at EL0, where nothing but this
    // probe's code runs; the value is put back below.
    unsafe {
        sysreg::set_sctlr(sctlr & !SCTLR_ITD);
        sysreg::isb();
    }
    // SAFETY: the entry is the EL0 alias of probe_aa32_code (mapped by mmu.rs), which only reads
    // the register at r3 (GICD_EL0's GICD_TYPER, mapped for EL0) and returns with an SVC; the
    // stub saves and restores every callee-saved register around it.
    let esr = unsafe { probe_aa32_run(code, gicd + GICD_TYPER) };
    // SAFETY: as above, the value it had.
    unsafe {
        sysreg::set_sctlr(sctlr);
        sysreg::isb();
    }
    // SAFETY: written by the stub just now, on this CPU; nothing else touches it.
    let [_, r1, r2, _] = unsafe { core::ptr::addr_of!(probe_aa32_regs).read_volatile() };
    if esr >> 26 & 0x3f != EC_SVC32 {
        return Err(msg!(
            "the AArch32 code ended with ESR_EL1 {esr:#x} (EC {:#x}), not its SVC (EC 0x11)",
            esr >> 26 & 0x3f
        ));
    }
    if r1 != 0 {
        return Err(msg!(
            "the NE slot of an `ite eq` ran after the emulated EQ load (r1 = {r1}): the step over the load did not advance the IT block"
        ));
    }
    if r2 != typer {
        return Err(msg!("the emulated GICD_TYPER read at EL0 gave {r2:#x}, EL1 reads {typer:#x}"));
    }
    Ok(())
}
