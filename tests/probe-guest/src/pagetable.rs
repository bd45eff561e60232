//! Stage-1 identity tables for the probe: 4 KiB granule, 48-bit VA (start at level 0), built in a
//! caller-provided pool of 4 KiB tables. Pure logic: the pool's physical address is a parameter, so
//! host tests build and walk tables exactly as the guest does.

use core::fmt;

/// Bytes in a translation granule (and a table).
pub const PAGE_SIZE: u64 = 4096;
/// Virtual address bits covered by TTBR0 (TCR_EL1.T0SZ = 64 - VA_BITS).
pub const VA_BITS: u32 = 48;

/// One translation table.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

impl Table {
    /// An empty (all-invalid) table.
    pub const EMPTY: Table = Table([0; 512]);
}

/// The three memory types the probe maps, and their MAIR_EL1 index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Index 0: Device-nGnRE (0x04).
    Device = 0,
    /// Index 1: Normal non-cacheable (0x44).
    NormalNc = 1,
    /// Index 2: Normal write-back RaWa (0xff).
    NormalWb = 2,
}

/// The probe's MAIR_EL1: index 0 Device-nGnRE, 1 Normal-NC, 2 Normal WB; others 0.
pub const PROBE_MAIR: u64 = 0x00ff_4404;

const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
/// AP[1]: EL0 may access the mapping.
const AP_EL0: u64 = 1 << 6;
/// AP[2]: read-only (at EL1, and at EL0 with AP[1]).
const AP_RO: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The table pool is exhausted; raise the pool size in the probe.
    OutOfTables { pool: usize },
    /// The VA is already mapped (the DT describes overlapping regions).
    Overlap { va: u64 },
    /// Address or size not 4 KiB aligned, or beyond the 48-bit VA space.
    BadRange { va: u64, size: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::OutOfTables { pool } => {
                write!(f, "page-table pool of {pool} tables exhausted")
            }
            MapError::Overlap { va } => {
                write!(f, "VA {va:#x} mapped twice (overlapping DT regions?)")
            }
            MapError::BadRange { va, size } => write!(
                f,
                "range {va:#x}+{size:#x} is not 4 KiB aligned or leaves the 48-bit VA space"
            ),
        }
    }
}

/// Builds identity-style mappings into a pool whose first table is the level-0 root.
pub struct Mapper<'a> {
    pool: &'a mut [Table],
    pool_pa: u64,
    used: usize,
}

fn shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

/// The leaf attribute bits for a memory type (AttrIndx, AF, shareability, execute-never).
pub fn leaf_attrs(ty: MemType, executable: bool) -> u64 {
    let mut a = ((ty as u64) << ATTR_INDEX_SHIFT) | AF | UXN;
    if ty != MemType::Device {
        a |= SH_INNER;
    }
    if !executable || ty == MemType::Device {
        a |= PXN;
    }
    a
}

/// What EL0 may do with a mapping made by [`Mapper::map_el0`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El0Access {
    /// Read and execute (EL1 reads only, executes nothing).
    ReadExec,
    /// Read and write, no execution at either level.
    ReadWrite,
}

/// The leaf attribute bits of an EL0 mapping: never executable at EL1; executable at EL0 only
/// read-only, and never for Device memory.
pub fn leaf_attrs_el0(ty: MemType, access: El0Access) -> u64 {
    let mut a = ((ty as u64) << ATTR_INDEX_SHIFT) | AF | PXN | AP_EL0;
    if ty != MemType::Device {
        a |= SH_INNER;
    }
    match access {
        El0Access::ReadExec if ty != MemType::Device => a |= AP_RO,
        El0Access::ReadExec => a |= AP_RO | UXN,
        El0Access::ReadWrite => a |= UXN,
    }
    a
}

impl<'a> Mapper<'a> {
    /// Start with an empty root (pool[0]); `pool_pa` is the physical address of `pool[0]`.
    pub fn new(pool: &'a mut [Table], pool_pa: u64) -> Self {
        assert!(
            !pool.is_empty(),
            "the table pool needs at least the root table"
        );
        pool[0] = Table::EMPTY;
        Mapper {
            pool,
            pool_pa,
            used: 1,
        }
    }

    /// Physical address of the root table (TTBR0_EL1.BADDR).
    pub fn root_pa(&self) -> u64 {
        self.pool_pa
    }

