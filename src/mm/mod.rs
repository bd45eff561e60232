//! Memory: address types, the physical memory layout, the frame allocator and heap, the
//! hypervisor's own EL2 stage-1 tables, and the Stage-2 tables it builds for each VM.

pub mod addr;
pub mod stage2;
