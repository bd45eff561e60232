//! Device drivers el2visor itself uses: the PL011 console and the SMMUv3 (`smmuv3`: its pure
//! encodings here, its tables and queues owned by `vm::smmu`).

#[cfg(target_os = "none")]
pub mod pl011;
pub mod smmuv3;
