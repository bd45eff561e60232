//! The host's physical LPIs: a range of INTIDs handed out one at a time to mapped events.

use alloc::vec::Vec;

use super::model::LpiAlloc;

/// Physical LPIs `[first, first + count)`, one bit each.
#[derive(Clone, Debug)]
pub struct LpiPool {
    first: u32,
    used: Vec<u64>,
    count: u32,
}

impl LpiPool {
    pub fn new(first: u32, count: u32) -> Self {
        Self { first, used: alloc::vec![0; count.div_ceil(64) as usize], count }
    }

    /// How many are handed out.
    pub fn in_use(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}

impl LpiAlloc for LpiPool {
    fn alloc(&mut self) -> Option<u32> {
        for (i, w) in self.used.iter_mut().enumerate() {
            if *w != u64::MAX {
                let bit = w.trailing_ones();
                let n = i as u32 * 64 + bit;
                if n >= self.count {
                    return None;
                }
                *w |= 1 << bit;
                return Some(self.first + n);
            }
        }
        None
    }

    fn free(&mut self, plpi: u32) {
        if let Some(n) = plpi.checked_sub(self.first).filter(|&n| n < self.count) {
            self.used[(n / 64) as usize] &= !(1u64 << (n % 64));
        }
    }
}
