//! Instructions el2visor runs on a guest's behalf: address translation, TLB invalidation of its
//! VMID.

use super::sysreg;

/// Run `AT S12E1R` (or `S12E1W`) for guest VA `va` with the guest's EL1 context live, and return
/// PAR_EL1, keeping the guest's own PAR_EL1.
pub fn at_s12e1(va: u64, write: bool) -> u64 {
    let saved = sysreg::par_el1();
    // SAFETY: address translation instructions only update PAR_EL1, restored below.
    unsafe {
        if write {
            core::arch::asm!("at s12e1w, {}", "isb", in(reg) va, options(nostack));
        } else {
            core::arch::asm!("at s12e1r, {}", "isb", in(reg) va, options(nostack));
        }
    }
    let par = sysreg::par_el1();
    sysreg::set_par_el1(saved);
    par
}

/// Invalidate every stage 1 and stage 2 TLB entry of the current VMID on this CPU.
pub fn tlbi_vmalls12e1() {
    // SAFETY: invalidating stage 1+2 TLB entries of the current VMID only drops cached walks.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}
