//! Building the dom0less domains: each one's RAM from el2visor's frames (one contiguous IPA range
//! at 0x40000000, not identity mapped, zeroed), its passthrough devices from its partial device
//! tree, its own device tree, its virtual GIC at Xen's domU addresses and its vpl011.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::coherency::Setting;
use crate::boot::memory::DomainRam;
use crate::mm::addr::{Ipa, PaRange};
use crate::platform::{GicKind, Platform};
use crate::vm::config::{vcpu_mpidr, RamRegion};
use crate::vm::guest_dt::domu::{self, DomuDtSpec, RAM_BASE};
use crate::vm::instance::{self, Vm, VmSpec};
use crate::vm::mmio::MmioRegion;
use crate::vm::partition::DomainPlan;
use crate::vm::passthrough::{self, HostNodes, PtDevice};
use crate::vm::vpl011;
use crate::vm::vuart::VUart;

use super::guest::bytes_at;

struct Host<'a>(&'a Platform);

impl HostNodes for Host<'_> {
    fn passthrough_mark(&self, path: &str) -> Option<bool> {
        self.0.devices.iter().find(|d| d.path == path).map(|d| d.xen_passthrough)
    }
    fn mmio(&self, path: &str) -> Vec<(u64, u64)> {
        let regs = self.0.device(path).into_iter().flat_map(|d| d.regs.iter());
        let windows = self.0.bus_windows.iter().filter(|w| w.bus == path).map(|w| &w.cpu);
        regs.chain(windows).map(|r| (r.start.raw(), r.size)).collect()
    }
}

/// The devices a domain's partial device tree assigns it (none without one), and the names of
/// those the DMA policy withholds (a domain's RAM is never identity mapped, so a device that
/// masters DMA without an SMMU stream is never its), each withheld with one line naming it.
pub fn assigned(p: &Platform, d: &DomainPlan) -> Result<(Vec<PtDevice>, Vec<String>), String> {
    use crate::vm::dma_policy::{self, Verdict, VmTrust};
    let all = match d.dtb {
        Some(r) => passthrough::devices(bytes_at(r), &Host(p)).map_err(|e| format!("VM {}: partial device tree: {e}", d.name))?,
        None => Vec::new(),
    };
    let (mut given, mut withheld) = (Vec::new(), Vec::new());
    for dev in all {
        let host = p.device(&dev.host_path);
        let trust = VmTrust { identity: false, trusted: dev.force_assign };
        let verdict = host.map_or(Verdict::Give, |h| dma_policy::decide(&h.compatible, &super::guest::dma_facts(p, h), trust));
        match verdict.withheld() {
            None => given.push(dev),
            Some(why) => {
                log::warn!("{}", dma_policy::withheld_line(&d.name, &dev.host_path, why));
                withheld.push(dev.name);
            }
        }
    }
    Ok((given, withheld))
}

