//! Memory: address types, the physical memory layout, the frame allocator and heap, the
//! hypervisor's own EL2 stage-1 tables, and the Stage-2 tables it builds for each VM.

pub mod addr;
pub mod el2_tables;
pub mod frames;
pub mod layout;
pub mod stage2;
#[cfg(target_os = "none")]
pub mod heap;

use addr::Pa;

/// Where translation-table pages come from, and how the code that fills them reaches them.
///
/// On the target, frames come from the frame allocator and EL2 runs identity mapped, so
/// `page_ptr(pa)` is `pa` as a pointer. Host tests back it with heap pages and a map.
pub trait PageSource {
    /// `count` zeroed, physically contiguous 4 KiB pages aligned to `count * 4 KiB`
    /// (a concatenated Stage-2 root needs up to 16), or `None` when memory is exhausted.
    fn alloc_zeroed(&mut self, count: usize) -> Option<Pa>;
    /// Give back what `alloc_zeroed(count)` returned.
    fn free(&mut self, pa: Pa, count: usize);
    /// A pointer through which EL2 reads and writes the 512 descriptors of the page at `pa`.
    fn page_ptr(&self, pa: Pa) -> *mut u64;
}
