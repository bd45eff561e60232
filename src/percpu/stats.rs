//! Exit statistics: why each vCPU left the guest, counted per physical CPU without locks and
//! summed into the `STATS` line of the output contract when the last VM powers off.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// Why a vCPU exited to el2visor. The names are the `STATS` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitReason {
    /// A trapped system-register access served by the Rust slow path.
    Sysreg,
    /// A TVM register write served by the assembly fast path in the vector table.
    SysregFast,
    Hvc,
    Smc,
    /// A data abort at Stage 2, emulated MMIO included.
    Dabt,
    Iabt,
    Wfx,
    /// A physical interrupt taken while the guest ran.
    Irq,
    /// Anything else (an unknown exception class, an SError, an AArch32 exception).
    Other,
    /// A Stage-2 fault on a passthrough device address: premapping keeps this at 0.
    S2Mmio,
}

impl ExitReason {
    pub const ALL: [ExitReason; 10] = [
        ExitReason::Sysreg,
        ExitReason::SysregFast,
        ExitReason::Hvc,
        ExitReason::Smc,
        ExitReason::Dabt,
        ExitReason::Iabt,
        ExitReason::Wfx,
        ExitReason::Irq,
        ExitReason::Other,
        ExitReason::S2Mmio,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Sysreg => "sysreg",
            ExitReason::SysregFast => "sysreg_fast",
            ExitReason::Hvc => "hvc",
            ExitReason::Smc => "smc",
            ExitReason::Dabt => "dabt",
            ExitReason::Iabt => "iabt",
            ExitReason::Wfx => "wfx",
            ExitReason::Irq => "irq",
            ExitReason::Other => "other",
            ExitReason::S2Mmio => "s2_mmio",
        }
    }
}

/// One CPU's counters. `s2_mmio` faults are also counted as `dabt` exits by the caller; the
/// `exits` total counts every exit once.
#[derive(Debug)]
pub struct ExitCounters {
    counts: [AtomicU64; 10],
}

impl ExitCounters {
    /// Where reason `r`'s counter is in the struct (the HVC fast path counts its calls there).
    pub const fn offset_of(r: ExitReason) -> usize {
        core::mem::offset_of!(ExitCounters, counts) + 8 * r as usize
    }
    pub const fn new() -> Self {
        Self { counts: [const { AtomicU64::new(0) }; 10] }
    }
    pub fn count(&self, r: ExitReason) {
        self.counts[r as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, r: ExitReason, n: u64) {
        self.counts[r as usize].fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self, r: ExitReason) -> u64 {
        self.counts[r as usize].load(Ordering::Relaxed)
    }
    pub fn snapshot(&self) -> Totals {
        let mut t = Totals::default();
        for r in ExitReason::ALL {
            t.counts[r as usize] = self.get(r);
        }
        t
    }
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for ExitCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    counts: [u64; 10],
}

impl Totals {
    pub fn get(&self, r: ExitReason) -> u64 {
        self.counts[r as usize]
    }
    /// Count `n` more exits for `r`.
    pub fn add_count(&mut self, r: ExitReason, n: u64) {
        self.counts[r as usize] += n;
    }
    pub fn add(&mut self, other: &Totals) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }
    /// Every exit once: `s2_mmio` faults are a kind of data abort, already in `dabt`.
    pub fn exits(&self) -> u64 {
        ExitReason::ALL.iter().filter(|r| **r != ExitReason::S2Mmio).map(|r| self.get(*r)).sum()
    }
}

/// `STATS exits=<n> sysreg=<n> … s2_mmio=<n>`.
impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "STATS exits={}", self.exits())?;
        for r in ExitReason::ALL {
            f.write_char(' ')?;
            write!(f, "{}={}", r.name(), self.get(r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line_names_every_reason_and_counts_each_exit_once() {
        let c = ExitCounters::new();
        c.count(ExitReason::Hvc);
        c.add(ExitReason::SysregFast, 5);
        c.count(ExitReason::Dabt);
        c.count(ExitReason::S2Mmio);
        let mut t = Totals::default();
        t.add(&c.snapshot());
        t.add(&c.snapshot());
        let line = t.to_string();
        assert_eq!(
            line,
            "STATS exits=14 sysreg=0 sysreg_fast=10 hvc=2 smc=0 dabt=2 iabt=0 wfx=0 irq=0 other=0 s2_mmio=2"
        );
    }
}
