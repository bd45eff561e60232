//! The virtual GIC: what a VM sees of the interrupt controller, as pure state machines.
//!
//! - [`VDist`] (one per VM) emulates the GICv2 or GICv3 distributor and, for GICv3, the
//!   redistributors ([`VRedist`], one per vCPU). A guest MMIO access becomes
//!   [`VDist::mmio_read`] / [`VDist::mmio_write`] (or the `redist_*` pair); a write returns
//!   [`VgicAction`]s telling the runtime what to do to the real hardware. A VM has all SGIs, the
//!   PPIs it was given and every SPI the distributor advertises in GICD_TYPER (up to its last
//!   passthrough SPI, rounded up to 32): priority (5 bits, as GICv2 list registers and GIC-400
//!   keep), enable, pending, active, group and trigger state for each, whether a device backs it
//!   (passthrough, HW bit) or not (purely virtual). Every other line reads as zero and ignores
//!   writes.
//! - [`sgi`] decodes GICD_SGIR and the trapped ICC_SGI1R_EL1 write into target vCPUs.
//! - [`lr`] keeps each vCPU's pending queue and list registers.
//!
//! Who holds what: the distributor's `pending` bit covers an interrupt it is holding back (disabled,
//! or the distributor or its group is off). Once an interrupt is handed to a vCPU (a
//! [`VgicAction::Inject`] / [`VgicAction::InjectSgi`], or [`HwIrq::Deliver`]), its pending and
//! active state live in that vCPU's [`lr::LrManager`] and, for HW interrupts, in the physical GIC.
//! When the guest clears that state through the distributor (ICPENDR, ICACTIVER, CPENDSGIR), the
//! write leaves [`Retraction`]s ([`VDist::take_retractions`]) for the runtime to carry out with
//! [`lr::LrManager::retract`] on the vCPU that holds the interrupt. Reads of the pending and active
//! registers add what the runtime knows ([`LiveState`]): the list registers and the physical GIC.

#![forbid(unsafe_code)]

mod dist;
mod dist_v2;
mod dist_v3;
mod line;
mod live;
pub mod lr;
mod moved;
mod redist;
mod restore;
pub mod lockless;
pub mod sgi;
mod types;

#[cfg(test)]
mod tests_v2;
#[cfg(test)]
mod tests_v3;

pub use dist::{HwIrq, VDist};
pub(crate) use redist::id_register;
pub use dist_v3::{redist_frame, REDIST_FRAME_SIZE};
pub use live::{LiveState, ModelOnly};
pub use redist::VRedist;
pub use types::{Retraction, VcpuPlacement, VgicAction, VgicConfig, VgicError, VgicWarning, Virq};
