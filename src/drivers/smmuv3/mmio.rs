//! The SMMUv3's registers, accessed at their physical address (el2visor's EL2 map covers the
//! first TiB as Device-nGnRE, identity). 32-bit registers are accessed as such; the 64-bit ones
//! (queue and table bases) with single 64-bit accesses, as the architecture allows.

use aarch64_cpu::asm::barrier;

use super::stop::Access;

/// An SMMUv3 register frame.
pub struct Regs {
    base: usize,
}

impl Regs {
    /// # Safety
    /// `base` is an SMMUv3's register frame (128 KiB: pages 0 and 1), mapped Device at EL2, and
    /// nothing else (no guest) writes it.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    pub fn read32(&self, off: usize) -> u32 {
        // SAFETY: an offset within the frame `new` was given, read as a naturally aligned word.
        unsafe { core::ptr::read_volatile((self.base + off) as *const u32) }
    }

    pub fn write32(&self, off: usize, v: u32) {
        // SAFETY: as `read32`; el2visor alone programs the SMMU.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u32, v) }
    }

    pub fn write64(&self, off: usize, v: u64) {
        // SAFETY: as `read32`, for the 64-bit base registers.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u64, v) }
    }

    /// Make earlier stores to memory (table entries, queue entries) visible to the SMMU before a
    /// register write that tells it to look (a PROD update).
    pub fn publish(&self) {
        barrier::dsb(barrier::ISH);
    }

    /// Order a queue index read (EVENTQ_PROD) before the reads of the entries it shows, and those
    /// reads before the index write (EVENTQ_CONS) that lets the SMMU reuse the entries (Linux:
    /// `dma_rmb` and `__iomb`).
    pub fn fence(&self) {
        barrier::dmb(barrier::OSH);
    }
}

impl Access for Regs {
    fn read32(&self, off: usize) -> u32 {
        Regs::read32(self, off)
    }

    fn write32(&self, off: usize, v: u32) {
        Regs::write32(self, off, v)
    }
}

/// Write `words` at physical address `pa` (a stream table entry, a command): memory el2visor
/// allocated for the SMMU and identity maps at EL2. Each word is one 64-bit store; nothing orders
/// them as the SMMU sees them. So this is for entries the SMMU is not reading yet (published
/// later with [`Regs::publish`]); an STE it may be using changes in `ste::update_steps`'s steps.
///
/// # Safety
/// `pa..pa + 8 * words.len()` is el2visor's own memory reserved for this SMMU structure.
pub unsafe fn store(pa: u64, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        // SAFETY: per the function's contract.
        unsafe { core::ptr::write_volatile((pa + 8 * i as u64) as *mut u64, *w) };
    }
}

/// Read `N` words at physical address `pa` (an event record).
///
/// # Safety
/// As [`store`].
pub unsafe fn load<const N: usize>(pa: u64) -> [u64; N] {
    let mut out = [0; N];
    for (i, w) in out.iter_mut().enumerate() {
        // SAFETY: per the function's contract.
        *w = unsafe { core::ptr::read_volatile((pa + 8 * i as u64) as *const u64) };
    }
    out
}
