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

/// Run `AT S1E1R` for guest VA `va` with the guest's EL1 context live (the guest's own stage 1
/// only: the output address is guest-physical), and return PAR_EL1, keeping the guest's own.
pub fn at_s1e1r(va: u64) -> u64 {
    let saved = sysreg::par_el1();
    // SAFETY: address translation instructions only update PAR_EL1, restored below.
    unsafe { core::arch::asm!("at s1e1r, {}", "isb", in(reg) va, options(nostack)) };
    let par = sysreg::par_el1();
    sysreg::set_par_el1(saved);
    par
}

/// Invalidate every stage 1 and stage 2 TLB entry of the current VMID on this CPU.
pub fn tlbi_vmalls12e1() {
    // SAFETY: invalidating stage 1+2 TLB entries of the current VMID only drops cached walks.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

/// The 32-bit instruction at guest VA `pc` (4-byte aligned), read through the guest's own
/// translation (stage 1 and 2, as `AT S12E1R`) when that translation succeeds and `is_ram` says
/// the resulting address is the guest's RAM, which el2visor's identity map covers.
pub fn guest_insn(pc: u64, is_ram: impl Fn(u64) -> bool) -> Option<u32> {
    let par = at_s12e1(pc, false);
    if par & 1 != 0 || pc & 3 != 0 {
        return None;
    }
    let pa = (par & 0x000f_ffff_ffff_f000) | (pc & 0xfff);
    if !is_ram(pa) {
        return None;
    }
    // SAFETY: `pa` is aligned guest RAM (checked by the caller's `is_ram`), mapped read-write at
    // EL2 by the identity map; reading one word of it changes nothing.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

/// Append the `len` bytes of guest RAM at host physical `pa` to `out` when `is_ram(pa, len)`
/// says the whole range is the guest's RAM (which el2visor's identity map covers); `false`
/// and nothing read otherwise.
pub fn read_guest_ram(pa: u64, len: usize, is_ram: impl Fn(u64, u64) -> bool, out: &mut alloc::vec::Vec<u8>) -> bool {
    if len == 0 || !is_ram(pa, len as u64) {
        return false;
    }
    // SAFETY: `pa..pa+len` is guest RAM (checked by the caller's `is_ram`), mapped read-write at
    // EL2 by the identity map; reading it changes nothing, and a guest writing it meanwhile
    // only changes the bytes read.
    out.extend_from_slice(unsafe { core::slice::from_raw_parts(pa as *const u8, len) });
    true
}
