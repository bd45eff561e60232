//! The guest's own stage-1 translation, walked in software from the EL1 registers of a stopped
//! vCPU (TCR_EL1, TTBR0/1_EL1, SCTLR_EL1.M): VMSAv8-64 with 4, 16 or 64 KiB granules, top-byte
//! ignore, blocks, and FEAT_LPA2's 52-bit addresses (TCR_EL1.DS). Descriptors are read through
//! a callback that takes an IPA (the caller reads guest RAM through Stage 2 and fails anywhere
//! else), so a bad table is a failed walk, never a fault; a walk reads one descriptor per level
//! (at most 5), and a TxSZ outside the architecture's range fails it, as on QEMU. `pieces`
//! splits an access into the pages it translates one by one. Pure.

#![forbid(unsafe_code)]

/// The EL1 translation registers of a stopped vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stage1 {
    pub sctlr: u64,
    pub tcr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
}

const VALID: u64 = 1;
const TABLE: u64 = 2;

impl Stage1 {
    /// The IPA guest VA `va` translates to, or `None` where the walk faults.
    pub fn translate(&self, va: u64, mut read: impl FnMut(u64) -> Option<u64>) -> Option<u64> {
        if self.sctlr & 1 == 0 {
            // Stage 1 off: flat.
            return Some(va);
        }
        let tcr = self.tcr;
        let upper = (va >> 55) & 1 == 1;
        let (tsz, tg, epd, tbi, ttbr) = if upper {
            let g = match (tcr >> 30) & 3 {
                1 => 14,
                3 => 16,
                _ => 12,
            };
            ((tcr >> 16) & 0x3f, g, (tcr >> 23) & 1, (tcr >> 38) & 1, self.ttbr1)
        } else {
            let g = match (tcr >> 14) & 3 {
                1 => 16,
                2 => 14,
                _ => 12,
            };
            (tcr & 0x3f, g, (tcr >> 7) & 1, (tcr >> 37) & 1, self.ttbr0)
        };
        if epd == 1 {
            return None;
        }
        let ds = (tcr >> 59) & 1 == 1 && tg != 16;
        let max_in = if ds || tg == 16 { 52 } else { 48 };
        let input = (64 - input_tsz(tsz, tg, ds)?) as u32;
        // Every bit above the input size must equal bit 55 (up to bit 55 with top-byte ignore).
        let top = if tbi == 1 { 56 } else { 64 };
        let ext_bits = top - input;
        let ext = (va >> input) & ((1u64 << ext_bits) - 1);
        let want = if upper { (1u64 << ext_bits) - 1 } else { 0 };
        if ext != want {
            return None;
        }
        let g = tg as u32;
        let stride = g - 3;
        // 1 to 4 levels (5 with FEAT_LPA2's 4 KiB granule at 52 bits): `input_tsz` keeps the
        // input size above one granule.
        let levels = (input - g).div_ceil(stride);
        if !(1..=5).contains(&levels) {
            return None;
        }
        let first = 4 - levels as i32;
        let oa = |desc: u64, shift: u32| -> u64 {
            let hi = if ds {
                // FEAT_LPA2: OA[51:50] in descriptor bits 9:8.
                ((desc >> 8) & 3) << 50
            } else if g == 16 {
                // 64 KiB granule with FEAT_LPA: OA[51:48] in bits 15:12.
                ((desc >> 12) & 0xf) << 48
            } else {
                0
            };
            let mask = if ds { 0x0003_ffff_ffff_f000 } else { 0x0000_ffff_ffff_f000 };
            ((desc & mask) | hi) & !((1u64 << shift) - 1)
        };
        let mut table = if ds {
            (ttbr & 0x0000_ffff_ffff_ffc0) | (((ttbr >> 2) & 0xf) << 48)
        } else {
            ttbr & 0x0000_ffff_ffff_fffe
        };
        // One descriptor per level, whatever the tables hold (a table pointing at itself too).
        for level in first..=3 {
            let shift = g + stride * (3 - level) as u32;
            let bits = if level == first { input - shift } else { stride };
            let index = (va >> shift) & ((1u64 << bits) - 1);
            if level == first {
                // The first table is aligned to its own (possibly smaller) size.
                table &= !((8u64 << bits) - 1);
            }
            let desc = read(table + index * 8)?;
            if desc & VALID == 0 {
                return None;
            }
            if level == 3 {
                if desc & TABLE == 0 {
                    return None;
                }
                return Some(oa(desc, g) | (va & ((1u64 << g) - 1)));
            }
            if desc & TABLE == 0 {
                // A block: allowed at level 1 (4 KiB granule, or any with 52-bit addresses) and 2.
                let ok = level == 2 || (level == 1 && (g == 12 || ds || g == 16 && max_in == 52));
                if !ok {
                    return None;
                }
                return Some(oa(desc, shift) | (va & ((1u64 << shift) - 1)));
            }
            table = oa(desc, g);
        }
        None
    }
}

