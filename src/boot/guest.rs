//! Deciding what to boot and building the VM: Xen-style multiboot modules when the loader wrote
//! them, else a guest bundle passed as the initrd, else the guest embedded in el2visor's image
//! (the probe guest, in `make run`). Also where the VM's RAM comes from: all identity-mapped host
//! RAM el2visor does not keep (`super::memory`), or frames from el2visor's allocator for the
//! embedded guest.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::cmdline::{ConsoleOwner, Options};
use crate::coherency::Setting;
use crate::mm::addr::{Ipa, Pa, PaRange, SIZE_2M};
use crate::mm::frames::global as frames;
use crate::platform::{GicKind, ModuleKind, Platform};
use crate::vm::config::{self, BootModule, HostFacts, RamRegion};
use crate::vm::guest_dt::GuestGic;
use crate::vm::instance::{self, Vm, VmSpec};
use crate::vm::load::{InPlace, Region};

use super::memory::HostMemory;

/// The guest linked into el2visor's image (`make image` embeds the probe guest).
#[cfg(feature = "embed-guest")]
static EMBEDDED: &[u8] = include_bytes!(env!("EL2VISOR_EMBED_GUEST"));
#[cfg(not(feature = "embed-guest"))]
static EMBEDDED: &[u8] = &[];

/// Bootargs for the embedded guest: el2visor passes its own `guest_args=` through.
const EMBEDDED_RAM: u64 = 128 << 20;

/// Where the guest comes from.
pub enum Source {
    Multiboot,
    Bundle(PaRange),
    Embedded,
    /// Only dom0less domains: no dom0-like VM.
    Domains,
}

/// Pick the guest source from the host DT.
pub fn source(p: &Platform) -> Source {
    if p.chosen.modules.iter().any(|m| m.kind == ModuleKind::Kernel) {
        return Source::Multiboot;
    }
    if !p.chosen.domains.is_empty() {
        // Xen dom0less without a dom0: the domains are every VM there is.
        return Source::Domains;
    }
    if let Some(r) = p.chosen.initrd {
        // SAFETY: the loader put the initrd there (the DT says so); it is identity mapped RAM.
        let bytes = unsafe { core::slice::from_raw_parts(r.start.raw() as *const u8, r.size.min(16) as usize) };
        if crate::vm::bundle::is_bundle(bytes) {
            return Source::Bundle(r);
        }
        log::warn!("the initrd at {:#x} is not an el2visor guest bundle; ignoring it", r.start.raw());
    }
    Source::Embedded
}

impl Source {
    /// Whether the VM takes host RAM identity mapped (else its RAM comes from el2visor's frames).
    pub fn identity(&self) -> bool {
        !matches!(self, Source::Embedded | Source::Domains)
    }

    /// What el2visor copies into its own memory as the pristine images: every boot module, or the
    /// bundle.
    pub fn to_copy(&self, p: &Platform) -> Vec<PaRange> {
        // Dom0less domains' modules are pristine images too, after the dom0-like VM's.
        let domains = p.chosen.domains.iter().flat_map(|d| d.modules.iter().map(|m| m.range));
        match self {
            Source::Multiboot => p.chosen.modules.iter().map(|m| m.range).chain(domains).collect(),
            Source::Bundle(b) => alloc::vec![*b],
            Source::Domains => domains.collect(),
            Source::Embedded => Vec::new(),
        }
    }

    /// Point `p` and `self` at `copies` (in the order of [`Source::to_copy`]).
    pub fn use_copies(&mut self, p: &mut Platform, copies: &[PaRange]) {
        let domains = p.chosen.domains.iter_mut().flat_map(|d| d.modules.iter_mut());
        match self {
            Source::Multiboot => {
                for (m, r) in p.chosen.modules.iter_mut().chain(domains).zip(copies) {
                    m.range = *r;
                }
            }
            Source::Domains => {
                for (m, r) in domains.zip(copies) {
                    m.range = *r;
                }
            }
            Source::Bundle(b) => {
                if let Some(&r) = copies.first() {
                    *b = r;
                    p.chosen.initrd = Some(r);
                }
            }
            Source::Embedded => {}
        }
    }
}

