//! GICv2 host driver (GIC-400, QEMU `gic-version=2`): distributor, CPU interface and the
//! virtual interface control frame (GICH), reached through identity-mapped MMIO.
//!
//! The CPU interface runs with EOImode = 1: `eoi` only drops the running priority and
//! deactivation is separate, so a guest can deactivate its interrupts through HW list registers.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use super::mmio::Frame;
use super::{mpidr_affinity, Acked, GicError, GicInfo, GicInfoError, FIRST_SPI, MAX_SPI_END};

// Distributor.
const GICD_CTLR: usize = 0x000;
const GICD_TYPER: usize = 0x004;
const GICD_IGROUPR: usize = 0x080;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ISPENDR: usize = 0x200;
const GICD_ICPENDR: usize = 0x280;
const GICD_ICACTIVER: usize = 0x380;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_ICFGR: usize = 0xc00;
const GICD_SGIR: usize = 0xf00;
const TYPER_SECURITY_EXTN: u32 = 1 << 10;

// CPU interface.
const GICC_CTLR: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_BPR: usize = 0x0008;
const GICC_IAR: usize = 0x000c;
const GICC_EOIR: usize = 0x0010;
const GICC_DIR: usize = 0x1000;
/// GICC_CTLR in the Non-secure view: EnableGrp1 0, EOImodeNS 9.
const GICC_CTLR_NS: u32 = 1 | 1 << 9;
/// GICC_CTLR without security extensions: EnableGrp0 0, EnableGrp1 1, EOImodeS 9, EOImodeNS 10.
const GICC_CTLR_NOSEC: u32 = 1 | 1 << 1 | 1 << 9 | 1 << 10;

// Virtual interface control.
const GICH_HCR: usize = 0x000;
const GICH_VTR: usize = 0x004;
const GICH_VMCR: usize = 0x008;
const GICH_MISR: usize = 0x010;
const GICH_ELRSR0: usize = 0x030;
const GICH_ELRSR1: usize = 0x034;
const GICH_APR: usize = 0x0f0;
const GICH_LR0: usize = 0x100;
const HCR_EN: u32 = 1 << 0;
const HCR_UIE: u32 = 1 << 1;

/// Priority el2visor gives every interrupt it configures (the guest's own priorities are
/// virtual, in the list registers).
pub const DEFAULT_PRIORITY: u8 = 0xa0;

/// Most CPU interfaces a GICv2 has.
const MAX_CPUS: usize = 8;

/// A GICv2 and the CPU interfaces registered so far.
pub struct GicV2 {
    gicd: Frame,
    gicc: Frame,
    gich: Frame,
    maintenance_intid: u32,
    lines: AtomicU32,
    /// Cached GICH_VTR-derived list-register count (0 until first read).
    lrs: AtomicU32,
    security_extn: AtomicBool,
    /// For each CPU interface number: the MPIDR affinity of its CPU plus one (0 = unknown).
    cpu_ifs: [AtomicU64; MAX_CPUS],
    /// Serialises read-modify-write of shared distributor registers (ICFGR).
    rmw: Mutex<()>,
}

impl GicV2 {
    /// # Safety
    /// `info`'s GICD, GICC and GICH frames must be the GICv2 described, identity mapped as
    /// Device memory at EL2, and nothing else may drive them.
    pub unsafe fn new(info: &GicInfo) -> Result<Self, GicInfoError> {
        info.validate()?;
        let (Some(cpu), Some(hyp)) = (info.cpu, info.hyp) else {
            return Err(GicInfoError::MissingVirtualization);
        };
        // SAFETY: this function's caller guarantees the three frames are the GIC's, mapped.
        let (gicd, gicc, gich) = unsafe {
            (
                Frame::new(info.dist.raw() as usize),
                Frame::new(cpu.raw() as usize),
                Frame::new(hyp.raw() as usize),
            )
        };
        Ok(Self {
            gicd,
            gicc,
            gich,
            maintenance_intid: info.maintenance_intid,
            lines: AtomicU32::new(0),
            lrs: AtomicU32::new(0),
            security_extn: AtomicBool::new(false),
            cpu_ifs: [const { AtomicU64::new(0) }; MAX_CPUS],
            rmw: Mutex::new(()),
        })
    }

