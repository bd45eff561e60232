//! GICv3 distributor and redistributor register decoding.
//!
//! The VM sees a single-security-state GIC (GICD_CTLR.DS = 1) with affinity routing always on
//! (ARE reads as one, as KVM does): SPIs are routed through IROUTER, and the banked SGIs and
//! PPIs live in each vCPU's redistributor, whose frames are 128 KiB (RD_base, then SGI_base).

use alloc::vec;
use alloc::vec::Vec;

use super::dist::{Bitmap, VDist};
use super::live::{LiveState, ModelOnly};
use super::redist::{check, id_register, reserved, IIDR};
use super::types::{VgicAction, VgicError, VgicWarning};
use crate::gic::{FIRST_SPI, MAX_SPI_END};

const FRAME: &str = "GICD";
const SGI_FRAME: &str = "GICR SGI_base";
/// GICD_CTLR.ARE (affinity routing), always on.
const CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR.DS (single security state), always on.
const CTLR_DS: u32 = 1 << 6;
/// Size of one GICv3 redistributor (RD_base + SGI_base).
pub const REDIST_FRAME_SIZE: u64 = 0x2_0000;
const SGI_BASE: u64 = 0x1_0000;
const IROUTER: u64 = 0x6000;
/// IROUTER bits kept: Aff3 (39:32) and Aff2..Aff0 (23:0); IRM is unsupported (TYPER.No1N).
const IROUTER_MASK: u64 = 0xff_00ff_ffff;

type ReadResult = Result<(u64, Option<VgicWarning>), VgicError>;

/// Where `offset` from the base of a VM's redistributors falls when they are `stride` apart (the
/// guest DT's `redistributor-stride`, at least [`REDIST_FRAME_SIZE`]): the redistributor's index
/// and the offset within its RD_base + SGI_base frames, or `None` in the padding after them.
pub fn redist_frame(offset: u64, stride: u64) -> (usize, Option<u64>) {
    let stride = stride.max(REDIST_FRAME_SIZE);
    let within = offset % stride;
    ((offset / stride) as usize, (within < REDIST_FRAME_SIZE).then_some(within))
}

impl VDist {
    /// GICD_TYPER: ITLinesNumber, CPUNumber, IDbits = 9 (10-bit INTIDs), No1N; with LPIs, LPIS
    /// (bit 17) and IDbits covering them.
    pub(super) fn v3_typer(&self) -> u32 {
        let id_bits = if self.lpi_bits > 0 { self.lpi_bits as u32 - 1 } else { 9 };
        (self.nr_lines() / 32 - 1)
            | ((self.vcpus.len().min(8) as u32 - 1) << 5)
            | ((self.lpi_bits > 0) as u32) << 17
            | (id_bits << 19)
            | (1 << 25)
    }

    /// Give the VM LPIs of `id_bits` INTID bits (a virtual ITS delivers them): GICD_TYPER.LPIS
    /// and each redistributor's GICR_TYPER.PLPIS, EnableLPIs, PROPBASER and PENDBASER.
    pub fn enable_lpis(&mut self, id_bits: u8) {
        self.lpi_bits = id_bits;
        for r in &mut self.cpus {
            r.lpis = true;
        }
    }

    /// One past the largest LPI INTID the VM has (0 without LPIs).
    pub fn lpi_end(&self) -> u32 {
        if self.lpi_bits == 0 { 0 } else { 1 << self.lpi_bits }
    }

