//! Device-tree cell arithmetic for the guest-DT builder: reading and writing addresses of
//! `#address-cells`/`#size-cells` width, `ranges` translation from a CPU (guest-physical) address
//! back to a node's bus address, and mapping host physical ranges into guest RAM.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::GuestDtError;
use crate::vm::config::RamRegion;

/// Read a big-endian number of `cells` 32-bit cells; `None` if it does not fit in 64 bits.
pub fn read_cells(bytes: &[u8], cells: u32) -> Option<u64> {
    let mut v: u64 = 0;
    for c in bytes.chunks_exact(4).take(cells as usize) {
        if v >> 32 != 0 {
            return None;
        }
        v = (v << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    Some(v)
}

/// Append `value` as `cells` big-endian cells, or say which value did not fit.
pub fn push_cells(
    out: &mut Vec<u8>,
    value: u64,
    cells: u32,
    what: &str,
) -> Result<(), GuestDtError> {
    let fits = match cells {
        0 => value == 0,
        1 => value <= u64::from(u32::MAX),
        _ => true,
    };
    if !fits {
        return Err(GuestDtError::CellsTooSmall {
            what: String::from(what),
            value,
            cells,
        });
    }
    for i in (0..cells).rev() {
        let word = if i >= 2 {
            0
        } else {
            (value >> (32 * i)) as u32
        };
        out.extend_from_slice(&word.to_be_bytes());
    }
    Ok(())
}

/// Split a `reg`-like property into (address, size) pairs.
pub fn read_pairs(bytes: &[u8], addr_cells: u32, size_cells: u32) -> Option<Vec<(u64, u64)>> {
    let stride = 4 * (addr_cells + size_cells) as usize;
    if stride == 0 || !bytes.len().is_multiple_of(stride) {
        return None;
    }
    bytes
        .chunks_exact(stride)
        .map(|e| {
            let a = read_cells(e, addr_cells)?;
            let s = read_cells(&e[4 * addr_cells as usize..], size_cells)?;
            Some((a, s))
        })
        .collect()
}

/// The addressing a node gives its children.
#[derive(Clone, Debug)]
pub struct Bus {
    pub path: String,
    pub addr_cells: u32,
    pub size_cells: u32,
    pub ranges: Ranges,
}

/// A node's `ranges`, as far as the builder needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    /// No `ranges`: the children's addresses are not CPU addresses.
    Absent,
    /// `(child address, parent address, length)` entries; empty = identity.
    Map(Vec<(u64, u64, u64)>),
    /// Present but not 64-bit numbers (a PCI bus's 3-cell addresses): fine unless the GIC sits
    /// behind it.
    Opaque,
}

impl Bus {
    /// Addressing of `node` (path `path`), whose parent uses `parent_addr_cells`. Cell counts
    /// past the platform's bounds (`platform::tree::cells_of`) are refused: the platform reads
    /// only the nodes it translates through (not the children of a node without `ranges`), and
    /// the builder reads every node.
    pub fn of(node: fdt::node::FdtNode<'_, '_>, path: &str, parent_addr_cells: u32) -> Result<Self, GuestDtError> {
        use crate::platform::tree::{MAX_ADDRESS_CELLS, MAX_SIZE_CELLS};
        let cells = |prop: &'static str, default: u32, max: u32| match node.property(prop).and_then(|p| p.as_usize()) {
            None => Ok(default),
            Some(v) => u32::try_from(v)
                .ok()
                .filter(|&c| c <= max)
                .ok_or_else(|| GuestDtError::BadProperty { path: String::from(path), prop }),
        };
        let addr_cells = cells("#address-cells", 2, MAX_ADDRESS_CELLS)?;
        let size_cells = cells("#size-cells", 1, MAX_SIZE_CELLS)?;
        let ranges = match node.property("ranges") {
            None => Ranges::Absent,
            Some(p) => {
                // 0 (opaque) if a caller's parent cells are out of bounds.
                let stride = addr_cells
                    .checked_add(parent_addr_cells)
                    .and_then(|c| c.checked_add(size_cells))
                    .and_then(|c| c.checked_mul(4))
                    .map_or(0, |s| s as usize);
                let parse = |e: &[u8]| {
                    let child = read_cells(e, addr_cells)?;
                    let parent = read_cells(&e[4 * addr_cells as usize..], parent_addr_cells)?;
                    let len = read_cells(
                        &e[4 * (addr_cells + parent_addr_cells) as usize..],
                        size_cells,
                    )?;
                    Some((child, parent, len))
                };
                if stride == 0 || p.value.len() % stride != 0 {
                    Ranges::Opaque
                } else {
                    p.value
                        .chunks_exact(stride)
                        .map(parse)
                        .collect::<Option<Vec<_>>>()
                        .map_or(Ranges::Opaque, Ranges::Map)
                }
            }
        };
        Ok(Self {
            path: String::from(path),
            addr_cells,
            size_cells,
            ranges,
        })
    }
}