    /// Interrupt lines the distributor implements.
    pub fn lines(&self) -> u32 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Reset the distributor (once, on the boot CPU): every SPI disabled, inactive, not pending,
    /// level, at [`DEFAULT_PRIORITY`], targeted at this CPU; then enabled.
    pub fn init_distributor(&self) {
        self.gicd.write(GICD_CTLR, 0);
        let typer = self.gicd.read(GICD_TYPER);
        let lines = (((typer & 0x1f) + 1) * 32).min(MAX_SPI_END);
        let secure_split = typer & TYPER_SECURITY_EXTN != 0;
        self.lines.store(lines, Ordering::Relaxed);
        self.security_extn.store(secure_split, Ordering::Relaxed);
        let me = self.gicd.read8(GICD_ITARGETSR);
        for word in (FIRST_SPI / 32)..lines.div_ceil(32) {
            let off = 4 * word as usize;
            self.gicd.write(GICD_ICENABLER + off, u32::MAX);
            self.gicd.write(GICD_ICPENDR + off, u32::MAX);
            self.gicd.write(GICD_ICACTIVER + off, u32::MAX);
            if !secure_split {
                // Group 0 everywhere; with FIQEn clear it is signalled as IRQ.
                self.gicd.write(GICD_IGROUPR + off, 0);
            }
        }
        for intid in FIRST_SPI..lines {
            self.gicd.write8(GICD_IPRIORITYR + intid as usize, DEFAULT_PRIORITY);
            self.gicd.write8(GICD_ITARGETSR + intid as usize, me);
        }
        for word in (FIRST_SPI / 16)..lines.div_ceil(16) {
            self.gicd.write(GICD_ICFGR + 4 * word as usize, 0);
        }
        self.gicd.write(GICD_CTLR, if secure_split { 1 } else { 3 });
    }

    /// Set up this CPU's banked interrupts, its CPU interface (EOImode = 1) and its virtual
    /// interface (enabled, list registers empty), and register its interface number for SGIs.
    pub fn init_cpu(&self, mpidr: u64) {
        // GICD_ITARGETSR0 reads as this CPU's own interface bit, except on a uniprocessor GIC,
        // where it reads as zero (GICv2 spec 4.3.12) and the one interface is number 0.
        let mask = self.gicd.read8(GICD_ITARGETSR);
        let n = if mask == 0 { 0 } else { mask.trailing_zeros() as usize };
        self.cpu_ifs[n].store(mpidr_affinity(mpidr) + 1, Ordering::Release);
        self.gicd.write(GICD_ICENABLER, 0xffff_0000);
        self.gicd.write(GICD_ISENABLER, 0x0000_ffff);
        self.gicd.write(GICD_ICPENDR, u32::MAX);
        self.gicd.write(GICD_ICACTIVER, u32::MAX);
        for intid in 0..FIRST_SPI as usize {
            self.gicd.write8(GICD_IPRIORITYR + intid, DEFAULT_PRIORITY);
        }
        self.gicc.write(GICC_PMR, 0xff);
        self.gicc.write(GICC_BPR, 0);
        let secure_split = self.security_extn.load(Ordering::Relaxed);
        self.gicc.write(GICC_CTLR, if secure_split { GICC_CTLR_NS } else { GICC_CTLR_NOSEC });
        for i in 0..self.lr_count() {
            self.write_lr(i, 0);
        }
        self.gich.write(GICH_APR, 0);
        self.gich.write(GICH_HCR, HCR_EN);
        self.set_enabled(self.maintenance_intid, true);
    }

    /// Acknowledge the highest-priority pending interrupt.
    pub fn ack(&self) -> Option<Acked> {
        Acked::from_iar(self.gicc.read(GICC_IAR))
    }

    /// Drop the running priority (EOImode = 1: the interrupt stays active).
    pub fn eoi(&self, a: Acked) {
        self.gicc.write(GICC_EOIR, a.raw());
    }

    /// Deactivate an interrupt el2visor handled itself.
    pub fn deactivate(&self, a: Acked) {
        self.gicc.write(GICC_DIR, a.raw());
    }

    /// Enable or disable `intid` (SGIs and PPIs: this CPU's bank).
    pub fn set_enabled(&self, intid: u32, enable: bool) {
        let reg = if enable { GICD_ISENABLER } else { GICD_ICENABLER };
        self.gicd.write(reg + 4 * (intid / 32) as usize, 1 << (intid % 32));
    }

    /// Set or clear the pending state of `intid`.
    pub fn set_pending(&self, intid: u32, pending: bool) {
        let reg = if pending { GICD_ISPENDR } else { GICD_ICPENDR };
        self.gicd.write(reg + 4 * (intid / 32) as usize, 1 << (intid % 32));
    }

