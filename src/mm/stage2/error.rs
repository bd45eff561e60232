//! Errors of the Stage-2 module, each with a message that says what to fix.

use core::fmt;

/// Why a Stage-2 operation or configuration was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum S2Error {
    /// An address or size is not a multiple of 4 KiB.
    Unaligned { what: &'static str, value: u64 },
    /// The IPA range does not fit the configured IPA size, or the PA range the PA size.
    OutOfRange {
        what: &'static str,
        end: u64,
        limit: u64,
    },
    /// The page source had no frame for a table page.
    OutOfMemory,
    /// The attributes break the memory-type policy (for example executable device memory).
    InvalidAttrs(&'static str),
    /// The VMID does not fit the VMID width the CPU reports.
    VmidTooLarge { vmid: u16, bits: u8 },
    /// ID_AA64MMFR0_EL1.PARange holds a reserved value.
    UnsupportedPaRange(u8),
    /// A requested IPA size the 4 KiB granule or this CPU cannot provide.
    UnsupportedIpaBits { requested: u8, max: u8 },
    /// The page source returned a root not aligned to its size, breaking its contract.
    MisalignedRoot { root: u64, align: u64 },
    /// A region operation that the region's state forbids (see `region`).
    Region(&'static str),
}

impl fmt::Display for S2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            S2Error::Unaligned { what, value } => {
                write!(f, "stage 2: {what} {value:#x} is not a multiple of 4 KiB")
            }
            S2Error::OutOfRange { what, end, limit } => write!(
                f,
                "stage 2: {what} ends at {end:#x}, beyond the limit {limit:#x} of this configuration"
            ),
            S2Error::OutOfMemory => {
                f.write_str("stage 2: out of memory for translation-table pages (give el2visor more RAM or the VM less fragmented memory)")
            }
            S2Error::InvalidAttrs(why) => write!(f, "stage 2: invalid attributes: {why}"),
            S2Error::VmidTooLarge { vmid, bits } => {
                write!(f, "stage 2: VMID {vmid} does not fit the CPU's {bits}-bit VMIDs")
            }
            S2Error::UnsupportedPaRange(v) => write!(
                f,
                "stage 2: ID_AA64MMFR0_EL1.PARange = {v:#x} is a reserved value; cannot size the IPA space"
            ),
            S2Error::UnsupportedIpaBits { requested, max } => write!(
                f,
                "stage 2: a {requested}-bit IPA space is not supported (32 to {max} bits on this CPU)"
            ),
            S2Error::Region(why) => write!(f, "stage 2: region: {why}"),
            S2Error::MisalignedRoot { root, align } => write!(
                f,
                "stage 2: page source returned root table {root:#x}, not aligned to {align:#x}"
            ),
        }
    }
}
