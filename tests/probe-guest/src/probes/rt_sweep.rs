//! `tvm_rt_sweep`: a write to MAIR_EL1 (the fast path's own MAIR entries, with the rewrite) and
//! to CONTEXTIDR_EL1 (a register of its hash path) through every Rt, x0..x30 and XZR, each with a
//! value of its own, reads back that value (MAIR through the mair-trap rewrite). A fast path that
//! took the value from the wrong register, or lost one of x0..x2 it keeps in its save area, shows
//! here. In mair-trap mode with the fast path on, every one of these writes must have been served
//! by the fast path (the TVM counters); the two SCTLR_EL1 writes around the XZR write to MAIR
//! (made with the MMU off) are counted as well.

use super::Context;
use crate::hvc;
use crate::sysreg;
use core::arch::global_asm;
use probe_guest::abi::{mair_override, CoherencyMode};
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::pagetable::PROBE_MAIR;
use probe_guest::tvm::{rt_sweep_contextidr, rt_sweep_mair};

global_asm!(include_str!("../asm/rt_sweep.S"));

extern "C" {
    fn probe_tvm_rt_sweep(table: *mut [u64; 128]);
}

/// Trapped writes the sweep makes: 32 + 32 through every Rt, the MAIR restore and the two SCTLR
/// writes around it.
const SWEEP_WRITES: u64 = 67;
/// Of those, the writes to MAIR_EL1 and CONTEXTIDR_EL1, which the fast path serves.
const SWEEP_FAST: u64 = 65;

pub fn tvm_rt_sweep(ctx: &Context) -> Result<(), Msg> {
    let mode = ctx.mode_if_known();
    let mut table = [0u64; 128];
    for n in 0..31 {
        table[n] = rt_sweep_mair(n as u64);
        table[32 + n] = rt_sweep_contextidr(n as u64);
    }
    let contextidr = sysreg::contextidr();
    let before = hvc::trap_counters();
    // SAFETY: the sweep restores every register it uses but MAIR_EL1 and CONTEXTIDR_EL1, whose
    // values keep the probe's translation as it is (live MAIR indices unchanged; the XZR write is
    // made with the MMU off); it writes only `table`.
    unsafe { probe_tvm_rt_sweep(&mut table) };
    // SAFETY: the probe's own values.
    unsafe {
        sysreg::set_mair(PROBE_MAIR);
        sysreg::set_contextidr(contextidr);
    }
    sysreg::isb();
    let after = hvc::trap_counters();

    let expect_mair = |v: u64| match mode {
        Some(m) if m.overrides_mair() => mair_override(v),
        _ => v,
    };
    for n in 0..32 {
        let rt = if n == 31 { msg!("xzr") } else { msg!("x{n}") };
        let written = if n == 31 { 0 } else { table[n] };
        let read = table[64 + n];
        if read != expect_mair(written) {
            return Err(msg!(
                "MAIR_EL1 written through {rt} as {written:#x} read back {read:#x}, expected {:#x}",
                expect_mair(written)
            ));
        }
        let written = if n == 31 { 0 } else { table[32 + n] };
        let read = table[96 + n];
        if read != written {
            return Err(msg!(
                "CONTEXTIDR_EL1 written through {rt} as {written:#x} read back {read:#x}"
            ));
        }
    }
    let mode = ctx.mode()?;
    let ((fast0, slow0), (fast1, slow1)) = (before?, after?);
    // The restore after the sweep is one more MAIR and one more CONTEXTIDR write.
    let (fast, slow) = (fast1 - fast0, slow1 - slow0);
    let total = if mode.traps_tvm() { SWEEP_WRITES + 2 } else { 0 };
    if fast + slow != total {
        return Err(msg!(
            "TVM counters grew by fast={fast} slow={slow}, expected {total} writes in {} mode",
            mode.name()
        ));
    }
    let min_fast = if mode == CoherencyMode::MairTrap { SWEEP_FAST + 2 } else { 0 };
    if fast < min_fast || (mode == CoherencyMode::MairTrapSlow && fast != 0) {
        return Err(msg!(
            "the fast path served {fast} of the {total} writes (slow path {slow}); expected at least {min_fast} in {} mode",
            mode.name()
        ));
    }
    Ok(())
}