/// Turn the CPU address range `[addr, addr + size)` into the bus address a child of the last bus in
/// `buses` (root first) uses, undoing each level's `ranges`.
pub fn cpu_to_bus(buses: &[Bus], addr: u64, size: u64) -> Result<u64, GuestDtError> {
    let mut a = addr;
    for bus in buses.iter().skip(1) {
        let unreachable = || GuestDtError::Untranslatable {
            node: bus.path.clone(),
            addr,
        };
        match &bus.ranges {
            Ranges::Absent | Ranges::Opaque => return Err(unreachable()),
            Ranges::Map(r) if r.is_empty() => {}
            Ranges::Map(r) => {
                let (child, parent, _) = r
                    .iter()
                    .find(|&&(_, p, l)| a >= p && a - p < l && size <= l - (a - p))
                    .ok_or_else(unreachable)?;
                a = child + (a - parent);
            }
        }
    }
    Ok(a)
}

/// The parts of host range `[pa, pa + size)` that are guest RAM, as guest-physical (ipa, size).
pub fn host_to_guest(ram: &[RamRegion], pa: u64, size: u64) -> Vec<(u64, u64)> {
    let end = pa.saturating_add(size);
    ram.iter()
        .filter_map(|r| {
            let lo = pa.max(r.pa.0);
            let hi = end.min(r.pa.0 + r.size);
            (lo < hi).then(|| (r.ipa.0 + (lo - r.pa.0), hi - lo))
        })
        .collect()
}

/// Guest RAM as sorted (ipa, size) ranges, adjacent ones merged.
pub fn merged_ram(ram: &[RamRegion]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ram
        .iter()
        .filter(|r| r.size > 0)
        .map(|r| (r.ipa.0, r.size))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, l) in v {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == s => last.1 += l,
            _ => out.push((s, l)),
        }
    }
    out
}

