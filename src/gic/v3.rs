//! GICv3 host driver: the distributor with affinity routing, one redistributor per CPU (found by
//! matching GICR_TYPER's affinity with the CPU's MPIDR), and the ICC_* / ICH_* system registers
//! ([`crate::arch::sysreg_gic`]).
//!
//! The CPU interface runs with ICC_CTLR_EL1.EOImode = 1: `eoi` drops the priority only.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use log::warn;
use spin::Mutex;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

use super::mmio::Frame;
use super::vgic::sgi::Sgi1r;
use super::{
    ich_ap_count, mpidr_affinity, packed_affinity, Acked, GicError, GicInfo, GicInfoError, FIRST_SPI,
    MAX_SPI_END,
};
use crate::arch::sysreg_gic::{
    read_ich_lr, write_ich_lr, ICC_BPR1_EL1, ICC_CTLR_EL1, ICC_DIR_EL1, ICC_EOIR1_EL1, ICC_IAR1_EL1,
    ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1, ICC_SRE_EL2, ICH_AP0R_EL2, ICH_AP1R_EL2,
    ICH_ELRSR_EL2, ICH_HCR_EL2, ICH_MISR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2,
};

// Distributor.
const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ISPENDR: usize = 0x0200;
const GICD_ICPENDR: usize = 0x0280;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0c00;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_CTLR_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;

// Redistributor: RD_base, then SGI_base 64 KiB above.
const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_SGI: usize = 0x1_0000;
const GICR_CTLR_RWP: u32 = 1 << 3;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// Priority el2visor gives every interrupt it configures.
pub const DEFAULT_PRIORITY: u8 = 0xa0;
const PRIORITY_WORD: u32 = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);

