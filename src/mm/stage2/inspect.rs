//! Read-only views of a VM's Stage-2 tables: every leaf in IPA order, the coalesced ranges with
//! their types and block sizes (the debug dump printed at VM creation), counts of blocks and
//! pages, and `verify()`, which checks every descriptor and the tables' minimal shape.

use super::descriptor::{address, check, decode, is_leaf, is_table, level_size, Descriptor};
use super::memtype::S2Attrs;
use super::table::Stage2;
use super::tlb::TlbOps;
use super::op::TableRef;
use crate::mm::addr::{Ipa, Pa, SIZE_1G, SIZE_2M};
use crate::mm::PageSource;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One block or page mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leaf {
    pub ipa: Ipa,
    pub pa: Pa,
    /// 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
    pub attrs: S2Attrs,
}

impl Leaf {
    /// Bytes this leaf maps.
    pub const fn size(&self) -> u64 {
        level_size(self.level)
    }
}

/// A run of adjacent leaves of one size with contiguous output and equal attributes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MappedRange {
    pub ipa: Ipa,
    pub pa: Pa,
    pub size: u64,
    pub attrs: S2Attrs,
    /// Size of each leaf in the run: `SIZE_1G`, `SIZE_2M` or 4 KiB.
    pub leaf_size: u64,
}

/// How the mappings are made up.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct S2Stats {
    pub blocks_1g: usize,
    pub blocks_2m: usize,
    pub pages_4k: usize,
    pub table_pages: usize,
}

/// A descriptor that breaks the rules, found by `verify()`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VerifyError {
    pub level: u8,
    /// First IPA the offending entry translates.
    pub ipa: u64,
    pub desc: u64,
    pub why: &'static str,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage 2: level-{} descriptor {:#018x} for IPA {:#x}: {}",
            self.level, self.desc, self.ipa, self.why
        )
    }
}

impl<P: PageSource, T: TlbOps> Stage2<P, T> {
    /// Call `f(level, ipa, desc)` for every descriptor of every table, in IPA order, before
    /// descending into a table descriptor's table.
    fn visit(&self, t: TableRef, f: &mut dyn FnMut(u8, u64, u64)) {
        let size = level_size(t.level);
        for idx in 0..self.entries(&t) {
            let d = self.read(t.pa, idx);
            let ipa = t.base + idx as u64 * size;
            f(t.level, ipa, d);
            if is_table(d, t.level) {
                self.visit(
                    TableRef {
                        pa: address(d),
                        level: t.level + 1,
                        base: ipa,
                    },
                    f,
                );
            }
        }
    }

    /// Every block and page mapping, in IPA order.
    pub fn for_each_leaf(&self, mut f: impl FnMut(Leaf)) {
        let enc = self.enc;
        self.visit(self.root_ref(), &mut |level, ipa, d| {
            if is_leaf(d, level) {
                if let Ok(Descriptor::Leaf { oa, attrs }) = decode(d, level, enc) {
                    f(Leaf {
                        ipa: Ipa(ipa),
                        pa: oa,
                        level,
                        attrs,
                    });
                }
            }
        });
    }

    /// The mappings as runs of equal leaves (same size, same attributes, contiguous IPA and PA).
    pub fn ranges(&self) -> Vec<MappedRange> {
        let mut out: Vec<MappedRange> = Vec::new();
        self.for_each_leaf(|l| {
            if let Some(last) = out.last_mut() {
                if last.leaf_size == l.size()
                    && last.attrs == l.attrs
                    && last.ipa.raw() + last.size == l.ipa.raw()
                    && last.pa.raw() + last.size == l.pa.raw()
                {
                    last.size += l.size();
                    return;
                }
            }
            out.push(MappedRange {
                ipa: l.ipa,
                pa: l.pa,
                size: l.size(),
                attrs: l.attrs,
                leaf_size: l.size(),
            });
        });
        out
    }

    /// Counts of 1 GiB blocks, 2 MiB blocks, 4 KiB pages and table pages.
    pub fn stats(&self) -> S2Stats {
        let mut s = S2Stats {
            table_pages: self.table_pages(),
            ..S2Stats::default()
        };
        self.for_each_leaf(|l| match l.level {
            1 => s.blocks_1g += 1,
            2 => s.blocks_2m += 1,
            _ => s.pages_4k += 1,
        });
        s
    }

    /// Check every descriptor with `descriptor::check`, that no table is empty or could be a
    /// block (the tables stay minimal), and that the table-page count is right.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let mut err = None;
        let mut tables = 0usize;
        let enc = self.enc;
        self.visit(self.root_ref(), &mut |level, ipa, d| {
            if err.is_some() {
                return;
            }
            if let Err(why) = check(d, level, enc) {
                err = Some(VerifyError {
                    level,
                    ipa,
                    desc: d,
                    why,
                });
            } else if is_table(d, level) {
                tables += 1;
                if self.collapse(address(d), level + 1, level, ipa).is_some() {
                    let why = "table is empty or uniform and should have been freed or merged";
                    err = Some(VerifyError {
                        level,
                        ipa,
                        desc: d,
                        why,
                    });
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if tables != self.tables {
            return Err(VerifyError {
                level: self.cfg.start_level,
                ipa: 0,
                desc: tables as u64,
                why: "number of reachable tables differs from the page count kept",
            });
        }
        Ok(())
    }

    /// The layout as text: one line per run of equal leaves (see the `Display` impl).
    pub fn dump(&self) -> String {
        alloc::format!("{self}")
    }
}

fn size_name(size: u64) -> &'static str {
    match size {
        SIZE_1G => "1G",
        SIZE_2M => "2M",
        _ => "4K",
    }
}

impl<P: PageSource, T: TlbOps> fmt::Display for Stage2<P, T> {
    /// ```text
    /// stage 2 VMID 1, VTTBR 0x1000040002000, VTCR_EL2 0x80023558: 40-bit IPA, ..., 3 table pages
    ///   0x40000000-0xbfffffff -> 0x40000000 Normal-WB rwx  2 x 1G
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stage 2 VMID {}, VTTBR {:#x}, {}, {} table pages",
            self.vmid,
            self.vttbr(),
            self.cfg,
            self.table_pages()
        )?;
        for r in self.ranges() {
            writeln!(
                f,
                "  {:#012x}-{:#012x} -> {:#012x} {:<16} {} x {}",
                r.ipa.raw(),
                r.ipa.raw() + r.size - 1,
                r.pa.raw(),
                alloc::format!("{}", r.attrs),
                r.size / r.leaf_size,
                size_name(r.leaf_size)
            )?;
        }
        Ok(())
    }
}