    /// Clear the active state of `intid` through the distributor.
    pub fn clear_active(&self, intid: u32) {
        self.gicd.write(GICD_ICACTIVER + 4 * (intid / 32) as usize, 1 << (intid % 32));
    }

    pub fn set_priority(&self, intid: u32, priority: u8) {
        self.gicd.write8(GICD_IPRIORITYR + intid as usize, priority);
    }

    /// Edge-triggered (`true`) or level-sensitive SPI.
    pub fn set_trigger(&self, intid: u32, edge: bool) {
        let _guard = self.rmw.lock();
        let off = GICD_ICFGR + 4 * (intid / 16) as usize;
        let bit = 1 << (2 * (intid % 16) + 1);
        let v = self.gicd.read(off);
        self.gicd.write(off, if edge { v | bit } else { v & !bit });
    }

    /// The CPU interface mask (one bit) of the CPU with this MPIDR.
    fn cpu_mask(&self, mpidr: u64) -> Result<u8, GicError> {
        let want = mpidr_affinity(mpidr) + 1;
        self.cpu_ifs
            .iter()
            .position(|c| c.load(Ordering::Acquire) == want)
            .map(|n| 1 << n)
            .ok_or(GicError::UnknownCpu { mpidr })
    }

    /// Route SPI `intid` to the CPU with this MPIDR.
    pub fn route_spi(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        let mask = self.cpu_mask(mpidr)?;
        self.gicd.write8(GICD_ITARGETSR + intid as usize, mask);
        Ok(())
    }

    /// Send SGI `intid` to the CPU with this MPIDR.
    pub fn send_sgi(&self, mpidr: u64, intid: u32) -> Result<(), GicError> {
        let mask = self.cpu_mask(mpidr)?;
        self.gicd.write(GICD_SGIR, (mask as u32) << 16 | (intid & 0xf));
        Ok(())
    }

    /// Number of list registers (GICH_VTR.ListRegs + 1).
    pub fn lr_count(&self) -> usize {
        match self.lrs.load(Ordering::Relaxed) {
            0 => {
                let n = super::vgic::lr::LrFormat::V2.count_from_vtr(self.gich.read(GICH_VTR) as u64);
                self.lrs.store(n as u32, Ordering::Relaxed);
                n
            }
            n => n as usize,
        }
    }

    /// List register `i`; indices past `lr_count()` read as 0.
    pub fn read_lr(&self, i: usize) -> u64 {
        if i < self.lr_count() {
            self.gich.read(GICH_LR0 + 4 * i) as u64
        } else {
            0
        }
    }

    /// Write list register `i`; indices past `lr_count()` are ignored.
    pub fn write_lr(&self, i: usize, v: u64) {
        if i < self.lr_count() {
            self.gich.write(GICH_LR0 + 4 * i, v as u32);
        }
    }

    /// GICH_HCR.UIE: a maintenance interrupt when at most one list register is valid.
    pub fn set_underflow(&self, on: bool) {
        let hcr = self.gich.read(GICH_HCR);
        self.gich.write(GICH_HCR, if on { hcr | HCR_UIE } else { hcr & !HCR_UIE });
    }

    /// Rewrite GICC_PMR with the value it has: a no-op for the interface, but it makes QEMU's GICv2
    /// model recompute what to signal. QEMU does not do that after a guest deactivates a physical
    /// interrupt through a HW list register, so an interrupt that became pending again meanwhile
    /// (a level-triggered timer that fired while still active) would otherwise wait for an
    /// unrelated GIC event that may never come.
    pub fn refresh(&self) {
        self.gicc.write(GICC_PMR, 0xff);
    }

    pub fn misr(&self) -> u32 {
        self.gich.read(GICH_MISR)
    }

    /// Empty list registers (GICH_ELRSR1:GICH_ELRSR0).
    pub fn elrsr(&self) -> u64 {
        self.gich.read(GICH_ELRSR0) as u64 | (self.gich.read(GICH_ELRSR1) as u64) << 32
    }

    pub fn vmcr(&self) -> u32 {
        self.gich.read(GICH_VMCR)
    }

    pub fn set_vmcr(&self, v: u32) {
        self.gich.write(GICH_VMCR, v)
    }

    /// GICH_APR, the active priorities of the virtual CPU interface.
    pub fn apr(&self) -> u32 {
        self.gich.read(GICH_APR)
    }

    pub fn set_apr(&self, v: u32) {
        self.gich.write(GICH_APR, v)
    }
}