fn isb() {
    // SAFETY: an instruction barrier has no effect on memory or registers.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

/// MPIDR_EL1 of the calling CPU.
pub(crate) fn current_mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects and is always permitted at EL2.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Spin until `done`, for at most a few million polls; false if it never happened.
fn wait(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..4_000_000 {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// A GICv3: distributor and redistributor regions.
pub struct GicV3 {
    gicd: Frame,
    redist: Vec<(usize, usize)>,
    maintenance_intid: u32,
    lines: AtomicU32,
    /// Serialises read-modify-write of shared distributor registers (ICFGR).
    rmw: Mutex<()>,
}

impl GicV3 {
    /// # Safety
    /// `info`'s GICD and redistributor regions must be the GICv3 described, identity mapped as
    /// Device memory at EL2, and nothing else may drive them.
    pub unsafe fn new(info: &GicInfo) -> Result<Self, GicInfoError> {
        info.validate()?;
        // SAFETY: this function's caller guarantees GICD is the GIC's distributor, mapped.
        let gicd = unsafe { Frame::new(info.dist.raw() as usize) };
        Ok(Self {
            gicd,
            redist: info.redist.iter().map(|&(b, s)| (b.raw() as usize, s as usize)).collect(),
            maintenance_intid: info.maintenance_intid,
            lines: AtomicU32::new(0),
            rmw: Mutex::new(()),
        })
    }

    pub fn lines(&self) -> u32 {
        self.lines.load(Ordering::Relaxed)
    }

    fn wait_dist(&self) {
        if !wait(|| self.gicd.read(GICD_CTLR) & GICD_CTLR_RWP == 0) {
            warn!("GICv3: GICD_CTLR.RWP stuck; continuing");
        }
    }

    /// Reset the distributor (once, on the boot CPU): SPIs disabled, inactive, not pending,
    /// group 1, level, at [`DEFAULT_PRIORITY`], routed to this CPU; affinity routing on.
    pub fn init_distributor(&self) {
        self.gicd.write(GICD_CTLR, 0);
        self.wait_dist();
        let lines = (((self.gicd.read(GICD_TYPER) & 0x1f) + 1) * 32).min(MAX_SPI_END);
        self.lines.store(lines, Ordering::Relaxed);
        for word in (FIRST_SPI / 32)..lines.div_ceil(32) {
            let off = 4 * word as usize;
            self.gicd.write(GICD_ICENABLER + off, u32::MAX);
            self.gicd.write(GICD_ICPENDR + off, u32::MAX);
            self.gicd.write(GICD_ICACTIVER + off, u32::MAX);
            self.gicd.write(GICD_IGROUPR + off, u32::MAX);
        }
        for intid in (FIRST_SPI..lines).step_by(4) {
            self.gicd.write(GICD_IPRIORITYR + intid as usize, PRIORITY_WORD);
        }
        for word in (FIRST_SPI / 16)..lines.div_ceil(16) {
            self.gicd.write(GICD_ICFGR + 4 * word as usize, 0);
        }
        self.wait_dist();
        self.gicd.write(GICD_CTLR, GICD_CTLR_ARE);
        self.wait_dist();
        let me = mpidr_affinity(current_mpidr());
        for intid in FIRST_SPI..lines {
            self.gicd.write64(GICD_IROUTER + 8 * intid as usize, me);
        }
        self.gicd.write(GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_GRP1);
        self.wait_dist();
    }

    /// The RD_base of the redistributor whose GICR_TYPER affinity is this MPIDR's.
    pub fn find_redist(&self, mpidr: u64) -> Result<usize, GicError> {
        let want = packed_affinity(mpidr) as u64;
        for &(base, size) in &self.redist {
            let mut off = 0;
            while off + 2 * GICR_SGI <= size {
                // SAFETY: a whole 128 KiB redistributor frame lies inside a region `new`'s caller
                // guaranteed to be mapped redistributors.
                let rd = unsafe { Frame::new(base + off) };
                let typer = rd.read64(GICR_TYPER);
                if typer >> 32 == want {
                    return Ok(base + off);
                }
                if typer & GICR_TYPER_LAST != 0 {
                    break;
                }
                off += if typer & GICR_TYPER_VLPIS != 0 { 4 * GICR_SGI } else { 2 * GICR_SGI };
            }
        }
        Err(GicError::NoRedistributor { mpidr })
    }

    /// Wake this CPU's redistributor, reset its banked interrupts, enable the system-register
    /// CPU interface (EOImode = 1, group 1, EL1 may use ICC_SRE_EL1) and the virtual interface.
    pub fn init_cpu(&self) -> Result<(), GicError> {
        ICC_SRE_EL2.modify(
            ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::DFB::SET + ICC_SRE_EL2::DIB::SET + ICC_SRE_EL2::ENABLE::SET,
        );
        isb();
        let mpidr = current_mpidr();
        let rd = self.rd_frame(self.find_redist(mpidr)?, false);
        rd.write(GICR_WAKER, rd.read(GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
        if !wait(|| rd.read(GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0) {
            warn!("GICv3: redistributor of MPIDR {mpidr:#x} did not wake up");
        }
        let sgi = self.rd_frame(rd.base(), true);
        sgi.write(GICD_IGROUPR, u32::MAX);
        sgi.write(GICD_ICENABLER, 0xffff_0000);
        sgi.write(GICD_ICPENDR, u32::MAX);
        sgi.write(GICD_ICACTIVER, u32::MAX);
        for intid in (0..FIRST_SPI as usize).step_by(4) {
            sgi.write(GICD_IPRIORITYR + intid, PRIORITY_WORD);
        }
        sgi.write(GICD_ISENABLER, 0x0000_ffff);
        if !wait(|| rd.read(GICR_CTLR) & GICR_CTLR_RWP == 0) {
            warn!("GICv3: GICR_CTLR.RWP stuck on MPIDR {mpidr:#x}");
        }
        // Let every priority through.
        ICC_PMR_EL1.write(ICC_PMR_EL1::Priority.val(0xff));
        ICC_BPR1_EL1.set(0);
        ICC_CTLR_EL1.write(ICC_CTLR_EL1::EOImode::SET);
        ICC_IGRPEN1_EL1.write(ICC_IGRPEN1_EL1::Enable::SET);
        isb();
        for i in 0..self.lr_count() {
            self.write_lr(i, 0);
        }
        self.set_aprs(&[0; 4], &[0; 4]);
        ICH_VMCR_EL2.set(0);
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        isb();
        sgi.write(GICD_ISENABLER, 1 << self.maintenance_intid);
        Ok(())
    }

    pub fn ack(&self) -> Option<Acked> {
        Acked::from_iar(ICC_IAR1_EL1.get() as u32)
    }

    /// Drop the running priority (EOImode = 1: the interrupt stays active).
    pub fn eoi(&self, a: Acked) {
        ICC_EOIR1_EL1.set(a.raw() as u64);
        isb();
    }

    /// Deactivate an interrupt el2visor handled itself.
    pub fn deactivate(&self, a: Acked) {
        ICC_DIR_EL1.set(a.raw() as u64);
        isb();
    }

    /// Send SGI `intid` to the CPU with this MPIDR.
    pub fn send_sgi(&self, mpidr: u64, intid: u32) {
        let aff0 = (mpidr & 0xff) as u8;
        let sgi = Sgi1r {
            target_list: 1 << (aff0 & 0xf),
            aff1: (mpidr >> 8) as u8,
            intid,
            aff2: (mpidr >> 16) as u8,
            irm: false,
            rs: aff0 >> 4,
            aff3: (mpidr >> 32) as u8,
        };
        ICC_SGI1R_EL1.set(sgi.encode());
        isb();
    }

    /// The frame holding `intid`'s bitmaps and priority: GICD for SPIs, the SGI_base of the
    /// redistributor of `mpidr` for SGIs and PPIs.
    fn bank(&self, intid: u32, mpidr: u64) -> Result<Frame, GicError> {
        if intid >= FIRST_SPI {
            Ok(self.gicd)
        } else {
            Ok(self.rd_frame(self.find_redist(mpidr)?, true))
        }
    }

    /// The RD_base (or, with `sgi`, SGI_base) frame of the redistributor at `rd_base`, a value
    /// [`find_redist`](Self::find_redist) returned.
    fn rd_frame(&self, rd_base: usize, sgi: bool) -> Frame {
        let base = if sgi { rd_base + GICR_SGI } else { rd_base };
        // SAFETY: `find_redist` only returns the start of a 128 KiB redistributor inside the
        // regions `new`'s caller guaranteed to be mapped; both 64 KiB frames lie within it.
        unsafe { Frame::new(base) }
    }

    fn bit(&self, reg: usize, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.bank(intid, mpidr)?.write(reg + 4 * (intid / 32) as usize, 1 << (intid % 32));
        Ok(())
    }

    /// Enable or disable `intid` (SGIs and PPIs: in the redistributor of `mpidr`).
    pub fn set_enabled(&self, intid: u32, mpidr: u64, enable: bool) -> Result<(), GicError> {
        if enable {
            self.bit(GICD_ISENABLER, intid, mpidr)
        } else {
            self.bit(GICD_ICENABLER, intid, mpidr)?;
            if intid >= FIRST_SPI {
                self.wait_dist();
            }
            Ok(())
        }
    }

    pub fn set_pending(&self, intid: u32, mpidr: u64, pending: bool) -> Result<(), GicError> {
        self.bit(if pending { GICD_ISPENDR } else { GICD_ICPENDR }, intid, mpidr)
    }

    pub fn clear_active(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.bit(GICD_ICACTIVER, intid, mpidr)
    }

    pub fn set_priority(&self, intid: u32, mpidr: u64, priority: u8) -> Result<(), GicError> {
        self.bank(intid, mpidr)?.write8(GICD_IPRIORITYR + intid as usize, priority);
        Ok(())
    }

    /// Edge-triggered (`true`) or level-sensitive SPI.
    pub fn set_trigger(&self, intid: u32, edge: bool) {
        let _guard = self.rmw.lock();
        let off = GICD_ICFGR + 4 * (intid / 16) as usize;
        let bit = 1 << (2 * (intid % 16) + 1);
        let v = self.gicd.read(off);
        self.gicd.write(off, if edge { v | bit } else { v & !bit });
    }

    /// Route SPI `intid` to the CPU with this MPIDR.
    pub fn route_spi(&self, intid: u32, mpidr: u64) {
        self.gicd.write64(GICD_IROUTER + 8 * intid as usize, mpidr_affinity(mpidr));
    }

    /// Number of list registers (ICH_VTR_EL2.ListRegs + 1).
    pub fn lr_count(&self) -> usize {
        super::vgic::lr::LrFormat::V3.count_from_vtr(ICH_VTR_EL2.get())
    }

    /// ICH_LR<i>_EL2; indices past 15 read as 0.
    pub fn read_lr(&self, i: usize) -> u64 {
        read_ich_lr(i).unwrap_or(0)
    }

    /// Write ICH_LR<i>_EL2; indices past 15 are ignored.
    pub fn write_lr(&self, i: usize, v: u64) {
        write_ich_lr(i, v);
    }

    /// ICH_HCR_EL2.UIE: a maintenance interrupt when at most one list register is valid.
    pub fn set_underflow(&self, on: bool) {
        ICH_HCR_EL2.modify(if on { ICH_HCR_EL2::UIE::SET } else { ICH_HCR_EL2::UIE::CLEAR });
    }

    pub fn misr(&self) -> u32 {
        ICH_MISR_EL2.get() as u32
    }

    /// Empty list registers (ICH_ELRSR_EL2).
    pub fn elrsr(&self) -> u64 {
        ICH_ELRSR_EL2.get()
    }

    pub fn vmcr(&self) -> u64 {
        ICH_VMCR_EL2.get()
    }

    pub fn set_vmcr(&self, v: u64) {
        ICH_VMCR_EL2.set(v);
    }

    /// ICH_AP0R<n>_EL2 and ICH_AP1R<n>_EL2; registers the CPU lacks read as 0.
    pub fn aprs(&self) -> ([u32; 4], [u32; 4]) {
        let n = ich_ap_count(ICH_VTR_EL2.get());
        let mut ap0 = [0; 4];
        let mut ap1 = [0; 4];
        ap0[0] = ICH_AP0R_EL2::<0>.get() as u32;
        ap1[0] = ICH_AP1R_EL2::<0>.get() as u32;
        if n >= 2 {
            ap0[1] = ICH_AP0R_EL2::<1>.get() as u32;
            ap1[1] = ICH_AP1R_EL2::<1>.get() as u32;
        }
        if n >= 4 {
            ap0[2] = ICH_AP0R_EL2::<2>.get() as u32;
            ap0[3] = ICH_AP0R_EL2::<3>.get() as u32;
            ap1[2] = ICH_AP1R_EL2::<2>.get() as u32;
            ap1[3] = ICH_AP1R_EL2::<3>.get() as u32;
        }
        (ap0, ap1)
    }

    /// Restore what [`aprs`](Self::aprs) saved; registers the CPU lacks are skipped.
    pub fn set_aprs(&self, ap0: &[u32; 4], ap1: &[u32; 4]) {
        let n = ich_ap_count(ICH_VTR_EL2.get());
        ICH_AP0R_EL2::<0>.set(ap0[0] as u64);
        ICH_AP1R_EL2::<0>.set(ap1[0] as u64);
        if n >= 2 {
            ICH_AP0R_EL2::<1>.set(ap0[1] as u64);
            ICH_AP1R_EL2::<1>.set(ap1[1] as u64);
        }
        if n >= 4 {
            ICH_AP0R_EL2::<2>.set(ap0[2] as u64);
            ICH_AP0R_EL2::<3>.set(ap0[3] as u64);
            ICH_AP1R_EL2::<2>.set(ap1[2] as u64);
            ICH_AP1R_EL2::<3>.set(ap1[3] as u64);
        }
    }
}
