//! A VM's virtual ITS as emulated MMIO: the control frame of the host's ITS traps to the VM's
//! [`VIts`](crate::gic::vits::VIts); the translation frame (GITS_TRANSLATER) is the physical one,
//! mapped at Stage 2, so the MSIs devices write (and the guest's own writes) reach the ITS. Only
//! for a VM whose RAM is identity mapped and that owns the PCI host bridge (a device's MSI write
//! goes to the address the guest programmed, never through Stage 2). See docs/its.md.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::gic::its::frame::{GuestMem, NotRam, ITS_FRAME_SIZE};
use crate::gic::its::model::ItsPolicy;
use crate::gic::its_hw;
use crate::gic::vits::VIts;
use crate::vm::config::RamRegion;
use crate::vm::instance::Vm;
use crate::vm::mmio::{MmioCtx, MmioDevice, MmioError, MmioRegion};

/// INTID bits of the VM's LPIs (LPIs 8192..65536).
const VM_LPI_BITS: u8 = 16;
/// EventID bits the virtual ITS advertises (at most the physical ITS's): 2048 events per device
/// is plenty for MSI-X and keeps each device's physical ITT small.
const MAX_EVENT_BITS: u8 = 11;
/// Devices the VM may have mapped at once.
const MAX_DEVICES: usize = 256;
/// Collections (ICIDs) the virtual ITS has.
const COLLECTIONS: u16 = 256;

/// The VM's RAM, read by the ITS: commands and LPI configuration bytes. Anything not wholly
/// inside one of the VM's RAM regions is refused. While a lazy snapshot restore is under way
/// the pages read are brought back first (`vm::snapshot::host_access`): until then they hold
/// what the guest wrote after the snapshot.
struct VmRam {
    ram: Vec<RamRegion>,
    /// The VM's slot in the VM table (its snapshot), which it takes once built.
    slot: usize,
}

impl GuestMem for VmRam {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        let len = buf.len() as u64;
        let r = self
            .ram
            .iter()
            .find(|r| ipa >= r.ipa.raw() && ipa.checked_add(len).is_some_and(|end| end <= r.ipa_end()))
            .ok_or(NotRam)?;
        if let Some(vm) = crate::vm::table::get(self.slot) {
            crate::vm::snapshot::host_access(vm, ipa, len, false);
        }
        let pa = r.pa.raw() + (ipa - r.ipa.raw());
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `pa..pa+len` lies inside the VM's RAM, which EL2 maps identity, read-write;
            // the guest may change it concurrently, so bytes are read one by one, volatile.
            *b = unsafe { core::ptr::read_volatile((pa + i as u64) as *const u8) };
        }
        Ok(())
    }
}

struct ItsControl {
    vm: String,
}

fn err(offset: u64, size: u8) -> MmioError {
    MmioError(alloc::format!("virtual ITS: {size}-byte access at {offset:#x} is not allowed"))
}

impl MmioDevice for ItsControl {
    fn read(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError> {
        let vg = ctx.vgic.ok_or_else(|| MmioError("the VM has no virtual GIC".to_string()))?;
        vg.its_read(ctx.irqs, &self.vm, offset, size).map_err(|b| err(b.offset, b.size))
    }
    fn write(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let vg = ctx.vgic.ok_or_else(|| MmioError("the VM has no virtual GIC".to_string()))?;
        vg.its_write(ctx.irqs, &self.vm, offset, size, value).map_err(|b| err(b.offset, b.size))
    }
}

/// Give `vm` (identity mapped, owning the PCI host bridge, the ITS's translation frame mapped)
/// a virtual ITS at the host ITS's
/// address `base`, for DeviceIDs `devices` (`[start, end)` ranges). Returns why not, if not.
pub fn attach(vm: &mut Vm, base: u64, devices: Vec<(u32, u32)>) -> Result<(), String> {
    let identity = vm.ram.iter().all(|r| r.ipa.raw() == r.pa.raw());
    if !identity {
        return Err("its RAM is not identity mapped (a device's MSI write would miss)".to_string());
    }
    let Some(vg) = vm.vgic.as_ref() else { return Err("no virtual GIC".to_string()) };
    if devices.is_empty() {
        log::warn!("VM {}: virtual ITS: no PCI bridge of the VM maps its MSIs to the ITS; every MAPD will fail", vm.name);
    }
    let phys = its_hw::init(base).map_err(|e| alloc::format!("physical ITS at {base:#x}: {e}"))?;
    let policy = ItsPolicy {
        devices,
        vcpus: vm.vcpus.len(),
        event_bits: phys.event_bits().min(MAX_EVENT_BITS),
        lpi_end: 1 << VM_LPI_BITS,
        collections: COLLECTIONS,
        max_devices: MAX_DEVICES,
    };
    let pcpus = vm.vcpus.iter().map(|v| v.pcpu).collect();
    let device_bits = phys.device_bits().min(16);
    vg.attach_its(VIts::new(phys, policy, device_bits, Box::new(VmRam { ram: vm.ram.clone(), slot: vm.slot }), pcpus));
    // The translation frame (the physical one, where devices write their MSIs) is one of the
    // VM's passthrough devices (`boot::guest` premapped it).
    if !vm.is_device(base + ITS_FRAME_SIZE) {
        return Err("the ITS translation frame is not mapped at Stage 2".to_string());
    }
    vm.mmio
        .add(MmioRegion { name: "ITS control frame", base, size: ITS_FRAME_SIZE, device: Box::new(ItsControl { vm: vm.name.clone() }) })
        .map_err(|e| e.0)?;
    log::info!("VM {}: virtual ITS at {base:#x} (translation frame passed through)", vm.name);
    Ok(())
}
