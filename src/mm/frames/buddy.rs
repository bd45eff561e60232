//! A binary buddy allocator over frame numbers.
//!
//! Free memory is kept as aligned power-of-two blocks, one ordered set per size class. Taking a
//! block splits a larger one when needed; giving memory back decomposes it into aligned blocks and
//! merges each with its buddy while the buddy is free. It hands out the lowest free block of the
//! smallest class that fits, so allocation is deterministic.

use alloc::collections::BTreeSet;

/// Size classes: blocks of 2^0 up to 2^(ORDERS-1) frames (8 TiB with 4 KiB frames).
pub const ORDERS: usize = 32;

/// The buddy allocator state: which aligned blocks are free.
pub struct Buddy {
    free: [BTreeSet<u64>; ORDERS],
    free_frames: u64,
}

/// Log2 of the largest aligned power-of-two block that starts at `start` and fits before `end`.
fn largest_block(start: u64, end: u64) -> usize {
    let align = start.trailing_zeros() as usize;
    let fit = (63 - (end - start).leading_zeros()) as usize;
    align.min(fit).min(ORDERS - 1)
}

impl Buddy {
    pub const fn new() -> Self {
        Self {
            free: [const { BTreeSet::new() }; ORDERS],
            free_frames: 0,
        }
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Mark frames `[start, end)` free, merging with free buddies. The caller guarantees that
    /// none of them is free already and that all of them are managed memory.
    pub fn release(&mut self, start: u64, end: u64) {
        let mut at = start;
        while at < end {
            let order = largest_block(at, end);
            self.free_block(at, order);
            at += 1 << order;
        }
        self.free_frames += end - start;
    }

    fn free_block(&mut self, mut block: u64, mut order: usize) {
        while order < ORDERS - 1 {
            let buddy = block ^ (1 << order);
            if !self.free[order].remove(&buddy) {
                break;
            }
            block = block.min(buddy);
            order += 1;
        }
        self.free[order].insert(block);
    }

    /// Take a free block of `2^order` frames (aligned to its size), splitting a larger one if
    /// needed, or `None` when no block that large is free.
    pub fn take(&mut self, order: usize) -> Option<u64> {
        let from = (order..ORDERS).find(|&o| !self.free[o].is_empty())?;
        let block = self.free[from].pop_first()?;
        for o in (order..from).rev() {
            self.free[o].insert(block + (1 << o));
        }
        self.free_frames -= 1 << order;
        Some(block)
    }

    /// Whether any frame of `[start, end)` is currently free.
    pub fn any_free(&self, start: u64, end: u64) -> bool {
        self.free.iter().enumerate().any(|(order, set)| {
            let first = start & !((1u64 << order) - 1);
            set.range(first..end).next().is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_merges() {
        let mut b = Buddy::new();
        b.release(0, 16);
        assert_eq!(b.free_frames(), 16);
        assert_eq!(b.take(0), Some(0));
        assert_eq!(b.take(1), Some(2));
        assert_eq!(b.take(0), Some(1));
        assert_eq!(b.take(3), Some(8));
        assert_eq!(b.free_frames(), 4);
        assert!(b.any_free(4, 8) && !b.any_free(0, 4) && !b.any_free(8, 16));
        b.release(0, 4);
        b.release(8, 16);
        assert_eq!(
            b.take(4),
            Some(0),
            "all blocks merge back into one of 16 frames"
        );
    }

    #[test]
    fn unaligned_ranges_become_aligned_blocks() {
        let mut b = Buddy::new();
        b.release(3, 13); // 3, 4..8, 8..12, 12
        assert_eq!(b.take(3), None);
        assert_eq!(b.take(2), Some(4));
        assert_eq!(b.take(2), Some(8));
        assert_eq!(b.take(0), Some(3));
        assert_eq!(b.take(0), Some(12));
        assert_eq!(b.take(0), None);
        assert_eq!(b.free_frames(), 0);
    }
}
