//! `gdb_gate` in the bootargs (tests/qemu/gdb.rs, `probe_secondary_started_while_attached`): the
//! probe waits, its second vCPU off, until a debugger writes a nonzero word into [`PROBE_GATE`];
//! then it starts that vCPU once (`cpu::hold_once`: it runs `probe_secondary_main`), reports
//! `gdb_gate_secondary` and powers off. The debugger attached while the vCPU was off, so a
//! hardware breakpoint on `probe_secondary_main` stops it only if el2visor arms the debug
//! registers of a vCPU that starts while a debugger is attached.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::probes::Context;
use crate::{report, sysreg};
use probe_guest::msg;
use probe_guest::msg::Msg;

/// The gate the debugger opens (`set *(unsigned long *)&PROBE_GATE = 1`).
#[no_mangle]
pub static PROBE_GATE: AtomicU64 = AtomicU64::new(0);

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn wait_for_the_gate() -> Result<(), Msg> {
    // Long enough for a debugger to attach and write it on a loaded host.
    let end = cntvct() + sysreg::cntfrq() * 300;
    while PROBE_GATE.load(Ordering::Acquire) == 0 {
        if cntvct() > end {
            return Err(msg!("no debugger opened PROBE_GATE within 300 s"));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Wait for the gate, start the other vCPU once, report, power off.
pub fn run(ctx: &Context) -> ! {
    let r = super::cpu::other_cpu(ctx).and_then(|target| {
        println!("probe: gdb_gate: waiting for a debugger to open PROBE_GATE");
        wait_for_the_gate()?;
        super::cpu::hold_once(target)
    });
    report::outcome("gdb_gate_secondary", r);
    report::finish()
}
