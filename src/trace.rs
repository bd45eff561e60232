//! `trace=`: one decoded line per guest event of the chosen classes (sysreg, psci, mmio, irq,
//! s2fault), `trace <class> VM <name> vCPU <n> pc <pc>: <what>`, and the guest's own log lines
//! (the vendor call `LOG_LINE`). Every class has its own token bucket ([`Bucket`]): a burst of
//! [`BURST`] lines, then [`RATE`] lines a second; what a bucket drops is counted, and the next
//! line it lets through is preceded by `trace <class>: <n> events suppressed`. A guest can thus
//! never make el2visor spend its time on the console: the lines of one class over `t` seconds
//! are at most `BURST + RATE * t`, plus one suppression line for each of those.
//!
//! The decision (bucket, class set) is pure and host-tested; printing (under the console lock)
//! and the clock (CNTPCT_EL0/CNTFRQ_EL0) are the bare-metal half.

#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

use crate::cmdline::{TraceClass, TraceSet};

/// Lines a class may print at once before the rate applies.
pub const BURST: u64 = 32;
/// Lines a class may print per second after its burst.
pub const RATE: u64 = 8;

/// A token bucket counted in counter ticks: each token is `freq` units, so no fraction is lost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    /// Tokens times the counter frequency.
    scaled: u64,
    /// Counter value at the last refill; `None` until the first event (the bucket starts full).
    last: Option<u64>,
    /// Events dropped since the last one printed.
    suppressed: u64,
}

impl Bucket {
    pub const fn new() -> Self {
        Bucket { scaled: 0, last: None, suppressed: 0 }
    }

    /// One event at counter value `now` (frequency `freq`): `Some(n)` when it may be printed,
    /// `n` being how many were dropped before it; `None` when it is dropped (and counted).
    pub fn take(&mut self, now: u64, freq: u64, burst: u64, rate: u64) -> Option<u64> {
        let freq = freq.max(1);
        let cap = burst.saturating_mul(freq);
        self.scaled = match self.last {
            None => cap,
            Some(last) => self.scaled.saturating_add(now.saturating_sub(last).saturating_mul(rate)).min(cap),
        };
        self.last = Some(now);
        if self.scaled >= freq {
            self.scaled -= freq;
            Some(core::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The classes `trace=` switched on, set once at boot.
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Switch the classes of `set` on (boot, from the command line).
pub fn enable(set: TraceSet) {
    ENABLED.store(set.0, Ordering::Relaxed);
}

/// Whether events of class `c` are traced: one relaxed load, cheap on every exit.
#[inline]
pub fn on(c: TraceClass) -> bool {
    TraceSet(ENABLED.load(Ordering::Relaxed)).contains(c)
}

/// Whether any class of `set` is traced: one relaxed load for all of them.
#[inline]
pub fn any(set: TraceSet) -> bool {
    ENABLED.load(Ordering::Relaxed) & set.0 != 0
}

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::arch::sysreg;

    /// One bucket per class, and one for the guests' `LOG_LINE`s.
    static BUCKETS: [spin::Mutex<Bucket>; 6] = [const { spin::Mutex::new(Bucket::new()) }; 6];
    const LOG_BUCKET: usize = 5;

    fn allow(i: usize) -> Option<u64> {
        BUCKETS[i].lock().take(sysreg::cntpct_el0(), sysreg::cntfrq_el0(), BURST, RATE)
    }

    /// Print one event of class `c` (the caller checked [`on`]), rate limited.
    pub fn event(c: TraceClass, vm: &str, vcpu: usize, pc: u64, what: core::fmt::Arguments<'_>) {
        let Some(dropped) = allow(c.index()) else { return };
        if dropped > 0 {
            crate::logging::print_line(format_args!("trace {}: {dropped} events suppressed", c.name()));
        }
        crate::logging::print_line(format_args!("trace {} VM {vm} vCPU {vcpu} pc {pc:#x}: {what}", c.name()));
    }

    /// A line the guest asked el2visor to log (vendor call `LOG_LINE`), rate limited like a class.
    pub fn guest_log(vm: &str, vcpu: usize, text: &str) {
        let Some(dropped) = allow(LOG_BUCKET) else { return };
        if dropped > 0 {
            crate::logging::print_line(format_args!("el2visor: {dropped} guest log lines suppressed"));
        }
        crate::logging::print_line(format_args!("el2visor: VM {vm} vCPU {vcpu} log: {text}"));
    }
}

#[cfg(target_os = "none")]
pub use hw::{event, guest_log};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_the_drops_are_counted() {
        let freq = 1000;
        let mut b = Bucket::new();
        let printed = (0..100).filter(|_| b.take(0, freq, BURST, RATE).is_some()).count();
        assert_eq!(printed as u64, BURST, "all at once: only the burst");
        // One second later: RATE more, the first of them says how many were dropped.
        let mut got = alloc::vec::Vec::new();
        for _ in 0..20 {
            got.push(b.take(freq, freq, BURST, RATE));
        }
        assert_eq!(got[0], Some(100 - BURST));
        assert!(got[1..RATE as usize].iter().all(|g| *g == Some(0)));
        assert!(got[RATE as usize..].iter().all(Option::is_none));
        // A long pause refills only up to the burst.
        let n = (0..1000).filter(|_| b.take(1000 * freq, freq, BURST, RATE).is_some()).count();
        assert_eq!(n as u64, BURST);
    }

    #[test]
    fn steady_events_stay_within_the_budget() {
        // 10 000 events a second for 30 s at a 62.5 MHz counter: BURST + RATE * 30 lines at most.
        let freq = 62_500_000;
        let mut b = Bucket::new();
        let mut lines = 0u64;
        for i in 0..300_000u64 {
            if b.take(i * freq / 10_000, freq, BURST, RATE).is_some() {
                lines += 1;
            }
        }
        assert!(lines <= BURST + RATE * 30, "{lines}");
        assert!(lines >= RATE * 29, "{lines}: the rate is not starved");
    }

    #[test]
    fn a_clock_going_backwards_takes_nothing() {
        let mut b = Bucket::new();
        assert!(b.take(500, 100, 1, 1).is_some());
        assert!(b.take(100, 100, 1, 1).is_none(), "no refill from a smaller count");
    }

    #[test]
    fn classes_switch_on() {
        enable(TraceSet(TraceClass::Psci.bit()));
        assert!(on(TraceClass::Psci) && !on(TraceClass::Irq));
        enable(TraceSet(0));
    }
}