    pub(crate) fn v3_read(&mut self, _vcpu: usize, offset: u64, size: u8, live: &dyn LiveState) -> ReadResult {
        if (IROUTER..IROUTER + 8 * MAX_SPI_END as u64).contains(&offset) {
            check(offset, size, &[4, 8])?;
            let intid = ((offset - IROUTER) / 8) as u32;
            if intid < FIRST_SPI {
                return Ok((0, Some(reserved(FRAME, offset, false))));
            }
            let route = self.irq(0, intid).filter(|st| st.owned).map_or(0, |st| st.route);
            let v = match (size, offset % 8) {
                (8, _) => route,
                (_, 0) => route & 0xffff_ffff,
                _ => route >> 32,
            };
            return Ok((v, None));
        }
        let value = match offset {
            0x0000..=0x001f => {
                check(offset, size, &[4])?;
                match offset {
                    0x0000 => self.ctlr | CTLR_ARE | CTLR_DS,
                    0x0004 => self.v3_typer(),
                    0x0008 => IIDR,
                    0x000c | 0x0010 => 0, // TYPER2, STATUSR
                    _ => return Ok((0, Some(reserved(FRAME, offset, false)))),
                }
            }
            0x0080..=0x03ff => {
                check(offset, size, &[4])?;
                match Bitmap::decode(offset).expect("0x80..0x400 is all bitmaps") {
                    (_, 0) => 0, // SGIs and PPIs live in the redistributors
                    (kind, first) => self.bitmap_read(kind, 0, first, live),
                }
            }
            0x0400..=0x07ff => {
                check(offset, size, &[1, 4])?;
                let first = (offset - 0x400) as u32;
                if first < FIRST_SPI {
                    0
                } else {
                    return Ok((self.priority_read(0, first, size), None));
                }
            }
            // ITARGETSR is RES0 with affinity routing; IGRPMODR and NSACR are not implemented.
            0x0800..=0x0bff | 0x0d00..=0x0eff => {
                check(offset, size, &[1, 4])?;
                0
            }
            0x0c00..=0x0cff => {
                check(offset, size, &[4])?;
                let first = ((offset - 0xc00) / 4 * 16) as u32;
                if first < FIRST_SPI {
                    0
                } else {
                    self.icfgr_read(0, first)
                }
            }
            0xffd0..=0xfffc => {
                check(offset, size, &[4])?;
                id_register(offset - 0xf000, 3)
            }
            _ => {
                check(offset, size, &[1, 2, 4, 8])?;
                return Ok((0, Some(reserved(FRAME, offset, false))));
            }
        };
        Ok((value as u64, None))
    }

    pub(crate) fn v3_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Vec<VgicAction>, VgicError> {
        if (IROUTER..IROUTER + 8 * MAX_SPI_END as u64).contains(&offset) {
            check(offset, size, &[4, 8])?;
            let intid = ((offset - IROUTER) / 8) as u32;
            if intid < FIRST_SPI {
                return Ok(vec![VgicAction::Warn(reserved(FRAME, offset, true))]);
            }
            let before = self.target_vcpu(0, intid);
            match self.irq_mut(0, intid) {
                Some(st) if st.owned => {
                    let merged = match (size, offset % 8) {
                        (8, _) => value,
                        (_, 0) => (st.route & !0xffff_ffff) | (value & 0xffff_ffff),
                        _ => (st.route & 0xffff_ffff) | (value << 32),
                    };
                    st.route = merged & IROUTER_MASK;
                }
                _ => return Ok(Vec::new()),
            }
            let mut out = Vec::new();
            self.retarget(intid, before, vcpu, &mut out);
            return Ok(out);
        }
        let read_only = || Ok(vec![VgicAction::Warn(VgicWarning::ReadOnly { frame: FRAME, offset })]);
        match offset {
            0x0000..=0x001f => {
                check(offset, size, &[4])?;
                match offset {
                    0x0000 => {
                        self.ctlr = value as u32 & 3;
                        let mut out = Vec::new();
                        self.release(vcpu, &mut out);
                        Ok(out)
                    }
                    0x0004 | 0x0008 | 0x000c => read_only(),
                    0x0010 => Ok(Vec::new()),
                    _ => Ok(vec![VgicAction::Warn(reserved(FRAME, offset, true))]),
                }
            }
            0x0080..=0x03ff => {
                check(offset, size, &[4])?;
                match Bitmap::decode(offset).expect("0x80..0x400 is all bitmaps") {
                    (_, 0) => Ok(Vec::new()),
                    (kind, first) => Ok(self.bitmap_write(kind, 0, first, value as u32, vcpu)),
                }
            }
            0x0400..=0x07ff => {
                check(offset, size, &[1, 4])?;
                let first = (offset - 0x400) as u32;
                if first < FIRST_SPI {
                    Ok(Vec::new())
                } else {
                    Ok(self.priority_write(0, first, size, value))
                }
            }
            0x0800..=0x0bff | 0x0d00..=0x0eff => {
                check(offset, size, &[1, 4])?;
                Ok(Vec::new())
            }
            0x0c00..=0x0cff => {
                check(offset, size, &[4])?;
                let first = ((offset - 0xc00) / 4 * 16) as u32;
                if first < FIRST_SPI {
                    Ok(Vec::new())
                } else {
                    Ok(self.icfgr_write(0, first, value as u32))
                }
            }
            0xffd0..=0xfffc => {
                check(offset, size, &[4])?;
                read_only()
            }
            _ => {
                check(offset, size, &[1, 2, 4, 8])?;
                Ok(vec![VgicAction::Warn(reserved(FRAME, offset, true))])
            }
        }
    }