/// The bytes of a boot module or initrd (also the dom0less domains' modules, `super::domains`).
pub(super) fn bytes_at(r: PaRange) -> &'static [u8] {
    // SAFETY: module and initrd ranges come from the DT: memory the loader filled, which el2visor
    // keeps out of its own allocators and identity maps as RAM.
    unsafe { core::slice::from_raw_parts(r.start.raw() as *const u8, r.size as usize) }
}

/// The GIC ranges a VM must not have mapped, and what the guest DT says about the GIC.
fn gic_view(p: &Platform) -> (Vec<PaRange>, Option<GuestGic>, Option<(PaRange, Pa)>) {
    let Some(g) = &p.gic else { return (Vec::new(), None, None) };
    match &g.kind {
        GicKind::V2 { dist, cpu, hyp, vcpu } => {
            let mut ex = alloc::vec![*dist, *cpu];
            ex.extend(hyp.iter().chain(vcpu.iter()).copied());
            let gicv = vcpu.map(|v| (PaRange::new(cpu.start.raw(), cpu.size.min(v.size)), v.start));
            let guest = GuestGic::V2 { dist: (dist.start.raw(), dist.size), cpu: (cpu.start.raw(), cpu.size) };
            (ex, Some(guest), gicv)
        }
        GicKind::V3 { dist, redists, redist_stride, cpu, hyp, vcpu } => {
            let mut ex = alloc::vec![*dist];
            ex.extend(redists.iter().copied());
            ex.extend(cpu.iter().chain(hyp.iter()).chain(vcpu.iter()).copied());
            let redist = redists.first().map_or(0, |r| r.start.raw());
            let guest = GuestGic::V3 { dist: (dist.start.raw(), dist.size), redist, redist_stride: *redist_stride };
            (ex, Some(guest), None)
        }
    }
}

/// What the dom0-like VM may have: RAM but what el2visor keeps (`mem`: its image, the DTB, its
/// pool and the pristine copies; firmware memory), its number of pCPUs (0..pcpus), and every
/// device but those assigned to dom0less domains (`taken`, host paths).
#[derive(Clone, Copy)]
pub struct Share<'a> {
    pub mem: &'a HostMemory,
    pub pcpus: usize,
    pub taken: &'a [String],
}

