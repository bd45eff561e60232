//! el2visor: a bare-metal AArch64 type-1 hypervisor that owns Stage 2.
//!
//! The crate is split so that everything with rules in it (descriptor bits, ESR decoding, the MAIR
//! policy, device-tree parsing, guest-DT generation, the vGIC state machines) is plain Rust that
//! builds and runs in host `cargo test`. Code that touches system registers or MMIO lives behind
//! `#[cfg(target_os = "none")]` in thin wrappers (`arch`, `drivers`, and the runtime halves of the
//! other modules), each `unsafe` block with a `// SAFETY:` comment.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
pub mod cmdline;
pub mod coherency;
pub mod debug;
pub mod drivers;
#[cfg(target_os = "none")]
pub mod fatal;
pub mod gic;
mod layers;
#[cfg(target_os = "none")]
pub mod logging;
pub mod mm;
pub mod percpu;
pub mod platform;
pub mod trace;
pub mod trap;
pub mod vcpu;
pub mod vm;