/// Split `[va, va + len)` at 4 KiB boundaries (no translation granule is smaller) into
/// (address, offset in the range, length). The pieces end at the top of the address space: an
/// access does not wrap around to address 0, so a range that would yields fewer bytes.
pub fn pieces(va: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
    let mut done = 0usize;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let a = va.checked_add(done as u64)?;
        let n = ((0x1000 - (a & 0xfff)) as usize).min(len - done);
        let item = (a, done, n);
        done += n;
        Some(item)
    })
}

/// The TxSZ a walk uses, or `None` (a level 0 translation fault) when the guest programmed one
/// outside the architecture's range for granule `2^tg` bytes: at most 48 (47 with 64 KiB
/// granules; FEAT_TTST, the widest any CPU allows), at least 16 (12 for 52-bit input
/// addresses: FEAT_LVA with 64 KiB granules, FEAT_LPA2 with `ds`). Out of range, the Arm ARM
/// lets a CPU either behave as if the field held the nearest limit or fault; QEMU faults, and
/// so does this walk.
fn input_tsz(tsz: u64, tg: u64, ds: bool) -> Option<u64> {
    let max = if tg == 16 { 47 } else { 48 };
    let min = if tg == 16 || ds { 12 } else { 16 };
    (min..=max).contains(&tsz).then_some(tsz)
}

