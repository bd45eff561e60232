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
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

use super::mmio::{Frame, Priorities};
use super::vgic::sgi::Sgi1r;
use super::{
    ich_ap_count, mpidr_affinity, packed_affinity, Acked, GicError, GicInfo, GicInfoError, FIRST_SPI,
    MAX_SPI_END,
};
use crate::arch::sysreg_gic::{
    read_ich_lr, write_ich_lr, ICC_BPR1_EL1, ICC_CTLR_EL1, ICC_DIR_EL1, ICC_EOIR1_EL1, ICC_HPPIR1_EL1, ICC_IAR1_EL1,
    ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1, ICC_SRE_EL2, ICH_AP0R_EL2, ICH_AP1R_EL2,
    ICH_ELRSR_EL2, ICH_HCR_EL2, ICH_MISR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2,
};

register_bitfields! {u32,
    GICD_CTLR [
        /// Register Write Pending: a write to GICD_CTLR or GICD_ICENABLER<n> is still in progress.
        RWP OFFSET(31) NUMBITS(1) [],
        /// Affinity routing enabled (ARE_NS in the Non-secure view of a GIC with two Security
        /// states).
        ARE OFFSET(4) NUMBITS(1) [],
        /// Group 1 interrupts enabled (EnableGrp1A in the Non-secure view).
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
    ],
    GICD_TYPER [
        /// Interrupt lines / 32, minus one.
        ITLinesNumber OFFSET(0) NUMBITS(5) [],
    ],
    GICR_CTLR [
        /// Register Write Pending: a write to GICR_CTLR or GICR_ICENABLER0 is still in progress.
        RWP OFFSET(3) NUMBITS(1) [],
    ],
    GICR_WAKER [
        /// The redistributor's interface to the connected CPU is quiescent.
        ChildrenAsleep OFFSET(2) NUMBITS(1) [],
        /// The connected CPU is asleep: write 0 to wake the redistributor.
        ProcessorSleep OFFSET(1) NUMBITS(1) [],
    ],
}

register_bitfields! {u64,
    GICR_TYPER [
        /// Aff3.Aff2.Aff1.Aff0 of the CPU this redistributor serves.
        Affinity OFFSET(32) NUMBITS(32) [],
        /// The last redistributor of its region.
        Last OFFSET(4) NUMBITS(1) [],
        /// Virtual LPIs: VLPI_base and a reserved frame follow SGI_base.
        VLPIS OFFSET(1) NUMBITS(1) [],
    ],
}

register_structs! {
    /// The distributor (GICD): the registers el2visor uses.
    GicdRegs {
        (0x0000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x0004 => typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x0008 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => ispendr: [ReadWrite<u32>; 32]),
        (0x0280 => icpendr: [ReadWrite<u32>; 32]),
        (0x0300 => _reserved1),
        (0x0380 => icactiver: [ReadWrite<u32>; 32]),
        (0x0400 => ipriorityr: Priorities<255>),
        (0x07fc => _reserved2),
        (0x0c00 => icfgr: [ReadWrite<u32>; 64]),
        (0x0d00 => _reserved3),
        /// GICD_IROUTER<n> for INTID n; 0..32 are reserved (SGIs and PPIs are not routed).
        (0x6000 => irouter: [ReadWrite<u64>; 1020]),
        (0x7fe0 => @END),
    },

    /// A redistributor's RD_base frame.
    RdRegs {
        (0x0000 => ctlr: ReadWrite<u32, GICR_CTLR::Register>),
        (0x0004 => _reserved0),
        (0x0008 => typer: ReadOnly<u64, GICR_TYPER::Register>),
        (0x0010 => _reserved1),
        (0x0014 => waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => @END),
    },

    /// A redistributor's SGI_base frame: its CPU's SGIs and PPIs, at the distributor's offsets.
    SgiRegs {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0200 => ispendr0: ReadWrite<u32>),
        (0x0204 => _reserved4),
        (0x0280 => icpendr0: ReadWrite<u32>),
        (0x0284 => _reserved5),
        (0x0380 => icactiver0: ReadWrite<u32>),
        (0x0384 => _reserved6),
        (0x0400 => ipriorityr: Priorities<8>),
        (0x0420 => @END),
    }
}

