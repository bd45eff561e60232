//! Rate limits for log lines a guest can trigger at will (an unknown trap, an access to an
//! address it does not own): at 115200 baud, under the console lock, an unlimited stream of them
//! would let a guest slow every CPU that logs. Each VM (by its slot in the VM table) has its own
//! count, so that a VM that floods one kind of event does not silence the first ones of another.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::vm::MAX_VMS;

/// Per VM slot: the first [`BURST`] events of a kind are logged, then one in [`EVERY`].
pub struct RateLimit([AtomicU32; MAX_VMS]);

pub const BURST: u32 = 16;
pub const EVERY: u32 = 4096;

impl RateLimit {
    pub const fn new() -> Self {
        Self([const { AtomicU32::new(0) }; MAX_VMS])
    }

    /// Whether this event of the VM in `slot` may be logged; `Some(n)` carries how many of its
    /// came before it, so the line can say that others were not logged.
    pub fn allow(&self, slot: usize) -> Option<u32> {
        let n = self.0[slot % MAX_VMS].fetch_add(1, Ordering::Relaxed);
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
        " (this VM's further events of this kind are logged one in 4096)"
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
        let logged: Vec<u32> = (0..20_000).filter_map(|_| r.allow(1)).collect();
        assert_eq!(&logged[..BURST as usize], &(0..BURST).collect::<Vec<_>>()[..]);
        assert_eq!(&logged[BURST as usize..], &[4096, 8192, 12288, 16384]);
        assert!(suppressed_note(BURST - 1).contains("4096") && suppressed_note(0).is_empty());
    }

    #[test]
    fn a_flooding_vm_leaves_the_others_their_burst() {
        let r = RateLimit::new();
        for _ in 0..1000 {
            r.allow(0);
        }
        assert_eq!(r.allow(0), None);
        assert_eq!((0..BURST).filter_map(|_| r.allow(3)).count(), BURST as usize);
    }
}