/// Build the VM from `src`, with its share of the machine.
pub fn build(
    p: &Platform,
    dtb: &'static [u8],
    opts: &Options,
    setting: Setting,
    src: &Source,
    share: &Share<'_>,
) -> Result<Vm, String> {
    let Share { mem, pcpus, taken } = *share;
    let (exclude, gic, gicv) = gic_view(p);
    let max_vcpus = if matches!(p.gic.as_ref().map(|g| g.version()), Some(2)) { 8 } else { crate::percpu::MAX_CPUS };
    let want = opts.guest_cpus.map_or(pcpus, |n| n as usize).min(pcpus).min(max_vcpus).max(1);

    // Images are never loaded over firmware memory (identity mapped: IPA = PA).
    let firmware: Vec<Region> = mem.firmware.iter().map(|r| Region::new("firmware memory", r.start.raw(), r.size)).collect();
    // Where the loader's copy of an image still is in the VM's RAM (identity mapped: IPA = PA).
    let in_vm_ram = |i: usize, offset: u64| mem.in_vm_ram.get(i).copied().flatten().map(|r| r.start.raw() + offset);
    // A slot `memory::init` left unfilled: the bytes are only in the VM's RAM.
    let unfilled = |i: Option<usize>| i.filter(|&i| mem.unfilled.get(i) == Some(&true)).and_then(|i| in_vm_ram(i, 0));
    let mut pending = crate::vm::pristine::Unfilled::default();
    let (ram, kernel, initrd, bootargs, dt_props, keep_out, name, in_place) = match src {
        Source::Multiboot => {
            let modules: Vec<BootModule> = p
                .chosen
                .modules
                .iter()
                .map(|m| BootModule {
                    kind: m.kind,
                    range: m.range,
                    bootargs: m.bootargs.clone(),
                })
                .collect();
            let facts = HostFacts {
                ram: &p.memory,
                hyp_reserved: &mem.kept,
                firmware: &mem.firmware,
                cpus: want,
                max_vcpus: Some(max_vcpus),
                devices: &[],
                coherency: opts.coherency,
            };
            let mut plans = config::plan_vms(&modules, &facts).map_err(|e| e.to_string())?;
            let mut plan = plans.remove(0);
            if let Some(limit) = opts.guest_mem {
                plan.ram = truncate(&plan.ram, limit);
            }
            // The modules are el2visor's copies, outside guest RAM: the pristine images a
            // SYSTEM_RESET reloads from. One it could not copy still sits in guest RAM.
            let mut keep_out = plan.module_keep_out();
            keep_out.extend(firmware);
            let index = |kind| p.chosen.modules.iter().position(|m| m.kind == kind);
            let in_place = InPlace {
                kernel: index(ModuleKind::Kernel).and_then(|i| in_vm_ram(i, 0)),
                initrd: index(ModuleKind::Ramdisk).and_then(|i| in_vm_ram(i, 0)),
            };
            pending = crate::vm::pristine::Unfilled {
                kernel: unfilled(index(ModuleKind::Kernel)),
                initrd: unfilled(index(ModuleKind::Ramdisk)),
            };
            (
                plan.ram.clone(),
                bytes_at(plan.kernel),
                plan.initrd.map(bytes_at),
                plan.bootargs.clone(),
                None,
                keep_out,
                "guest".to_string(),
                in_place,
            )
        }
        Source::Bundle(r) => {
            let b = crate::vm::bundle::Bundle::parse(bytes_at(*r)).map_err(|e| format!("guest bundle: {e}"))?;
            let ram = crate::mm::layout::free_ranges(&p.memory, &mem.kept);
            let mut ram: Vec<RamRegion> = ram.iter().map(|r| RamRegion { ipa: Ipa(r.start.raw()), pa: r.start, size: r.size }).collect();
            if let Some(limit) = opts.guest_mem {
                ram = truncate(&ram, limit);
            }
            let mut keep_out = firmware;
            if !mem.kept.iter().any(|k| k.start.raw() <= r.start.raw() && r.end() <= k.end()) {
                keep_out.push(Region::new("guest bundle", r.start.raw(), r.size));
            }
            let offset = |part: &[u8]| part.as_ptr() as u64 - r.start.raw();
            let in_place = InPlace { kernel: in_vm_ram(0, offset(b.kernel)), initrd: b.initrd.and_then(|i| in_vm_ram(0, offset(i))) };
            let cmdline = b.cmdline.unwrap_or("").to_string();
            (ram, b.kernel, b.initrd, cmdline, b.dt_props.map(|d| d.to_vec()), keep_out, "bundle".to_string(), in_place)
        }
        Source::Domains => return Err("only dom0less domains are configured: there is no dom0-like VM to build".to_string()),
        Source::Embedded => {
            if EMBEDDED.is_empty() {
                return Err("no guest: pass a kernel with -device guest-loader,kernel=…,addr=… (Xen multiboot,kernel), \
                            a guest bundle as the initrd, or build el2visor with its embedded guest (make image)"
                    .to_string());
            }
            let size = opts.guest_mem.unwrap_or(EMBEDDED_RAM).next_multiple_of(SIZE_2M);
            let pa = frames::alloc_aligned((size / 4096) as usize, SIZE_2M)
                .ok_or_else(|| format!("no {} MiB of free RAM for the embedded guest", size >> 20))?;
            let ram = alloc::vec![RamRegion { ipa: Ipa(pa.raw()), pa, size }];
            let bootargs = opts.guest_args.clone().unwrap_or_default();
            (ram, EMBEDDED, None, bootargs, None, Vec::new(), "probe".to_string(), InPlace::default())
        }
    };
    // Identity mapped: the DMA addresses its drivers program are its own RAM's physical ones.
    let identity = ram.iter().all(|r| r.ipa.0 == r.pa.raw());
    let Assigned { devices, nc_devices, drop, disable, drop_props, its } = assign(p, opts, taken, &name, identity, exclude);
    let vcpu_mpidrs: Vec<u64> = (0..want).map(config::vcpu_mpidr).collect();
    let slot = crate::vm::table::free_slot().ok_or_else(|| "the VM table is full".to_string())?;
    let spec = VmSpec {
        name,
        slot,
        ram,
        pcpus: (0..vcpu_mpidrs.len()).collect(),
        vcpu_mpidrs,
        kernel,
        initrd,
        bootargs,
        extra_bootargs: None,
        dt_props,
        disable_paths: disable,
        drop_paths: drop,
        drop_props,
        devices,
        nc_devices,
        gicv,
        gic,
        host_dtb: dtb,
        setting,
        keep_out,
        mapped_devices: Vec::new(),
        domu_dt: None,
        zero_ram: false,
        in_place,
        unfilled: pending,
        hidden: if matches!(src, Source::Embedded) { Vec::new() } else { mem.hidden.clone() },
        virtual_its: its,
    };
    instance::create(spec).map_err(|e| e.to_string())
}