/// The redistributor frames are 64 KiB each: RD_base, then SGI_base (then, with GICR_TYPER.VLPIS,
/// VLPI_base and a reserved one).
const GICR_FRAME: usize = 0x1_0000;

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
    gicd: Frame<GicdRegs>,
    redist: Vec<(usize, usize)>,
    maintenance_intid: u32,
    lines: AtomicU32,
    /// Serialises read-modify-write of shared distributor registers (ICFGR).
    rmw: Mutex<()>,
}

/// Where an interrupt's enable, pending and active bits and its priority live: the distributor
/// for an SPI, the SGI_base frame of the CPU's redistributor for an SGI or PPI.
#[derive(Clone, Copy)]
enum Bank {
    Dist(&'static GicdRegs),
    Redist(&'static SgiRegs),
}

/// The write-1-to-set / write-1-to-clear registers of a [`Bank`].
#[derive(Clone, Copy)]
enum BitReg {
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    ClearActive,
}

impl Bank {
    /// The `reg` register that holds `intid`'s bit.
    fn bit_reg(self, reg: BitReg, intid: u32) -> &'static ReadWrite<u32> {
        match self {
            Bank::Dist(d) => {
                let regs = match reg {
                    BitReg::SetEnable => &d.isenabler,
                    BitReg::ClearEnable => &d.icenabler,
                    BitReg::SetPending => &d.ispendr,
                    BitReg::ClearPending => &d.icpendr,
                    BitReg::ClearActive => &d.icactiver,
                };
                &regs[(intid / 32) as usize]
            }
            Bank::Redist(s) => match reg {
                BitReg::SetEnable => &s.isenabler0,
                BitReg::ClearEnable => &s.icenabler0,
                BitReg::SetPending => &s.ispendr0,
                BitReg::ClearPending => &s.icpendr0,
                BitReg::ClearActive => &s.icactiver0,
            },
        }
    }

    /// The priority byte of `intid`.
    fn priority(self, intid: u32) -> &'static ReadWrite<u8> {
        match self {
            Bank::Dist(d) => d.ipriorityr.byte(intid as usize),
            Bank::Redist(s) => s.ipriorityr.byte(intid as usize),
        }
    }
}

impl GicV3 {
    /// # Safety
    /// `info`'s GICD and redistributor regions must be the GICv3 described, identity mapped as
    /// Device memory at EL2, and nothing else may drive them.
    pub unsafe fn new(info: &GicInfo) -> Result<Self, GicInfoError> {
        info.validate()?;
        // SAFETY: this function's caller guarantees GICD is the GIC's distributor, mapped; its
        // layout is the GICv3 architecture's.
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
        if !wait(|| !self.gicd.ctlr.is_set(GICD_CTLR::RWP)) {
            warn!("GICv3: GICD_CTLR.RWP stuck; continuing");
        }
    }

