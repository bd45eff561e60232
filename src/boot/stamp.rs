//! Boot milestones: the boot CPU notes CNTPCT_EL0 at each stage of the boot sequence and, once
//! vCPU 0 is about to run, prints one line with every stage's time since the machine started
//! (the counter starts at 0 with the machine on QEMU `virt`; on hardware at power-on, so the
//! firmware's time is in the first figure). It says where el2visor's own share of a guest's boot
//! goes (docs/benchmarks-linux.md).
//!
//! The marks live in `.data` (their initialiser is not zero), so a mark taken before el2visor
//! moves itself to the top of RAM (`super::relocate`) is copied with the image and survives the
//! second BSS clearing. Atomics before the MMU is on are plain loads and stores here (no
//! exclusives), which Device memory allows.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::sysreg;

/// The milestones, in boot order.
#[derive(Clone, Copy)]
pub enum At {
    /// `boot::primary` entered, before relocation.
    Entry,
    /// Running at the top of RAM.
    Relocated,
    /// EL2 MMU on.
    Mmu,
    /// Host DT parsed into a `Platform`.
    Platform,
    /// Secondaries up.
    Smp,
    /// RAM split (and the pristine copies made or set up).
    Memory,
    /// VMs built (Stage 2, images, guest DT).
    Vms,
    /// About to enter the run loop.
    Run,
}

const NAMES: [&str; 8] = ["entry", "relocated", "mmu", "platform", "smp", "memory", "vms", "run"];
/// Not a counter value: no mark yet.
const NONE: u64 = u64::MAX;
#[allow(clippy::declare_interior_mutable_const)]
const UNSET: AtomicU64 = AtomicU64::new(NONE);
/// CNTPCT per milestone. Not zero-initialised, so in `.data`: copied with the image by the move.
static MARKS: [AtomicU64; NAMES.len()] = [UNSET; NAMES.len()];

/// Note that the boot sequence reached `at` now.
pub fn mark(at: At) {
    MARKS[at as usize].store(sysreg::cntpct_el0(), Ordering::Relaxed);
}

/// One line: every milestone's time since the counter started, in milliseconds.
pub fn report() {
    let freq = sysreg::cntfrq_el0().max(1);
    let mut line = alloc::string::String::new();
    for (name, t) in NAMES.iter().zip(&MARKS) {
        let t = t.load(Ordering::Relaxed);
        if t != NONE {
            let _ = write!(line, " {name}={}.{}", t * 1000 / freq, (t * 10_000 / freq) % 10);
        }
    }
    log::info!("boot: ms since the counter started:{line}");
}