    /// Tables taken from the pool so far, the root included.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Map `[va, va + size)` to `pa` with the given type, using 1 GiB and 2 MiB blocks where
    /// alignment allows and pages elsewhere.
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        ty: MemType,
        exec: bool,
    ) -> Result<(), MapError> {
        self.map_attrs(va, pa, size, leaf_attrs(ty, exec))
    }

    /// As [`map`](Self::map), for EL0: `access` says what EL0 may do there
    /// ([`leaf_attrs_el0`]).
    pub fn map_el0(&mut self, va: u64, pa: u64, size: u64, ty: MemType, access: El0Access) -> Result<(), MapError> {
        self.map_attrs(va, pa, size, leaf_attrs_el0(ty, access))
    }

    fn map_attrs(&mut self, va: u64, pa: u64, size: u64, attrs: u64) -> Result<(), MapError> {
        let bad = MapError::BadRange { va, size };
        if !(va | pa | size).is_multiple_of(PAGE_SIZE) || size == 0 {
            return Err(bad);
        }
        let end = va.checked_add(size).ok_or(bad)?;
        if end > 1 << VA_BITS {
            return Err(bad);
        }
        self.map_level(0, 0, va, pa, size, attrs)
    }

    fn map_level(
        &mut self,
        table: usize,
        level: u32,
        mut va: u64,
        mut pa: u64,
        mut size: u64,
        attrs: u64,
    ) -> Result<(), MapError> {
        let block = 1u64 << shift(level);
        while size > 0 {
            let idx = ((va >> shift(level)) & 511) as usize;
            let entry = self.pool[table].0[idx];
            let chunk = core::cmp::min(size, block - (va % block));
            let can_block =
                level >= 1 && va.is_multiple_of(block) && pa.is_multiple_of(block) && size >= block;
            if can_block {
                if entry & DESC_VALID != 0 {
                    return Err(MapError::Overlap { va });
                }
                let kind = if level == 3 { DESC_TABLE_OR_PAGE } else { 0 };
                self.pool[table].0[idx] = pa | attrs | kind | DESC_VALID;
            } else {
                let next = if entry & DESC_VALID == 0 {
                    let n = self.alloc()?;
                    self.pool[table].0[idx] = self.table_pa(n) | DESC_TABLE_OR_PAGE | DESC_VALID;
                    n
                } else if entry & DESC_TABLE_OR_PAGE != 0 {
                    self.table_index(entry & ADDR_MASK)
                } else {
                    return Err(MapError::Overlap { va });
                };
                self.map_level(next, level + 1, va, pa, chunk, attrs)?;
            }
            va += chunk;
            pa += chunk;
            size -= chunk;
        }
        Ok(())
    }

    fn alloc(&mut self) -> Result<usize, MapError> {
        if self.used == self.pool.len() {
            return Err(MapError::OutOfTables {
                pool: self.pool.len(),
            });
        }
        let n = self.used;
        self.used += 1;
        self.pool[n] = Table::EMPTY;
        Ok(n)
    }

    fn table_pa(&self, index: usize) -> u64 {
        self.pool_pa + index as u64 * PAGE_SIZE
    }

    fn table_index(&self, pa: u64) -> usize {
        ((pa - self.pool_pa) / PAGE_SIZE) as usize
    }

    /// Walk the tables for `va`: the output address and the leaf descriptor, or `None` if unmapped.
    pub fn translate(&self, va: u64) -> Option<(u64, u64)> {
        let mut table = 0usize;
        for level in 0..4 {
            let entry = self.pool[table].0[((va >> shift(level)) & 511) as usize];
            if entry & DESC_VALID == 0 {
                return None;
            }
            let is_table = level < 3 && entry & DESC_TABLE_OR_PAGE != 0;
            if !is_table {
                let mask = (1u64 << shift(level)) - 1;
                return Some(((entry & ADDR_MASK & !mask) | (va & mask), entry));
            }
            table = self.table_index(entry & ADDR_MASK);
        }
        None
    }
}

/// MAIR index a leaf descriptor selects.
pub fn leaf_attr_index(desc: u64) -> u64 {
    (desc >> ATTR_INDEX_SHIFT) & 0b111
}

