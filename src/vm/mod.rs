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
//! - [`pristine`]: the 2 MiB spans in which a VM's pristine images are copied lazily;
//! - [`dma_policy`]: which VMs may have a device that masters DMA without an SMMU stream;
//! - [`vpl011`]: the emulated SBSA UART of Xen's `vpl011` property;
//! - [`console`]: several VMs' output as prefixed lines on one console, the input switch, and
//!   the tail of each VM's output kept for its crash report; [`console_cmd`]: el2visor's own
//!   stop of that switch, its line editor and commands (`snapshot <vm>`, `restore <vm>`);
//! - [`crash`]: a VM's crash record and the restart limit (`on_crash=`, `crash_restarts=`);
//!   [`debug_hold`]: a VM stopped for a debugger; [`pvpanic`]: QEMU's pvpanic-mmio device;
//! - [`snapshot`]: snapshots of a running VM and the eager, lazy and dirty-only restores.
//!
//! And, on the target, the running VM: `instance` (a VM built from its plan: Stage 2, vCPUs,
//! images), `pristine_lazy` (the copy-on-write of its pristine images), `mmio` (its emulated MMIO regions), `vgic` (its virtual GIC registered as such
//! regions), `table` (every VM, by slot), `uart_tap` (a passed-through UART watched for
//! `snapshot_on=`) and `smmu` (the SMMUv3s el2visor owns: every
//! stream of a VM's devices translated by that VM's Stage 2, the rest aborted, faults logged).

/// How many VMs el2visor can run at once: the slots of the VM table (`table`), and the most a
/// guest bundle may hold.
pub const MAX_VMS: usize = 8;

pub mod bundle;
pub mod config;
pub mod console;
pub mod console_cmd;
pub mod crash;
pub mod debug_hold;
pub mod devices;
pub mod dma_policy;
pub mod guest_dt;
pub mod image;
#[cfg(target_os = "none")]
pub mod instance;
#[cfg(target_os = "none")]
pub mod its;
pub mod its_ids;
pub mod load;
pub mod partition;
pub mod passthrough;
pub mod pristine;
#[cfg(target_os = "none")]
pub mod pristine_lazy;
#[cfg(target_os = "none")]
pub mod mmio;
pub mod power;
pub mod pvpanic;
#[cfg(target_os = "none")]
pub mod smmu;
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
