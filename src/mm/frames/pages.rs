//! [`PageSource`] implementations: translation-table pages from the frame allocator, from a fixed
//! boot pool, and (in host tests) from the host heap.
//!
//! Every source hands out zeroed pages, so a fresh table holds only invalid descriptors. How a
//! physical address becomes a pointer is a parameter: identity on the target, where EL2 runs
//! identity mapped (or with the MMU off), and anything a test needs on the host.

use super::Frames;
use crate::mm::addr::{Pa, PaRange, PAGE_SIZE};
use crate::mm::PageSource;

/// Descriptors in one 4 KiB page.
const WORDS_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;

/// Zero `count` pages starting at `pa`, reaching each through `to_ptr`.
///
/// # Safety
/// `to_ptr` must give, for each of those pages, a pointer valid for writing 4 KiB that nothing
/// else uses.
unsafe fn zero_pages(pa: Pa, count: usize, to_ptr: impl Fn(Pa) -> *mut u64) {
    for i in 0..count as u64 {
        // SAFETY: the caller guarantees each page is writable and unused by anyone else.
        unsafe { core::ptr::write_bytes(to_ptr(pa.add(i * PAGE_SIZE)), 0, WORDS_PER_PAGE) };
    }
}

/// The identity mapping from a physical address to the pointer EL2 uses.
pub fn identity(pa: Pa) -> *mut u64 {
    pa.raw() as usize as *mut u64
}

/// Zeroed pages from a [`Frames`] allocator.
pub struct ZeroingPages<'a, F: Fn(Pa) -> *mut u64> {
    frames: &'a mut Frames,
    to_ptr: F,
}

impl<'a, F: Fn(Pa) -> *mut u64> ZeroingPages<'a, F> {
    /// # Safety
    /// For every frame `frames` manages, `to_ptr` must return a pointer through which the whole
    /// 4 KiB page may be read and written, and a free frame must not be in use by anything else.
    pub unsafe fn new(frames: &'a mut Frames, to_ptr: F) -> Self {
        Self { frames, to_ptr }
    }
}

impl<F: Fn(Pa) -> *mut u64> PageSource for ZeroingPages<'_, F> {
    fn alloc_zeroed(&mut self, count: usize) -> Option<Pa> {
        let pa = self.frames.alloc(count)?;
        // SAFETY: `new`'s contract: the frames are ours now and reachable through `to_ptr`.
        unsafe { zero_pages(pa, count, &self.to_ptr) };
        Some(pa)
    }

    fn free(&mut self, pa: Pa, count: usize) {
        self.frames.free(pa, count);
    }

    fn page_ptr(&self, pa: Pa) -> *mut u64 {
        (self.to_ptr)(pa)
    }
}

/// A fixed pool of pages handed out in order, for the EL2 tables that are built before the heap
/// and the frame allocator exist. Only the most recent allocation can be given back; the boot
/// tables live forever, so nothing else needs to be.
pub struct BootPool<F: Fn(Pa) -> *mut u64> {
    pool: PaRange,
    used: u64,
    to_ptr: F,
}

impl<F: Fn(Pa) -> *mut u64> BootPool<F> {
    /// A pool over the whole pages of `pool`.
    ///
    /// # Safety
    /// Every page of `pool` must be reachable for reading and writing through `to_ptr` and used
    /// by nothing else for as long as the tables built from it are.
    pub unsafe fn new(pool: PaRange, to_ptr: F) -> Self {
        let start = pool.start.align_up(PAGE_SIZE);
        let end = pool.start.raw().saturating_add(pool.size) & !(PAGE_SIZE - 1);
        let size = end.saturating_sub(start.raw());
        Self {
            pool: PaRange { start, size },
            used: 0,
            to_ptr,
        }
    }

    /// Pages handed out so far (including alignment padding).
    pub fn pages_used(&self) -> usize {
        (self.used / PAGE_SIZE) as usize
    }

