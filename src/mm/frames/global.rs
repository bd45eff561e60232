//! The target's one frame allocator, shared by every CPU behind a spin lock.
//!
//! EL2 runs identity mapped, so a frame's address is also the pointer to it. The lock is never
//! held while pages are zeroed, and EL2 code runs with interrupts masked, so an exception handler
//! cannot re-enter it on the same CPU.

use spin::Mutex;

use super::pages::identity;
use super::{Frames, FramesError};
use crate::mm::addr::{Pa, PaRange, PAGE_SIZE};
use crate::mm::PageSource;

/// The frame allocator for all free RAM.
pub static FRAMES: Mutex<Frames> = Mutex::new(Frames::new());

/// Hand a free RAM range to the allocator (see [`Frames::add_range`]).
pub fn add_range(range: PaRange) -> Result<usize, FramesError> {
    FRAMES.lock().add_range(range)
}

/// See [`Frames::alloc`]. The frames are not zeroed.
pub fn alloc(count: usize) -> Option<Pa> {
    FRAMES.lock().alloc(count)
}

/// See [`Frames::alloc_aligned`]. The frames are not zeroed.
pub fn alloc_aligned(count: usize, align: u64) -> Option<Pa> {
    FRAMES.lock().alloc_aligned(count, align)
}

/// See [`Frames::free`].
pub fn free(pa: Pa, count: usize) {
    FRAMES.lock().free(pa, count)
}

/// Frames free right now.
pub fn free_frames() -> usize {
    FRAMES.lock().free_frames()
}

/// Frames ever added.
pub fn total_frames() -> usize {
    FRAMES.lock().total_frames()
}

/// Zeroed, identity-mapped translation-table pages from the global allocator.
#[derive(Clone, Copy, Default, Debug)]
pub struct GlobalPages;

impl PageSource for GlobalPages {
    fn alloc_zeroed(&mut self, count: usize) -> Option<Pa> {
        let pa = alloc(count)?;
        for i in 0..count as u64 {
            // SAFETY: the frames were free RAM and are ours now; EL2 maps all RAM identity, RW.
            unsafe {
                core::ptr::write_bytes(identity(pa.add(i * PAGE_SIZE)), 0, (PAGE_SIZE / 8) as usize)
            };
        }
        Some(pa)
    }

    fn free(&mut self, pa: Pa, count: usize) {
        free(pa, count)
    }

    fn page_ptr(&self, pa: Pa) -> *mut u64 {
        identity(pa)
    }
}
