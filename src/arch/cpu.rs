//! Per-CPU identity and parking.

use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::{Readable, Writeable, DAIF, TPIDR_EL2};

use crate::percpu::PerCpu;

/// The running CPU's per-CPU record: boot/entry.S points TPIDR_EL2 at it before any Rust runs.
#[inline]
pub fn this() -> &'static PerCpu {
    let v = TPIDR_EL2.get();
    // SAFETY: entry.S sets TPIDR_EL2 to `&PERCPU[i]` on every CPU before Rust runs and nothing
    // writes it afterwards; PERCPU is a static, so the reference is valid for ever.
    unsafe { &*(v as *const PerCpu) }
}

/// Logical index of the running CPU.
#[inline]
pub fn current() -> usize {
    this().index
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

/// Sleep until an interrupt is pending (IRQs stay masked at EL2, so it is not taken here).
pub fn wait_for_interrupt() {
    barrier::dsb(barrier::SY);
    asm::wfi();
}

/// Sleep until an event (SEV) or an interrupt.
pub fn wait_for_event() {
    asm::wfe();
}

/// Whether a physical IRQ or FIQ is pending for this CPU (ISR_EL1.I and .F), although masked at
/// EL2: what a WFI would wake for.
pub fn interrupt_pending() -> bool {
    let isr: u64;
    // SAFETY: reading ISR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack, preserves_flags)) };
    isr & 0xc0 != 0
}
