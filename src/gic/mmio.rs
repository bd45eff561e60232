//! One identity-mapped GIC register frame: volatile 8-, 32- and 64-bit accesses.

use core::ptr::{read_volatile, write_volatile};

/// The base address of a GIC register frame, identity mapped as Device memory at EL2.
#[derive(Clone, Copy)]
pub(crate) struct Frame(usize);

impl Frame {
    /// # Safety
    /// `base` must be a GIC register frame identity mapped as Device memory at EL2, and every
    /// offset later used with it a register of that frame.
    pub unsafe fn new(base: usize) -> Self {
        Self(base)
    }
    pub fn base(&self) -> usize {
        self.0
    }
    pub fn read(&self, off: usize) -> u32 {
        // SAFETY: `Frame::new`'s caller guaranteed a mapped GIC frame, and every offset the
        // drivers use is a 32-bit register in it.
        unsafe { read_volatile((self.0 + off) as *const u32) }
    }
    pub fn write(&self, off: usize, v: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.0 + off) as *mut u32, v) }
    }
    pub fn read8(&self, off: usize) -> u8 {
        // SAFETY: as for `read`; drivers use this only for the byte-accessible IPRIORITYR and
        // ITARGETSR.
        unsafe { read_volatile((self.0 + off) as *const u8) }
    }
    pub fn write8(&self, off: usize, v: u8) {
        // SAFETY: as for `read8`.
        unsafe { write_volatile((self.0 + off) as *mut u8, v) }
    }
    pub fn read64(&self, off: usize) -> u64 {
        // SAFETY: as for `read`; used only for the 64-bit GICR_TYPER and GICD_IROUTER<n>.
        unsafe { read_volatile((self.0 + off) as *const u64) }
    }
    pub fn write64(&self, off: usize, v: u64) {
        // SAFETY: as for `read64`.
        unsafe { write_volatile((self.0 + off) as *mut u64, v) }
    }
}
