//! The hypervisor's own EL2 stage-1 tables: an identity map with per-region memory kinds.
//!
//! Non-VHE EL2 has a single translation table base, TTBR0_EL2, so one table tree maps the whole
//! input range `[0, 2^PA bits)` (see [`regs::va_bits`]). The boot code describes what it wants as
//! a list of `(PaRange, El2Mem)` where later entries override earlier ones: "everything low is
//! Device", then RAM as read-write, then the image's text as code and its rodata as read-only,
//! then holes ([`El2Mem::Unmapped`]: the stacks' guard pages).
//! [`build`] flattens that list and writes it with 1 GiB and 2 MiB blocks wherever alignment
//! allows and 4 KiB pages elsewhere, so a 1 TiB device window, a few GiB of RAM and a split image
//! fit in a handful of pages (the boot pool has 32). A device window costs one page per 512 GiB
//! of it at most; do not ask for all 256 TiB of a 48-bit PA space.
//!
//! Every Device and every writable mapping is execute-never; code is read-only (W^X, which
//! SCTLR_EL2.WXN enforces again in hardware). [`regs`] has the matching TCR_EL2, MAIR_EL2 and
//! SCTLR_EL2 values; [`walk::translate`] reads the result back.
//!
//! The builder writes tables through [`PageSource::page_ptr`] with ordinary stores. If the MMU and
//! caches are still off when it runs, the caller must make the writes visible to the cacheable
//! table walk (invalidate the pool's lines before building, `dsb ish` after) before enabling.

pub mod desc;
mod plan;
pub mod regs;
pub mod walk;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;

use self::plan::{flatten, Segment};
use self::walk::read;
use super::addr::{Pa, PaRange, PAGE_SIZE};
use super::PageSource;

pub use self::regs::{mair_el2, tcr_el2, va_bits, SCTLR_EL2_MMU_ON, SCTLR_EL2_RES1};
pub use self::walk::{translate, Leaf};

/// How EL2 maps a region of its identity map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum El2Mem {
    /// Device-nGnRE, read-write, execute-never.
    Device,
    /// Normal write-back, read-only, executable: the image's text.
    Code,
    /// Normal write-back, read-only, execute-never: rodata.
    ReadOnly,
    /// Normal write-back, read-write, execute-never: data, bss, stacks, heap, free RAM.
    ReadWrite,
    /// Not mapped: a hole in what earlier regions map, where every access faults (the guard page
    /// below each CPU's stack, [`stack_guards`]).
    Unmapped,
}

/// The guard pages of `cpus` EL2 stacks laid out from `stacks_start`, one slot of `slot` bytes per
/// CPU with its lowest `guard` bytes unused: holes in the map, so that a stack overflowing its
/// slot faults (and el2visor's vector reports it) instead of writing over the next CPU's stack.
pub fn stack_guards(stacks_start: u64, slot: u64, guard: u64, cpus: usize) -> impl Iterator<Item = (PaRange, El2Mem)> {
    (0..cpus as u64).map(move |i| (PaRange::new(stacks_start + i * slot, guard), El2Mem::Unmapped))
}

/// Why the EL2 map could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum El2MapError {
    /// A region does not start and end on 4 KiB boundaries.
    Unaligned { range: PaRange, mem: El2Mem },
    /// A region ends beyond the identity map the CPU's PA size allows.
    BeyondPaRange { range: PaRange, va_bits: u32 },
    /// The page source ran dry after handing out `pages_used` table pages (they were given back).
    OutOfPages { pages_used: usize },
}

impl fmt::Display for El2MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            El2MapError::Unaligned { range, mem } => write!(
                f,
                "EL2 map: {mem:?} region {}+{:#x} is not 4 KiB aligned; \
                 page-align it (linker script sections, RAM bounds) before mapping",
                range.start, range.size
            ),
            El2MapError::BeyondPaRange { range, va_bits } => write!(
                f,
                "EL2 map: region {}+{:#x} ends beyond the {va_bits}-bit physical address range \
                 this CPU reports; clip it to the PA range",
                range.start, range.size
            ),
            El2MapError::OutOfPages { pages_used } => write!(
                f,
                "EL2 map: out of table pages after {pages_used}; give the builder a larger pool \
                 or map a smaller device window"
            ),
        }
    }
}

/// A built EL2 map: what TTBR0_EL2 points at and how the walk is configured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct El2Tables {
    root: Pa,
    start_level: u8,
    va_bits: u32,
    table_pages: usize,
}

impl El2Tables {
    /// The root table.
    pub fn root(&self) -> Pa {
        self.root
    }
    /// The value for TTBR0_EL2 (the root's address; no ASID or CnP in this regime here).
    pub fn ttbr0_el2(&self) -> u64 {
        self.root.raw()
    }
    /// The level the walk starts at (0 for more than 39 PA bits, else 1).
    pub fn start_level(&self) -> u8 {
        self.start_level
    }
    /// Input address bits (64 − TCR_EL2.T0SZ).
    pub fn va_bits(&self) -> u32 {
        self.va_bits
    }
    /// Table pages the map uses.
    pub fn table_pages(&self) -> usize {
        self.table_pages
    }
}

