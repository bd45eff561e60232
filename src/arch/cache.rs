//! Data-cache maintenance by virtual address (EL2 runs identity mapped, so VA = PA).

use super::sysreg_ext::CTR_EL0;
use aarch64_cpu::asm::barrier;
use tock_registers::interfaces::Readable;

/// Smallest data-cache line in bytes, from CTR_EL0.DminLine.
pub fn dcache_line() -> u64 {
    4 << CTR_EL0.read(CTR_EL0::DminLine)
}

/// Clean and invalidate `[start, start + len)` to the point of coherency, so that a CPU or a
/// guest running with caches off sees what was written through the caches.
pub fn clean_inval_range(start: u64, len: usize) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    let end = start + len as u64;
    while addr < end {
        // SAFETY: DC CIVAC on a mapped address only affects cache state, never memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    barrier::dsb(barrier::SY);
}

/// Make `[start, start + len)`, just written through the data cache, safe to execute: clean it
/// to the point of unification unless CTR_EL0.IDC says that is not needed, then invalidate the
/// instruction cache unless CTR_EL0.DIC says that is not needed. For a guest that starts with
/// its MMU off but sees RAM as cacheable (FWB): its instruction fetches do not go to memory, so
/// the data-cache clean to PoC that non-FWB guests get is not what they need.
pub fn sync_icache_range(start: u64, len: usize) {
    let ctr = CTR_EL0.get();
    let idc = CTR_EL0::IDC.is_set(ctr);
    let dic = CTR_EL0::DIC.is_set(ctr);
    if !idc {
        let line = dcache_line();
        let mut addr = start & !(line - 1);
        let end = start + len as u64;
        while addr < end {
            // SAFETY: cleaning a mapped line only writes back what is already there.
            unsafe { core::arch::asm!("dc cvau, {}", in(reg) addr, options(nostack)) };
            addr += line;
        }
        barrier::dsb(barrier::ISH);
    }
    if !dic {
        invalidate_icache_all();
    }
}

/// Invalidate the instruction cache to the point of unification (after writing code for a guest).
pub fn invalidate_icache_all() {
    // SAFETY: IC IALLUIS only discards instruction-cache contents.
    unsafe { core::arch::asm!("ic ialluis", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Invalidate `[start, start + len)` without cleaning: for memory written with the MMU off,
/// where a stale line from firmware must be dropped rather than written back over new data.
pub fn invalidate_range(start: u64, len: usize) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    let end = start + len as u64;
    while addr < end {
        // SAFETY: the caller owns the range; discarding cached copies of memory that was
        // written past the cache (MMU off) loses nothing.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    barrier::dsb(barrier::SY);
}

/// Copy `len` bytes from `src` to `dst`: the bulk with [`copy_aligned_64`] where both ends are
/// 64-byte aligned, the rest (or all, when they are not) bytewise.
///
/// # Safety
/// Both ranges must be mapped, `dst` writable, and they must not overlap.
pub unsafe fn copy(dst: u64, src: u64, len: u64) {
    let bulk = if src.is_multiple_of(64) && dst.is_multiple_of(64) { len & !63 } else { 0 };
    // SAFETY: the caller's contract.
    unsafe {
        copy_aligned_64(dst, src, bulk);
        core::ptr::copy_nonoverlapping((src + bulk) as *const u8, (dst + bulk) as *mut u8, (len - bulk) as usize);
    }
}

/// Copy `len` bytes from `src` to `dst` (both 64-byte aligned, `len` a multiple of 64) with
/// 64-byte unrolled load/store pairs: much faster than a byte-generic memcpy for the megabytes of
/// a guest image, under emulation in particular. General-purpose registers only: el2visor never
/// touches the guest's FP/SIMD registers.
///
/// # Safety
/// Both ranges must be mapped, `dst` writable, and they must not overlap.
pub unsafe fn copy_aligned_64(dst: u64, src: u64, len: u64) {
    // SAFETY: the caller's contract; the loop touches exactly [src, src+len) and [dst, dst+len).
    unsafe {
        core::arch::asm!(
            "cbz {len}, 2f",
            "1: ldp {a}, {b}, [{src}], #16",
            "ldp {c}, {d}, [{src}], #16",
            "stp {a}, {b}, [{dst}], #16",
            "stp {c}, {d}, [{dst}], #16",
            "ldp {a}, {b}, [{src}], #16",
            "ldp {c}, {d}, [{src}], #16",
            "stp {a}, {b}, [{dst}], #16",
            "stp {c}, {d}, [{dst}], #16",
            "subs {len}, {len}, #64",
            "b.ne 1b",
            "2:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            len = inout(reg) len => _,
            a = out(reg) _, b = out(reg) _, c = out(reg) _, d = out(reg) _,
            options(nostack),
        )
    };
}