/// The host address of guest-physical `ipa` when the `len` bytes from it are all in one region
/// of `ram` (IPA, host address, size) and none in `hidden` (IPA, size: RAM Stage 2 leaves out,
/// firmware's `/memreserve/` ranges and spin tables, which the debugger does not touch either).
pub fn ram_at(ram: impl IntoIterator<Item = (u64, u64, u64)>, hidden: &[(u64, u64)], ipa: u64, len: u64) -> Option<u64> {
    let end = ipa.checked_add(len)?;
    if hidden.iter().any(|&(h, n)| h < end && ipa < h.saturating_add(n)) {
        return None;
    }
    ram.into_iter().find_map(|(at, pa, size)| {
        let off = ipa.checked_sub(at)?;
        (off < size && size - off >= len).then(|| pa + off)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Guest memory as a map of doublewords.
    struct Mem(BTreeMap<u64, u64>);

    impl Mem {
        fn read(&self, a: u64) -> Option<u64> {
            self.0.get(&a).copied()
        }
    }

    /// Linux's usual set-up: 4 KiB granule, 48-bit VAs both halves, TBI1.
    const TCR_4K_48: u64 = 16 | (16 << 16) | (2 << 30) | (1 << 38);

    #[test]
    fn off_is_flat() {
        let s = Stage1 { sctlr: 0, ..Default::default() };
        assert_eq!(s.translate(0x4008_0000, |_| None), Some(0x4008_0000));
    }

    #[test]
    fn four_level_4k_page_and_blocks() {
        let va: u64 = 0xffff_8000_1234_5678;
        let l0 = 0x4100_0000u64;
        let (l1, l2, l3) = (0x4100_1000u64, 0x4100_2000u64, 0x4100_3000u64);
        let idx = |lvl: u32| (va >> (12 + 9 * (3 - lvl))) & 0x1ff;
        let mut m = BTreeMap::new();
        m.insert(l0 + idx(0) * 8, l1 | 3);
        m.insert(l1 + idx(1) * 8, l2 | 3);
        m.insert(l2 + idx(2) * 8, l3 | 3);
        m.insert(l3 + idx(3) * 8, 0x4800_0000 | 0x403);
        let mem = Mem(m);
        let s = Stage1 { sctlr: 1, tcr: TCR_4K_48, ttbr0: 0, ttbr1: l0 | 1 };
        assert_eq!(s.translate(va, |a| mem.read(a)), Some(0x4800_0678));
        // Tagged pointer (TBI1): the same.
        let tagged = (va & !(0xffu64 << 56)) | (0x5au64 << 56);
        assert_eq!(s.translate(tagged, |a| mem.read(a)), Some(0x4800_0678));
        // A 2 MiB block at level 2.
        let mut m = mem.0.clone();
        m.insert(l2 + idx(2) * 8, 0x4880_0000 | 0x401);
        let mem2 = Mem(m);
        assert_eq!(s.translate(va, |a| mem2.read(a)), Some(0x4880_0000 | (va & 0x1f_ffff)));
        // Unmapped: an invalid descriptor, a missing table, the other half's TTBR.
        assert_eq!(s.translate(va + 0x1000, |a| mem.read(a)), None);
        assert_eq!(s.translate(0x0000_0000_1234_5678, |a| mem.read(a)), None);
        // Not canonical for either half.
        assert_eq!(s.translate(0x0010_8000_0000_0000, |a| mem.read(a)), None);
        // EPD1 set: no walk at all.
        let off = Stage1 { tcr: TCR_4K_48 | (1 << 23), ..s };
        assert_eq!(off.translate(va, |a| mem.read(a)), None);
    }

    #[test]
    fn three_level_39_bit_and_bad_level3() {
        // T0SZ = 25: 39-bit, starting at level 1 with 512 entries.
        let tcr = 25;
        let va: u64 = 0x40_2000;
        let (l1, l2, l3) = (0x8000_0000u64, 0x8000_1000u64, 0x8000_2000u64);
        let mut m = BTreeMap::new();
        m.insert(l1, l2 | 3);
        m.insert(l2 + 2 * 8, l3 | 3);
        m.insert(l3 + 2 * 8, 0x9000_0000 | 3);
        let mem = Mem(m);
        let s = Stage1 { sctlr: 1, tcr, ttbr0: l1, ttbr1: 0 };
        assert_eq!(s.translate(va + 8, |a| mem.read(a)), Some(0x9000_0008));
        // A level-3 entry with bit 1 clear is reserved: a fault.
        let mut m = mem.0.clone();
        m.insert(l3 + 2 * 8, 0x9000_0000 | 1);
        assert_eq!(s.translate(va, |a| m.get(&a).copied()), None);
        // A level-1 block in a 4 KiB granule maps 1 GiB.
        let mut m = BTreeMap::new();
        m.insert(l1, 0xc000_0000 | 1);
        assert_eq!(s.translate(0x1234_5678, |a| m.get(&a).copied()), Some(0xd234_5678));
    }

    #[test]
    fn sixty_four_k_granule() {
        // TG0 = 64 KiB, T0SZ = 22 (42-bit): levels 2 and 3, 8192 entries each.
        let tcr = 22 | (1 << 14);
        let va: u64 = (5 << 29) | (7 << 16) | 0x123;
        let (l2, l3) = (0x8000_0000u64, 0x8001_0000u64);
        let mut m = BTreeMap::new();
        m.insert(l2 + 5 * 8, l3 | 3);
        m.insert(l3 + 7 * 8, 0x9000_0000 | 3);
        let s = Stage1 { sctlr: 1, tcr, ttbr0: l2, ttbr1: 0 };
        assert_eq!(s.translate(va, |a| m.get(&a).copied()), Some(0x9000_0123));
    }

    #[test]
    fn pieces_split_at_pages_and_stop_at_the_top() {
        let all = |va, len| pieces(va, len).collect::<alloc::vec::Vec<_>>();
        assert_eq!(all(0x1ff0, 0x1020), [(0x1ff0, 0, 0x10), (0x2000, 0x10, 0x1000), (0x3000, 0x1010, 0x10)]);
        assert_eq!(all(0x1000, 0), []);
        // `m ffffffffffffff00,200`: the last 0x100 bytes, not the first 0x100 of address 0 too.
        assert_eq!(all(0xffff_ffff_ffff_ff00, 0x200), [(0xffff_ffff_ffff_ff00, 0, 0x100)]);
        assert_eq!(all(u64::MAX, 2), [(u64::MAX, 0, 1)]);
        assert_eq!(all(0xffff_ffff_ffff_f000, 0x1000), [(0xffff_ffff_ffff_f000, 0, 0x1000)]);
    }

    /// A walk that reads `desc` everywhere: what it returns and how many descriptors it read.
    fn count_reads(s: &Stage1, va: u64, desc: u64) -> (Option<u64>, usize) {
        let mut reads = 0;
        let r = s.translate(va, |_| {
            reads += 1;
            Some(desc)
        });
        (r, reads)
    }

    #[test]
    fn txsz_out_of_range_faults_and_walks_are_bounded() {
        const T: u64 = 0x8000_0000;
        // 64 KiB granule, T0SZ = 48 (above its maximum of 47): no translation, no walk. It used
        // to start at level 4 and follow a self-pointing table for ever.
        let s = Stage1 { sctlr: 1, tcr: 48 | (1 << 14), ttbr0: T, ttbr1: 0 };
        assert_eq!(count_reads(&s, 0x1000, T | 3), (None, 0));
        // Its maximum, 47: one level of 2 entries.
        let s = Stage1 { tcr: 47 | (1 << 14), ..s };
        assert_eq!(count_reads(&s, 0x1_2345, T | 3), (Some(T | 0x2345), 1));
        // 4 KiB: 48 is the maximum (one level), 49 and 63 are out of range, and so is 15
        // without FEAT_LPA2.
        for (tsz, want) in [(48, (Some(T | 0x345), 1)), (49, (None, 0)), (63, (None, 0)), (15, (None, 0))] {
            let s = Stage1 { tcr: tsz, ..s };
            assert_eq!(count_reads(&s, 0x345, T | 3), want, "T0SZ {tsz}");
        }
        // A table that points at itself: one read per level, four at most with 48 bits…
        let s = Stage1 { tcr: 16, ..s };
        assert_eq!(count_reads(&s, 0x1234, T | 3), (Some(T | 0x234), 4));
        assert_eq!(count_reads(&s, 0x1234, T | 1), (None, 1), "a level-0 block");
        // …and five with FEAT_LPA2's 52-bit 4 KiB walk (DS, T0SZ = 12).
        let s = Stage1 { tcr: 12 | (1 << 59), ..s };
        assert_eq!(count_reads(&s, 0x1234, T | 3), (Some(T | 0x234), 5));
    }

    #[test]
    fn ram_at_leaves_out_what_stage_2_does() {
        // RAM at IPA 0x4000_0000 (host 0x8000_0000), 1 MiB, with a spin-table page hidden.
        let ram = [(0x4000_0000, 0x8000_0000, 0x10_0000)];
        let hidden = [(0x4000_1000, 0x1000)];
        assert_eq!(ram_at(ram, &hidden, 0x4000_0ff8, 8), Some(0x8000_0ff8));
        assert_eq!(ram_at(ram, &hidden, 0x4000_2000, 4), Some(0x8000_2000));
        assert_eq!(ram_at(ram, &hidden, 0x4000_1000, 4), None, "hidden");
        assert_eq!(ram_at(ram, &hidden, 0x4000_1ffc, 4), None, "its last word");
        assert_eq!(ram_at(ram, &hidden, 0x4000_0ffc, 8), None, "a range into it");
        assert_eq!(ram_at(ram, &hidden, 0x400f_fffc, 8), None, "past the RAM's end");
        assert_eq!(ram_at(ram, &hidden, 0x3fff_fffc, 4), None, "below it");
        assert_eq!(ram_at(ram, &hidden, u64::MAX - 3, 8), None);
    }
}
