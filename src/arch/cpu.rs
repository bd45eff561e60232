//! Per-CPU identity and parking.

use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::{Readable, Writeable, DAIF, TPIDR_EL2};

/// Logical index of the running CPU (entry.S stores it in TPIDR_EL2).
#[inline]
pub fn current() -> usize {
    TPIDR_EL2.get() as usize
}

/// Stop this CPU for good: interrupts masked, waiting for events that never wake it usefully.
pub fn park() -> ! {
    loop {
        DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
        asm::wfe();
    }
}

/// Wake CPUs waiting in WFE (spin-table secondaries).
pub fn send_event() {
    barrier::dsb(barrier::SY);
    asm::sev();
}
