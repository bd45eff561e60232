//! vCPUs: the EL2 configuration a VM's vCPUs run with ([`regs`] and the fine-grained traps,
//! [`fgt`], pure), and on the target the
//! per-pCPU run loop that enters guests and acts on every exit (`run`), the EL2 set-up for a
//! vCPU (`el2`), the lean synchronous exit for GIC accesses and IPIs (`lean`), a VM's life cycle (`lifecycle`: start, reset with the restart limit, end,
//! machine off), console input switched among VMs (`console`), the wait of a VM held for a
//! debugger (`debug_wait`), and snapshots and restores from the vCPUs' side (`snapshot`).

pub mod fgt;
pub mod regs;

#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod debug_wait;
#[cfg(target_os = "none")]
pub mod el2;
#[cfg(target_os = "none")]
pub mod lean;
#[cfg(target_os = "none")]
pub mod lifecycle;
#[cfg(target_os = "none")]
pub mod run;
#[cfg(target_os = "none")]
pub mod snapshot;

/// `arch::frame` (the trap frame and its PC step) is pure but built inside `arch`, which exists on
/// the bare-metal target only; the host tests mount the same file here.
#[cfg(test)]
#[path = "../arch/frame.rs"]
mod frame_host_tests;
