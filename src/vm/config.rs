//! VM plans: what each VM is made of, decided before anything is built.
//!
//! A [`VmConfig`] names a VM's RAM (guest-physical ranges and the host memory behind them), its
//! vCPUs and their MPIDRs, its images, bootargs, passthrough device regions and coherency mode.
//! [`plan_vms`] makes the plans from the boot modules the loader described in `/chosen` (Xen's
//! multiboot convention: QEMU `-device guest-loader`, U-Boot, ImageBuilder) and from facts about the
//! host. The default placement is identity mapping (IPA = PA) over all host RAM el2visor does not
//! keep for itself. Firmware memory inside RAM stays in the VM's RAM (its device tree reserves
//! it); the modules are normally el2visor's pristine copies, outside the VM's RAM.

#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::image::ImageHeader;
use super::load::{plan_load_around, LoadError, LoadPlan, Region};
use crate::mm::addr::{Ipa, Pa, PaRange};
use crate::mm::layout::free_ranges;

pub use crate::platform::ModuleKind;

/// One boot module: where the loader put it and the bootargs it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootModule {
    pub kind: ModuleKind,
    pub range: PaRange,
    pub bootargs: Option<String>,
}

/// A piece of guest RAM: `size` bytes at guest-physical `ipa`, backed by host memory at `pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    pub ipa: Ipa,
    pub pa: Pa,
    pub size: u64,
}

impl RamRegion {
    pub const fn ipa_end(&self) -> u64 {
        self.ipa.0 + self.size
    }
    /// The guest-physical address of host `pa`, if this region maps it.
    pub const fn ipa_of(&self, pa: u64) -> Option<u64> {
        if pa >= self.pa.0 && pa - self.pa.0 < self.size {
            Some(self.ipa.0 + (pa - self.pa.0))
        } else {
            None
        }
    }
}

/// How a passthrough device region is mapped at Stage 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// Registers: Device-nGnRE.
    Mmio,
    /// Prefetchable or write-combining memory (frame buffers, prefetchable BARs): Normal-NC.
    WriteCombining,
}

/// A device region the VM may use: `size` bytes of host `pa`, seen by the guest at `ipa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRegion {
    pub ipa: Ipa,
    pub pa: Pa,
    pub size: u64,
    pub kind: DeviceKind,
}

/// The coherency a VM asks for (the command line's `coherency=`), resolved at VM creation.
pub use crate::coherency::Request as CoherencyMode;

/// Everything needed to build and start one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    pub name: String,
    /// Guest RAM, sorted by IPA, disjoint.
    pub ram: Vec<RamRegion>,
    /// MPIDR affinity of each vCPU (Aff3..Aff0 bits, without the RES1 bit 31); index = vCPU id.
    pub vcpu_mpidrs: Vec<u64>,
    /// Where each image is (host physical): el2visor's copy, or inside `ram` where the loader left it.
    pub kernel: PaRange,
    pub initrd: Option<PaRange>,
    pub dtb: Option<PaRange>,
    pub bootargs: String,
    pub devices: Vec<DeviceRegion>,
    pub coherency: CoherencyMode,
}

impl VmConfig {
    /// Total guest RAM in bytes.
    pub fn ram_size(&self) -> u64 {
        self.ram.iter().map(|r| r.size).sum()
    }

    /// The guest-physical address of host `pa`, if it is guest RAM.
    pub fn ipa_of(&self, pa: u64) -> Option<Ipa> {
        self.ram.iter().find_map(|r| r.ipa_of(pa)).map(Ipa)
    }

    /// The images that still sit in guest RAM and must not be overwritten before they are copied.
    pub fn module_keep_out(&self) -> Vec<Region> {
        let mods = [
            ("kernel module", Some(self.kernel)),
            ("ramdisk module", self.initrd),
            ("device-tree module", self.dtb),
        ];
        mods.iter()
            .filter_map(|&(what, r)| {
                let r = r?;
                Some(Region {
                    what,
                    start: self.ipa_of(r.start.0)?,
                    size: r.size,
                })
            })
            .collect()
    }

