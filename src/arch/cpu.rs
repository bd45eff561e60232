//! Per-CPU identity and parking.

use crate::percpu::PerCpu;

/// The running CPU's per-CPU record: boot/entry.S points TPIDR_EL2 at it before any Rust runs.
#[inline]
pub fn this() -> &'static PerCpu {
    let v: u64;
    // SAFETY: reading TPIDR_EL2 has no side effects.
    unsafe { core::arch::asm!("mrs {}, tpidr_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
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
        // SAFETY: masking interrupts and waiting only affects this CPU's execution.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}

/// Wake CPUs waiting in WFE (spin-table secondaries).
pub fn send_event() {
    // SAFETY: DSB then SEV have no memory-safety effects.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
}

/// Sleep until an interrupt is pending (IRQs stay masked at EL2, so it is not taken here).
pub fn wait_for_interrupt() {
    // SAFETY: WFI only waits.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
}

/// Sleep until an event (SEV) or an interrupt.
pub fn wait_for_event() {
    // SAFETY: WFE only waits.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}
