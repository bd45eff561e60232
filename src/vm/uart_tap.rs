//! `snapshot_on=` for a VM whose PL011 is passed through (the dom0-like VM with `console=guest`):
//! el2visor cannot see what the guest writes to a device it maps straight through, so the UART's
//! page is unmapped at Stage 2 and this emulated region forwards every access, unchanged, to the
//! physical registers at the same offset, watching the bytes written to UARTDR, which go out
//! under el2visor's console lock (`logging::write_through`: el2visor's lines and the guest's do
//! not cut each other). The guest's driver sees the real device (its interrupt stays passed
//! through); each access costs an exit.

use alloc::sync::Arc;

use crate::vm::mmio::{MmioCtx, MmioDevice, MmioError};
use crate::vm::snapshot::plan::ConsoleWatch;

/// UARTDR: the data register, offset 0.
const UARTDR: u64 = 0;

pub struct UartTap {
    /// The physical UART's base (identity mapped at EL2, Device memory).
    pub base: u64,
    pub size: u64,
    pub watch: Arc<ConsoleWatch>,
}

impl UartTap {
    fn check(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        if offset + size as u64 > self.size || !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(size as u64) {
            return Err(MmioError(alloc::format!("UART: {size}-byte access at offset {offset:#x}")));
        }
        Ok(self.base + offset)
    }
}

impl MmioDevice for UartTap {
    fn read(&self, _ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError> {
        let a = self.check(offset, size)?;
        // SAFETY: a register of the physical UART (checked inside its page), mapped Device at EL2;
        // the access is the guest's own, of the size it made.
        Ok(unsafe {
            match size {
                1 => (a as *const u8).read_volatile() as u64,
                2 => (a as *const u16).read_volatile() as u64,
                _ => (a as *const u32).read_volatile() as u64,
            }
        })
    }

    fn write(&self, _ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let a = self.check(offset, size)?;
        // SAFETY: as for `read`.
        let write = || unsafe {
            match size {
                1 => (a as *mut u8).write_volatile(value as u8),
                2 => (a as *mut u16).write_volatile(value as u16),
                _ => (a as *mut u32).write_volatile(value as u32),
            }
        };
        if offset == UARTDR {
            self.watch.feed(value as u8);
            // A byte on el2visor's console: written under its lock, so that el2visor's lines
            // and the guest's do not cut each other.
            crate::logging::write_through(self as *const Self as usize, value as u8, write);
        } else {
            write();
        }
        Ok(())
    }
}
