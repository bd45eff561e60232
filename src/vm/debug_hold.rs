//! A VM stopped for a debugger: every vCPU of a held VM waits at EL2, its guest state saved in
//! its trap frame, until the hold is released. `on_crash=debug` holds a VM that panicked; this
//! is the hook a debugger stub (GDB remote protocol) attaches to: it finds the VM held (with
//! the reason), inspects or changes the stopped vCPUs, and [`DebugHold::release`]s it to let
//! the guest go on. The waiting itself is `vcpu::run`'s (`vcpu::debug_wait`).

#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Why a VM is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// The guest panicked and `on_crash=debug` is set.
    Crash,
    /// A debugger asked (reserved for the GDB stub).
    Debugger,
}

/// A VM's hold flag.
pub struct DebugHold {
    held: AtomicBool,
    reason: AtomicU8,
}

impl DebugHold {
    pub const fn new() -> Self {
        DebugHold { held: AtomicBool::new(false), reason: AtomicU8::new(0) }
    }

    /// Stop the VM: its vCPUs stay at EL2 from their next exit on (the caller kicks them).
    /// `false` if it was already held.
    pub fn hold(&self, why: HoldReason) -> bool {
        self.reason.store(why as u8, Ordering::Relaxed);
        !self.held.swap(true, Ordering::AcqRel)
    }

    /// Let the vCPUs return to the guest (the caller kicks them awake).
    pub fn release(&self) {
        self.held.store(false, Ordering::Release);
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<HoldReason> {
        self.is_held().then(|| match self.reason.load(Ordering::Relaxed) {
            0 => HoldReason::Crash,
            _ => HoldReason::Debugger,
        })
    }
}

impl Default for DebugHold {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_release() {
        let h = DebugHold::new();
        assert!(!h.is_held() && h.reason().is_none());
        assert!(h.hold(HoldReason::Crash));
        assert!(!h.hold(HoldReason::Crash), "already held");
        assert_eq!(h.reason(), Some(HoldReason::Crash));
        h.release();
        assert!(!h.is_held());
        assert!(h.hold(HoldReason::Debugger));
        assert_eq!(h.reason(), Some(HoldReason::Debugger));
    }
}