    /// Place kernel, DTB and initrd in the VM's largest RAM region, clear of the modules.
    pub fn plan_load(&self, header: &ImageHeader, dtb_len: u64) -> Result<LoadPlan, LoadError> {
        let biggest = self
            .ram
            .iter()
            .max_by_key(|r| r.size)
            .copied()
            .unwrap_or(RamRegion {
                ipa: Ipa(0),
                pa: Pa(0),
                size: 0,
            });
        let initrd_len = self.initrd.map_or(0, |r| r.size);
        plan_load_around(
            (biggest.ipa, biggest.size),
            self.kernel.size,
            header,
            initrd_len,
            dtb_len,
            &self.module_keep_out(),
        )
    }
}

/// MPIDR affinity of vCPU `index`, as KVM assigns them: 16 vCPUs per Aff0 cluster (a GICv3 SGI
/// targets at most 16 CPUs per Aff0 list), then Aff1, then Aff2.
pub const fn vcpu_mpidr(index: usize) -> u64 {
    let i = index as u64;
    (i & 0xf) | (((i >> 4) & 0xff) << 8) | (((i >> 12) & 0xff) << 16)
}

/// Bit 31 of MPIDR_EL1 reads as 1; OR it into the affinity for VMPIDR_EL2.
pub const MPIDR_RES1: u64 = 1 << 31;

/// Facts about the host the planner needs.
#[derive(Clone, Copy, Debug)]
pub struct HostFacts<'a> {
    /// Host RAM.
    pub ram: &'a [PaRange],
    /// Memory el2visor keeps for itself, never the VM's: its image, the host DTB, its frame pool,
    /// the pristine copies of the boot modules.
    pub hyp_reserved: &'a [PaRange],
    /// Firmware memory (`/memreserve/`, `/reserved-memory`, spin tables): part of the VM's RAM, but
    /// no module may lie on it.
    pub firmware: &'a [PaRange],
    /// Physical CPUs available to run vCPUs.
    pub cpus: usize,
    /// Most vCPUs the interrupt controller supports (8 for GICv2), if limited.
    pub max_vcpus: Option<usize>,
    /// Device regions the VM is given (already translated, identity mapped).
    pub devices: &'a [DeviceRegion],
    pub coherency: CoherencyMode,
}

/// Why no VM plan could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    NoKernel,
    SeveralKernels {
        count: usize,
    },
    SeveralOf {
        kind: ModuleKind,
        count: usize,
    },
    EmptyModule {
        kind: ModuleKind,
        at: Pa,
    },
    ModuleOutsideRam {
        kind: ModuleKind,
        range: PaRange,
    },
    ModuleOverlapsFirmware {
        kind: ModuleKind,
        range: PaRange,
        reserved: PaRange,
        bytes: u64,
    },
    ModulesOverlap {
        a: ModuleKind,
        b: ModuleKind,
        bytes: u64,
    },
    NoCpus,
    NoRamLeft,
    DeviceOverlapsRam {
        device: PaRange,
        ram: PaRange,
    },
}

fn overlap(a: &PaRange, b: &PaRange) -> u64 {
    a.end()
        .min(b.end())
        .saturating_sub(a.start.0.max(b.start.0))
}

fn span(r: &PaRange) -> (u64, u64) {
    (r.start.0, r.end())
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKernel => write!(
                f,
                "no guest: pass a kernel with -device guest-loader,kernel=…,addr=… (Xen multiboot,kernel)"
            ),
            Self::SeveralKernels { count } => write!(
                f,
                "{count} multiboot,kernel modules: el2visor boots one VM from the multiboot nodes; pass one kernel"
            ),
            Self::SeveralOf { kind, count } => {
                write!(f, "{count} {}s for one kernel: pass at most one", kind.name())
            }
            Self::EmptyModule { kind, at } => write!(f, "the {} at {at} has size 0", kind.name()),
            Self::ModuleOutsideRam { kind, range } => {
                let (s, e) = span(range);
                write!(f, "the {} [{s:#x}, {e:#x}) is not in host RAM: check the loader's addr=", kind.name())
            }
            Self::ModuleOverlapsFirmware { kind, range, reserved, bytes } => {
                let (s, e) = span(range);
                let (rs, re) = span(reserved);
                write!(
                    f,
                    "the {} [{s:#x}, {e:#x}) overlaps firmware memory [{rs:#x}, {re:#x}) by {bytes:#x} bytes: load it elsewhere",
                    kind.name()
                )
            }
            Self::ModulesOverlap { a, b, bytes } => {
                write!(f, "the {} overlaps the {} by {bytes:#x} bytes", a.name(), b.name())
            }
            Self::NoCpus => write!(f, "no CPU to run a vCPU on"),
            Self::NoRamLeft => write!(f, "no host RAM is left for a VM after el2visor's own memory"),
            Self::DeviceOverlapsRam { device, ram } => {
                let (ds, de) = span(device);
                let (rs, re) = span(ram);
                write!(f, "device region [{ds:#x}, {de:#x}) overlaps guest RAM [{rs:#x}, {re:#x})")
            }
        }
    }
}