    fn check_redist(&self, index: usize) -> Result<(), VgicError> {
        if index < self.cpus.len() {
            Ok(())
        } else {
            Err(VgicError::NoSuchRedist { index, count: self.cpus.len() })
        }
    }

    /// A guest read of redistributor `index` (the vCPU it serves) at `offset` within its
    /// 128 KiB frame. Reserved offsets read as zero and leave a warning for `take_warning`.
    pub fn redist_read(&mut self, index: usize, offset: u64, size: u8) -> Result<u64, VgicError> {
        self.redist_read_live(index, offset, size, &ModelOnly)
    }

    /// [`redist_read`](Self::redist_read) with the runtime's `live` state of the interrupts.
    pub fn redist_read_live(&mut self, index: usize, offset: u64, size: u8, live: &dyn LiveState) -> Result<u64, VgicError> {
        self.check_redist(index)?;
        let (value, warning) = if offset < SGI_BASE {
            self.cpus[index].rd_read(offset, size)?
        } else {
            self.sgi_frame_read(index, offset - SGI_BASE, size, live)?
        };
        if warning.is_some() {
            self.warning = warning;
        }
        Ok(value)
    }

    /// A guest write by vCPU `writer` to redistributor `index` at `offset` within its frame.
    pub fn redist_write(
        &mut self,
        writer: usize,
        index: usize,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Vec<VgicAction>, VgicError> {
        self.check_vcpu(writer)?;
        self.check_redist(index)?;
        self.retractions.clear();
        if offset < SGI_BASE {
            let warning = self.cpus[index].rd_write(offset, size, value)?;
            return Ok(warning.map(VgicAction::Warn).into_iter().collect());
        }
        let off = offset - SGI_BASE;
        let out = match off {
            0x0080 | 0x0100 | 0x0180 | 0x0200 | 0x0280 | 0x0300 | 0x0380 => {
                check(off, size, &[4])?;
                let (kind, _) = Bitmap::decode(off).expect("a bitmap offset");
                self.bitmap_write(kind, index, 0, value as u32, writer)
            }
            0x0400..=0x041f => {
                check(off, size, &[1, 4])?;
                self.priority_write(index, (off - 0x400) as u32, size, value)
            }
            0x0c00 | 0x0c04 => {
                check(off, size, &[4])?;
                self.icfgr_write(index, ((off - 0xc00) / 4 * 16) as u32, value as u32)
            }
            0x0d00 | 0x0e00 | 0x0e04 => {
                check(off, size, &[4])?;
                Vec::new()
            }
            _ => {
                check(off, size, &[1, 2, 4, 8])?;
                vec![VgicAction::Warn(reserved(SGI_FRAME, off, true))]
            }
        };
        Ok(out)
    }

    fn sgi_frame_read(&self, index: usize, off: u64, size: u8, live: &dyn LiveState) -> ReadResult {
        let value = match off {
            0x0080 | 0x0100 | 0x0180 | 0x0200 | 0x0280 | 0x0300 | 0x0380 => {
                check(off, size, &[4])?;
                let (kind, _) = Bitmap::decode(off).expect("a bitmap offset");
                self.bitmap_read(kind, index, 0, live) as u64
            }
            0x0400..=0x041f => {
                check(off, size, &[1, 4])?;
                self.priority_read(index, (off - 0x400) as u32, size)
            }
            0x0c00 | 0x0c04 => {
                check(off, size, &[4])?;
                self.icfgr_read(index, ((off - 0xc00) / 4 * 16) as u32) as u64
            }
            0x0d00 | 0x0e00 | 0x0e04 => {
                check(off, size, &[4])?;
                0
            }
            _ => {
                check(off, size, &[1, 2, 4, 8])?;
                return Ok((0, Some(reserved(SGI_FRAME, off, false))));
            }
        };
        Ok((value, None))
    }
}
