//! Per-CPU identity and parking.

/// Logical index of the running CPU (entry.S stores it in TPIDR_EL2).
#[inline]
pub fn current() -> usize {
    let v: u64;
    // SAFETY: reading TPIDR_EL2 has no side effects.
    unsafe { core::arch::asm!("mrs {}, tpidr_el2", out(reg) v, options(nomem, nostack)) };
    v as usize
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
