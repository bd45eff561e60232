//! The EL2 heap: a buddy allocator that starts on a small static arena in BSS (enough for boot:
//! the parsed platform, the command line, VM plans) and grows with frames from the frame
//! allocator once free RAM is known.

use buddy_system_allocator::LockedHeap;

/// Bytes of the static boot arena.
const BOOT_ARENA: usize = 1 << 20;

#[repr(C, align(4096))]
struct Arena([u8; BOOT_ARENA]);

static mut ARENA: Arena = Arena([0; BOOT_ARENA]);

#[cfg_attr(not(test), global_allocator)]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Give the heap its boot arena. Call once, on the primary CPU, after the EL2 MMU is on (the
/// allocator's lock needs exclusive accesses, which want cacheable memory).
pub fn init() {
    // SAFETY: ARENA is used by nothing else; `init` runs once on one CPU before any allocation.
    unsafe {
        let start = core::ptr::addr_of_mut!(ARENA) as usize;
        HEAP.lock().init(start, BOOT_ARENA);
    }
}

/// Add `[start, start + size)` of free RAM (identity mapped, owned by nobody else) to the heap.
///
/// # Safety
/// The range must be RAM that el2visor owns exclusively from now on.
pub unsafe fn grow(start: usize, size: usize) {
    // SAFETY: the caller hands over exclusive ownership of the range.
    unsafe { HEAP.lock().add_to_heap(start, start + size) };
}

/// Bytes currently allocated and bytes the heap manages.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.stats_alloc_actual(), h.stats_total_bytes())
}