/// `d`'s DMA facts, where `iommu` says its streams go through an SMMU el2visor owns: an
/// `iommus`/`iommu-map` naming an IOMMU el2visor does not drive (or could not use) confines nothing.
pub fn dma_facts(p: &Platform, d: &crate::platform::Device) -> crate::platform::dma::DmaFacts {
    let owned = p.iommus.owners.iter().any(|o| o.path == d.path && crate::vm::smmu::owns(o.iommu));
    crate::platform::dma::DmaFacts { iommu: owned, ..d.dma }
}

/// The dom0-like VM's devices: Stage 2 ranges (Device and Normal-NC) and what its DT drops and
/// disables.
struct Assigned {
    devices: Vec<PaRange>,
    nc_devices: Vec<PaRange>,
    drop: Vec<String>,
    disable: Vec<String>,
    /// Properties left out wherever they are (those naming an SMMU el2visor owns).
    drop_props: Vec<&'static str>,
    /// The host ITS's base when the VM gets a virtual ITS there.
    its: Option<u64>,
}

/// Every device but those assigned to dom0less domains (`taken`) and those the DMA policy
/// withholds (`vm::dma_policy`: the dom0-like VM is trusted; `identity` says whether it is
/// identity mapped), minus the GIC frames in `exclude`. The GIC's children are not mapped and
/// are dropped from the guest DT (Linux probes a GICv2m frame even when its node is disabled),
/// except a GICv2m frame when the VM gets a PCI host bridge: its MSIs then become the frame's
/// SPIs, which the VM owns (`attach_vgic`).
fn assign(p: &Platform, opts: &Options, taken: &[String], name: &str, identity: bool, mut exclude: Vec<PaRange>) -> Assigned {
    use crate::gic::its::frame::ITS_FRAME_SIZE;
    use crate::vm::dma_policy::{self, Verdict, VmTrust};
    let trust = VmTrust { identity, trusted: true };
    let mut withheld: Vec<&str> = Vec::new();
    for d in &p.devices {
        if taken.contains(&d.path) {
            withheld.push(&d.path);
        } else if d.status.is_enabled() {
            match dma_policy::decide(&d.compatible, &dma_facts(p, d), trust) {
                Verdict::Give => continue,
                Verdict::Withhold(why) => log::warn!("{}", dma_policy::withheld_line(name, &d.path, why)),
                Verdict::NeverGiven(why) => log::info!("{}", dma_policy::withheld_line(name, &d.path, why)),
            }
            withheld.push(&d.path);
        }
    }
    let bridge = p.devices.iter().any(|d| d.status.is_enabled() && d.dma.pci_host && !withheld.contains(&d.path.as_str()));
    // A GICv3 ITS: a virtual one at its address for an identity-mapped VM that owns the PCI
    // bridge (a device's MSI write goes where the guest programmed it), once el2visor has the
    // physical ITS running.
    let its_frame = p.msi_frames.iter().find(|f| f.kind == crate::platform::pci::MsiKind::Its);
    let its = match its_frame {
        Some(f) if bridge && identity && opts.its => match crate::gic::its_hw::init(f.reg.start.raw()) {
            Ok(_) => Some(f),
            Err(e) => {
                log::warn!("VM {name}: no virtual ITS (PCI devices use INTx): ITS at {:#x}: {e}", f.reg.start.raw());
                None
            }
        },
        _ => None,
    };
    if let Some(g) = &p.gic {
        let prefix = format!("{}/", g.path);
        for d in p.devices.iter().filter(|d| d.path.starts_with(&prefix)) {
            let v2m = p.msi_frames.iter().any(|f| f.path == d.path && f.kind == crate::platform::pci::MsiKind::V2m);
            if its.is_some_and(|f| f.path == d.path) {
                // Kept in the guest DT. The control frame (first 64 KiB) is emulated (`vm::its`);
                // the translation frame after it is passed through like a device's registers, for
                // the devices' MSI writes.
                exclude.extend(d.regs.iter().map(|r| PaRange::new(r.start.raw(), ITS_FRAME_SIZE)));
            } else if !(v2m && bridge) {
                withheld.push(&d.path);
            }
        }
    }
    // The SMMUs el2visor owns: not mapped, not in the guest DT, and nothing points at them.
    let mut drop_props = Vec::new();
    for s in p.iommus.smmus.iter().filter(|s| s.phandle.is_some_and(crate::vm::smmu::owns)) {
        exclude.push(s.regs);
        withheld.push(&s.path);
        drop_props = alloc::vec!["iommus", "iommu-map", "iommu-map-mask"];
    }
    // The host's own pvpanic device (el2visor running under QEMU with one) is not the VM's: it
    // gets an emulated one of its own (`vm::pvpanic`), and the host's node goes.
    for d in p.devices.iter().filter(|d| d.compatible.iter().any(|c| c == crate::vm::pvpanic::COMPATIBLE)) {
        withheld.push(&d.path);
    }
    let mut drop: Vec<String> = Vec::new();
    for path in &withheld {
        if let Some(d) = p.device(path) {
            exclude.extend(d.regs.iter().copied());
        }
        // A node under one already dropped goes with it.
        if !drop.iter().any(|x| path.starts_with(x.as_str()) && path.as_bytes().get(x.len()) == Some(&b'/')) && !drop.iter().any(|x| x == path) {
            drop.push(path.to_string());
        }
    }
    let mut disable = Vec::new();
    if let (ConsoleOwner::Hyp, Some(c)) = (opts.console, &p.console) {
        exclude.push(PaRange::new(c.base.raw(), c.size));
        disable.push(c.path.clone());
    }
    let dev_regs: Vec<PaRange> = p
        .devices
        .iter()
        .filter(|d| d.status.is_enabled() && !withheld.contains(&d.path.as_str()))
        .flat_map(|d| d.regs.iter().copied())
        .collect();
    // A withheld PCI bridge's windows go with it. Prefetchable PCI windows are memory (BARs of
    // frame buffers and the like): Normal-NC at Stage 2; every other window and register block is
    // Device.
    let given = p.bus_windows.iter().filter(|w| !withheld.contains(&w.bus.as_str()));
    let windows: Vec<PaRange> = given.clone().filter(|w| !w.prefetchable).map(|w| w.cpu).collect();
    let prefetchable: Vec<PaRange> = given.filter(|w| w.prefetchable).map(|w| w.cpu).collect();
    let nc_devices = crate::vm::devices::passthrough(&[], &prefetchable, &exclude, &p.memory);
    exclude.extend(nc_devices.iter().copied());
    let devices = crate::vm::devices::passthrough(&dev_regs, &windows, &exclude, &p.memory);
    Assigned { devices, nc_devices, drop, disable, drop_props, its: its.map(|f| f.reg.start.raw()) }
}

