//! The frame allocator: 4 KiB frames of free RAM for translation tables, VM memory and the heap.
//!
//! [`Frames`] manages the ranges platform discovery leaves free (see
//! [`free_ranges`](crate::mm::layout::free_ranges)) with a binary buddy allocator over frame
//! numbers, so `alloc(n)` returns a block aligned to `n.next_power_of_two()` frames, as a
//! concatenated Stage-2 root needs. Only the `n` frames asked for are taken; the rest of the
//! power-of-two block stays free, and `free(pa, n)` gives back exactly those `n` frames.
//!
//! The buddy allocator keeps its free lists in `BTreeSet`s, so the heap must exist before frames
//! are added; the EL2 tables are built earlier, from a [`BootPool`].
//!
//! [`pages`] turns a `Frames` (or a fixed pool) into a [`PageSource`](crate::mm::PageSource) that
//! zeroes what it hands out; on the target, [`global`] holds the one instance everyone shares.

mod buddy;
#[cfg(target_os = "none")]
pub mod global;
pub mod pages;

use alloc::vec::Vec;
use core::fmt;

use self::buddy::{Buddy, ORDERS};
use super::addr::{Pa, PaRange, PAGE_SIZE};

pub use self::pages::{BootPool, ZeroingPages};

const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();

/// Why a range could not be given to the allocator.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FramesError {
    /// The new range shares frames with one added before: the same memory would be handed out
    /// twice. Usually the RAM list or the reserved list given to `free_ranges` is wrong.
    Overlap { new: PaRange, existing: PaRange },
}

impl fmt::Display for FramesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramesError::Overlap { new, existing } => write!(
                f,
                "frame allocator: range {}+{:#x} overlaps {}+{:#x} added before; \
                 each free RAM range must be added once",
                new.start, new.size, existing.start, existing.size
            ),
        }
    }
}

/// Frames `[first, end)` of a range, shrunk inward to whole pages (ends may be 2^52).
fn frame_span(r: &PaRange) -> (u64, u64) {
    let start = r.start.raw() as u128;
    let end = (start + r.size as u128).min(1 << 64);
    let first = start.div_ceil(PAGE_SIZE as u128) as u64;
    let end = (end >> PAGE_SHIFT) as u64;
    (first, end.max(first))
}

fn to_range(first: u64, end: u64) -> PaRange {
    PaRange {
        start: Pa(first << PAGE_SHIFT),
        size: (end - first) << PAGE_SHIFT,
    }
}

/// Smallest order whose block holds `count` frames, if a size class that large exists.
fn order_for(count: usize) -> Option<usize> {
    let order = count.checked_next_power_of_two()?.trailing_zeros() as usize;
    (order < ORDERS).then_some(order)
}

/// A frame allocator over the free RAM ranges added to it.
pub struct Frames {
    buddy: Buddy,
    /// Managed frame spans `[first, end)`, sorted, never overlapping.
    spans: Vec<(u64, u64)>,
    total: u64,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    /// An allocator with no memory yet.
    pub const fn new() -> Self {
        Self {
            buddy: Buddy::new(),
            spans: Vec::new(),
            total: 0,
        }
    }

    /// Hand the whole pages of `range` to the allocator; returns how many frames that added.
    /// Refuses a range that shares a frame with one added before.
    pub fn add_range(&mut self, range: PaRange) -> Result<usize, FramesError> {
        let (first, end) = frame_span(&range);
        if first == end {
            return Ok(0);
        }
        let at = self.spans.partition_point(|&(_, e)| e <= first);
        if let Some(&(s, e)) = self.spans.get(at) {
            if s < end {
                return Err(FramesError::Overlap {
                    new: range,
                    existing: to_range(s, e),
                });
            }
        }
        self.spans.insert(at, (first, end));
        self.buddy.release(first, end);
        self.total += end - first;
        Ok((end - first) as usize)
    }

    /// `count` contiguous frames aligned to `count.next_power_of_two()` frames, or `None` when no
    /// such block is free (or `count` is 0).
    pub fn alloc(&mut self, count: usize) -> Option<Pa> {
        self.alloc_aligned(count, PAGE_SIZE)
    }

    /// `count` contiguous frames whose address is a multiple of `align` bytes and of
    /// `count.next_power_of_two()` frames. `align` must be a power of two (anything else, or a
    /// `count` of 0, gives `None`); alignments below a page mean a page.
    pub fn alloc_aligned(&mut self, count: usize, align: u64) -> Option<Pa> {
        if count == 0 || !align.is_power_of_two() {
            return None;
        }
        let align_order = align.max(PAGE_SIZE).trailing_zeros() - PAGE_SHIFT;
        let order = order_for(count)?.max(align_order as usize);
        if order >= ORDERS {
            return None;
        }
        let first = self.buddy.take(order)?;
        // Keep exactly `count` frames; the tail of the block goes back.
        self.buddy
            .release(first + count as u64, first + (1 << order));
        Some(Pa(first << PAGE_SHIFT))
    }

    /// Give back `count` frames at `pa`, as returned by `alloc` or `alloc_aligned`.
    ///
    /// # Panics
    /// When the frames are not managed here or some of them are already free: that is a double
    /// free or a foreign address, and carrying on would hand the same memory out twice.
    pub fn free(&mut self, pa: Pa, count: usize) {
        assert!(
            pa.is_aligned(PAGE_SIZE),
            "frame allocator: freeing unaligned address {pa}"
        );
        let first = pa.raw() >> PAGE_SHIFT;
        let end = first
            .checked_add(count as u64)
            .expect("frame allocator: free count wraps");
        assert!(
            self.manages(first, end),
            "frame allocator: {pa}+{count} frames is not memory it manages"
        );
        assert!(
            !self.buddy.any_free(first, end),
            "frame allocator: double free of frames in {pa}+{count} frames"
        );
        self.buddy.release(first, end);
    }

    /// Whether every frame of `[first, end)` lies in the ranges added (adjacent ranges count as
    /// one: a buddy block may span both).
    fn manages(&self, first: u64, end: u64) -> bool {
        let mut covered = first;
        let from = self.spans.partition_point(|&(_, e)| e <= first);
        for &(s, e) in &self.spans[from..] {
            if s > covered || covered >= end {
                break;
            }
            covered = e;
        }
        covered >= end
    }

    /// Frames free right now.
    pub fn free_frames(&self) -> usize {
        self.buddy.free_frames() as usize
    }

    /// Frames ever added.
    pub fn total_frames(&self) -> usize {
        self.total as usize
    }

    /// The ranges added so far, sorted by address.
    pub fn ranges(&self) -> impl Iterator<Item = PaRange> + '_ {
        self.spans.iter().map(|&(s, e)| to_range(s, e))
    }
}

#[cfg(test)]
mod tests;