/// Make the VM plans from the boot modules: one VM with the (single) kernel, its ramdisk and device
/// tree if given, identity-mapped over all host RAM el2visor does not keep, one vCPU per CPU.
pub fn plan_vms(modules: &[BootModule], host: &HostFacts<'_>) -> Result<Vec<VmConfig>, PlanError> {
    let one_of = |kind: ModuleKind| -> Result<Option<&BootModule>, PlanError> {
        let mut it = modules.iter().filter(|m| m.kind == kind);
        match (it.next(), it.count()) {
            (first, 0) => Ok(first),
            (_, more) if kind == ModuleKind::Kernel => {
                Err(PlanError::SeveralKernels { count: more + 1 })
            }
            (_, more) => Err(PlanError::SeveralOf {
                kind,
                count: more + 1,
            }),
        }
    };
    let kernel = one_of(ModuleKind::Kernel)?.ok_or(PlanError::NoKernel)?;
    let initrd = one_of(ModuleKind::Ramdisk)?;
    let dtb = one_of(ModuleKind::DeviceTree)?;
    let used: Vec<&BootModule> = [Some(kernel), initrd, dtb].into_iter().flatten().collect();

    for (i, m) in used.iter().enumerate() {
        if m.range.size == 0 {
            return Err(PlanError::EmptyModule {
                kind: m.kind,
                at: m.range.start,
            });
        }
        let covered = host
            .ram
            .iter()
            .any(|r| r.start.0 <= m.range.start.0 && m.range.end() <= r.end());
        if !covered {
            return Err(PlanError::ModuleOutsideRam {
                kind: m.kind,
                range: m.range,
            });
        }
        if let Some(res) = host.firmware.iter().find(|r| overlap(r, &m.range) > 0) {
            let bytes = overlap(res, &m.range);
            return Err(PlanError::ModuleOverlapsFirmware {
                kind: m.kind,
                range: m.range,
                reserved: *res,
                bytes,
            });
        }
        for other in &used[i + 1..] {
            let bytes = overlap(&m.range, &other.range);
            if bytes > 0 {
                return Err(PlanError::ModulesOverlap {
                    a: m.kind,
                    b: other.kind,
                    bytes,
                });
            }
        }
    }

    let ram: Vec<RamRegion> = free_ranges(host.ram, host.hyp_reserved)
        .into_iter()
        .map(|r| RamRegion {
            ipa: Ipa(r.start.0),
            pa: r.start,
            size: r.size,
        })
        .collect();
    if ram.is_empty() {
        return Err(PlanError::NoRamLeft);
    }
    for d in host.devices {
        let dev = PaRange {
            start: d.pa,
            size: d.size,
        };
        for r in &ram {
            let rr = PaRange {
                start: r.pa,
                size: r.size,
            };
            if overlap(&dev, &rr) > 0 {
                return Err(PlanError::DeviceOverlapsRam {
                    device: dev,
                    ram: rr,
                });
            }
        }
    }

    let n = host.cpus.min(host.max_vcpus.unwrap_or(usize::MAX));
    if n == 0 {
        return Err(PlanError::NoCpus);
    }
    Ok(alloc::vec![VmConfig {
        name: String::from("vm0"),
        ram,
        vcpu_mpidrs: (0..n).map(vcpu_mpidr).collect(),
        kernel: kernel.range,
        initrd: initrd.map(|m| m.range),
        dtb: dtb.map(|m| m.range),
        bootargs: kernel.bootargs.clone().unwrap_or_default(),
        devices: host.devices.to_vec(),
        coherency: host.coherency,
    }])
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
