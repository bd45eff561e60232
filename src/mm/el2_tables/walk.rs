//! Reading the tables back: where an address goes and with which attributes. Used by the tests
//! to check every mapping, and by anyone who wants to print or free the tables.

use super::desc::{decode_leaf, OA_MASK, TABLE_OR_PAGE, VALID};
use super::{level_shift, El2Mem, El2Tables};
use crate::mm::addr::Pa;
use crate::mm::PageSource;

/// The leaf that maps an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leaf {
    /// Where the address goes.
    pub pa: Pa,
    /// 1 = 1 GiB block, 2 = 2 MiB block, 3 = 4 KiB page.
    pub level: u8,
    /// The kind of mapping, or `None` if the attribute bits are not one this builder writes.
    pub mem: Option<El2Mem>,
    /// The raw descriptor.
    pub descriptor: u64,
}

/// Read descriptor `idx` of the table at `table`.
pub(super) fn read<P: PageSource>(pages: &P, table: Pa, idx: usize) -> u64 {
    debug_assert!(idx < 512);
    // SAFETY: `table` is a table page handed out by `pages`, so `page_ptr` reaches its 512
    // descriptors, and `idx < 512`.
    unsafe { pages.page_ptr(table).add(idx).read_volatile() }
}

/// Walk the tables for `va`; `None` when it is not mapped (or beyond the map's input range).
pub fn translate<P: PageSource>(tables: &El2Tables, pages: &P, va: u64) -> Option<Leaf> {
    if tables.va_bits < 64 && va >> tables.va_bits != 0 {
        return None;
    }
    let mut table = tables.root;
    for level in tables.start_level..=3 {
        let shift = level_shift(level);
        let desc = read(pages, table, ((va >> shift) & 511) as usize);
        if desc & VALID == 0 {
            return None;
        }
        let is_table_or_page = desc & TABLE_OR_PAGE != 0;
        if level < 3 && is_table_or_page {
            table = Pa(desc & OA_MASK);
            continue;
        }
        if level == 0 || (level == 3 && !is_table_or_page) {
            return None; // not a valid leaf with a 4 KiB granule
        }
        let offset_mask = (1u64 << shift) - 1;
        return Some(Leaf {
            pa: Pa((desc & OA_MASK & !offset_mask) | (va & offset_mask)),
            level,
            mem: decode_leaf(desc),
            descriptor: desc,
        });
    }
    None
}
