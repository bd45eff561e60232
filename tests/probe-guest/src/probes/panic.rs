//! `panic` in the bootargs: behave like a Linux kernel with its pvpanic driver and `panic=1`
//! that panics at boot. Reads the DT's `qemu,pvpanic-mmio` register (it must offer PANICKED),
//! writes PANICKED to it, then asks for PSCI SYSTEM_RESET, as Linux's `panic=1` does a moment
//! later. What happens next is el2visor's `on_crash=`: with `report` the reset restarts the
//! probe (and it panics again, until `crash_restarts=` halts it); `restart` and `halt` act on
//! the write itself, so the reset is never reached. Runs with the MMU off, before anything else.

use crate::report;
use probe_guest::abi;
use probe_guest::dt::Platform;

/// Never returns.
pub fn run(platform: &Platform) -> ! {
    let Some(reg) = platform.pvpanic else {
        report::fail("pvpanic", "no qemu,pvpanic-mmio node in the device tree");
        report::finish();
    };
    // SAFETY: the pvpanic register the DT names: one byte of device memory (the MMU is off, so
    // the access is Device-nGnRnE), which el2visor emulates.
    let events = unsafe { core::ptr::read_volatile(reg as *const u8) };
    if events & abi::PVPANIC_PANICKED == 0 {
        report::fail("pvpanic", probe_guest::msg!("the device offers events {events:#x}, without PANICKED"));
        report::finish();
    }
    println!("probe: pvpanic at {reg:#x} offers events {events:#x}; panicking");
    // SAFETY: as above; writing PANICKED reports the panic.
    unsafe { core::ptr::write_volatile(reg as *mut u8, abi::PVPANIC_PANICKED) };
    println!("probe: still running after the pvpanic write; requesting SYSTEM_RESET");
    let r = crate::hvc::system_reset();
    report::fail("pvpanic", probe_guest::msg!("PSCI SYSTEM_RESET returned {r:#x}"));
    report::finish()
}
