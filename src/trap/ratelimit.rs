//! Rate limits for log lines a guest can trigger at will (an unknown trap, an access to an
//! address it does not own): at 115200 baud, under the console lock, an unlimited stream of them
//! would let a guest slow every CPU that logs.

use core::sync::atomic::{AtomicU32, Ordering};

/// The first [`BURST`] events of a kind are logged, then one in [`EVERY`].
pub struct RateLimit(AtomicU32);

pub const BURST: u32 = 16;
pub const EVERY: u32 = 4096;

impl RateLimit {
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Whether this event may be logged; `Some(n)` carries how many came before it, so the line
    /// can say that others were not logged.
    pub fn allow(&self) -> Option<u32> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        (n < BURST || n.is_multiple_of(EVERY)).then_some(n)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// The suffix for a line logged by [`RateLimit::allow`]: empty for the burst, a count after it.
pub fn suppressed_note(n: u32) -> &'static str {
    if n == BURST - 1 {
        " (further events of this kind are logged one in 4096)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_in_every() {
        let r = RateLimit::new();
        let logged: Vec<u32> = (0..20_000).filter_map(|_| r.allow()).collect();
        assert_eq!(&logged[..BURST as usize], &(0..BURST).collect::<Vec<_>>()[..]);
        assert_eq!(&logged[BURST as usize..], &[4096, 8192, 12288, 16384]);
        assert!(suppressed_note(BURST - 1).contains("4096") && suppressed_note(0).is_empty());
    }
}
