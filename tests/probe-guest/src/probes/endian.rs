//! `mmio_big_endian`: a guest running big-endian (SCTLR_EL1.EE set) sees emulated MMIO registers
//! as the hardware would show them, byte-swapped within the access size (the Arm ARM; KVM's
//! `vcpu_data_host_to_guest`): GICD_TYPER and GICD_IIDR read swapped, a 4-byte write of a
//! GICD_IPRIORITYR lands its most significant byte in the lowest byte lane (interrupt n), a byte
//! read is unchanged, and on GICv3 a 64-bit GICR_TYPER (the generic MMIO path, not the
//! distributor's lean one) reads swapped too.
//!
//! EE also makes the stage-1 table walks big-endian, so the accesses are made by a stub that
//! turns the MMU off (this code is identity mapped) with EE, touches no memory meanwhile
//! (interrupts masked), and stores what it read only once both are restored.

use super::gic::{mmio_read, mmio_write, rd64};
use super::Context;
use core::arch::global_asm;
use probe_guest::dt::Gic;
use probe_guest::msg;
use probe_guest::msg::Msg;

// probe_mmio_big_endian(out, dist, redist, prio, pattern): x0 = out (5 u64), x1 = the
// distributor, x2 = a redistributor (0: none), x3 = a GICD_IPRIORITYR, w4 = the word written.
// With SCTLR_EL1.EE set and M clear: GICD_TYPER into w9 (the lean exit's registers), GICD_IIDR
// into w20 (a register the lean exit does not save: the slow entry), the pattern stored to the
// IPRIORITYR and read back as a word and as its byte 0, GICR_TYPER as 64 bits. Then out =
// [TYPER, IIDR, priority word, priority byte 0, GICR_TYPER].
global_asm!(
    ".section .text, \"ax\"",
    ".global probe_mmio_big_endian",
    "probe_mmio_big_endian:",
    "    stp x19, x20, [sp, #-16]!",
    "    mov x19, x0",
    "    mrs x5, daif",
    "    msr daifset, #0xf",
    "    mrs x6, sctlr_el1",
    "    orr x7, x6, #(1 << 25)",
    "    bic x7, x7, #1",
    "    msr sctlr_el1, x7",
    "    isb",
    "    ldr w9, [x1, #4]",
    "    ldr w20, [x1, #8]",
    "    str w4, [x3]",
    "    ldr w11, [x3]",
    "    ldrb w12, [x3]",
    "    mov x14, xzr",
    "    cbz x2, 1f",
    "    ldr x14, [x2, #8]",
    "1:",
    "    msr sctlr_el1, x6",
    "    isb",
    "    msr daif, x5",
    "    stp x9, x20, [x19]",
    "    stp x11, x12, [x19, #16]",
    "    str x14, [x19, #32]",
    "    ldp x19, x20, [sp], #16",
    "    ret",
);

extern "C" {
    fn probe_mmio_big_endian(out: *mut u64, dist: u64, redist: u64, prio: u64, pattern: u32);
}

const GICD_TYPER: u64 = 0x004;
const GICD_IIDR: u64 = 0x008;
/// GICD_IPRIORITYR8: SPIs 32..35 (the SGI/PPI ones are RAZ/WI in a GICv3 distributor).
const GICD_IPRIORITYR8: u64 = 0x420;
const GICR_TYPER: u64 = 0x008;
/// Four priorities, each with only the top five bits (what every GIC implements) set.
const PATTERN: u32 = 0x1028_50a0;

pub fn mmio_big_endian(ctx: &Context) -> Result<(), Msg> {
    let gic = ctx.platform.gic.ok_or_else(|| msg!("no GIC node the probe knows in the DT"))?;
    let dist = gic.dist();
    let redist = match gic {
        Gic::V3 { redist, .. } => redist.base,
        Gic::V2 { .. } => 0,
    };
    let prio = dist + GICD_IPRIORITYR8;
    let (typer, iidr) = (mmio_read(dist + GICD_TYPER), mmio_read(dist + GICD_IIDR));
    let rtyper = if redist != 0 { rd64(redist + GICR_TYPER) } else { 0 };
    let saved = mmio_read(prio);
    let mut out = [0u64; 5];
    // SAFETY: the stub touches no memory while EE is set (interrupts masked, the MMU off with
    // this code identity mapped) but the GIC registers, all of which take these accesses; it
    // writes `out` (5 u64) after restoring SCTLR_EL1, and saves and restores x19/x20.
    unsafe { probe_mmio_big_endian(out.as_mut_ptr(), dist, redist, prio, PATTERN) };
    let little = mmio_read(prio);
    mmio_write(prio, saved);
    let [be_typer, be_iidr, be_word, be_byte, be_rtyper] = out;
    let want = |what: &str, got: u64, expected: u64| {
        if got == expected {
            Ok(())
        } else {
            Err(msg!("{what} read big-endian: {got:#x}, expected {expected:#x} (little-endian it is the swap of that)"))
        }
    };
    want("GICD_TYPER", be_typer, u64::from(typer.swap_bytes()))?;
    want("GICD_IIDR (through a register the lean exit does not save)", be_iidr, u64::from(iidr.swap_bytes()))?;
    want("GICD_IPRIORITYR8 just written big-endian", be_word, u64::from(PATTERN))?;
    want("byte 0 of GICD_IPRIORITYR8", be_byte, u64::from(PATTERN >> 24))?;
    if little != PATTERN.swap_bytes() {
        return Err(msg!(
            "GICD_IPRIORITYR8 written big-endian as {PATTERN:#x} reads {little:#x} little-endian, expected {:#x} (SPI 32's priority is the most significant byte)",
            PATTERN.swap_bytes()
        ));
    }
    if redist != 0 {
        want("GICR_TYPER (64 bits)", be_rtyper, rtyper.swap_bytes())?;
    }
    Ok(())
}
