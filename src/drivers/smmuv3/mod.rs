//! The Arm SMMUv3 (IHI 0070): el2visor owns it when the host DT has one and uses it for one thing,
//! DMA isolation. Every stream of a device assigned to a VM translates through that VM's own
//! Stage-2 tables (the tables the CPU uses, with the VM's VMID); every other stream aborts.
//!
//! The pure parts, host-tested and free of register access:
//! - [`regs`]: register offsets, the ID registers decoded ([`regs::Features`]), control values;
//! - [`ste`]: stream table entries (abort, stage-2), the steps of a live STE's update, level-1
//!   descriptors and the table layout;
//! - [`cmd`]: command-queue entries (CFGI_STE, CFGI_ALL, TLBI_S12_VMALL, TLBI_S2_IPA, SYNC);
//! - [`queue`]: producer/consumer index arithmetic with the wrap bit;
//! - [`stop`]: the register sequence that makes an SMMU abort all DMA (GBPA.ABORT, then off);
//! - [`event`]: event-queue records decoded for a log line, and the per-stream rate limit.
//!
//! [`mmio`] (target only) is the thin register access; `vm::smmu` owns the tables and queues.

pub mod cmd;
pub mod event;
#[cfg(target_os = "none")]
pub mod mmio;
pub mod queue;
pub mod regs;
pub mod ste;
pub mod stop;

#[cfg(test)]
mod tests;
