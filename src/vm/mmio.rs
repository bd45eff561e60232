//! Emulated MMIO: the regions of a VM's guest-physical space that no memory backs, where a guest
//! access traps at Stage 2 and a device model answers it. Each VM holds its own list; the
//! data-abort path looks the faulting IPA up there and calls the region's device.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::gic::lrs::VcpuIrq;
use crate::gic::virt::VGic;

/// Why an emulated access failed; the guest gets an abort and the log says this.
#[derive(Debug)]
pub struct MmioError(pub String);

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a device model may use of its VM during an access: which vCPU accesses it, and the VM's
/// interrupt delivery (its virtual GIC and its vCPUs' inboxes), to raise or take interrupts.
pub struct MmioCtx<'a> {
    pub vcpu: usize,
    pub vgic: Option<&'a VGic>,
    pub irqs: &'a [VcpuIrq],
}

/// A device model behind an emulated region. `offset` is from the region's base; `size` is 1, 2,
/// 4 or 8 bytes; a read's value is zero-extended from `size` bytes (the caller sign-extends
/// where the instruction asks).
pub trait MmioDevice: Send + Sync {
    fn read(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError>;
    fn write(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError>;
}

/// One emulated region of a VM's IPA space.
pub struct MmioRegion {
    /// What it is, for the log.
    pub name: &'static str,
    pub base: u64,
    pub size: u64,
    pub device: Box<dyn MmioDevice>,
}

impl MmioRegion {
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.base && ipa - self.base < self.size
    }
}

/// A VM's emulated regions.
#[derive(Default)]
pub struct MmioRegions(Vec<MmioRegion>);

impl MmioRegions {
    /// Add a region; one that overlaps a region already there is refused.
    pub fn add(&mut self, r: MmioRegion) -> Result<(), MmioError> {
        if let Some(o) = self.0.iter().find(|o| r.base < o.base + o.size && o.base < r.base + r.size) {
            return Err(MmioError(alloc::format!(
                "emulated region {} at {:#x} overlaps {} at {:#x}",
                r.name,
                r.base,
                o.name,
                o.base
            )));
        }
        self.0.push(r);
        Ok(())
    }

    /// The region holding `ipa`, if any.
    pub fn find(&self, ipa: u64) -> Option<&MmioRegion> {
        self.0.iter().find(|r| r.contains(ipa))
    }
}