    /// Reset the distributor (once, on the boot CPU): SPIs disabled, inactive, not pending,
    /// group 1, level, at [`DEFAULT_PRIORITY`], routed to this CPU; affinity routing on.
    pub fn init_distributor(&self) {
        let d = &self.gicd;
        d.ctlr.set(0);
        self.wait_dist();
        let lines = ((d.typer.read(GICD_TYPER::ITLinesNumber) + 1) * 32).min(MAX_SPI_END);
        self.lines.store(lines, Ordering::Relaxed);
        for word in (FIRST_SPI / 32) as usize..lines.div_ceil(32) as usize {
            d.icenabler[word].set(u32::MAX);
            d.icpendr[word].set(u32::MAX);
            d.icactiver[word].set(u32::MAX);
            d.igroupr[word].set(u32::MAX);
        }
        for intid in (FIRST_SPI as usize..lines as usize).step_by(4) {
            d.ipriorityr.word(intid / 4).set(PRIORITY_WORD);
        }
        for word in (FIRST_SPI / 16) as usize..lines.div_ceil(16) as usize {
            d.icfgr[word].set(0);
        }
        self.wait_dist();
        d.ctlr.write(GICD_CTLR::ARE::SET);
        self.wait_dist();
        let me = mpidr_affinity(current_mpidr());
        for intid in FIRST_SPI as usize..lines as usize {
            d.irouter[intid].set(me);
        }
        d.ctlr.write(GICD_CTLR::ARE::SET + GICD_CTLR::EnableGrp1::SET);
        self.wait_dist();
    }

