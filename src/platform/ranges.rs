//! Address translation through `ranges`: a `reg` address is in its parent bus's address space, and
//! each bus up to the root maps its children's addresses into its own parent's space through its
//! `ranges` property (empty `ranges` = identity, no `ranges` = not memory-mapped at all).
//! The Pi 4's GIC, for example, says 0x4004_1000 and is at 0xff84_1000 after `/soc` `ranges`.
//!
//! No allocation: the early probe translates the console address before the heap exists.

#![forbid(unsafe_code)]

/// `#address-cells` and `#size-cells` of a node (describing its children's `reg` and `ranges`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    pub addr: u32,
    pub size: u32,
}

impl Cells {
    /// The devicetree specification's defaults when a node does not say.
    pub const DEFAULT: Cells = Cells { addr: 2, size: 1 };
}

/// One node on the path from the root to a node being translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level<'a> {
    /// The cells this node gives its children.
    pub cells: Cells,
    /// The `ranges` value: `None` if absent, `Some(&[])` if empty (identity).
    pub ranges: Option<&'a [u8]>,
}

/// Why an address could not be translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// The bus at this depth of the chain has no `ranges`: its children are not memory-mapped.
    NoRanges { depth: usize },
    /// No entry of the `ranges` at this depth covers the address.
    Outside { depth: usize },
    /// A `ranges` value whose length is not a whole number of entries, or cells wider than 64 bits.
    Malformed { depth: usize },
}

impl TranslateError {
    /// A short description for error messages.
    pub fn what(&self) -> &'static str {
        match self {
            TranslateError::NoRanges { .. } => "a parent bus has no ranges (not memory-mapped)",
            TranslateError::Outside { .. } => "outside every window of a parent's ranges",
            TranslateError::Malformed { .. } => "a parent's ranges is malformed",
        }
    }
}

/// Reads `n` big-endian cells from the front of `bytes` as one number. Returns `None` when there
/// are fewer bytes or the value needs more than 64 bits (upper cells not zero).
pub fn read_cells(bytes: &[u8], n: u32) -> Option<u64> {
    let len = (n as usize).checked_mul(4)?;
    let cells = bytes.get(..len)?;
    let mut v: u64 = 0;
    for c in cells.chunks_exact(4) {
        if v >> 32 != 0 {
            return None;
        }
        v = (v << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    Some(v)
}

/// Iterates `(address, size)` pairs of a `reg` value. Yields `Err(())` once if the value is not a
/// whole number of entries or a cell does not fit in 64 bits.
pub fn reg_entries(
    value: &[u8],
    cells: Cells,
) -> impl Iterator<Item = Result<(u64, u64), ()>> + '_ {
    let entry = 4 * (cells.addr as usize + cells.size as usize);
    let mut off = 0;
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || off >= value.len() {
            return None;
        }
        if entry == 0 || !value.len().is_multiple_of(entry) {
            failed = true;
            return Some(Err(()));
        }
        let a = read_cells(&value[off..], cells.addr);
        let s = read_cells(&value[off + 4 * cells.addr as usize..], cells.size);
        off += entry;
        match (a, s) {
            (Some(a), Some(s)) => Some(Ok((a, s))),
            _ => {
                failed = true;
                Some(Err(()))
            }
        }
    })
}

/// One `ranges` entry: `[child, child + size)` in the bus maps to `parent` in the bus's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeEntry {
    pub child: u64,
    pub parent: u64,
    pub size: u64,
}

/// Iterates the entries of a `ranges` value. `child` are the bus's own cells, `parent` its
/// parent's. Yields `Err(())` once if the value is malformed.
pub fn range_entries(
    value: &[u8],
    child: Cells,
    parent: Cells,
) -> impl Iterator<Item = Result<RangeEntry, ()>> + '_ {
    let (ca, pa, cs) = (
        child.addr as usize,
        parent.addr as usize,
        child.size as usize,
    );
    let entry = 4 * (ca + pa + cs);
    let mut off = 0;
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || off >= value.len() {
            return None;
        }
        if entry == 0 || !value.len().is_multiple_of(entry) {
            failed = true;
            return Some(Err(()));
        }
        let e = &value[off..off + entry];
        off += entry;
        let r = (|| {
            Some(RangeEntry {
                child: read_cells(e, child.addr)?,
                parent: read_cells(&e[4 * ca..], parent.addr)?,
                size: read_cells(&e[4 * (ca + pa)..], child.size)?,
            })
        })();
        if r.is_none() {
            failed = true;
        }
        Some(r.ok_or(()))
    })
}

