//! VMs: what a guest is made of before it runs. Pure data and rules, tested on the host:
//!
//! - [`image`]: the arm64 Linux Image header;
//! - [`load`]: where kernel, DTB and initrd go in guest RAM (the arm64 boot protocol);
//! - [`config`]: `VmConfig` plans built from the boot modules (Xen multiboot convention);
//! - [`guest_dt`]: the guest's device tree, generated from the host's;
//! - [`bundle`]: the single-file guest bundle for firmware that loads only one initrd.

pub mod bundle;
pub mod config;
pub mod devices;
pub mod guest_dt;
pub mod image;
#[cfg(target_os = "none")]
pub mod instance;
pub mod load;
