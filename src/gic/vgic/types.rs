//! The values the virtual GIC takes and gives: its configuration, errors, warnings and actions.

use alloc::vec::Vec;
use core::fmt;

use crate::gic::GicVersion;

/// Where one vCPU lives: the MPIDR the guest sees and the pCPU it is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPlacement {
    /// The guest-visible MPIDR (VMPIDR_EL2), whose affinity fields GICv3 routing uses.
    pub mpidr: u64,
    /// Index of the physical CPU the vCPU runs on.
    pub pcpu: usize,
}

/// How to build a VM's virtual GIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VgicConfig {
    pub version: GicVersion,
    /// The VM's vCPUs, by vCPU index.
    pub vcpus: Vec<VcpuPlacement>,
    /// Physical PPIs passed through to every vCPU with the HW bit (e.g. the virtual timer, 27).
    pub hw_ppis: Vec<u32>,
    /// Physical SPIs passed through to the VM with the HW bit (its devices' interrupts).
    pub hw_spis: Vec<u32>,
}

/// A guest access the virtual GIC refuses, or a configuration it cannot build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// The access size is not one the register allows (bytes).
    BadSize { offset: u64, size: u8 },
    /// The access is not naturally aligned.
    Unaligned { offset: u64, size: u8 },
    /// A vCPU index past the VM's vCPU count.
    NoSuchVcpu { vcpu: usize, count: usize },
    /// A redistributor index past the VM's vCPU count.
    NoSuchRedist { index: usize, count: usize },
    /// The configuration has no vCPUs, or more than GICv2's eight.
    BadVcpuCount { count: usize, max: usize },
    /// A passthrough INTID of the wrong class (a PPI list entry that is not a PPI, ...).
    BadIntid { intid: u32, expected: &'static str },
}

impl fmt::Display for VgicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize { offset, size } => {
                write!(f, "vGIC: {size}-byte access to offset {offset:#x} is not allowed there")
            }
            Self::Unaligned { offset, size } => {
                write!(f, "vGIC: {size}-byte access to offset {offset:#x} is not aligned")
            }
            Self::NoSuchVcpu { vcpu, count } => {
                write!(f, "vGIC: vCPU {vcpu} does not exist (the VM has {count})")
            }
            Self::NoSuchRedist { index, count } => write!(
                f,
                "vGIC: redistributor {index} does not exist (the VM has {count}, one per vCPU)"
            ),
            Self::BadVcpuCount { count, max } => {
                write!(f, "vGIC: a VM needs 1 to {max} vCPUs for this GIC version, not {count}")
            }
            Self::BadIntid { intid, expected } => {
                write!(f, "vGIC: INTID {intid} cannot be passed through here: expected {expected}")
            }
        }
    }
}

/// A guest access that was legal in size but meant nothing: the caller should log it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicWarning {
    /// A reserved or unimplemented offset: reads as zero, writes ignored.
    Reserved { frame: &'static str, offset: u64, write: bool },
    /// A write to a read-only register, ignored.
    ReadOnly { frame: &'static str, offset: u64 },
    /// A read of a write-only register, returned as zero.
    WriteOnly { frame: &'static str, offset: u64 },
    /// GICD_SGIR with the reserved TargetListFilter value 3: ignored.
    ReservedSgiFilter { value: u32 },
}

impl fmt::Display for VgicWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Reserved { frame, offset, write } => write!(
                f,
                "vGIC: guest {} reserved {frame} offset {offset:#x} ({})",
                if write { "wrote" } else { "read" },
                if write { "ignored" } else { "read as zero" }
            ),
            Self::ReadOnly { frame, offset } => {
                write!(f, "vGIC: guest wrote read-only {frame} register at {offset:#x} (ignored)")
            }
            Self::WriteOnly { frame, offset } => {
                write!(f, "vGIC: guest read write-only {frame} register at {offset:#x} (zero)")
            }
            Self::ReservedSgiFilter { value } => {
                write!(f, "vGIC: GICD_SGIR {value:#x} uses reserved TargetListFilter 3 (ignored)")
            }
        }
    }
}

/// An interrupt ready for a vCPU's list registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Virq {
    /// The INTID the guest sees.
    pub intid: u32,
    /// The physical INTID the guest's EOI deactivates (HW bit), or `None` for a pure virtual
    /// interrupt (SGIs between vCPUs).
    pub pintid: Option<u32>,
    /// Guest priority, 8 bits (GICv2 list registers keep the top 5).
    pub priority: u8,
    /// Group 1 (`true`) or group 0.
    pub group1: bool,
    /// Source vCPU of a GICv2 SGI (the LR's CPUID field); 0 otherwise.
    pub source: u8,
    /// Level-sensitive (the guest's ICFGR): for a HW interrupt, its pending state follows a
    /// device's line, which may drop before the guest acknowledges it.
    pub level: bool,
}

