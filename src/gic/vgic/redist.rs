//! One vCPU's private interrupt state and, for GICv3, its redistributor's RD_base frame.

use super::types::{IrqState, VgicError, VgicWarning};
use crate::gic::{packed_affinity, NR_SGIS};

/// Value of GICD_IIDR / GICR_IIDR: implementer Arm (0x43b), product 0, revision 0.
pub(crate) const IIDR: u32 = 0x0000_043b;

/// GICR_WAKER.ProcessorSleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER.Last.
const TYPER_LAST: u64 = 1 << 4;
/// GICR_TYPER.PLPIS: physical LPIs supported.
const TYPER_PLPIS: u64 = 1;
/// GICR_CTLR.EnableLPIs.
const CTLR_ENABLE_LPIS: u32 = 1;
/// GICR_PROPBASER's fields: OuterCache 58:56, PA 51:12, Shareability 11:10, InnerCache 9:7,
/// IDbits 4:0.
const PROPBASER_MASK: u64 = 0x7 << 56 | 0x000f_ffff_ffff_f000 | 0xf9f;
/// GICR_PENDBASER's fields (PTZ, bit 62, reads as zero): OuterCache, PA 51:16, Shareability,
/// InnerCache.
const PENDBASER_MASK: u64 = 0x7 << 56 | 0x000f_ffff_ffff_0000 | 0xf80;

/// A vCPU's banked interrupts (SGIs and PPIs) and its GICv3 redistributor registers.
#[derive(Clone, Debug)]
pub struct VRedist {
    /// vCPU index (GICR_TYPER.Processor_Number).
    index: usize,
    /// Guest-visible MPIDR of the vCPU.
    mpidr: u64,
    /// This is the last redistributor of the VM (GICR_TYPER.Last).
    last: bool,
    /// GICR_WAKER.ProcessorSleep; ChildrenAsleep follows it at once.
    processor_sleep: bool,
    /// INTIDs 0..32 as this vCPU sees them.
    pub(crate) private: [IrqState; 32],
    /// GICv2 only: per SGI, the source vCPUs whose SGI the distributor holds pending.
    pub(crate) sgi_sources: [u8; NR_SGIS as usize],
    /// The VM has a virtual ITS: GICR_TYPER.PLPIS, and the LPI registers below work.
    pub(crate) lpis: bool,
    /// GICR_CTLR.EnableLPIs.
    enable_lpis: bool,
    propbaser: u64,
    pendbaser: u64,
}

impl VRedist {
    pub(crate) fn new(index: usize, mpidr: u64, last: bool, hw_ppis: &[u32]) -> Self {
        let mut private = [IrqState::default(); 32];
        for (intid, st) in private.iter_mut().enumerate() {
            let intid = intid as u32;
            st.edge = intid < NR_SGIS;
            st.owned = intid < NR_SGIS || hw_ppis.contains(&intid);
            st.hw = intid >= NR_SGIS && st.owned;
            st.targets = 1 << (index % 8);
        }
        Self {
            index,
            mpidr,
            last,
            processor_sleep: true,
            private,
            sgi_sources: [0; NR_SGIS as usize],
            lpis: false,
            enable_lpis: false,
            propbaser: 0,
            pendbaser: 0,
        }
    }

    /// The vCPU this redistributor serves.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The vCPU's guest-visible MPIDR.
    pub fn mpidr(&self) -> u64 {
        self.mpidr
    }

    /// Whether the guest has woken this redistributor (GICR_WAKER.ProcessorSleep clear).
    pub fn awake(&self) -> bool {
        !self.processor_sleep
    }

    /// GICR_TYPER: affinity in 63:32, Processor_Number in 23:8, Last in 4.
    pub fn typer(&self) -> u64 {
        let mut v = (packed_affinity(self.mpidr) as u64) << 32 | ((self.index as u64) & 0xffff) << 8;
        if self.last {
            v |= TYPER_LAST;
        }
        if self.lpis {
            v |= TYPER_PLPIS;
        }
        v
    }

    /// GICR_PROPBASER, once the guest has enabled LPIs on this redistributor.
    pub fn lpi_propbaser(&self) -> Option<u64> {
        (self.lpis && self.enable_lpis).then_some(self.propbaser)
    }

    fn waker(&self) -> u32 {
        if self.processor_sleep {
            WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
        } else {
            0
        }
    }