    /// The RD_base of the redistributor whose GICR_TYPER affinity is this MPIDR's.
    pub fn find_redist(&self, mpidr: u64) -> Result<usize, GicError> {
        let want = packed_affinity(mpidr) as u64;
        for &(base, size) in &self.redist {
            let mut off = 0;
            while off + 2 * GICR_FRAME <= size {
                // SAFETY: a whole 128 KiB redistributor (RD_base and SGI_base) lies inside a
                // region `new`'s caller guaranteed to be mapped redistributors.
                let rd: Frame<RdRegs> = unsafe { Frame::new(base + off) };
                let typer = rd.typer.extract();
                if typer.read(GICR_TYPER::Affinity) == want {
                    return Ok(base + off);
                }
                if typer.is_set(GICR_TYPER::Last) {
                    break;
                }
                off += if typer.is_set(GICR_TYPER::VLPIS) { 4 * GICR_FRAME } else { 2 * GICR_FRAME };
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
        let rd_base = self.find_redist(mpidr)?;
        let rd = self.rd(rd_base);
        rd.waker.modify(GICR_WAKER::ProcessorSleep::CLEAR);
        if !wait(|| !rd.waker.is_set(GICR_WAKER::ChildrenAsleep)) {
            warn!("GICv3: redistributor of MPIDR {mpidr:#x} did not wake up");
        }
        let sgi = self.sgi(rd_base);
        sgi.igroupr0.set(u32::MAX);
        sgi.icenabler0.set(0xffff_0000);
        sgi.icpendr0.set(u32::MAX);
        sgi.icactiver0.set(u32::MAX);
        for n in 0..FIRST_SPI as usize / 4 {
            sgi.ipriorityr.word(n).set(PRIORITY_WORD);
        }
        sgi.isenabler0.set(0x0000_ffff);
        if !wait(|| !rd.ctlr.is_set(GICR_CTLR::RWP)) {
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
        sgi.isenabler0.set(1 << self.maintenance_intid);
        Ok(())
    }

    pub fn ack(&self) -> Option<Acked> {
        Acked::from_iar(ICC_IAR1_EL1.get() as u32)
    }

    /// The INTID of the highest-priority pending group 1 interrupt (1023: none), not
    /// acknowledged.
    pub fn highest_pending(&self) -> u32 {
        ICC_HPPIR1_EL1.get() as u32 & 0xff_ffff
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

    /// The [`Bank`] holding `intid`: the distributor for SPIs, the SGI_base frame of the
    /// redistributor of `mpidr` for SGIs and PPIs.
    fn bank(&self, intid: u32, mpidr: u64) -> Result<Bank, GicError> {
        if intid >= FIRST_SPI {
            Ok(Bank::Dist(self.gicd.regs()))
        } else {
            Ok(Bank::Redist(self.sgi(self.find_redist(mpidr)?).regs()))
        }
    }

    /// The RD_base frame of the redistributor at `rd_base`, a value
    /// [`find_redist`](Self::find_redist) returned.
    fn rd(&self, rd_base: usize) -> Frame<RdRegs> {
        // SAFETY: `find_redist` only returns the start of a 128 KiB redistributor inside the
        // regions `new`'s caller guaranteed to be mapped; RD_base is its first 64 KiB.
        unsafe { Frame::new(rd_base) }
    }

    /// The SGI_base frame of the redistributor at `rd_base`, a value
    /// [`find_redist`](Self::find_redist) returned.
    fn sgi(&self, rd_base: usize) -> Frame<SgiRegs> {
        // SAFETY: as for `rd`; SGI_base is the redistributor's second 64 KiB.
        unsafe { Frame::new(rd_base + GICR_FRAME) }
    }

    fn bit(&self, reg: BitReg, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.bank(intid, mpidr)?.bit_reg(reg, intid).set(1 << (intid % 32));
        Ok(())
    }

    /// Enable or disable `intid` (SGIs and PPIs: in the redistributor of `mpidr`).
    pub fn set_enabled(&self, intid: u32, mpidr: u64, enable: bool) -> Result<(), GicError> {
        if enable {
            self.bit(BitReg::SetEnable, intid, mpidr)
        } else {
            self.bit(BitReg::ClearEnable, intid, mpidr)?;
            if intid >= FIRST_SPI {
                self.wait_dist();
            }
            Ok(())
        }
    }

    pub fn set_pending(&self, intid: u32, mpidr: u64, pending: bool) -> Result<(), GicError> {
        self.bit(if pending { BitReg::SetPending } else { BitReg::ClearPending }, intid, mpidr)
    }

    pub fn clear_active(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.bit(BitReg::ClearActive, intid, mpidr)
    }

    /// Whether `intid` is pending (ISPENDR reads the pending state; SGIs and PPIs: in the
    /// redistributor of `mpidr`).
    pub fn is_pending(&self, intid: u32, mpidr: u64) -> Result<bool, GicError> {
        Ok(self.bank(intid, mpidr)?.bit_reg(BitReg::SetPending, intid).get() & 1 << (intid % 32) != 0)
    }

    pub fn set_priority(&self, intid: u32, mpidr: u64, priority: u8) -> Result<(), GicError> {
        self.bank(intid, mpidr)?.priority(intid).set(priority);
        Ok(())
    }

    /// Edge-triggered (`true`) or level-sensitive SPI.
    pub fn set_trigger(&self, intid: u32, edge: bool) {
        let _guard = self.rmw.lock();
        let reg = &self.gicd.icfgr[(intid / 16) as usize];
        let bit = 1 << (2 * (intid % 16) + 1);
        let v = reg.get();
        reg.set(if edge { v | bit } else { v & !bit });
    }

    /// Route SPI `intid` to the CPU with this MPIDR.
    pub fn route_spi(&self, intid: u32, mpidr: u64) {
        self.gicd.irouter[intid as usize].set(mpidr_affinity(mpidr));
    }

    /// GICD_TYPER as it reads (the ITS driver wants LPIS and IDbits).
    pub fn typer_raw(&self) -> u32 {
        self.gicd.typer.get()
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

    /// ICH_HCR_EL2.TALL1 (bit 12): trap EL1 accesses to the group 1 CPU interface registers.
    pub fn set_group1_trap(&self, on: bool) {
        const TALL1: u64 = 1 << 12;
        let v = ICH_HCR_EL2.get();
        let want = if on { v | TALL1 } else { v & !TALL1 };
        if want != v {
            ICH_HCR_EL2.set(want);
        }
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

    /// The virtual CPU interface as out of reset: ICH_VMCR_EL2 and every ICH_AP0R/AP1R 0,
    /// ICH_HCR_EL2 enabled only (no maintenance requests, no traps, EOIcount 0). The list
    /// registers are left as they are.
    pub fn reset_vif(&self) {
        self.set_aprs(&[0; 4], &[0; 4]);
        ICH_VMCR_EL2.set(0);
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        isb();
    }
}
