//! `system_reset` (with `reset` in the bootargs): PSCI SYSTEM_RESET must restart the VM from its
//! pristine images. The first boot leaves a marker in the last word of RAM (which el2visor does
//! not reload) and asks for the reset; the boot after it finds the marker, clears it and passes.
//! Runs with the MMU off, before anything else, so the marker goes straight to memory.
//!
//! The first boot also changes a word of its own image (`.data`), at once: el2visor makes the
//! pristine copy of a multiboot kernel lazily, after the guest has started (a first write to a
//! span not copied yet copies it first), and the second boot must find the word as the image
//! file has it.

use crate::report;
use probe_guest::dt::Platform;

const MARKER: u64 = 0x5253_4554_5052_4f42; // "BORPTESR"

/// A word of the image's `.data` (non-zero initialiser), as the file has it.
const PRISTINE: u64 = 0x4e49_5452_5349_5250; // "PRISTIN"
static IMAGE_WORD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(PRISTINE);

/// Never returns: passes (second boot) or asks for the reset (first boot).
pub fn run(platform: &Platform) -> ! {
    let Some(last) = platform.ram().last() else {
        report::fail("system_reset", "no RAM in the device tree");
        report::finish();
    };
    let slot = (last.base + last.size - 8) as *mut u64;
    // SAFETY: the last word of the VM's RAM, which nothing of the probe's image, stack or DTB uses.
    let seen = unsafe { core::ptr::read_volatile(slot) };
    use core::sync::atomic::Ordering::Relaxed;
    // Plain load and store: with the MMU off memory is Device, where exclusives may not work.
    let word = IMAGE_WORD.load(Relaxed);
    IMAGE_WORD.store(!PRISTINE, Relaxed);
    if seen == MARKER {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(slot, 0) };
        println!("probe: booted again after SYSTEM_RESET");
        let r = match word {
            PRISTINE => Ok(()),
            w => Err(probe_guest::msg!("the image's .data word is {w:#x} after the reset, not {PRISTINE:#x}: the image was not reloaded pristine")),
        };
        report::outcome("system_reset", r);
        report::finish();
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(slot, MARKER) };
    println!("probe: requesting SYSTEM_RESET");
    let r = crate::hvc::system_reset();
    report::fail("system_reset", probe_guest::msg!("PSCI SYSTEM_RESET returned {r:#x}"));
    report::finish()
}
