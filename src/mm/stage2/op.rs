//! The operation types shared by the Stage-2 table (`table`) and its walker (`walk`): what an
//! operation does to each page, what it has done so far, and one table being walked.

use super::memtype::S2Attrs;
use crate::mm::addr::Pa;

/// What an operation does to each page of its range.
#[derive(Clone, Copy, Debug)]
pub(super) enum Op {
    /// Map the range so that `ipa0` goes to `pa0`.
    Map {
        ipa0: u64,
        pa0: u64,
        attrs: S2Attrs,
    },
    Unmap,
    Protect(S2Attrs),
}

/// What an operation has done so far, for the maintenance at its end.
#[derive(Default, Debug)]
pub(super) struct OpCtx {
    /// A descriptor was written.
    pub wrote: bool,
    /// Leaves that gained write permission in place, whose TLB maintenance is left to the end
    /// of the operation: the first one's IPA and level, and how many there were.
    pub relaxed: Option<(u64, u8)>,
    pub relaxed_count: usize,
}

/// One table: its address, level, and the IPA its entry 0 translates.
#[derive(Clone, Copy, Debug)]
pub(super) struct TableRef {
    pub pa: Pa,
    pub level: u8,
    pub base: u64,
}
