//! Snapshots of a running VM and the three ways back to one (docs/snapshots.md).
//!
//! A snapshot is the VM's RAM, copied into its snapshot area (from the pool `snapshot_mem=` sets
//! aside in `boot::memory`, at the VM's first snapshot), each vCPU's state (general registers, EL1 system registers and timers,
//! FP/SIMD, its list registers and virtual CPU interface) and the virtual distributor. The
//! vCPUs are stopped at an instruction boundary for it by `vcpu::snapshot`, which calls
//! [`take`] and [`restore`] with every vCPU's state in [`Snapshot::live`].
//!
//! Each piece of RAM is a Stage-2 region (`mm::stage2::region`):
//! - an *eager* restore copies all of RAM back (blocks are kept, or given back by a collapse);
//! - a *lazy* restore zaps RAM with userfault on and runs the VM at once: each Stage-2 fault
//!   ([`stage2_fault`]) copies one page from the snapshot and maps it; once every page is back,
//!   userfault goes off and the region is collapsed (unless log-dirty keeps it in pages);
//! - a *dirty-only* restore copies back just the pages the guest wrote since the snapshot
//!   (log-dirty on since then).
//!
//! Without FEAT_S2FWB each page written for the guest is cleaned to the point of coherency
//! before the guest can see it (it may read it with its caches off); the cache lines cleaned are
//! counted for `make bench` (`cmo_lines`). With FWB only the instruction cache needs care.

pub mod plan;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub mod sme;
#[cfg(target_os = "none")]
pub mod sve;

#[cfg(target_os = "none")]
pub use run::*;
