//! The EL2 heap: a buddy allocator that starts on a static arena in BSS (enough for boot: the
//! EL2 tables' plan, the parsed platform, the command line, VM plans) and can grow with RAM
//! from the frame allocator.
//!
//! Locks need exclusive accesses, which real cores do not promise on Device memory — and with
//! the MMU off all of memory is Device. So until `enable_locking` (called right after the EL2
//! MMU is on) the heap is used without its lock; only the primary CPU runs then.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use buddy_system_allocator::Heap;

/// Bytes of the static boot arena.
const BOOT_ARENA: usize = 2 << 20;

#[repr(C, align(4096))]
struct Arena([u8; BOOT_ARENA]);

/// In `.noinit`, which `boot/entry.S` does not zero (twice: before and after the self-move):
/// the allocator needs no zeroed memory, and a zeroed arena costs 2 MiB of touched RAM at the
/// loader's address, RAM the guest gets afterwards (under QEMU, host memory the VM then holds).
#[link_section = ".noinit"]
static mut ARENA: core::mem::MaybeUninit<Arena> = core::mem::MaybeUninit::uninit();

struct El2Heap {
    heap: UnsafeCell<Heap<32>>,
    lock: spin::Mutex<()>,
    locking: AtomicBool,
}

// SAFETY: every access to `heap` is serialised by `lock` once more than one CPU runs
// (`locking` set), and before that only the primary CPU exists.
unsafe impl Sync for El2Heap {}

impl El2Heap {
    fn with<R>(&self, f: impl FnOnce(&mut Heap<32>) -> R) -> R {
        if self.locking.load(Ordering::Acquire) {
            let _g = self.lock.lock();
            // SAFETY: the lock is held, so this is the only reference.
            f(unsafe { &mut *self.heap.get() })
        } else {
            // SAFETY: single CPU, MMU off: nothing else can hold a reference.
            f(unsafe { &mut *self.heap.get() })
        }
    }
}

static HEAP: El2Heap = El2Heap { heap: UnsafeCell::new(Heap::new()), lock: spin::Mutex::new(()), locking: AtomicBool::new(false) };

struct Global;

// SAFETY: allocation is delegated to the buddy heap under `El2Heap::with`'s exclusion.
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.with(|h| h.alloc(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr()))
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: ptr came from `alloc` with this layout.
        HEAP.with(|h| h.dealloc(unsafe { NonNull::new_unchecked(ptr) }, layout))
    }
}

#[cfg_attr(not(test), global_allocator)]
static GLOBAL: Global = Global;

/// Give the heap its boot arena. Call once, on the primary CPU, before the first allocation.
pub fn init() {
    let start = core::ptr::addr_of_mut!(ARENA) as usize;
    // SAFETY: ARENA is used by nothing else and `init` runs once, before any allocation.
    HEAP.with(|h| unsafe { h.init(start, BOOT_ARENA) });
}

/// Serialise the heap from now on (call once the EL2 MMU is on, before other CPUs start).
pub fn enable_locking() {
    HEAP.locking.store(true, Ordering::Release);
}

/// Add `[start, start + size)` of RAM to the heap.
///
/// # Safety
/// The range must be identity-mapped RAM that el2visor owns exclusively from now on.
pub unsafe fn grow(start: usize, size: usize) {
    // SAFETY: the caller hands over exclusive ownership of the range.
    HEAP.with(|h| unsafe { h.add_to_heap(start, start + size) });
}

/// Bytes allocated and bytes managed.
pub fn usage() -> (usize, usize) {
    HEAP.with(|h| (h.stats_alloc_actual(), h.stats_total_bytes()))
}
