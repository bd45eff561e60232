//! A VM's virtual GIC as emulated MMIO: the distributor and (GICv3) redistributor frames are
//! registered as the VM's regions, and their accesses go to the VM's [`VGic`].

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec::Vec;

use crate::gic::vgic::VcpuPlacement;
use crate::gic::virt::VGic;
use crate::gic::GicError;
use crate::mm::addr::PaRange;
use crate::vm::guest_dt;
use crate::vm::instance::Vm;
use crate::vm::mmio::{MmioCtx, MmioDevice, MmioError, MmioRegion};

struct Distributor;
struct Redistributors;

fn vgic<'a>(ctx: &MmioCtx<'a>) -> Result<&'a VGic, MmioError> {
    ctx.vgic.ok_or_else(|| MmioError("the VM has no virtual GIC".to_string()))
}

fn err(e: crate::gic::virt::AccessError) -> MmioError {
    MmioError(alloc::format!("virtual GIC: {e}"))
}

impl MmioDevice for Distributor {
    fn read(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError> {
        vgic(ctx)?.dist_read(ctx.irqs, ctx.vcpu, offset, size).map_err(err)
    }
    fn write(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        vgic(ctx)?.dist_write(ctx.irqs, ctx.vcpu, offset, size, value).map_err(err)
    }
}

impl MmioDevice for Redistributors {
    fn read(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError> {
        vgic(ctx)?.redist_read(ctx.irqs, ctx.vcpu, offset, size).map_err(err)
    }
    fn write(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        vgic(ctx)?.redist_write(ctx.irqs, ctx.vcpu, offset, size, value).map_err(err)
    }
}

/// Give `vm` its virtual GIC: it owns `spis` (its devices' interrupts), `emulated` (the purely
/// virtual SPIs of el2visor's device models for it) and the timer PPIs. The guest sees the
/// distributor at `dist` and (GICv3) its redistributors from `redist`'s base, with the host DT's
/// `redistributor-stride` if it has one, as the guest DT says ([`guest_dt::redist_stride`]).
pub fn attach(
    vm: &mut Vm,
    dist: PaRange,
    redist: Option<(u64, Option<u64>)>,
    spis: Vec<u32>,
    emulated: Vec<u32>,
) -> Result<(), GicError> {
    let placements = vm.vcpus.iter().map(|v| VcpuPlacement { mpidr: v.mpidr, pcpu: v.pcpu }).collect();
    let redist = redist.map(|(base, stride)| (base, guest_dt::redist_stride(stride)));
    let Some(vg) = VGic::new(placements, dist, redist, spis, emulated)? else { return Ok(()) };
    let regions = [
        Some(MmioRegion { name: "GIC distributor", base: vg.dist_ipa.start.raw(), size: vg.dist_ipa.size, device: Box::new(Distributor) }),
        vg.redist_ipa.map(|r| MmioRegion {
            name: "GIC redistributors",
            base: r.start.raw(),
            size: r.size,
            device: Box::new(Redistributors) as Box<dyn MmioDevice>,
        }),
    ];
    for r in regions.into_iter().flatten() {
        if let Err(e) = vm.mmio.add(r) {
            log::error!("VM {}: {e}", vm.name);
        }
    }
    vm.vgic = Some(vg);
    Ok(())
}
