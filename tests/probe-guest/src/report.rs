//! The probe's output contract: `PROBE <name> PASS|FAIL <why>` lines, the closing
//! `PROBE DONE pass=<n> fail=<n>`, then PSCI SYSTEM_OFF. Unexpected exceptions and panics end the
//! run the same way, so a failure is never a silent hang.

use crate::hvc;
use core::fmt::Display;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

// Single CPU, no interrupts: plain load/store updates (no exclusives before the MMU is on).
static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static ENDING: AtomicBool = AtomicBool::new(false);

fn bump(c: &AtomicU32) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Report one probe's outcome.
pub fn outcome<E: Display>(name: &str, r: Result<(), E>) {
    match r {
        Ok(()) => {
            println!("PROBE {} PASS", name);
            bump(&PASSED);
        }
        Err(why) => fail(name, why),
    }
}

/// Report a failed probe.
pub fn fail(name: &str, why: impl Display) {
    println!("PROBE {} FAIL {}", name, why);
    bump(&FAILED);
}

/// Print the DONE line and power off.
pub fn finish() -> ! {
    ENDING.store(true, Ordering::Relaxed);
    println!(
        "PROBE DONE pass={} fail={}",
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
    power_off()
}

/// PSCI SYSTEM_OFF; if it returns, say so and park.
pub fn power_off() -> ! {
    let r = hvc::system_off();
    println!("probe: PSCI SYSTEM_OFF returned {:#x}; parking in WFI", r);
    loop {
        aarch64_cpu::asm::wfi();
    }
}

const KINDS: [&str; 4] = ["sync", "irq", "fiq", "serror"];
const ORIGINS: [&str; 4] = ["el1-sp0", "el1-spx", "lower-a64", "lower-a32"];

/// Called by vectors.S (on its own stack) for every exception it does not fix up.
#[no_mangle]
extern "C" fn probe_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    if ENDING.load(Ordering::Relaxed) {
        // An exception while already ending (e.g. in the console): just power off.
        power_off();
    }
    ENDING.store(true, Ordering::Relaxed);
    let v = (vector & 15) as usize;
    fail(
        "exception",
        probe_guest::msg!(
            "esr={:#x} elr={:#x} far={:#x} type={} from={} ec={:#x}",
            esr,
            elr,
            far,
            KINDS[v % 4],
            ORIGINS[v / 4],
            (esr >> 26) & 0x3f
        ),
    );
    finish_after_fatal()
}

fn finish_after_fatal() -> ! {
    println!(
        "PROBE DONE pass={} fail={}",
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
    power_off()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if ENDING.load(Ordering::Relaxed) {
        power_off();
    }
    ENDING.store(true, Ordering::Relaxed);
    match info.location() {
        Some(l) => fail(
            "panic",
            probe_guest::msg!("{} at {}:{}", info.message(), l.file(), l.line()),
        ),
        None => fail("panic", probe_guest::msg!("{}", info.message())),
    }
    finish_after_fatal()
}
