//! `reset_race` (with `reset_race` in the bootargs, 3 or more vCPUs): PSCI SYSTEM_RESET must
//! restart the VM even while another vCPU issues CPU_ON in a loop. vCPU 1 turns vCPU 2 on again
//! and again (vCPU 2 turns itself straight off: entry.S's mode 4), and vCPU 0 asks for the reset
//! in the middle of it; three times over, counted in the last word of RAM (which el2visor does
//! not reload). The boot after the third reset passes. A reset that gives up, or a vCPU started
//! into the reloaded images from a stale request, never gets there.

use super::cpu;
use crate::{hvc, report};
use probe_guest::dt::Platform;

const MAGIC: u64 = 0x5241_4345_0000_0000; // "RACE" in the upper half, the count below
const RESETS: u64 = 3;

fn ticks_ms(ms: u64) -> u64 {
    crate::sysreg::cntfrq() * ms / 1000
}

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Never returns: passes (after the last reset) or starts the storm and asks for a reset.
pub fn run(platform: &Platform) -> ! {
    let Some(last) = platform.ram().last() else {
        report::fail("reset_race", "no RAM in the device tree");
        report::finish();
    };
    let slot = (last.base + last.size - 8) as *mut u64;
    // SAFETY: the last word of the VM's RAM, which nothing of the probe's image, stack or DTB uses.
    let seen = unsafe { core::ptr::read_volatile(slot) };
    let count = if seen >> 32 == MAGIC >> 32 { seen & 0xffff_ffff } else { 0 };
    if count >= RESETS {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(slot, 0) };
        println!("probe: booted again after {count} resets during CPU_ON storms");
        report::outcome::<&str>("reset_race", Ok(()));
        report::finish();
    }
    let cpus = platform.cpus();
    if cpus.len() < 3 {
        report::fail("reset_race", probe_guest::msg!("needs 3 vCPUs, the DT has {}", cpus.len()));
        report::finish();
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(slot, MAGIC | (count + 1)) };
    let r = cpu::start_storm(cpus[1], cpus[2]);
    if r != 0 {
        report::fail("reset_race", probe_guest::msg!("CPU_ON of the storming vCPU returned {r}"));
        report::finish();
    }
    // Let the storm run, then reset in the middle of it.
    let end = cntvct() + ticks_ms(20);
    while cntvct() < end {
        core::hint::spin_loop();
    }
    println!("probe: requesting SYSTEM_RESET {} of {RESETS} during a CPU_ON storm", count + 1);
    let r = hvc::system_reset();
    report::fail("reset_race", probe_guest::msg!("PSCI SYSTEM_RESET returned {r:#x}"));
    report::finish()
}