/// Translates `addr`, an address in the child space of `chain.last()`, to a root (CPU physical)
/// address. `chain[0]` is the root; every later level's `ranges` is applied, innermost first.
pub fn translate(chain: &[Level<'_>], mut addr: u64) -> Result<u64, TranslateError> {
    for depth in (1..chain.len()).rev() {
        let bus = &chain[depth];
        let Some(ranges) = bus.ranges else {
            return Err(TranslateError::NoRanges { depth });
        };
        if ranges.is_empty() {
            continue;
        }
        let mut hit = None;
        for e in range_entries(ranges, bus.cells, chain[depth - 1].cells) {
            let e = e.map_err(|()| TranslateError::Malformed { depth })?;
            if addr >= e.child && addr - e.child < e.size {
                hit = Some(
                    e.parent
                        .checked_add(addr - e.child)
                        .ok_or(TranslateError::Malformed { depth })?,
                );
                break;
            }
        }
        addr = hit.ok_or(TranslateError::Outside { depth })?;
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn cells(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    const ROOT: Level<'static> = Level {
        cells: Cells { addr: 2, size: 1 },
        ranges: None,
    };

    #[test]
    fn read_cells_widths() {
        assert_eq!(read_cells(&cells(&[0x12]), 1), Some(0x12));
        assert_eq!(read_cells(&cells(&[0x1, 0x2]), 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&cells(&[0, 0x1, 0x2]), 3), Some(0x1_0000_0002));
        assert_eq!(
            read_cells(&cells(&[0x200_0000, 0, 0x10]), 3),
            None,
            "PCI phys.hi does not fit"
        );
        assert_eq!(read_cells(&cells(&[1]), 2), None, "short");
        assert_eq!(read_cells(&[], 0), Some(0));
    }

    #[test]
    fn reg_entries_pairs_and_errors() {
        let v = cells(&[0, 0x1000, 0x100, 0, 0x2000, 0x200]);
        let got: Vec<_> = reg_entries(&v, Cells { addr: 2, size: 1 }).collect();
        assert_eq!(got, [Ok((0x1000, 0x100)), Ok((0x2000, 0x200))]);
        let bad = cells(&[0, 0x1000]);
        let got: Vec<_> = reg_entries(&bad, Cells { addr: 2, size: 1 }).collect();
        assert_eq!(got, [Err(())]);
    }

    #[test]
    fn pi_soc_translation() {
        // /soc: #address-cells 1, #size-cells 1; ranges as in bcm2711-rpi-4-b.dtb.
        let r = cells(&[
            0x7e00_0000,
            0,
            0xfe00_0000,
            0x180_0000,
            0x7c00_0000,
            0,
            0xfc00_0000,
            0x200_0000,
            0x4000_0000,
            0,
            0xff80_0000,
            0x80_0000,
        ]);
        let soc = Level {
            cells: Cells { addr: 1, size: 1 },
            ranges: Some(&r),
        };
        let chain = [ROOT, soc];
        assert_eq!(translate(&chain, 0x4004_1000), Ok(0xff84_1000));
        assert_eq!(translate(&chain, 0x7e20_1000), Ok(0xfe20_1000));
        assert_eq!(translate(&chain, 0x7c00_0000), Ok(0xfc00_0000));
        assert_eq!(
            translate(&chain, 0x1000),
            Err(TranslateError::Outside { depth: 1 })
        );
        // One past the end of a window is outside it.
        assert_eq!(
            translate(&chain, 0x7f80_0000),
            Err(TranslateError::Outside { depth: 1 })
        );
    }

    #[test]
    fn multi_level_and_empty_ranges() {
        // root(2,1) -> bus a (1,1): 0x0 -> 0x1_0000_0000 size 0x1000_0000
        //           -> bus b (1,1) with empty ranges (identity)
        //           -> bus c (1,1): 0x100 -> 0x8000_0000 size 0x100
        let ra = cells(&[0, 1, 0, 0x1000_0000]);
        let rc = cells(&[0x100, 0x800_0000, 0x100]);
        let chain = [
            ROOT,
            Level {
                cells: Cells { addr: 1, size: 1 },
                ranges: Some(&ra),
            },
            Level {
                cells: Cells { addr: 1, size: 1 },
                ranges: Some(&[]),
            },
            Level {
                cells: Cells { addr: 1, size: 1 },
                ranges: Some(&rc),
            },
        ];
        assert_eq!(translate(&chain, 0x110), Ok(0x1_0800_0010));
        assert_eq!(translate(&chain[..3], 0x20), Ok(0x1_0000_0020));
        assert_eq!(
            translate(&chain[..1], 0x20),
            Ok(0x20),
            "the root is the CPU space"
        );
    }

    #[test]
    fn missing_and_malformed_ranges() {
        let no = Level {
            cells: Cells { addr: 1, size: 0 },
            ranges: None,
        };
        assert_eq!(
            translate(&[ROOT, no], 0x50),
            Err(TranslateError::NoRanges { depth: 1 })
        );
        let short = cells(&[0x100, 0, 0x800]);
        let bus = Level {
            cells: Cells { addr: 1, size: 1 },
            ranges: Some(&short),
        };
        assert_eq!(
            translate(&[ROOT, bus], 0x100),
            Err(TranslateError::Malformed { depth: 1 })
        );
    }

    #[test]
    fn range_entries_lists_windows() {
        let r = cells(&[
            0,
            0x7c00_0000,
            0,
            0xfc00_0000,
            0x380_0000,
            6,
            0,
            6,
            0,
            0x4000_0000,
        ]);
        let got: Vec<_> = range_entries(&r, Cells { addr: 2, size: 1 }, Cells::DEFAULT)
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got[0],
            RangeEntry {
                child: 0x7c00_0000,
                parent: 0xfc00_0000,
                size: 0x380_0000
            }
        );
        assert_eq!(
            got[1],
            RangeEntry {
                child: 6 << 32,
                parent: 6 << 32,
                size: 0x4000_0000
            }
        );
    }
}