/// Address bits below the index of a level-`level` entry (4 KiB granule).
pub(crate) const fn level_shift(level: u8) -> u32 {
    12 + 9 * (3 - level as u32)
}

/// Build the identity map described by `regions` (later entries override earlier ones) for a CPU
/// with ID_AA64MMFR0_EL1.PARange `parange`, taking table pages from `pages`. Empty regions are
/// ignored. On error every page taken is given back.
pub fn build<P: PageSource>(
    regions: &[(PaRange, El2Mem)],
    parange: u8,
    pages: &mut P,
) -> Result<El2Tables, El2MapError> {
    let va_bits = regs::va_bits(parange);
    let limit = 1u64 << va_bits;
    let mut segments = Vec::with_capacity(regions.len());
    for &(range, mem) in regions {
        if range.size == 0 {
            continue;
        }
        if !range.start.is_aligned(PAGE_SIZE) || range.size % PAGE_SIZE != 0 {
            return Err(El2MapError::Unaligned { range, mem });
        }
        let end = range
            .start
            .raw()
            .checked_add(range.size)
            .filter(|&end| end <= limit);
        let end = end.ok_or(El2MapError::BeyondPaRange { range, va_bits })?;
        segments.push(Segment {
            start: range.start.raw(),
            end,
            mem,
        });
    }
    let mut builder = Builder { pages, used: 0 };
    let root = builder.new_table()?;
    let mut tables = El2Tables {
        root,
        start_level: regs::start_level(va_bits),
        va_bits,
        table_pages: 0,
    };
    for s in flatten(segments).into_iter().filter(|s| s.mem != El2Mem::Unmapped) {
        if let Err(e) = builder.map(root, tables.start_level, s.start, s.end, s.mem) {
            destroy(tables, builder.pages);
            return Err(e);
        }
    }
    tables.table_pages = builder.used;
    Ok(tables)
}

/// Give every table page of `tables` back to `pages`. The map must no longer be live.
pub fn destroy<P: PageSource>(tables: El2Tables, pages: &mut P) {
    free_table(pages, tables.root, tables.start_level);
}

fn free_table<P: PageSource>(pages: &mut P, table: Pa, level: u8) {
    if level < 3 {
        for idx in 0..512 {
            let d = read(pages, table, idx);
            if d & desc::VALID != 0 && d & desc::TABLE_OR_PAGE != 0 {
                free_table(pages, Pa(d & desc::OA_MASK), level + 1);
            }
        }
    }
    pages.free(table, 1);
}

struct Builder<'a, P: PageSource> {
    pages: &'a mut P,
    used: usize,
}

impl<P: PageSource> Builder<'_, P> {
    fn new_table(&mut self) -> Result<Pa, El2MapError> {
        let pa = self.pages.alloc_zeroed(1).ok_or(El2MapError::OutOfPages {
            pages_used: self.used,
        })?;
        self.used += 1;
        Ok(pa)
    }

    fn write(&mut self, table: Pa, idx: usize, value: u64) {
        debug_assert!(idx < 512);
        // SAFETY: `table` is a page this builder took from `pages`, reachable through
        // `page_ptr` for its 512 descriptors, not yet live; `idx < 512`.
        unsafe { self.pages.page_ptr(table).add(idx).write_volatile(value) };
    }

    /// Map `[start, end)` (page aligned, inside this table's span) as `mem` into the level-`level`
    /// table at `table`. The segments are disjoint, so every entry met is invalid or a table.
    fn map(
        &mut self,
        table: Pa,
        level: u8,
        start: u64,
        end: u64,
        mem: El2Mem,
    ) -> Result<(), El2MapError> {
        let shift = level_shift(level);
        let entry_size = 1u64 << shift;
        let mut addr = start;
        while addr < end {
            let base = addr & !(entry_size - 1);
            let chunk_end = end.min(base + entry_size);
            let idx = ((addr >> shift) & 511) as usize;
            let current = read(self.pages, table, idx);
            let whole = addr == base && chunk_end == base + entry_size;
            if whole && level >= 1 && current & desc::VALID == 0 {
                self.write(table, idx, desc::leaf(Pa(base), level, mem));
            } else {
                let next = if current & desc::VALID == 0 {
                    let next = self.new_table()?;
                    self.write(table, idx, desc::table(next));
                    next
                } else {
                    assert!(
                        level < 3 && current & desc::TABLE_OR_PAGE != 0,
                        "EL2 map: segments overlap at {addr:#x} (flatten broke its invariant)"
                    );
                    Pa(current & desc::OA_MASK)
                };
                self.map(next, level + 1, addr, chunk_end, mem)?;
            }
            addr = chunk_end;
        }
        Ok(())
    }
}
