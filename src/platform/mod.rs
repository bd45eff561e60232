//! Platform discovery: the device tree el2visor is started with (x0) becomes a plain [`Platform`]
//! value: RAM, reserved ranges, CPUs and how to start them, PSCI, console, GIC, timer, device
//! regions and bus windows (every address translated through every parent `ranges`), and
//! `/chosen` (el2visor's command line, initrd, Xen-style multiboot modules). After this step only
//! the guest-DT builder reads the raw device tree.
//!
//! [`dtb_size`] and [`early::EarlyInfo`] serve boot before the heap exists. Every blob is checked
//! structurally first ([`header`]), so malformed input gives a [`DtError`], never a panic.

#![deny(unsafe_code)]

pub mod early;
pub mod error;
pub mod header;
pub mod nops;
pub mod ranges;
pub mod tree;

mod chosen;
pub mod dma;
mod domains;
mod modules;
mod cpus;
mod gic;
pub mod iommu;
mod parse;
pub mod pci;

#[cfg(test)]
mod tests_dom0less;
#[cfg(test)]
mod tests_dts;
#[cfg(test)]
mod tests_iommu;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_real;

use alloc::string::String;
use alloc::vec::Vec;

pub use error::{DtError, DtErrorKind, MAX_DTB_SIZE};
pub use gic::gic_intid;
pub use header::{dtb_size, dtb_used_len};
pub use tree::Status;

use crate::mm::addr::{Pa, PaRange};

/// Everything el2visor learns from the host device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Root `model` (empty if absent).
    pub model: String,
    /// Root `compatible` strings.
    pub compatible: Vec<String>,
    /// `totalsize` of the blob: the bytes to keep reserved while the DT is in use.
    pub dtb_size: usize,
    /// The header's `boot_cpuid_phys`.
    pub boot_cpuid: u32,
    /// RAM: every non-empty `reg` range of every enabled `/memory` node.
    pub memory: Vec<PaRange>,
    /// Memory that is not el2visor's to hand out.
    pub reserved: Vec<Reserved>,
    pub cpus: Vec<Cpu>,
    pub psci: Option<Psci>,
    pub console: Option<Console>,
    pub gic: Option<Gic>,
    pub timer: Option<Timer>,
    /// Every memory-mapped device node (not cpus, memory, reserved-memory, chosen).
    pub devices: Vec<Device>,
    /// The translated `ranges` windows of every `simple-bus` (the Pi's `/soc` peripheral windows)
    /// and PCI host bridge (its MMIO/I/O windows).
    pub bus_windows: Vec<BusWindow>,
    /// MSI controller frames under the GIC (GICv2m, GICv3 ITS).
    pub msi_frames: Vec<pci::MsiFrame>,
    pub chosen: Chosen,
    /// Nodes with a `reg` that could not be translated to a CPU address, with the reason; kept
    /// out of `devices` and worth a log line.
    pub untranslated: Vec<Untranslated>,
    /// SMMUv3s and the stream IDs of the devices behind them.
    pub iommus: iommu::Iommus,
}

impl Platform {
    /// QEMU's `virt` machine (root compatible `linux,dummy-virt`): an emulated machine when
    /// el2visor runs on it at EL2, whose software TLB favours 4 KiB Stage-2 pages for guest RAM
    /// (`s2_ram=auto`, docs/architecture.md, section 5).
    pub fn is_qemu_virt(&self) -> bool {
        self.compatible.iter().any(|c| c == "linux,dummy-virt")
    }

    /// Parses and checks a device tree. `data` may be longer than the blob's `totalsize`.
    pub fn from_dtb(data: &[u8]) -> Result<Platform, DtError> {
        parse::platform(data)
    }

    /// CPUs whose `status` lets them be started.
    pub fn enabled_cpus(&self) -> impl Iterator<Item = &Cpu> {
        self.cpus.iter().filter(|c| c.status.is_enabled())
    }

    /// The device node at `path`.
    pub fn device(&self, path: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.path == path)
    }

    /// Enabled devices compatible with `compat`.
    pub fn devices_compatible<'s>(
        &'s self,
        compat: &'s str,
    ) -> impl Iterator<Item = &'s Device> + 's {
        self.devices
            .iter()
            .filter(move |d| d.status.is_enabled() && d.compatible.iter().any(|c| c == compat))
    }
}

/// Why a range is reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservedSource {
    /// The header's `/memreserve/` block.
    MemReserve,
    /// A `/reserved-memory` child with a `reg`.
    Node { path: String, no_map: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub range: PaRange,
    pub source: ReservedSource,
}

/// How a secondary CPU is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    Psci,
    /// Write the entry point to `release_addr`, then `dsb; sev`.
    SpinTable {
        release_addr: Pa,
    },
    /// Any other method, by name (el2visor cannot use it).
    Other(String),
    /// No `enable-method` on the CPU or on `/cpus` (normal for a single boot CPU).
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub path: String,
    /// MPIDR affinity fields as `reg` gives them (Aff3 in bits 39:32, Aff2..0 in 23:0).
    pub mpidr: u64,
    pub enable: EnableMethod,
    pub status: Status,
}

/// The instruction that carries PSCI calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psci {
    pub conduit: Conduit,
    /// Highest version named by `compatible` (`arm,psci` alone is 0.1).
    pub version: (u16, u16),
    /// PSCI 0.1 function IDs from the node (0.2 and later use the standard IDs).
    pub cpu_on: Option<u32>,
    pub cpu_off: Option<u32>,
}

