//! The EL2 heap: a buddy allocator on a static 2 MiB arena (`.noinit`, the image's last part:
//! enough for the EL2 tables' plan, the parsed platform, the command line, the VMs' own state;
//! one Linux VM uses about 60 KiB, which the boot's debug log reports). It does not grow: an
//! allocation the arena cannot serve fails, and el2visor's panic handler says so (`fatal`).
//!
//! The arena is handed to the allocator in two parts: first what lies below the next 2 MiB
//! boundary (the rest of the image's first 2 MiB, after text, data, BSS, the stacks and the
//! device tree's slot), and the part past it only when the first is used up. A buddy allocator
//! writes its free-list links into the free blocks themselves, so a part it is given is touched
//! at once; given only when needed, the second part is never touched on a machine whose heap
//! stays small, and under QEMU that is a 2 MiB huge page of host memory the VM does not take.
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

/// The buddy heap and the part of the arena not given to it yet (`[start, end)`, empty when
/// given).
struct State {
    heap: Heap<32>,
    reserve: (usize, usize),
}

struct El2Heap {
    state: UnsafeCell<State>,
    lock: spin::Mutex<()>,
    locking: AtomicBool,
}

// SAFETY: every access to `state` is serialised by `lock` once more than one CPU runs
// (`locking` set), and before that only the primary CPU exists.
unsafe impl Sync for El2Heap {}

impl El2Heap {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        if self.locking.load(Ordering::Acquire) {
            let _g = self.lock.lock();
            // SAFETY: the lock is held, so this is the only reference.
            f(unsafe { &mut *self.state.get() })
        } else {
            // SAFETY: single CPU, MMU off: nothing else can hold a reference.
            f(unsafe { &mut *self.state.get() })
        }
    }
}

static HEAP: El2Heap = El2Heap {
    state: UnsafeCell::new(State { heap: Heap::new(), reserve: (0, 0) }),
    lock: spin::Mutex::new(()),
    locking: AtomicBool::new(false),
};

impl State {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        if let Ok(p) = self.heap.alloc(layout) {
            return p.as_ptr();
        }
        let (start, end) = core::mem::take(&mut self.reserve);
        if start == end {
            return core::ptr::null_mut();
        }
        // SAFETY: the reserve is the arena's part no one has been given (`init`), now the heap's.
        unsafe { self.heap.add_to_heap(start, end) };
        self.heap.alloc(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
}

struct Global;

// SAFETY: allocation is delegated to the buddy heap under `El2Heap::with`'s exclusion.
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.with(|s| s.alloc(layout))
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: ptr came from `alloc` with this layout.
        HEAP.with(|s| s.heap.dealloc(unsafe { NonNull::new_unchecked(ptr) }, layout))
    }
}

#[cfg_attr(not(test), global_allocator)]
static GLOBAL: Global = Global;

/// The arena's part below the first 2 MiB boundary past its start goes first, unless that is
/// less than this; then the whole arena does.
const FIRST_PART_MIN: usize = 128 << 10;

/// Give the heap its boot arena: the part up to the next 2 MiB boundary now, the rest when that
/// is used up (the module comment says why). Call once, on the primary CPU, before the first
/// allocation.
pub fn init() {
    let start = core::ptr::addr_of_mut!(ARENA) as usize;
    let end = start + BOOT_ARENA;
    let split = match start.next_multiple_of(2 << 20) {
        s if s - start >= FIRST_PART_MIN && s < end => s,
        _ => end,
    };
    HEAP.with(|s| {
        // SAFETY: ARENA is used by nothing else and `init` runs once, before any allocation.
        unsafe { s.heap.init(start, split - start) };
        s.reserve = (split, end);
    });
}

/// Serialise the heap from now on (call once the EL2 MMU is on, before other CPUs start).
pub fn enable_locking() {
    HEAP.locking.store(true, Ordering::Release);
}

/// Bytes allocated, and bytes of the arena (the part not given to the heap yet included).
pub fn usage() -> (usize, usize) {
    HEAP.with(|s| (s.heap.stats_alloc_actual(), s.heap.stats_total_bytes() + (s.reserve.1 - s.reserve.0)))
}