    /// Read from the RD_base frame (offset below 64 KiB). Returns the value and, for a
    /// reserved offset, a warning.
    pub fn rd_read(&self, offset: u64, size: u8) -> Result<(u64, Option<VgicWarning>), VgicError> {
        let reg64 = |v: u64| {
            check(offset, size, &[4, 8])?;
            let v = v >> ((offset % 8) * 8);
            Ok((if size == 4 { v & 0xffff_ffff } else { v }, None))
        };
        match offset {
            0x0008..=0x000f => reg64(self.typer()),
            0x0070..=0x0077 if self.lpis => reg64(self.propbaser),
            0x0078..=0x007f if self.lpis => reg64(self.pendbaser),
            _ => {
                check(offset, size, &[4])?;
                let v = match offset {
                    // CTLR: writes complete at once (RWP 0)
                    0x0000 => (self.lpis && self.enable_lpis) as u64 * CTLR_ENABLE_LPIS as u64,
                    0x0004 => IIDR as u64,
                    0x0010 => 0, // STATUSR
                    0x0014 => self.waker() as u64,
                    0x0070..=0x007f => 0, // PROPBASER/PENDBASER: no LPIs
                    0xffd0..=0xfffc => id_register(offset - 0xf000, 3) as u64,
                    _ => return Ok((0, Some(reserved("GICR RD_base", offset, false)))),
                };
                Ok((v, None))
            }
        }
    }

    /// Write to the RD_base frame; returns a warning when the write meant nothing.
    pub fn rd_write(&mut self, offset: u64, size: u8, value: u64) -> Result<Option<VgicWarning>, VgicError> {
        if (0x0008..=0x000f).contains(&offset) {
            check(offset, size, &[4, 8])?;
            return Ok(Some(VgicWarning::ReadOnly { frame: "GICR RD_base", offset }));
        }
        if self.lpis && (0x0070..=0x007f).contains(&offset) {
            check(offset, size, &[4, 8])?;
            // The tables are fixed while LPIs are enabled (writes then are UNPREDICTABLE).
            if !self.enable_lpis {
                let (reg, mask) = if offset < 0x78 {
                    (&mut self.propbaser, PROPBASER_MASK)
                } else {
                    (&mut self.pendbaser, PENDBASER_MASK)
                };
                let v = match size {
                    8 => value,
                    _ => {
                        let sh = (offset % 8) * 8;
                        *reg & !(0xffff_ffff << sh) | (value & 0xffff_ffff) << sh
                    }
                };
                *reg = v & mask;
            }
            return Ok(None);
        }
        check(offset, size, &[4])?;
        match offset {
            0x0000 => {
                if self.lpis {
                    self.enable_lpis = value as u32 & CTLR_ENABLE_LPIS != 0;
                }
                Ok(None)
            }
            0x0010 | 0x0070..=0x007f => Ok(None),
            0x0014 => {
                self.processor_sleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
                Ok(None)
            }
            0x0004 | 0xffd0..=0xfffc => Ok(Some(VgicWarning::ReadOnly { frame: "GICR RD_base", offset })),
            _ => Ok(Some(reserved("GICR RD_base", offset, true))),
        }
    }
}

/// A warning for a reserved offset.
pub(crate) fn reserved(frame: &'static str, offset: u64, write: bool) -> VgicWarning {
    VgicWarning::Reserved { frame, offset, write }
}

/// Check an access: a size of 1, 2, 4 or 8 bytes, naturally aligned, and one of `allowed`.
pub(crate) fn check(offset: u64, size: u8, allowed: &[u8]) -> Result<(), VgicError> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(VgicError::BadSize { offset, size });
    }
    if !offset.is_multiple_of(size as u64) {
        return Err(VgicError::Unaligned { offset, size });
    }
    if !allowed.contains(&size) {
        return Err(VgicError::BadSize { offset, size });
    }
    Ok(())
}

/// The CoreSight identification registers at the top of a GIC frame, `offset` relative to the
/// 4 KiB page (0xfd0..=0xffc): PIDR2 carries the architecture revision, the component IDs the
/// standard preamble; everything else reads as zero.
pub(crate) fn id_register(offset: u64, arch_rev: u32) -> u32 {
    match offset {
        0xfd0 => 0x04, // PIDR4: 4 KiB count, JEP106 continuation 4 (Arm)
        0xfe0 => 0x92, // PIDR0
        0xfe4 => 0xb4, // PIDR1: JEP106 Arm
        0xfe8 => arch_rev << 4 | 0xb, // PIDR2: ArchRev, JEDEC, JEP106 Arm
        0xff0 => 0x0d,
        0xff4 => 0xf0,
        0xff8 => 0x05,
        0xffc => 0xb1,
        _ => 0,
    }
}
