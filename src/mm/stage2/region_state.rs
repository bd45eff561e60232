//! The data of a Stage-2 region (`region`): its bitmaps and flags. Separate so that the table
//! (`table`), which holds the regions, and `region`, which operates on the table, do not use
//! each other.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use super::memtype::S2Attrs;
use crate::mm::addr::PAGE_SIZE;

/// One bit per 4 KiB page of a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    bits: usize,
}

impl Bitmap {
    pub fn new(bits: usize) -> Self {
        Self { words: vec![0; bits.div_ceil(64)], bits }
    }
    /// [`Self::new`], or `None` when the heap cannot hold it (a bitmap is 32 KiB per GiB of guest
    /// RAM, and el2visor's heap is small and fixed: running out there is fatal).
    pub fn try_new(bits: usize) -> Option<Self> {
        let mut words = Vec::new();
        words.try_reserve_exact(bits.div_ceil(64)).ok()?;
        words.resize(bits.div_ceil(64), 0);
        Some(Self { words, bits })
    }
    pub fn len(&self) -> usize {
        self.bits
    }
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
    pub fn get(&self, i: usize) -> bool {
        i < self.bits && self.words[i / 64] >> (i % 64) & 1 != 0
    }
    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
    pub fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }
    /// Every bit set.
    pub fn fill(&mut self) {
        self.words.iter_mut().for_each(|w| *w = !0);
        if !self.bits.is_multiple_of(64) {
            if let Some(last) = self.words.last_mut() {
                *last = (1 << (self.bits % 64)) - 1;
            }
        }
    }
    pub fn clear_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The first set bit at `from` or after it. Walking a bitmap with it costs no memory, which
    /// collecting [`Self::ones`] does (8 bytes a set bit: 2 MiB, the whole EL2 heap, for a GiB).
    pub fn next_one(&self, from: usize) -> Option<usize> {
        let mut wi = from / 64;
        let mut w = *self.words.get(wi)? & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                let i = wi * 64 + w.trailing_zeros() as usize;
                return (i < self.bits).then_some(i);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }
    /// The indices of the set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// A region's index in its `Stage2` (regions are never removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionId(pub usize);

/// A linear piece of guest RAM with its flags and bitmaps.
#[derive(Clone, Debug)]
pub struct Region {
    pub ipa: u64,
    pub pa: u64,
    pub size: u64,
    pub attrs: S2Attrs,
    pub userfault: bool,
    pub log_dirty: bool,
    /// Held to pages: a flag is set, or was and the region has not been collapsed since.
    pub held: bool,
    pub missing: Bitmap,
    pub dirty: Bitmap,
}

impl Region {
    pub fn pages(&self) -> usize {
        (self.size / PAGE_SIZE) as usize
    }
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
    /// The page index of `ipa` (which must be inside).
    pub fn page_of(&self, ipa: u64) -> usize {
        ((ipa - self.ipa) / PAGE_SIZE) as usize
    }
    /// Whether page `i` is missing: userfault is on and its contents were not supplied yet.
    pub fn is_missing(&self, i: usize) -> bool {
        self.userfault && self.missing.get(i)
    }
    /// The IPA and PA of page `i`.
    pub fn page(&self, i: usize) -> (u64, u64) {
        let off = i as u64 * PAGE_SIZE;
        (self.ipa + off, self.pa + off)
    }
    /// Attributes of a mapped page of the region that is not yet dirty.
    pub(super) fn clean_attrs(&self) -> S2Attrs {
        if self.log_dirty {
            self.attrs.read_only()
        } else {
            self.attrs
        }
    }
}

