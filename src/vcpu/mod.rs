//! vCPUs: the EL2 configuration a VM's vCPUs run with, the per-pCPU run loop (each pCPU runs
//! exactly one vCPU), and the exit statistics.

pub mod regs;
#[cfg(target_os = "none")]
pub mod run;
pub mod stats;