/// `reg` bytes for (address, size) pairs.
pub fn encode_pairs(
    pairs: &[(u64, u64)],
    addr_cells: u32,
    size_cells: u32,
    what: &str,
) -> Result<Vec<u8>, GuestDtError> {
    let mut out = Vec::new();
    for &(a, s) in pairs {
        push_cells(&mut out, a, addr_cells, &format!("{what} address"))?;
        push_cells(&mut out, s, size_cells, &format!("{what} size"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::addr::{Ipa, Pa};

    #[test]
    fn cells_round_trip_and_refuse_overflow() {
        let mut b = Vec::new();
        push_cells(&mut b, 0x1_2345_6789, 2, "x").unwrap();
        assert_eq!(read_cells(&b, 2), Some(0x1_2345_6789));
        assert!(matches!(
            push_cells(&mut b, 1 << 32, 1, "x"),
            Err(GuestDtError::CellsTooSmall { .. })
        ));
        let mut c = Vec::new();
        push_cells(&mut c, 7, 3, "x").unwrap();
        assert_eq!(c.len(), 12);
        assert_eq!(read_cells(&c, 3), Some(7));
        assert_eq!(
            read_pairs(&encode_pairs(&[(1, 2), (3, 4)], 2, 1, "r").unwrap(), 2, 1),
            Some(alloc::vec![(1, 2), (3, 4)])
        );
    }

    #[test]
    fn reverse_translation_through_ranges() {
        let root = Bus {
            path: "/".into(),
            addr_cells: 2,
            size_cells: 1,
            ranges: Ranges::Absent,
        };
        let soc = Bus {
            path: "/soc".into(),
            addr_cells: 1,
            size_cells: 1,
            ranges: Ranges::Map(alloc::vec![
                (0x7e00_0000, 0xfe00_0000, 0x180_0000),
                (0x4000_0000, 0xff80_0000, 0x80_0000)
            ]),
        };
        assert_eq!(
            cpu_to_bus(&[root.clone(), soc.clone()], 0xff84_1000, 0x1000),
            Ok(0x4004_1000)
        );
        assert_eq!(
            cpu_to_bus(&[root.clone(), soc.clone()], 0xfe20_1000, 0x200),
            Ok(0x7e20_1000)
        );
        assert!(matches!(
            cpu_to_bus(&[root.clone(), soc], 0x1000, 4),
            Err(GuestDtError::Untranslatable { .. })
        ));
        assert_eq!(cpu_to_bus(&[root], 0x800_0000, 4), Ok(0x800_0000));
    }

    #[test]
    fn cell_counts_past_the_platform_s_bounds_are_refused_not_a_panic() {
        // A child of a node without `ranges`, which the platform never reads: its cell counts
        // are the builder's to check.
        let dtb = |ac: u32, sc: u32| {
            let mut w = vm_fdt::FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            let n = w.begin_node("bus").unwrap();
            w.property_u32("#address-cells", ac).unwrap();
            w.property_u32("#size-cells", sc).unwrap();
            w.property_array_u32("ranges", &[0; 6]).unwrap();
            w.end_node(n).unwrap();
            w.end_node(root).unwrap();
            w.finish().unwrap()
        };
        let of = |blob: &[u8]| {
            let f = fdt::Fdt::new(blob).unwrap();
            Bus::of(f.find_node("/bus").unwrap(), "/x/bus", 2)
        };
        let refused = |prop: &'static str| Err(GuestDtError::BadProperty { path: "/x/bus".into(), prop });
        assert_eq!(of(&dtb(0xffff_fffe, 1)).map(|b| b.addr_cells), refused("#address-cells"));
        assert_eq!(of(&dtb(5, 1)).map(|b| b.addr_cells), refused("#address-cells"));
        assert_eq!(of(&dtb(1, 0xffff_ffff)).map(|b| b.size_cells), refused("#size-cells"));
        assert_eq!(of(&dtb(1, 3)).map(|b| b.size_cells), refused("#size-cells"));
        let ok = of(&dtb(4, 2)).unwrap();
        assert_eq!((ok.addr_cells, ok.size_cells, ok.ranges), (4, 2, Ranges::Opaque));
        // Out-of-bounds parent cells from a caller: opaque `ranges`, not an overflow.
        let blob = dtb(1, 1);
        let f = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(Bus::of(f.find_node("/bus").unwrap(), "/bus", u32::MAX).unwrap().ranges, Ranges::Opaque);
    }

    #[test]
    fn host_ranges_map_into_guest_ram() {
        let ram = [
            RamRegion {
                ipa: Ipa(0x4000_0000),
                pa: Pa(0x8000_0000),
                size: 0x1000_0000,
            },
            RamRegion {
                ipa: Ipa(0x5000_0000),
                pa: Pa(0x9000_0000),
                size: 0x1000_0000,
            },
        ];
        assert_eq!(
            host_to_guest(&ram, 0x7fff_f000, 0x2000),
            alloc::vec![(0x4000_0000, 0x1000)]
        );
        assert_eq!(
            host_to_guest(&ram, 0x8fff_f000, 0x2000),
            alloc::vec![(0x4fff_f000, 0x1000), (0x5000_0000, 0x1000)]
        );
        assert!(host_to_guest(&ram, 0, 0x1000).is_empty());
        assert_eq!(merged_ram(&ram), alloc::vec![(0x4000_0000, 0x2000_0000)]);
    }
}
