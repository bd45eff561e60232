//! QEMU's pvpanic device, MMIO flavour (`qemu,pvpanic-mmio`, QEMU docs/specs/pvpanic.rst),
//! emulated in every VM: one byte register at offset 0. A read returns the events the device
//! supports (PANICKED = bit 0, CRASH_LOADED = bit 1, SHUTDOWN = bit 2); a write reports the
//! events whose bits are set. Linux's `pvpanic-mmio` driver (CONFIG_PVPANIC_MMIO) finds it in
//! the DT and writes PANICKED from its panic notifier. The device only latches what was
//! written; the dispatcher acts on it right after the access (`trap::crash`).
//!
//! Where it sits: [`place`] picks a guest-physical page no RAM, device or GIC frame of the VM
//! uses, from a short list of addresses (QEMU virt's unused 0x090c_0000, beside Xen's domU
//! vpl011 at 0x2200_1000), else the first 64 KiB above everything the VM sees.

#![forbid(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::AtomicU8;
#[cfg(target_os = "none")]
use core::sync::atomic::Ordering;

use crate::vm::crash::PVPANIC_EVENTS;
#[cfg(target_os = "none")]
use crate::vm::mmio::{MmioCtx, MmioDevice, MmioError};

/// The region's size (the device has one byte; the page is its own).
pub const SIZE: u64 = 0x1000;
/// Addresses tried first, in order.
pub const CANDIDATES: [u64; 2] = [0x090c_0000, 0x2200_1000];
/// The DT compatible.
pub const COMPATIBLE: &str = "qemu,pvpanic-mmio";

/// A free page for the device, given every (start, size) range the VM's IPA space already uses.
pub fn place(used: &[(u64, u64)]) -> u64 {
    let free = |a: u64| !used.iter().any(|&(s, n)| a < s.saturating_add(n) && s < a + SIZE);
    if let Some(&a) = CANDIDATES.iter().find(|&&a| free(a)) {
        return a;
    }
    let top = used.iter().map(|&(s, n)| s.saturating_add(n)).max().unwrap_or(0);
    top.next_multiple_of(0x1_0000)
}

/// The device: the events written are or-ed into the VM's latch.
pub struct PvPanic(pub Arc<AtomicU8>);

impl PvPanic {
    /// A read at `offset` of `size` bytes.
    pub fn read_value(offset: u64) -> u64 {
        if offset == 0 {
            u64::from(PVPANIC_EVENTS)
        } else {
            0
        }
    }

    /// A write of `value` at `offset`: the events it reports (only supported bits at offset 0).
    pub fn written_events(offset: u64, value: u64) -> u8 {
        if offset == 0 {
            (value as u8) & PVPANIC_EVENTS
        } else {
            0
        }
    }
}

#[cfg(target_os = "none")]
impl MmioDevice for PvPanic {
    fn read(&self, _ctx: &MmioCtx<'_>, offset: u64, _size: u8) -> Result<u64, MmioError> {
        Ok(Self::read_value(offset))
    }

    fn write(&self, _ctx: &MmioCtx<'_>, offset: u64, _size: u8, value: u64) -> Result<(), MmioError> {
        let e = Self::written_events(offset, value);
        if e != 0 {
            self.0.fetch_or(e, Ordering::AcqRel);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement() {
        assert_eq!(place(&[(0x4000_0000, 0x4000_0000)]), 0x090c_0000, "QEMU virt");
        // A Pi 4's RAM starts at 0: both candidates are RAM, so above everything.
        let pi = [(0, 0x3c00_0000), (0x4000_0000, 0x4000_0000), (0xfc00_0000, 0x380_0000)];
        assert_eq!(place(&pi), 0xff80_0000);
        assert_eq!(place(&[(0x0900_0000, 0x0100_0000)]), 0x2200_1000, "a device over the first");
        assert_eq!(place(&[]), 0x090c_0000);
    }

    #[test]
    fn semantics() {
        assert_eq!(PvPanic::read_value(0), 7, "PANICKED | CRASH_LOADED | SHUTDOWN");
        assert_eq!(PvPanic::read_value(4), 0);
        assert_eq!(PvPanic::written_events(0, 1), 1);
        assert_eq!(PvPanic::written_events(0, 0xff), 7, "unsupported bits are ignored");
        assert_eq!(PvPanic::written_events(1, 1), 0);
    }
}
