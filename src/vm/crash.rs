//! What el2visor remembers about a VM's crashes, and the restart limit.
//!
//! A run of the VM (from its start or its last reset to its next reset) is a *crash* when the
//! guest panicked in it (pvpanic, or the panic line on its virtual console) or when it reset
//! within [`QUICK_RUN_S`] seconds of its start (a guest that reboots as soon as it is up, such
//! as a kernel with `panic=1` and no pvpanic driver). Crashes in a row are counted; a run that
//! is not a crash clears the count. When a VM is about to be restarted after more than
//! `crash_restarts=` crashes in a row, it is halted instead ([`restart_decision`]).
//!
//! The policy (`on_crash=`, `crash_restarts=`) is machine-wide, set at boot ([`set_policy`]).

#![forbid(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::cmdline::{CrashPolicy, DEFAULT_CRASH_RESTARTS};

/// A reset this many seconds or less after the VM's start counts as a crash.
pub const QUICK_RUN_S: u64 = 10;

static POLICY: AtomicU8 = AtomicU8::new(0);
static RESTARTS: AtomicU32 = AtomicU32::new(DEFAULT_CRASH_RESTARTS);

/// Set `on_crash=` and `crash_restarts=` (boot, from the command line).
pub fn set_policy(p: CrashPolicy, restarts: u32) {
    POLICY.store(p as u8, Ordering::Relaxed);
    RESTARTS.store(restarts, Ordering::Relaxed);
}

/// `on_crash=`.
pub fn policy() -> CrashPolicy {
    match POLICY.load(Ordering::Relaxed) {
        1 => CrashPolicy::Restart,
        2 => CrashPolicy::Halt,
        3 => CrashPolicy::Debug,
        _ => CrashPolicy::Report,
    }
}

/// `crash_restarts=`.
pub fn restart_limit() -> u32 {
    RESTARTS.load(Ordering::Relaxed)
}

/// Whether a run that lasted `ticks` counter ticks (at `freq` Hz) and did or did not panic was
/// a crash.
pub fn was_crash(panicked: bool, ticks: u64, freq: u64) -> bool {
    panicked || ticks <= QUICK_RUN_S.saturating_mul(freq.max(1))
}

/// What a reset of the VM does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Restart it; `streak` crashes in a row so far (0 after a run that was not one).
    Go { streak: u32 },
    /// Halt it: `streak` crashes in a row, more than the limit allows.
    Halt { streak: u32 },
}

/// The decision for a reset after a run that was (`crashed`) or was not a crash, with `streak`
/// crashes in a row before it and `limit` restarts allowed in a row.
pub fn restart_decision(streak: u32, crashed: bool, limit: u32) -> Restart {
    if !crashed {
        return Restart::Go { streak: 0 };
    }
    let streak = streak.saturating_add(1);
    if streak > limit {
        Restart::Halt { streak }
    } else {
        Restart::Go { streak }
    }
}

/// pvpanic event bits (QEMU docs/specs/pvpanic.rst).
pub const PVPANIC_PANICKED: u8 = 1 << 0;
pub const PVPANIC_CRASH_LOADED: u8 = 1 << 1;
pub const PVPANIC_SHUTDOWN: u8 = 1 << 2;
/// What the device supports (what a read returns).
pub const PVPANIC_EVENTS: u8 = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED | PVPANIC_SHUTDOWN;

/// One VM's crash record.
pub struct CrashState {
    /// pvpanic events the guest wrote and the dispatcher has not acted on yet (shared with the
    /// VM's pvpanic device).
    pub events: Arc<AtomicU8>,
    /// CNTPCT_EL0 when the current run started.
    pub started: AtomicU64,
    /// The current run reported a panic.
    pub panicked: AtomicBool,
    /// Crashes in a row before the current run.
    pub streak: AtomicU32,
    /// Stopped for a debugger (`on_crash=debug`).
    pub hold: crate::vm::debug_hold::DebugHold,
}

impl CrashState {
    pub fn new(now: u64) -> Self {
        CrashState {
            events: Arc::new(AtomicU8::new(0)),
            started: AtomicU64::new(now),
            panicked: AtomicBool::new(false),
            streak: AtomicU32::new(0),
            hold: crate::vm::debug_hold::DebugHold::new(),
        }
    }

    /// The VM is about to be reset at counter value `now` (frequency `freq`): count this run and
    /// decide. A restart starts the next run's record.
    pub fn on_reset(&self, now: u64, freq: u64) -> Restart {
        let ticks = now.saturating_sub(self.started.load(Ordering::Relaxed));
        let crashed = was_crash(self.panicked.load(Ordering::Relaxed), ticks, freq);
        let d = restart_decision(self.streak.load(Ordering::Relaxed), crashed, restart_limit());
        let streak = match d {
            Restart::Go { streak } | Restart::Halt { streak } => streak,
        };
        self.streak.store(streak, Ordering::Relaxed);
        if let Restart::Go { .. } = d {
            self.panicked.store(false, Ordering::Relaxed);
            self.started.store(now, Ordering::Relaxed);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_or_panicked_runs_are_crashes() {
        let f = 62_500_000;
        assert!(was_crash(false, 3 * f, f));
        assert!(was_crash(false, QUICK_RUN_S * f, f));
        assert!(!was_crash(false, QUICK_RUN_S * f + 1, f));
        assert!(was_crash(true, 3600 * f, f), "a panic counts whenever it comes");
    }

    #[test]
    fn the_limit_halts_after_n_restarts_in_a_row() {
        // crash_restarts=2: two restarts, the third crash halts.
        let mut s = 0;
        let mut seen = alloc::vec::Vec::new();
        for _ in 0..3 {
            let d = restart_decision(s, true, 2);
            seen.push(d);
            if let Restart::Go { streak } = d {
                s = streak;
            }
        }
        assert_eq!(seen, [Restart::Go { streak: 1 }, Restart::Go { streak: 2 }, Restart::Halt { streak: 3 }]);
        assert_eq!(restart_decision(0, true, 0), Restart::Halt { streak: 1 }, "0: halt on the first crash");
        assert_eq!(restart_decision(7, false, 2), Restart::Go { streak: 0 }, "a good run clears the count");
    }

    #[test]
    fn state_counts_runs_and_starts_a_new_one() {
        set_policy(CrashPolicy::Report, 1);
        let f = 1000;
        let s = CrashState::new(0);
        assert_eq!(s.on_reset(2 * f, f), Restart::Go { streak: 1 }, "a quick reset");
        assert_eq!(s.started.load(Ordering::Relaxed), 2 * f);
        assert_eq!(s.on_reset(100 * f, f), Restart::Go { streak: 0 }, "98 s and no panic");
        s.panicked.store(true, Ordering::Relaxed);
        assert_eq!(s.on_reset(1000 * f, f), Restart::Go { streak: 1 });
        assert!(!s.panicked.load(Ordering::Relaxed), "the new run has not panicked");
        assert_eq!(s.on_reset(1001 * f, f), Restart::Halt { streak: 2 });
        set_policy(CrashPolicy::Report, DEFAULT_CRASH_RESTARTS);
        assert_eq!(policy(), CrashPolicy::Report);
        set_policy(CrashPolicy::Debug, 3);
        assert_eq!(policy(), CrashPolicy::Debug);
        set_policy(CrashPolicy::Report, DEFAULT_CRASH_RESTARTS);
    }
}
