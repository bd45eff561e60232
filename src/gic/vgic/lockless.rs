//! The distributor registers a guest may read without the VM's distributor lock (issue 15): the
//! words at offsets 0x0..0x10 (GICD_CTLR, GICD_TYPER, GICD_IIDR, and on GICv3 GICD_TYPER2) and the
//! CoreSight identification registers at the top of the frame. Their values change only when the
//! distributor does (a GICD_CTLR write, the VM's LPIs, a reset or a restore), so the runtime keeps
//! a copy of the four words ([`VDist::lockless_words`]) that it refreshes under the lock after
//! each such change, and [`read`] answers from that copy alone: the same value
//! [`VDist::mmio_read`] gives, which the host tests check for every offset. Everything else (an
//! odd size, a reserved word, every register with per-interrupt state) is `None`: the caller takes
//! the lock and the model's full decode.

use super::dist::VDist;
use super::redist::{id_register, IIDR};
use crate::gic::GicVersion;

/// GICD_CTLR bits a GICv3 distributor always shows: ARE (affinity routing) and DS (one security
/// state), as `VDist::v3_read` does.
const V3_CTLR_FIXED: u32 = 1 << 4 | 1 << 6;

impl VDist {
    /// The four words at distributor offsets 0x0, 0x4, 0x8 and 0xc as a guest reads them (the
    /// last is GICD_TYPER2 on GICv3, reserved on GICv2 and never answered from the copy).
    pub fn lockless_words(&self) -> [u32; 4] {
        match self.version {
            GicVersion::V2 => [self.ctlr, self.v2_typer(), IIDR, 0],
            GicVersion::V3 => [self.ctlr | V3_CTLR_FIXED, self.v3_typer(), IIDR, 0],
        }
    }
}

/// A guest's `size`-byte read at distributor `offset`, answered from word `i` of a copy of
/// [`VDist::lockless_words`] (`word(i)`, called at most once) where the register is one of
/// those, else `None`.
#[inline(always)]
pub fn read(version: GicVersion, offset: u64, size: u8, word: impl FnOnce(usize) -> u32) -> Option<u64> {
    if size != 4 || !offset.is_multiple_of(4) {
        return None;
    }
    let word = |i: u64| Some(word(i as usize) as u64);
    match (version, offset) {
        (GicVersion::V2, 0x0..=0x8) => word(offset / 4),
        (GicVersion::V3, 0x0..=0xc) => word(offset / 4),
        // GICD_STATUSR: no errors to report.
        (GicVersion::V3, 0x10) => Some(0),
        (GicVersion::V2, 0xfd0..=0xffc) => Some(id_register(offset, 2) as u64),
        (GicVersion::V3, 0xffd0..=0xfffc) => Some(id_register(offset - 0xf000, 3) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::vgic::{VcpuPlacement, VgicConfig};
    use alloc::vec;

    fn dist(version: GicVersion, vcpus: usize, spis: alloc::vec::Vec<u32>) -> VDist {
        VDist::new(&VgicConfig {
            version,
            vcpus: (0..vcpus).map(|i| VcpuPlacement { mpidr: 0x8000_0000 | i as u64, pcpu: i }).collect(),
            hw_ppis: vec![27],
            hw_spis: spis,
        })
        .unwrap()
    }

    /// Every read the copy answers is the model's answer, without a warning, for both versions,
    /// several shapes, each GICD_CTLR value and with LPIs; and the copy answers the registers
    /// a guest polls (GICD_CTLR, GICD_TYPER, PIDR2).
    #[test]
    fn agrees_with_the_model_everywhere() {
        let mut answered = 0;
        for version in [GicVersion::V2, GicVersion::V3] {
            for (vcpus, spis) in [(1, vec![]), (2, vec![40]), (4, vec![33, 100, 200])] {
                for (ctlr, lpis) in [(0u64, 0u8), (1, 0), (2, 0), (3, 16)] {
                    let mut d = dist(version, vcpus, spis.clone());
                    d.mmio_write(0, 0, 4, ctlr).unwrap();
                    if lpis > 0 && version == GicVersion::V3 {
                        d.enable_lpis(lpis);
                    }
                    let words = d.lockless_words();
                    let top = if version == GicVersion::V2 { 0x1000 } else { 0x1_0000 };
                    for offset in 0..top {
                        for size in [1u8, 2, 4, 8] {
                            let Some(v) = read(version, offset, size, |i| words[i]) else { continue };
                            answered += 1;
                            assert_eq!(d.mmio_read(vcpus - 1, offset, size), Ok(v), "{version:?} offset {offset:#x} size {size}");
                            assert_eq!(d.take_warning(), None, "{version:?} offset {offset:#x}");
                        }
                    }
                    for offset in [0u64, 4] {
                        assert!(read(version, offset, 4, |i| words[i]).is_some());
                    }
                    let pidr2 = if version == GicVersion::V2 { 0xfe8 } else { 0xffe8 };
                    assert!(read(version, pidr2, 4, |i| words[i]).is_some());
                }
            }
        }
        assert!(answered > 0);
    }

    /// GICv2's word at 0xc is reserved (the model warns): never answered from the copy.
    #[test]
    fn reserved_words_take_the_model() {
        let d = dist(GicVersion::V2, 2, vec![]);
        assert_eq!(read(GicVersion::V2, 0xc, 4, |i| d.lockless_words()[i]), None);
        assert_eq!(read(GicVersion::V2, 0x100, 4, |i| d.lockless_words()[i]), None);
        assert_eq!(read(GicVersion::V3, 0x4, 8, |i| d.lockless_words()[i]), None);
    }
}