/// The guest cleared the pending and/or active state of an interrupt that a vCPU's list
/// registers (or its queue) may still hold: GICD_ICPENDR / GICD_CPENDSGIR / GICR_ICPENDR0
/// (`pending`), GICD_ICACTIVER / GICR_ICACTIVER0 (`active`); or it disabled or enabled again an
/// interrupt handed to that vCPU (`hold`: GICD_ICENABLER / ISENABLER, GICR_ICENABLER0 /
/// ISENABLER0). The runtime carries it out on that vCPU's pCPU: after reading back its list
/// registers, [`LrManager::set_enabled`](super::lr::LrManager::set_enabled) for `hold`, then
/// [`LrManager::retract`](super::lr::LrManager::retract)`(intid, source, pending, active)`;
/// it writes the list registers they return and deactivates the physical INTIDs named. A copy
/// still waiting in the runtime's own inbox for that vCPU must go too (`pending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retraction {
    /// The vCPU the distributor last handed the interrupt to.
    pub vcpu: usize,
    pub intid: u32,
    /// For a GICv2 SGI cleared through GICD_CPENDSGIR: the one source cleared. `None`: every
    /// source (and every other interrupt).
    pub source: Option<u8>,
    /// Clear the pending state.
    pub pending: bool,
    /// Clear the active state.
    pub active: bool,
    /// The guest disabled (`Some(true)`) or enabled again (`Some(false)`) an interrupt the vCPU
    /// was handed: while disabled, a pending copy the vCPU holds waits there without being
    /// signalled (it still reads pending), and one that arrives meanwhile waits with it; enabled
    /// again, they are signalled ([`LrManager::set_enabled`](super::lr::LrManager::set_enabled)).
    pub hold: Option<bool>,
}

/// What the runtime must do to the real hardware after a guest access.
///
/// `pcpu` is the physical CPU the affected interrupt belongs to (the pinned pCPU of its vCPU).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VgicAction {
    /// Enable the passthrough interrupt in the physical GIC.
    EnablePhys { intid: u32, pcpu: usize },
    /// Disable the passthrough interrupt in the physical GIC.
    DisablePhys { intid: u32, pcpu: usize },
    /// Set the physical priority of a passthrough interrupt.
    SetPhysPriority { intid: u32, pcpu: usize, priority: u8 },
    /// Set the physical trigger of a passthrough SPI (`edge` or level).
    SetPhysTrigger { intid: u32, edge: bool },
    /// Route a passthrough SPI to a physical CPU.
    RouteSpi { intid: u32, pcpu: usize },
    /// Set or clear the physical pending state of a passthrough interrupt (guest ISPENDR/ICPENDR).
    SetPhysPending { intid: u32, pcpu: usize, pending: bool },
    /// Clear the physical active state of a passthrough interrupt (guest ICACTIVER, or ICPENDR
    /// of one the distributor held after el2visor acknowledged it). Taking it out of the
    /// vCPU's list registers is a [`Retraction`].
    ClearPhysActive { intid: u32, pcpu: usize },
    /// Queue this SGI on `vcpu`'s list-register manager. `source` is the sending vCPU (for a
    /// GICv3 SGI the distributor held back, which does not record senders, the target itself).
    InjectSgi { vcpu: usize, intid: u32, source: usize, virq: Virq },
    /// Queue this interrupt (a held-back HW one now deliverable) on `vcpu`'s manager.
    Inject { vcpu: usize, virq: Virq },
    /// Make `vcpu` exit (a physical SGI to its pCPU) so it picks up new interrupts.
    Kick(usize),
    /// The access meant nothing; log it.
    Warn(VgicWarning),
}

/// The VM's view of one interrupt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IrqState {
    /// The VM has this interrupt: every SGI, the passthrough PPIs, and every SPI the
    /// distributor advertises in GICD_TYPER. Otherwise it reads as zero and ignores writes.
    pub owned: bool,
    /// Backed by a physical interrupt of the same INTID, injected with the HW bit. Without it
    /// the interrupt is purely virtual: its state lives here only and nothing reaches the
    /// physical GIC.
    pub hw: bool,
    pub enabled: bool,
    /// Held by the distributor, not yet handed to a vCPU.
    pub pending: bool,
    /// Active, as the guest last set it through ISACTIVER/ICACTIVER.
    pub active: bool,
    pub group1: bool,
    pub priority: u8,
    /// ICFGR: edge-triggered (`true`) or level-sensitive.
    pub edge: bool,
    /// GICv2 ITARGETSR byte (one bit per vCPU).
    pub targets: u8,
    /// GICv3 IROUTER (affinity in MPIDR layout; IRM unsupported).
    pub route: u64,
    /// The vCPU the distributor last handed it to (a list register or queue there may still
    /// hold it); `None` if never.
    pub handed_to: Option<usize>,
    /// An emulated device's line (`VDist::set_line`): whether it is up now.
    pub line_high: bool,
}