    /// Pages the pool has in all.
    pub fn capacity(&self) -> usize {
        (self.pool.size / PAGE_SIZE) as usize
    }
}

impl<F: Fn(Pa) -> *mut u64> PageSource for BootPool<F> {
    fn alloc_zeroed(&mut self, count: usize) -> Option<Pa> {
        if count == 0 {
            return None;
        }
        let align = (count as u64)
            .checked_next_power_of_two()?
            .checked_mul(PAGE_SIZE)?;
        let pa = self.pool.start.add(self.used).align_up(align);
        let end = pa.raw().checked_add(count as u64 * PAGE_SIZE)?;
        if end > self.pool.start.raw() + self.pool.size {
            return None;
        }
        // SAFETY: `new`'s contract: pool pages are ours and reachable through `to_ptr`.
        unsafe { zero_pages(pa, count, &self.to_ptr) };
        self.used = end - self.pool.start.raw();
        Some(pa)
    }

    fn free(&mut self, pa: Pa, count: usize) {
        if pa.raw() + count as u64 * PAGE_SIZE == self.pool.start.raw() + self.used {
            self.used = pa.raw() - self.pool.start.raw();
        }
    }

    fn page_ptr(&self, pa: Pa) -> *mut u64 {
        (self.to_ptr)(pa)
    }
}

/// Host-test page source: pages from the host heap, identified by their host address.
#[cfg(test)]
pub mod host {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::collections::BTreeMap;

    /// Heap-backed pages with an optional limit; checks that every page touched was handed out
    /// and not freed, and frees what is left when dropped.
    pub struct HostPages {
        live: BTreeMap<u64, Layout>,
        limit: usize,
        in_use: usize,
    }

    impl HostPages {
        pub fn new() -> Self {
            Self::with_limit(usize::MAX)
        }
        /// At most `limit` pages outstanding at once.
        pub fn with_limit(limit: usize) -> Self {
            Self {
                live: BTreeMap::new(),
                limit,
                in_use: 0,
            }
        }
        /// Pages outstanding now.
        pub fn in_use(&self) -> usize {
            self.in_use
        }
    }

    impl Default for HostPages {
        fn default() -> Self {
            Self::new()
        }
    }

    impl PageSource for HostPages {
        fn alloc_zeroed(&mut self, count: usize) -> Option<Pa> {
            if count == 0 || self.in_use + count > self.limit {
                return None;
            }
            let align = count.next_power_of_two() * PAGE_SIZE as usize;
            let layout = Layout::from_size_align(count * PAGE_SIZE as usize, align).ok()?;
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            assert!(!ptr.is_null(), "host heap exhausted");
            self.live.insert(ptr as u64, layout);
            self.in_use += count;
            Some(Pa(ptr as u64))
        }

        fn free(&mut self, pa: Pa, count: usize) {
            let layout = self
                .live
                .remove(&pa.raw())
                .expect("HostPages: freeing a page it never gave");
            assert_eq!(
                layout.size(),
                count * PAGE_SIZE as usize,
                "HostPages: free with a different count"
            );
            self.in_use -= count;
            // SAFETY: allocated above with this layout and not freed since (it was in `live`).
            unsafe { dealloc(pa.raw() as *mut u8, layout) };
        }

        fn page_ptr(&self, pa: Pa) -> *mut u64 {
            let (&base, layout) = self
                .live
                .range(..=pa.raw())
                .next_back()
                .expect("HostPages: unknown page");
            assert!(
                pa.raw() < base + layout.size() as u64,
                "HostPages: page {pa} was never handed out"
            );
            assert!(pa.is_aligned(PAGE_SIZE), "HostPages: unaligned page {pa}");
            pa.raw() as *mut u64
        }
    }

    impl Drop for HostPages {
        fn drop(&mut self) {
            for (&base, &layout) in &self.live {
                // SAFETY: each entry was allocated with its layout and not freed yet.
                unsafe { dealloc(base as *mut u8, layout) };
            }
        }
    }
}
