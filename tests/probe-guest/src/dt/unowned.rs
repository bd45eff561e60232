//! The address the `abort_injected` probe touches: the first 1 GiB-aligned address at or above the
//! end of RAM whose page no DT node's `reg` (any entry, translated to CPU addresses) and no
//! `ranges` window (its parent side, translated) covers. A guest that reads or writes there
//! accesses memory nobody gave it, so el2visor must inject a synchronous external abort.

use super::{read_cells, translate, walk, Chain, DtError, Region, MAX_DEPTH};
use crate::pagetable::PAGE_SIZE;
use fdt::Fdt;

/// Candidates are 1 GiB apart.
pub const GIB: u64 = 1 << 30;

/// Candidates stop below this (the probe's 48-bit VA space, identity mapped).
pub const LIMIT: u64 = 1 << 48;

/// The end of `r` if `[a, a + PAGE_SIZE)` overlaps it.
fn overlap_end(r: Region, a: u64) -> Option<u64> {
    let end = r.base.saturating_add(r.size);
    (r.size != 0 && r.base < a + PAGE_SIZE && a < end).then_some(end)
}

/// Translate `addr`, an address in the space of the chain's node at `bus_index`'s children, up
/// to CPU addresses through that node and every ancestor below the root. `None` when some
/// ancestor has no `ranges` (not memory-mapped) or the address falls in no window.
fn to_cpu(c: &Chain<'_, '_>, bus_index: usize, addr: u64) -> Option<u64> {
    let mut a = addr;
    for i in (1..=bus_index).rev() {
        a = translate(a, c.get(i), c.get(i - 1))?;
    }
    Some(a)
}

/// The end of a `reg` entry or `ranges` window of the chain's node that covers the page at `a`.
fn node_claims(c: &Chain<'_, '_>, a: u64) -> Option<u64> {
    node_regions(c, &mut |r| overlap_end(r, a))
}

/// Call `f` on each `reg` entry and `ranges` window of the chain's node (in CPU addresses) until
/// it returns something.
fn node_regions(c: &Chain<'_, '_>, f: &mut dyn FnMut(Region) -> Option<u64>) -> Option<u64> {
    let last = c.len - 1;
    let node = c.get(last);
    if last >= 1 {
        if let Some(reg) = node.property("reg") {
            let cells = c.get(last - 1).cell_sizes();
            let entry = cells.address_cells + cells.size_cells;
            for i in 0..reg.value.len().checked_div(entry * 4).unwrap_or(0) {
                let at = i * entry;
                let (Some(addr), Some(size)) = (
                    read_cells(reg.value, at, cells.address_cells),
                    read_cells(reg.value, at + cells.address_cells, cells.size_cells),
                ) else {
                    continue;
                };
                // The parent's children space is translated through the parent and up.
                let hit = to_cpu(c, last - 1, addr).and_then(|base| f(Region { base, size }));
                if hit.is_some() {
                    return hit;
                }
            }
        }
    }
    if let Some(ranges) = node.property("ranges") {
        if ranges.value.is_empty() || last == 0 {
            // An identity `ranges` adds no window of its own: its children's `reg` count.
            return None;
        }
        let (ca, cs) = (
            node.cell_sizes().address_cells,
            node.cell_sizes().size_cells,
        );
        let pa = c.get(last - 1).cell_sizes().address_cells;
        let entry = ca + pa + cs;
        for i in 0..ranges.value.len().checked_div(entry * 4).unwrap_or(0) {
            let at = i * entry;
            let (Some(parent), Some(size)) = (
                read_cells(ranges.value, at + ca, pa),
                read_cells(ranges.value, at + ca + pa, cs),
            ) else {
                continue;
            };
            let hit = to_cpu(c, last - 1, parent).and_then(|base| f(Region { base, size }));
            if hit.is_some() {
                return hit;
            }
        }
    }
    None
}

/// The end of the first `reg` entry or window of the tree that covers the page at `a`.
fn claimed(fdt: &Fdt<'_>, a: u64) -> Result<Option<u64>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    walk(&mut chain, root, &mut |c: &Chain<'_, '_>| node_claims(c, a))
}

/// Every `reg` entry (the RAM's `/memory` included) and `ranges` window of the tree, in CPU
/// addresses, into `out` (the abort_scan probe skips them); how many, or `None` if `out` is too
/// small.
pub fn claimed_regions(fdt: &Fdt<'_>, out: &mut [Region]) -> Result<Option<usize>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    let mut n = 0;
    let full = walk(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        node_regions(c, &mut |r| {
            if r.size == 0 {
                return None;
            }
            match out.get_mut(n) {
                Some(slot) => {
                    *slot = r;
                    n += 1;
                    None
                }
                None => Some(0),
            }
        })
    })?;
    Ok(full.is_none().then_some(n))
}

/// The first 1 GiB-aligned address at or above the end of `ram` that no node claims, below
/// [`LIMIT`]; `None` if every candidate is claimed. A claimed candidate moves the search to the
/// first 1 GiB boundary past the region that claims it.
pub fn unowned_address(fdt: &Fdt<'_>, ram: &[Region]) -> Result<Option<u64>, DtError> {
    let end = ram
        .iter()
        .map(|r| r.base.saturating_add(r.size))
        .max()
        .ok_or(DtError::NoMemory)?;
    let mut a = end.div_ceil(GIB).saturating_mul(GIB);
    while a < LIMIT {
        match claimed(fdt, a)? {
            None => return Ok(Some(a)),
            Some(end) => a = end.max(a + 1).div_ceil(GIB).saturating_mul(GIB),
        }
    }
    Ok(None)
}
