//! Stage-2 translation for the 4 KiB granule: the tables el2visor owns for each VM.
//!
//! - `memtype`: the memory-type policy as data (RAM, Normal-NC, Device) and its MemAttr
//!   encodings with and without FEAT_S2FWB.
//! - `descriptor`: building, decoding and checking block, page and table descriptors.
//! - `vtcr`: VTCR_EL2 (IPA size, start level, concatenated root) from the ID registers; VTTBR_EL2.
//! - `table` / `walk` / `op` / `inspect`: `Stage2`, one VM's tables: map, unmap, protect with blocks,
//!   split, merge and break-before-make; translate, ranges, dump and self-check.
//! - `region`: regions with flags (userfault, log-dirty), held to pages while flagged, their
//!   missing and dirty bitmaps, and the Stage-2 fault rules for them.
//! - `tlb`: the `TlbOps` trait; `hw` implements it with real TLBI/DSB on the target.
//!
//! Everything but `hw` is pure and tested on the host (`testing` holds the host `PageSource` and a
//! recording `TlbOps` that other modules' tests may use too).

pub mod descriptor;
pub mod error;
#[cfg(target_os = "none")]
pub mod hw;
pub mod inspect;
pub mod memtype;
mod op;
pub mod region;
mod region_state;
pub mod table;
pub mod tlb;
pub mod vtcr;
mod walk;

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests_model;
#[cfg(test)]
mod tests_region;
#[cfg(test)]
mod tests_ram_pages;
#[cfg(test)]
mod tests_table;

pub use error::S2Error;
pub use inspect::{Leaf, MappedRange, S2Stats, VerifyError};
pub use memtype::{AttrEncoding, MemType, S2Attrs};
pub use region::{Bitmap, Region, RegionFault, RegionId};
pub use table::Stage2;
pub use tlb::TlbOps;
pub use vtcr::Vtcr;
