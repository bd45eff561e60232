//! LPIs as a redistributor sees them: GICR_PROPBASER and GICR_PENDBASER fields, the one-byte
//! configuration of each LPI in the property table, and a VM's pending LPIs.
//!
//! The property table (guest memory at PROPBASER.PA) holds one byte per LPI from INTID 8192:
//! bits 7:2 the priority, bit 0 the enable. A redistributor may cache it; software changes it and
//! then issues INV/INVALL (or writes GICR_INVLPIR), so el2visor rereads an LPI's byte when it
//! arrives and on those commands. An LPI that arrives while disabled stays pending and is
//! delivered when an INV finds it enabled.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// The first LPI INTID.
pub const FIRST_LPI: u32 = 8192;

/// Whether `intid` is an LPI.
pub fn is_lpi(intid: u32) -> bool {
    intid >= FIRST_LPI
}

/// GICR_PROPBASER: the property table's address and how many INTID bits it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropBase {
    /// Physical (for a guest: intermediate physical) address, 4 KiB aligned.
    pub pa: u64,
    /// INTID bits (IDbits + 1).
    pub id_bits: u8,
}

impl PropBase {
    /// Decode a PROPBASER value: IDbits in 4:0, PA in 51:12.
    pub fn decode(v: u64) -> Self {
        Self { pa: v & 0x000f_ffff_ffff_f000, id_bits: (v & 0x1f) as u8 + 1 }
    }

    /// One past the largest LPI the table covers, capped at `lpi_end` (what the GIC implements).
    pub fn end(&self, lpi_end: u32) -> u32 {
        let covered = if self.id_bits >= 32 { u32::MAX } else { 1u32 << self.id_bits };
        covered.min(lpi_end)
    }

    /// Where `intid`'s configuration byte is, if the table covers it.
    pub fn config_addr(&self, intid: u32, lpi_end: u32) -> Option<u64> {
        (is_lpi(intid) && intid < self.end(lpi_end)).then(|| self.pa + (intid - FIRST_LPI) as u64)
    }
}

/// GICR_PENDBASER's address (bits 51:16; 64 KiB aligned).
pub fn pendbase_pa(v: u64) -> u64 {
    v & 0x000f_ffff_ffff_0000
}

/// An LPI's configuration byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpiConfig(pub u8);

impl LpiConfig {
    pub fn enabled(self) -> bool {
        self.0 & 1 != 0
    }

    /// Its priority (bits 7:2; bits 1:0 read as zero).
    pub fn priority(self) -> u8 {
        self.0 & 0xfc
    }
}

/// A VM's LPIs that are pending and not yet handed to a vCPU: those that arrived while their
/// configuration had them disabled (or unreadable).
#[derive(Clone, Debug, Default)]
pub struct LpiPending(BTreeSet<u32>);

impl LpiPending {
    /// `vlpi` fired (a device's MSI or an INT command). Returns whether to deliver it now: yes
    /// when enabled; otherwise it is recorded pending.
    pub fn fire(&mut self, vlpi: u32, cfg: Option<LpiConfig>) -> bool {
        if cfg.is_some_and(LpiConfig::enabled) {
            self.0.remove(&vlpi);
            true
        } else {
            self.0.insert(vlpi);
            false
        }
    }

    /// `vlpi`'s configuration was reloaded (INV, INVALL, INVLPIR). Returns whether to deliver it
    /// now: it was pending and is enabled.
    pub fn reload(&mut self, vlpi: u32, cfg: Option<LpiConfig>) -> bool {
        cfg.is_some_and(LpiConfig::enabled) && self.0.remove(&vlpi)
    }

    /// `vlpi` is no longer pending (CLEAR, DISCARD, an unmapped event).
    pub fn clear(&mut self, vlpi: u32) {
        self.0.remove(&vlpi);
    }

    pub fn is_pending(&self, vlpi: u32) -> bool {
        self.0.contains(&vlpi)
    }

    /// Every pending LPI (for INVALLR, which reloads all of a redistributor's).
    pub fn all(&self) -> Vec<u32> {
        self.0.iter().copied().collect()
    }

    /// Forget everything (a VM reset).
    pub fn reset(&mut self) {
        self.0.clear();
    }
}
