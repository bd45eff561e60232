//! `sctlr_c0_attr` and `sctlr_m0_attr`: the two SCTLR_EL1 ways a guest makes its RAM accesses
//! uncached without touching MAIR_EL1, and the memory type el2visor's `AT S12E1R` reports for
//! RAM while they are in force:
//! - C = 0 with the MMU on makes every stage-1 data access Non-cacheable: a page mapped Normal
//!   write-back (the [`RAM_TARGET_WB_ALIAS`]) comes out 0x44 without an override, 0xff under FWB
//!   and mair-trap, where el2visor keeps C set while the MMU is on: SCTLR_EL1 read back inside
//!   the window shows it (QEMU 10.0's `AT` ignores SCTLR_EL1.C, so under QEMU the read-back is
//!   what tells a kept C = 0 from a forced C = 1; `CoherencyMode::accepted_c0_attrs`);
//! - M = 0 turns stage 1 off, and data accesses become Device-nGnRnE: 0x00 without an override,
//!   0xff under FWB and mair-trap (el2visor sets HCR_EL2.DC while the guest's MMU is off).
//!
//! The bit is cleared, SCTLR_EL1 read back, the vendor call made and SCTLR_EL1 restored in one
//! asm block that touches no memory, so the window is safe whatever the caches hold.

use super::Context;
use crate::mmu::{RAM_TARGET, RAM_TARGET_WB_ALIAS};
use core::arch::asm;
use probe_guest::abi::{self, SCTLR_C, SCTLR_M};
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::tvm::TvmReg;

/// With `clear` cleared in SCTLR_EL1: (PAR_EL1 from el2visor's `AT S12E1R` of `va`, the
/// SCTLR_EL1 value written, the value read back).
fn at_with_sctlr_cleared(clear: u64, va: u64) -> (u64, u64, u64) {
    let (par, written, read): (u64, u64, u64);
    // SAFETY: with M or C cleared the code below still runs (identity-mapped, and it makes no
    // memory access); the HVC is an SMCCC vendor call (el2visor is known to answer: the caller
    // checked the coherency mode), which preserves x4-x17 and returns in x0..x3; SCTLR_EL1 is
    // restored before the block ends.
    unsafe {
        asm!(
            "mrs {saved}, sctlr_el1",
            "bic {written}, {saved}, {clear}",
            "msr sctlr_el1, {written}",
            "isb",
            "mrs {read}, sctlr_el1",
            "hvc #0",
            "msr sctlr_el1, {saved}",
            "isb",
            saved = out(reg) _,
            written = out(reg) written,
            read = out(reg) read,
            clear = in(reg) clear,
            inout("x0") abi::VENDOR_AT_S12E1R => par,
            inout("x1") va => _,
            inout("x2") 0u64 => _,
            inout("x3") 0u64 => _,
            options(nostack),
        );
    }
    (par, written, read)
}

fn probe(ctx: &Context, clear: u64, va: u64, accepted: &[u8], what: &str) -> Result<(), Msg> {
    let mode = ctx.mode()?;
    let (par, written, read) = at_with_sctlr_cleared(clear, va);
    if abi::is_not_supported(par) {
        return Err(msg!("AT_S12E1R returned NOT_SUPPORTED"));
    }
    if par & 1 != 0 {
        return Err(msg!("AT S12E1R of {va:#x} with {what} faulted: PAR_EL1={par:#x}"));
    }
    TvmReg::Sctlr
        .check(written, read, Some(mode))
        .map_err(|m| msg!("SCTLR_EL1 with {what}: {m}"))?;
    let got = (par >> 56) as u8;
    if !accepted.contains(&got) {
        return Err(msg!(
            "AT S12E1R of RAM VA {va:#x} with {what} gave PAR.ATTR={got:#04x}, expected {:#04x} in {} mode",
            accepted[0],
            mode.name()
        ));
    }
    Ok(())
}

/// SCTLR_EL1.C = 0, MMU on, a RAM page mapped write-back at stage 1.
pub fn sctlr_c0_attr(ctx: &Context) -> Result<(), Msg> {
    let accepted = ctx.mode()?.accepted_c0_attrs();
    probe(ctx, SCTLR_C, RAM_TARGET_WB_ALIAS, accepted, "SCTLR_EL1.C = 0")
}

/// SCTLR_EL1.M = 0: stage 1 off, VA = IPA.
pub fn sctlr_m0_attr(ctx: &Context) -> Result<(), Msg> {
    let expected = ctx.mode()?.expected_mmu_off_attr();
    let va = core::ptr::addr_of!(RAM_TARGET) as u64;
    probe(ctx, SCTLR_M, va, &[expected], "SCTLR_EL1.M = 0")
}
