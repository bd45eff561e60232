//! Physical SErrors at the guest boundary, and the virtual SError a guest is given.
//!
//! el2visor runs with SErrors masked (every exception entry to EL2 masks them), so an SError that
//! becomes pending while it runs waits. Who it belongs to is decided at the two boundaries:
//!
//! - right after a guest exit ([`take_guest_pending`]): anything pending then was caused by the
//!   guest (its memory accesses are what the error reports); the caller turns it into a virtual
//!   SError for that guest;
//! - right before a guest entry ([`check_own`]): anything pending then was caused by el2visor
//!   itself, and must not reach the guest as if it were its own: it is taken at EL2, where the
//!   vector reports it as el2visor's FATAL error.
//!
//! With FEAT_RAS, `esb` defers a pending SError into DISR_EL1 (read and cleared here) with its
//! syndrome. Without it the only way to collect one is to take it: SErrors are unmasked for an
//! instant with this CPU's `serror_window` open, and the EL2 vector records the syndrome
//! ([`record_in_window`]) instead of calling it fatal, as KVM's guest-exit path does.

use core::arch::asm;
use core::sync::atomic::Ordering;

use super::{cpu, sysreg};

/// DISR_EL1.A / ISR_EL1.A: an SError was deferred / is pending.
const DISR_A: u64 = 1 << 31;
const ISR_A: u64 = 1 << 8;
/// HCR_EL2.VSE: a virtual SError is pending for the guest.
const HCR_VSE: u64 = 1 << 8;
/// `PerCpu::serror_taken`: set with the syndrome when the vector recorded one in the window.
pub const TAKEN: u64 = 1 << 63;

/// FEAT_RAS (ID_AA64PFR0_EL1.RAS, bits 31:28): ESB defers, DISR_EL1 and VSESR_EL2 exist.
pub fn has_ras() -> bool {
    (sysreg::id_aa64pfr0_el1() >> 28) & 0xf != 0
}

fn isr_el1() -> u64 {
    let v: u64;
    // SAFETY: reading ISR_EL1 has no side effects.
    unsafe { asm!("mrs {}, isr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// With FEAT_RAS: `esb`, then take DISR_EL1 if it recorded an SError (clearing it).
fn esb_and_take_disr() -> Option<u64> {
    let disr: u64;
    // SAFETY: ESB (`hint #16`, FEAT_RAS) only moves a pending physical SError into DISR_EL1 while SErrors
    // are masked, as they are at EL2 here; DISR_EL1 exists with FEAT_RAS (checked by callers).
    unsafe { asm!("hint #16", "isb", "mrs {}, s3_0_c12_c1_1", out(reg) disr, options(nostack)) };
    if disr & DISR_A == 0 {
        return None;
    }
    // SAFETY: clearing DISR_EL1 only forgets the record just read.
    unsafe { asm!("msr s3_0_c12_c1_1, xzr", options(nomem, nostack)) };
    Some(disr & !DISR_A)
}

/// Unmask SErrors for an instant so that a pending one is taken at EL2 now.
fn take_now() {
    // SAFETY: unmasking SErrors at EL2 lets a pending SError be taken here; the EL2 vector either
    // records it (window open) or reports el2visor's fatal error. Nothing else changes.
    unsafe { asm!("msr daifclr, #4", "isb", "msr daifset, #4", options(nostack)) };
}

/// After a guest exit: the syndrome of an SError the guest left pending, if any (see the module
/// docs). ESR_EL2, FAR_EL2 and HPFAR_EL2 describe the exit afterwards as they did before.
pub fn take_guest_pending() -> Option<u64> {
    if has_ras() {
        return esb_and_take_disr();
    }
    // SAFETY: a barrier only; it makes the guest's outstanding accesses report their errors.
    unsafe { asm!("dsb sy", "isb", options(nostack)) };
    if isr_el1() & ISR_A == 0 {
        return None;
    }
    let (esr, far, hpfar) = (sysreg::esr_el2(), sysreg::far_el2(), sysreg::hpfar_el2());
    let me = cpu::this();
    me.serror_taken.store(0, Ordering::Relaxed);
    me.serror_window.store(true, Ordering::Release);
    take_now();
    me.serror_window.store(false, Ordering::Release);
    // SAFETY: putting back the exit's own syndrome registers, which taking the SError overwrote.
    unsafe {
        asm!("msr esr_el2, {}", "msr far_el2, {}", "msr hpfar_el2, {}", in(reg) esr, in(reg) far, in(reg) hpfar,
            options(nomem, nostack));
    }
    let taken = me.serror_taken.swap(0, Ordering::AcqRel);
    (taken & TAKEN != 0).then_some(taken & !TAKEN)
}

/// Called by the EL2 vector for an SError taken at EL2: whether it was taken inside this CPU's
/// window (then its syndrome is recorded for [`take_guest_pending`] and the vector returns).
pub fn record_in_window(esr: u64) -> bool {
    let me = cpu::this();
    if !me.serror_window.load(Ordering::Acquire) {
        return false;
    }
    me.serror_taken.store(TAKEN | esr, Ordering::Release);
    true
}

/// Before a guest entry: an SError pending now is el2visor's own. With FEAT_RAS it is returned
/// (its syndrome) for the caller to report; without, it is taken at EL2 here, where the vector
/// reports it as fatal.
pub fn check_own() -> Option<u64> {
    if has_ras() {
        return esb_and_take_disr();
    }
    if isr_el1() & ISR_A != 0 {
        take_now();
    }
    None
}

/// Make a virtual SError pending for the guest of this CPU, with syndrome `vsesr` where FEAT_RAS
/// has VSESR_EL2 (without it the guest's ESR_EL1 syndrome is IMPLEMENTATION DEFINED).
pub fn inject_virtual(vsesr: u64) {
    if has_ras() {
        // SAFETY: VSESR_EL2 (FEAT_RAS) only holds the syndrome of the next virtual SError.
        unsafe { asm!("msr s3_4_c5_c2_3, {}", in(reg) vsesr, options(nomem, nostack)) };
    }
    sysreg::set_hcr_el2(sysreg::hcr_el2() | HCR_VSE);
    sysreg::isb();
}

/// Forget a virtual SError still pending (the vCPU starts afresh).
pub fn clear_virtual() {
    sysreg::set_hcr_el2(sysreg::hcr_el2() & !HCR_VSE);
}