/// How the console was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleChoice {
    /// `/chosen/stdout-path` names it.
    StdoutPath,
    /// `stdout-path` is missing or does not name an enabled PL011 (`stdout` says what it names);
    /// the PL011 behind alias `alias` is used instead.
    Alias {
        alias: String,
        stdout: Option<String>,
    },
}

/// The PL011 el2visor prints on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    pub path: String,
    pub base: Pa,
    pub size: u64,
    /// Its GIC INTID, if it has an interrupt on the GIC.
    pub intid: Option<u32>,
    /// `stdout-path` options after the `:` (like `115200n8`).
    pub options: Option<String>,
    pub choice: ConsoleChoice,
}

/// GIC version and register frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GicKind {
    /// `arm,cortex-a15-gic`, `arm,gic-400`: distributor, CPU interface, and when the GIC has the
    /// virtualization extensions, the hypervisor (GICH) and virtual CPU (GICV) interfaces.
    V2 {
        dist: PaRange,
        cpu: PaRange,
        hyp: Option<PaRange>,
        vcpu: Option<PaRange>,
    },
    /// `arm,gic-v3`: distributor and redistributor regions, then the optional legacy GICC/GICH/GICV.
    V3 {
        dist: PaRange,
        redists: Vec<PaRange>,
        redist_stride: Option<u64>,
        cpu: Option<PaRange>,
        hyp: Option<PaRange>,
        vcpu: Option<PaRange>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    pub path: String,
    pub phandle: Option<u32>,
    /// The maintenance interrupt (INTID), from the GIC node's own `interrupts`.
    pub maintenance_intid: Option<u32>,
    pub kind: GicKind,
}

impl Gic {
    pub fn version(&self) -> u8 {
        match self.kind {
            GicKind::V2 { .. } => 2,
            GicKind::V3 { .. } => 3,
        }
    }

    pub fn dist(&self) -> PaRange {
        match &self.kind {
            GicKind::V2 { dist, .. } | GicKind::V3 { dist, .. } => *dist,
        }
    }
}

/// Architected timer interrupts (INTIDs), from `arm,armv8-timer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub sec_phys: u32,
    pub phys: u32,
    pub virt: u32,
    pub hyp_phys: Option<u32>,
    pub hyp_virt: Option<u32>,
    /// `clock-frequency` if the DT overrides CNTFRQ_EL0 (always prefer the register).
    pub frequency: Option<u32>,
}

/// One interrupt of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Irq {
    /// On the GIC: its INTID and the trigger flags (specifier bits 3:0).
    Gic { intid: u32, flags: u32 },
    /// On another interrupt controller (a GPIO block, a second-level controller): raw specifier.
    Other {
        controller: u32,
        specifier: Vec<u32>,
    },
}

/// A memory-mapped device node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    pub compatible: Vec<String>,
    pub status: Status,
    /// `reg` ranges, translated to CPU physical addresses.
    pub regs: Vec<PaRange>,
    /// Its interrupts; for a PCI host bridge also the INTx lines of its `interrupt-map`.
    pub irqs: Vec<Irq>,
    /// Marked `xen,passthrough`: it may be assigned to a dom0less domain.
    pub xen_passthrough: bool,
    /// What its node says about DMA (see `vm::dma_policy`).
    pub dma: dma::DmaFacts,
}

/// A `simple-bus` window: bus addresses `[child_base, child_base + cpu.size)` appear at `cpu`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusWindow {
    pub bus: String,
    pub child_base: u64,
    pub cpu: PaRange,
    /// A PCI window marked prefetchable (phys.hi bit 30): memory, not registers, so a VM gets it
    /// as Normal non-cacheable rather than Device.
    pub prefetchable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Untranslated {
    pub path: String,
    pub reason: String,
}

/// What a `/chosen/module@…` holds (Xen's multiboot binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
    DeviceTree,
    /// Only `multiboot,module` or an unknown `multiboot,*`.
    Other,
}

impl ModuleKind {
    /// How error messages name it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel module",
            Self::Ramdisk => "ramdisk module",
            Self::DeviceTree => "device-tree module",
            Self::Other => "module",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub kind: ModuleKind,
    pub compatible: Vec<String>,
    /// Where the loader put it (physical; `/chosen` is not a bus, so no translation).
    pub range: PaRange,
    pub bootargs: Option<String>,
}

/// `/chosen`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// el2visor's own command line (see [`crate::cmdline`]).
    pub bootargs: Option<String>,
    pub stdout_path: Option<String>,
    /// `linux,initrd-start` .. `linux,initrd-end`.
    pub initrd: Option<PaRange>,
    /// Multiboot modules directly under `/chosen`: the dom0-like VM's.
    pub modules: Vec<Module>,
    /// Xen dom0less `xen,domain` nodes: one VM each.
    pub domains: Vec<Domain>,
}

/// One Xen dom0less domain (`/chosen/<name>` with `compatible = "xen,domain"`), as written: what
/// the VM asks for, not yet checked against the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// The node's name: the VM's name in every log line and report.
    pub name: String,
    /// RAM, in bytes (`memory` is in KiB).
    pub memory: u64,
    /// vCPUs (`cpus`).
    pub cpus: u32,
    /// `vpl011`: the VM gets an emulated SBSA/PL011 UART.
    pub vpl011: bool,
    /// Its kernel, ramdisk and partial device tree, read in the domain node's cells.
    pub modules: Vec<Module>,
}

/// Whether a root child is a memory node (`device_type = "memory"`, or named `memory[@…]`).
pub(crate) fn is_memory_node(n: tree::Node<'_, '_>) -> bool {
    tree::prop_str(n, "device_type") == Some("memory") || n.name.split('@').next() == Some("memory")
}