/// The first `limit` bytes of guest RAM (by IPA), whole 2 MiB blocks.
fn truncate(ram: &[RamRegion], limit: u64) -> Vec<RamRegion> {
    let mut left = limit.next_multiple_of(SIZE_2M);
    let mut out = Vec::new();
    for r in ram {
        if left == 0 {
            break;
        }
        let take = r.size.min(left);
        out.push(RamRegion { size: take, ..*r });
        left -= take;
    }
    out
}

/// Give the VM its virtual GIC: it owns the timer PPIs and the SPIs of the devices passed
/// through to it.
pub fn attach_vgic(p: &Platform, dtb: &[u8], vm: &mut Vm) {
    use crate::platform::Irq;
    let Some(g) = &p.gic else { return };
    let mut spis: Vec<u32> = p
        .devices
        .iter()
        .filter(|d| d.status.is_enabled() && d.regs.iter().any(|r| vm.is_device(r.start.raw())))
        .flat_map(|d| d.irqs.iter())
        .filter_map(|i| match i {
            Irq::Gic { intid, .. } if *intid >= 32 => Some(*intid),
            _ => None,
        })
        .collect();
    // A GICv2m frame passed through: the SPIs its MSIs raise are the VM's (edge-triggered; the
    // guest's GICv2m driver configures them so through the vGIC).
    for f in p.msi_frames.iter().filter(|f| f.kind == crate::platform::pci::MsiKind::V2m && vm.is_device(f.reg.start.raw())) {
        // SAFETY: a GICv2m frame from the host DT; every non-RAM address is identity mapped as
        // Device at EL2.
        let typer = || unsafe { crate::gic::v2m::msi_typer(f.reg.start.raw() as usize) };
        match f.spis.or_else(|| crate::platform::pci::v2m_typer_spis(typer())) {
            Some((base, num)) => {
                log::info!("VM {}: GICv2m frame {} passed through with SPIs {}..{}", vm.name, f.path, base, base + num - 1);
                spis.extend(base..base + num);
            }
            None => log::warn!("VM {}: GICv2m frame {} names no usable SPI range", vm.name, f.path),
        }
    }
    spis.sort_unstable();
    spis.dedup();
    let (dist, redist) = match &g.kind {
        GicKind::V2 { dist, .. } => (*dist, None),
        GicKind::V3 { dist, redists, redist_stride, .. } => (*dist, redists.first().map(|r| (r.start.raw(), *redist_stride))),
    };
    log::debug!("VM {}: virtual GIC v{} with {} passthrough SPIs", vm.name, g.version(), spis.len());
    if let Err(e) = crate::vm::vgic::attach(vm, dist, redist, spis, Vec::new()) {
        log::error!("VM {}: virtual GIC: {e}", vm.name);
    }
    // `assign` started the physical ITS only for this VM's virtual one (its DT names it).
    let its = p.msi_frames.iter().find(|f| f.kind == crate::platform::pci::MsiKind::Its);
    if let (Some(phys), Some(f)) = (crate::gic::its_hw::get(), its) {
        // DeviceIDs: those the VM's PCI host bridges send to the ITS (`msi-map`, `msi-parent`).
        let bridges: Vec<&str> = p
            .devices
            .iter()
            .filter(|d| d.dma.pci_host && d.regs.iter().any(|r| vm.is_device(r.start.raw())))
            .map(|d| d.path.as_str())
            .collect();
        let ids = crate::vm::its_ids::device_ids(dtb, &f.path, &bridges);
        log::debug!("VM {}: ITS DeviceIDs {ids:x?} (bridges {bridges:?})", vm.name);
        if let Err(e) = crate::vm::its::attach(vm, phys.base(), ids) {
            log::error!("VM {}: virtual ITS: {e}", vm.name);
        }
    }
}

