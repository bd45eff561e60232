//! VMs: what a guest is made of before it runs. Pure data and rules, tested on the host:
//!
//! - [`image`]: the arm64 Linux Image header;
//! - [`load`]: where kernel, DTB and initrd go in guest RAM (the arm64 boot protocol);
//! - [`config`]: `VmConfig` plans built from the boot modules (Xen multiboot convention);
//! - [`guest_dt`]: the guest's device tree, generated from the host's;
//! - [`bundle`]: the single-file guest bundle (one VM, or several) for firmware that loads only
//!   one initrd;
//! - [`power`]: the vCPUs' PSCI power states;
//! - [`partition`]: which pCPUs and how much RAM each dom0less domain gets, checked;
//! - [`passthrough`]: the devices a dom0less domain's partial device tree assigns it;
//! - [`vpl011`]: the emulated SBSA UART of Xen's `vpl011` property;
//! - [`console`]: several VMs' output as prefixed lines on one console, and the input switch;
//! - [`snapshot`]: snapshots of a running VM and the eager, lazy and dirty-only restores.
//!
//! And, on the target, the running VM: `instance` (a VM built from its plan: Stage 2, vCPUs,
//! images), `mmio` (its emulated MMIO regions), `vgic` (its virtual GIC registered as such
//! regions), `table` (every VM, by slot) and `uart_tap` (a passed-through UART watched for
//! `snapshot_on=`).

pub mod bundle;
pub mod config;
pub mod console;
pub mod devices;
pub mod guest_dt;
pub mod image;
#[cfg(target_os = "none")]
pub mod instance;
pub mod load;
pub mod partition;
pub mod passthrough;
#[cfg(target_os = "none")]
pub mod mmio;
pub mod power;
pub mod snapshot;
#[cfg(target_os = "none")]
pub mod table;
#[cfg(target_os = "none")]
pub mod vgic;
#[cfg(target_os = "none")]
pub mod uart_tap;
pub mod vpl011;
#[cfg(target_os = "none")]
pub mod vuart;
