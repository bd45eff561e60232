//! GICv2 distributor register decoding (a 4 KiB GICD frame, the layout of GIC-400).

use alloc::vec;
use alloc::vec::Vec;

use super::dist::{Bitmap, VDist};
use super::live::LiveState;
use super::redist::{check, id_register, reserved, IIDR};
use super::types::{Retraction, VgicAction, VgicError, VgicWarning};
use crate::gic::FIRST_SPI;

const FRAME: &str = "GICD";

type ReadResult = Result<(u64, Option<VgicWarning>), VgicError>;

impl VDist {
    /// GICD_TYPER: ITLinesNumber 4:0, CPUNumber 7:5, no security extensions.
    pub(super) fn v2_typer(&self) -> u32 {
        (self.nr_lines() / 32 - 1) | ((self.vcpus.len() as u32 - 1) & 7) << 5
    }

    pub(crate) fn v2_read(&mut self, vcpu: usize, offset: u64, size: u8, live: &dyn LiveState) -> ReadResult {
        let value = match offset {
            0x000..=0x00f => {
                check(offset, size, &[4])?;
                match offset {
                    0x000 => self.ctlr,
                    0x004 => self.v2_typer(),
                    0x008 => IIDR,
                    _ => return Ok((0, Some(reserved(FRAME, offset, false)))),
                }
            }
            0x080..=0x3ff => {
                check(offset, size, &[4])?;
                let (kind, first) = Bitmap::decode(offset).expect("0x80..0x400 is all bitmaps");
                self.bitmap_read(kind, vcpu, first, live)
            }
            0x400..=0x7ff => {
                check(offset, size, &[1, 4])?;
                return Ok((self.priority_read(vcpu, (offset - 0x400) as u32, size), None));
            }
            0x800..=0xbff => {
                check(offset, size, &[1, 4])?;
                return Ok((self.targets_read(vcpu, (offset - 0x800) as u32, size), None));
            }
            0xc00..=0xcff => {
                check(offset, size, &[4])?;
                self.icfgr_read(vcpu, ((offset - 0xc00) / 4 * 16) as u32)
            }
            0xf00 => {
                check(offset, size, &[4])?;
                return Ok((0, Some(VgicWarning::WriteOnly { frame: FRAME, offset })));
            }
            0xf10..=0xf2f => {
                check(offset, size, &[1, 4])?;
                // The sources the distributor holds, and those whose SGI its list registers
                // or queue hold pending (a cleared bit there is retracted: `v2_write`).
                let first = ((offset - 0xf10) % 16) as usize;
                let mut v = 0u64;
                for i in 0..size as usize {
                    let intid = (first + i) as u32;
                    let sources = self.cpus[vcpu].sgi_sources[first + i] | live.sgi_sources(vcpu, intid);
                    v |= (sources as u64) << (8 * i);
                }
                return Ok((v, None));
            }
            0xfd0..=0xfff => {
                check(offset, size, &[4])?;
                id_register(offset, 2)
            }
            _ => {
                check(offset, size, &[1, 2, 4, 8])?;
                return Ok((0, Some(reserved(FRAME, offset, false))));
            }
        };
        Ok((value as u64, None))
    }

    pub(crate) fn v2_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Vec<VgicAction>, VgicError> {
        let read_only = || Ok(vec![VgicAction::Warn(VgicWarning::ReadOnly { frame: FRAME, offset })]);
        match offset {
            0x000..=0x00f => {
                check(offset, size, &[4])?;
                match offset {
                    0x000 => {
                        self.ctlr = value as u32 & 1;
                        let mut out = Vec::new();
                        self.release(vcpu, &mut out);
                        Ok(out)
                    }
                    0x004 | 0x008 => read_only(),
                    _ => Ok(vec![VgicAction::Warn(reserved(FRAME, offset, true))]),
                }
            }
            0x080..=0x3ff => {
                check(offset, size, &[4])?;
                let (kind, first) = Bitmap::decode(offset).expect("0x80..0x400 is all bitmaps");
                Ok(self.bitmap_write(kind, vcpu, first, value as u32, vcpu))
            }
            0x400..=0x7ff => {
                check(offset, size, &[1, 4])?;
                Ok(self.priority_write(vcpu, (offset - 0x400) as u32, size, value))
            }
            0x800..=0xbff => {
                check(offset, size, &[1, 4])?;
                Ok(self.targets_write((offset - 0x800) as u32, size, value, vcpu))
            }
            0xc00..=0xcff => {
                check(offset, size, &[4])?;
                Ok(self.icfgr_write(vcpu, ((offset - 0xc00) / 4 * 16) as u32, value as u32))
            }
            0xf00 => {
                check(offset, size, &[4])?;
                Ok(self.sgir_write(vcpu, value as u32))
            }
            0xf10..=0xf2f => {
                check(offset, size, &[1, 4])?;
                let set = offset >= 0xf20;
                let first = ((offset - 0xf10) % 16) as usize;
                let mask = self.vcpu_mask();
                let cpu = &mut self.cpus[vcpu];
                for i in 0..size as usize {
                    let bits = (value >> (8 * i)) as u8 & mask;
                    if set {
                        cpu.sgi_sources[first + i] |= bits;
                        continue;
                    }
                    cpu.sgi_sources[first + i] &= !bits;
                    // A list register may hold the SGI from each cleared source.
                    let intid = (first + i) as u32;
                    if let Some(holder) = cpu.private[first + i].handed_to {
                        let cleared = (0..8u8).filter(|s| bits & (1 << s) != 0);
                        self.retractions.extend(cleared.map(|s| Retraction {
                            vcpu: holder,
                            intid,
                            source: Some(s),
                            pending: true,
                            active: false,
                            hold: None,
                        }));
                    }
                }
                let mut out = Vec::new();
                if set {
                    self.release(vcpu, &mut out);
                }
                Ok(out)
            }
            0xfd0..=0xfff => {
                check(offset, size, &[4])?;
                read_only()
            }
            _ => {
                check(offset, size, &[1, 2, 4, 8])?;
                Ok(vec![VgicAction::Warn(reserved(FRAME, offset, true))])
            }
        }
    }

    /// ITARGETSR bytes: for SGIs and PPIs each byte reads as the reading vCPU's own bit.
    fn targets_read(&self, vcpu: usize, first: u32, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..size as u32 {
            let intid = first + i;
            let byte = match self.irq(vcpu, intid) {
                Some(st) if st.owned && intid < FIRST_SPI => 1u8 << (vcpu % 8),
                Some(st) if st.owned => st.targets,
                _ => 0,
            };
            v |= (byte as u64) << (8 * i);
        }
        v
    }

    /// ITARGETSR bytes for SPIs; the banked bytes of SGIs and PPIs are read-only.
    fn targets_write(&mut self, first: u32, size: u8, value: u64, writer: usize) -> Vec<VgicAction> {
        let mut out = Vec::new();
        let mask = self.vcpu_mask();
        for i in 0..size as u32 {
            let intid = first + i;
            if intid < FIRST_SPI {
                continue;
            }
            let before = self.target_vcpu(0, intid);
            match self.irq_mut(0, intid) {
                Some(st) if st.owned => st.targets = (value >> (8 * i)) as u8 & mask,
                _ => continue,
            }
            self.retarget(intid, before, writer, &mut out);
        }
        out
    }
}