/// Physical address bits for an ID_AA64MMFR0_EL1.PARange value (0b0111, 56 bits, is FEAT_D128's;
/// unknown encodings give `None`).
pub fn pa_range_bits(pa_range: u64) -> Option<u32> {
    match pa_range {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        7 => Some(56),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    const POOL_PA: u64 = 0x4800_0000;

    #[test]
    fn pa_range_encodings() {
        let bits: vec::Vec<_> = (0..9).map(pa_range_bits).collect();
        assert_eq!(
            bits,
            [
                Some(32),
                Some(36),
                Some(40),
                Some(42),
                Some(44),
                Some(48),
                Some(52),
                Some(56),
                None
            ]
        );
    }

    /// EL0 mappings: AP[1] set, never executable at EL1; EL0 executes only read-only Normal
    /// memory.
    #[test]
    fn el0_mappings() {
        let code = leaf_attrs_el0(MemType::NormalNc, El0Access::ReadExec);
        assert_eq!(code & (AP_EL0 | AP_RO | PXN | UXN), AP_EL0 | AP_RO | PXN);
        let dev = leaf_attrs_el0(MemType::Device, El0Access::ReadWrite);
        assert_eq!(dev & (AP_EL0 | AP_RO | PXN | UXN | SH_INNER), AP_EL0 | PXN | UXN);
        let dev_x = leaf_attrs_el0(MemType::Device, El0Access::ReadExec);
        assert_ne!(dev_x & UXN, 0, "Device memory is never executable");
        let mut pool = vec![Table::EMPTY; 8];
        let mut m = Mapper::new(&mut pool, POOL_PA);
        m.map_el0(0x7f00_0001_0000, 0x4008_0000, PAGE_SIZE, MemType::NormalNc, El0Access::ReadExec).unwrap();
        let (pa, d) = m.translate(0x7f00_0001_0ffe).unwrap();
        assert_eq!((pa, d & AP_EL0), (0x4008_0ffe, AP_EL0));
        assert_eq!(
            m.map_el0(0x7f00_0001_0000, 0x900_0000, PAGE_SIZE, MemType::Device, El0Access::ReadWrite),
            Err(MapError::Overlap { va: 0x7f00_0001_0000 })
        );
    }

    #[test]
    fn ram_uses_blocks_and_device_pages() {
        let mut pool = vec![Table::EMPTY; 8];
        let mut m = Mapper::new(&mut pool, POOL_PA);
        m.map(
            0x4000_0000,
            0x4000_0000,
            0x2000_0000,
            MemType::NormalNc,
            true,
        )
        .unwrap();
        // root + L1 + one L2 of 2 MiB blocks
        assert_eq!(m.tables_used(), 3);
        m.map(0x0900_0000, 0x0900_0000, PAGE_SIZE, MemType::Device, false)
            .unwrap();
        // L2 for the first GiB + L3 for the UART's 2 MiB
        assert_eq!(m.tables_used(), 5);
        let (pa, d) = m.translate(0x4123_4567).unwrap();
        assert_eq!(pa, 0x4123_4567);
        assert_eq!(leaf_attr_index(d), 1);
        assert_eq!(d & PXN, 0, "RAM is executable at EL1");
        let (pa, d) = m.translate(0x0900_0018).unwrap();
        assert_eq!(pa, 0x0900_0018);
        assert_eq!(leaf_attr_index(d), 0);
        assert_ne!(d & PXN, 0);
        assert!(m.translate(0x0900_1000).is_none());
        assert!(m.translate(0x6000_0000).is_none());
    }

    #[test]
    fn gib_aligned_ram_uses_gib_blocks() {
        let mut pool = vec![Table::EMPTY; 4];
        let mut m = Mapper::new(&mut pool, POOL_PA);
        m.map(
            0x4000_0000,
            0x4000_0000,
            0x8000_0000,
            MemType::NormalNc,
            true,
        )
        .unwrap();
        assert_eq!(m.tables_used(), 2);
        assert_eq!(m.translate(0xbfff_fff8).unwrap().0, 0xbfff_fff8);
    }

    #[test]
    fn unaligned_ram_mixes_levels() {
        let mut pool = vec![Table::EMPTY; 8];
        let mut m = Mapper::new(&mut pool, POOL_PA);
        m.map(
            0x4010_0000,
            0x4010_0000,
            0x0040_1000,
            MemType::NormalWb,
            false,
        )
        .unwrap();
        for va in [
            0x4010_0000u64,
            0x401f_f000,
            0x4020_0000,
            0x403f_f000,
            0x4040_0000,
            0x4050_0000,
        ] {
            assert_eq!(m.translate(va).map(|t| t.0), Some(va), "{va:#x}");
        }
        assert!(m.translate(0x4050_1000).is_none());
        assert!(m.translate(0x400f_f000).is_none());
    }

    #[test]
    fn errors_are_reported() {
        let mut pool = vec![Table::EMPTY; 3];
        let mut m = Mapper::new(&mut pool, POOL_PA);
        assert_eq!(
            m.map(0x1000, 0x1000, 0x10, MemType::Device, false),
            Err(MapError::BadRange {
                va: 0x1000,
                size: 0x10
            })
        );
        m.map(0x4000_0000, 0x4000_0000, 0x20_0000, MemType::NormalNc, true)
            .unwrap();
        assert_eq!(
            m.map(0x4000_0000, 0x4000_0000, 0x1000, MemType::Device, false),
            Err(MapError::Overlap { va: 0x4000_0000 })
        );
        assert_eq!(
            m.map(0x0900_0000, 0x0900_0000, 0x1000, MemType::Device, false),
            Err(MapError::OutOfTables { pool: 3 })
        );
    }
}