/// Build domain `d` into VM-table slot `slot`, with the devices `devs` assigned to it.
pub fn build(p: &Platform, d: &DomainPlan, devs: &[PtDevice], withheld: &[String], setting: Setting, slot: usize, ram: &mut DomainRam) -> Result<Vm, String> {
    let pa = ram
        .take(d.memory)
        .ok_or_else(|| format!("VM {}: no {} MiB left of the RAM set aside for the domains", d.name, d.memory >> 20))?
        .start;
    let ram = alloc::vec![RamRegion { ipa: Ipa(RAM_BASE), pa, size: d.memory }];
    let g = p.gic.as_ref().ok_or_else(|| format!("VM {}: the machine has no GIC", d.name))?;
    let (gic, gicv) = match &g.kind {
        GicKind::V2 { vcpu, .. } => {
            let v = vcpu.ok_or_else(|| format!("VM {}: the GICv2 has no virtual CPU interface (GICV) in the DT", d.name))?;
            (domu::guest_gic(false, None), Some((PaRange::new(domu::GICV2_GICC_BASE, domu::GICV2_GICC_SIZE.min(v.size)), v.start)))
        }
        GicKind::V3 { redist_stride, .. } => (domu::guest_gic(true, *redist_stride), None),
    };
    let vcpu_mpidrs: Vec<u64> = (0..d.pcpus.len()).map(vcpu_mpidr).collect();
    let dt = DomuDtSpec {
        name: d.name.clone(),
        ram_size: d.memory,
        vcpu_mpidrs: vcpu_mpidrs.clone(),
        cpu_compatible: Vec::new(),
        bootargs: d.bootargs.clone(),
        initrd: None,
        gic: Some(gic.clone()),
        vpl011: d.vpl011,
        partial_dtb: d.dtb.map(|r| bytes_at(r).to_vec()),
        // instance::create places it.
        pvpanic: None,
        withheld: withheld.to_vec(),
    };
    let spec = VmSpec {
        virtual_its: None,
        name: d.name.clone(),
        slot,
        ram,
        vcpu_mpidrs,
        pcpus: d.pcpus.clone(),
        kernel: bytes_at(d.kernel),
        initrd: d.initrd.map(bytes_at),
        bootargs: d.bootargs.clone(),
        extra_bootargs: None,
        dt_props: None,
        disable_paths: Vec::new(),
        drop_paths: Vec::new(),
        drop_props: Vec::new(),
        devices: Vec::new(),
        nc_devices: Vec::new(),
        gicv,
        gic: Some(gic),
        host_dtb: &[],
        setting,
        keep_out: Vec::new(),
        mapped_devices: devs.iter().flat_map(|x| x.regions.iter().copied()).collect(),
        domu_dt: Some(dt),
        zero_ram: true,
        in_place: Default::default(),
        unfilled: Default::default(),
        hidden: Vec::new(),
    };
    let mut vm = instance::create(spec).map_err(|e| format!("VM {}: {e}", d.name))?;
    let spis: Vec<u32> = devs.iter().flat_map(|x| x.spis.iter().copied()).collect();
    let emulated = if d.vpl011 { alloc::vec![vpl011::GUEST_INTID] } else { Vec::new() };
    let named: Vec<(u32, &str)> = emulated.iter().map(|&i| (i, "vpl011")).collect();
    crate::vm::passthrough::check_spis(devs, &named).map_err(|e| format!("VM {}: {e}", d.name))?;
    let (dist, redist) = match &g.kind {
        GicKind::V3 { redist_stride, .. } => (PaRange::new(domu::GICD_BASE, domu::GICV3_GICD_SIZE), Some((domu::GICV3_GICR_BASE, *redist_stride))),
        GicKind::V2 { .. } => (PaRange::new(domu::GICD_BASE, 0x1000), None),
    };
    crate::vm::vgic::attach(&mut vm, dist, redist, spis, emulated).map_err(|e| format!("VM {}: virtual GIC: {e}", d.name))?;
    if d.vpl011 {
        let uart = alloc::sync::Arc::new(VUart::new(&d.name));
        vm.mmio
            .add(MmioRegion { name: "vpl011", base: vpl011::GUEST_BASE, size: vpl011::GUEST_SIZE, device: Box::new(uart.clone()) })
            .map_err(|e| format!("VM {}: {e}", d.name))?;
        vm.vuart = Some(uart);
    }
    log::info!(
        "VM {}: pCPUs {:?}, {} MiB RAM at IPA {RAM_BASE:#x} (PA {:#x}){}{}",
        d.name,
        d.pcpus,
        d.memory >> 20,
        pa.raw(),
        if d.vpl011 { ", vpl011" } else { "" },
        if devs.is_empty() { String::new() } else { format!(", devices {}", devs.iter().map(|x| x.host_path.as_str()).collect::<Vec<_>>().join(" ")) }
    );
    Ok(vm)
}

/// The host paths the domains took: the dom0-like VM must not get them.
pub fn taken_paths(devs: &[Vec<PtDevice>]) -> Vec<String> {
    devs.iter().flatten().map(|x| x.host_path.to_string()).collect()
}
