//! GICv2 host driver (GIC-400, QEMU `gic-version=2`): distributor, CPU interface and the
//! virtual interface control frame (GICH), reached through identity-mapped MMIO.
//!
//! The CPU interface runs with EOImode = 1: `eoi` only drops the running priority and
//! deactivation is separate, so a guest can deactivate its interrupts through HW list registers.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

use super::mmio::Frame;
use super::{mpidr_affinity, Acked, GicError, GicInfo, GicInfoError, FIRST_SPI, MAX_SPI_END};

register_bitfields! {u32,
    /// GICD_CTLR of a GIC without the Security Extensions.
    GICD_CTLR [
        EnableGrp0 OFFSET(0) NUMBITS(1) [],
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
    ],
    /// GICD_CTLR as the Non-secure side of a GIC with the Security Extensions sees it.
    GICD_CTLR_NS [
        EnableGrp1 OFFSET(0) NUMBITS(1) [],
    ],
    GICD_TYPER [
        /// Interrupt lines / 32, minus one.
        ITLinesNumber OFFSET(0) NUMBITS(5) [],
        /// The GIC implements the Security Extensions (GICD_CTLR and GICC_CTLR are banked).
        SecurityExtn OFFSET(10) NUMBITS(1) [],
    ],
    GICD_SGIR [
        /// One bit per target CPU interface.
        CPUTargetList OFFSET(16) NUMBITS(8) [],
        SGIINTID OFFSET(0) NUMBITS(4) [],
    ],
    /// GICC_CTLR of a GIC without the Security Extensions.
    GICC_CTLR [
        EnableGrp0 OFFSET(0) NUMBITS(1) [],
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
        EOImodeS OFFSET(9) NUMBITS(1) [],
        EOImodeNS OFFSET(10) NUMBITS(1) [],
    ],
    /// GICC_CTLR as the Non-secure side of a GIC with the Security Extensions sees it.
    GICC_CTLR_NS [
        EnableGrp1 OFFSET(0) NUMBITS(1) [],
        EOImodeNS OFFSET(9) NUMBITS(1) [],
    ],
    GICH_VTR [
        /// Priority bits implemented, minus one.
        PRIbits OFFSET(29) NUMBITS(3) [],
        /// Preemption bits implemented, minus one.
        PREbits OFFSET(26) NUMBITS(3) [],
        /// List registers implemented, minus one.
        ListRegs OFFSET(0) NUMBITS(6) [],
    ],
    GICH_HCR [
        /// Underflow interrupt enable: maintenance interrupt when at most one LR is valid.
        UIE OFFSET(1) NUMBITS(1) [],
        /// The virtual CPU interface is enabled.
        En OFFSET(0) NUMBITS(1) [],
    ],
}

register_structs! {
    /// The distributor (GICD): the registers el2visor uses.
    GicdRegs {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x008 => _reserved0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => _reserved1),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        /// One priority byte per INTID, always accessed a byte at a time.
        (0x400 => ipriorityr: [ReadWrite<u8>; 1020]),
        (0x7fc => _reserved2),
        /// One CPU-interface mask byte per INTID; bytes 0..32 read as the reading CPU's own.
        (0x800 => itargetsr: [ReadWrite<u8>; 1020]),
        (0xbfc => _reserved3),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved4),
        (0xf00 => sgir: WriteOnly<u32, GICD_SGIR::Register>),
        (0xf04 => @END),
    },

    /// The CPU interface (GICC).
    GiccRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => pmr: ReadWrite<u32>),
        (0x0008 => bpr: ReadWrite<u32>),
        (0x000c => iar: ReadOnly<u32>),
        (0x0010 => eoir: WriteOnly<u32>),
        (0x0014 => _reserved0),
        (0x0018 => hppir: ReadOnly<u32>),
        (0x001c => _reserved1),
        (0x1000 => dir: WriteOnly<u32>),
        (0x1004 => @END),
    },

    /// The virtual interface control (GICH). List registers, VMCR and APR are values the vGIC's
    /// host-tested code builds and decodes (`LrFormat`, `VifState`).
    GichRegs {
        (0x000 => hcr: ReadWrite<u32, GICH_HCR::Register>),
        (0x004 => vtr: ReadOnly<u32, GICH_VTR::Register>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        /// GICH_ELRSR0, GICH_ELRSR1.
        (0x030 => elrsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved2),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved3),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

/// Priority el2visor gives every interrupt it configures (the guest's own priorities are
/// virtual, in the list registers).
pub const DEFAULT_PRIORITY: u8 = 0xa0;

/// Most CPU interfaces a GICv2 has.
const MAX_CPUS: usize = 8;

/// A GICv2 and the CPU interfaces registered so far.
pub struct GicV2 {
    gicd: Frame<GicdRegs>,
    gicc: Frame<GiccRegs>,
    gich: Frame<GichRegs>,
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
        // SAFETY: this function's caller guarantees the three frames are the GIC's, mapped; each
        // layout is the GICv2 architecture's for that frame.
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
        let d = &self.gicd;
        d.ctlr.set(0);
        let typer = d.typer.extract();
        let lines = ((typer.read(GICD_TYPER::ITLinesNumber) + 1) * 32).min(MAX_SPI_END);
        let secure_split = typer.is_set(GICD_TYPER::SecurityExtn);
        self.lines.store(lines, Ordering::Relaxed);
        self.security_extn.store(secure_split, Ordering::Relaxed);
        let me = d.itargetsr[0].get();
        for word in (FIRST_SPI / 32) as usize..lines.div_ceil(32) as usize {
            d.icenabler[word].set(u32::MAX);
            d.icpendr[word].set(u32::MAX);
            d.icactiver[word].set(u32::MAX);
            if !secure_split {
                // Group 0 everywhere; with FIQEn clear it is signalled as IRQ.
                d.igroupr[word].set(0);
            }
        }
        for intid in FIRST_SPI as usize..lines as usize {
            d.ipriorityr[intid].set(DEFAULT_PRIORITY);
            d.itargetsr[intid].set(me);
        }
        for word in (FIRST_SPI / 16) as usize..lines.div_ceil(16) as usize {
            d.icfgr[word].set(0);
        }
        d.ctlr.set(if secure_split {
            GICD_CTLR_NS::EnableGrp1::SET.value
        } else {
            (GICD_CTLR::EnableGrp0::SET + GICD_CTLR::EnableGrp1::SET).value
        });
    }

    /// Set up this CPU's banked interrupts, its CPU interface (EOImode = 1) and its virtual
    /// interface (enabled, list registers empty), and register its interface number for SGIs.
    pub fn init_cpu(&self, mpidr: u64) {
        let d = &self.gicd;
        // GICD_ITARGETSR0 reads as this CPU's own interface bit, except on a uniprocessor GIC,
        // where it reads as zero (GICv2 spec 4.3.12) and the one interface is number 0.
        let mask = d.itargetsr[0].get();
        let n = if mask == 0 { 0 } else { mask.trailing_zeros() as usize };
        self.cpu_ifs[n].store(mpidr_affinity(mpidr) + 1, Ordering::Release);
        d.icenabler[0].set(0xffff_0000);
        d.isenabler[0].set(0x0000_ffff);
        d.icpendr[0].set(u32::MAX);
        d.icactiver[0].set(u32::MAX);
        for intid in 0..FIRST_SPI as usize {
            d.ipriorityr[intid].set(DEFAULT_PRIORITY);
        }
        self.gicc.pmr.set(0xff);
        self.gicc.bpr.set(0);
        self.gicc.ctlr.set(if self.security_extn.load(Ordering::Relaxed) {
            (GICC_CTLR_NS::EnableGrp1::SET + GICC_CTLR_NS::EOImodeNS::SET).value
        } else {
            (GICC_CTLR::EnableGrp0::SET
                + GICC_CTLR::EnableGrp1::SET
                + GICC_CTLR::EOImodeS::SET
                + GICC_CTLR::EOImodeNS::SET)
                .value
        });
        for i in 0..self.lr_count() {
            self.write_lr(i, 0);
        }
        self.gich.apr.set(0);
        self.gich.hcr.write(GICH_HCR::En::SET);
        self.set_enabled(self.maintenance_intid, true);
    }

    /// Acknowledge the highest-priority pending interrupt.
    pub fn ack(&self) -> Option<Acked> {
        Acked::from_iar(self.gicc.iar.get())
    }

    /// The INTID of the highest-priority pending interrupt (1023: none), not acknowledged.
    pub fn highest_pending(&self) -> u32 {
        self.gicc.hppir.get() & 0x3ff
    }

    /// Drop the running priority (EOImode = 1: the interrupt stays active).
    pub fn eoi(&self, a: Acked) {
        self.gicc.eoir.set(a.raw());
    }

    /// Deactivate an interrupt el2visor handled itself.
    pub fn deactivate(&self, a: Acked) {
        self.gicc.dir.set(a.raw());
    }

    /// Enable or disable `intid` (SGIs and PPIs: this CPU's bank).
    pub fn set_enabled(&self, intid: u32, enable: bool) {
        let regs = if enable { &self.gicd.isenabler } else { &self.gicd.icenabler };
        regs[(intid / 32) as usize].set(1 << (intid % 32));
    }

    /// Set or clear the pending state of `intid`.
    pub fn set_pending(&self, intid: u32, pending: bool) {
        let regs = if pending { &self.gicd.ispendr } else { &self.gicd.icpendr };
        regs[(intid / 32) as usize].set(1 << (intid % 32));
    }

    /// Whether `intid` is pending (this CPU's bank for SGIs and PPIs).
    pub fn is_pending(&self, intid: u32) -> bool {
        self.gicd.ispendr[(intid / 32) as usize].get() & 1 << (intid % 32) != 0
    }

    /// Clear the active state of `intid` through the distributor.
    pub fn clear_active(&self, intid: u32) {
        self.gicd.icactiver[(intid / 32) as usize].set(1 << (intid % 32));
    }

    pub fn set_priority(&self, intid: u32, priority: u8) {
        self.gicd.ipriorityr[intid as usize].set(priority);
    }

    /// Edge-triggered (`true`) or level-sensitive SPI.
    pub fn set_trigger(&self, intid: u32, edge: bool) {
        let _guard = self.rmw.lock();
        let reg = &self.gicd.icfgr[(intid / 16) as usize];
        let bit = 1 << (2 * (intid % 16) + 1);
        let v = reg.get();
        reg.set(if edge { v | bit } else { v & !bit });
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
        self.gicd.itargetsr[intid as usize].set(mask);
        Ok(())
    }

    /// Send SGI `intid` to the CPU with this MPIDR.
    pub fn send_sgi(&self, mpidr: u64, intid: u32) -> Result<(), GicError> {
        let mask = self.cpu_mask(mpidr)?;
        self.gicd
            .sgir
            .write(GICD_SGIR::CPUTargetList.val(mask as u32) + GICD_SGIR::SGIINTID.val(intid));
        Ok(())
    }

    /// Number of list registers (GICH_VTR.ListRegs + 1).
    pub fn lr_count(&self) -> usize {
        match self.lrs.load(Ordering::Relaxed) {
            0 => {
                let n = super::vgic::lr::LrFormat::V2.count_from_vtr(self.gich.vtr.get() as u64);
                self.lrs.store(n as u32, Ordering::Relaxed);
                n
            }
            n => n as usize,
        }
    }

    /// List register `i`; indices past `lr_count()` read as 0.
    pub fn read_lr(&self, i: usize) -> u64 {
        if i < self.lr_count() {
            self.gich.lr[i].get() as u64
        } else {
            0
        }
    }

    /// Write list register `i`; indices past `lr_count()` are ignored.
    pub fn write_lr(&self, i: usize, v: u64) {
        if i < self.lr_count() {
            self.gich.lr[i].set(v as u32);
        }
    }

    /// GICH_HCR.UIE: a maintenance interrupt when at most one list register is valid.
    pub fn set_underflow(&self, on: bool) {
        self.gich.hcr.modify(if on { GICH_HCR::UIE::SET } else { GICH_HCR::UIE::CLEAR });
    }

    /// Rewrite GICC_PMR with the value it has: a no-op for the interface, but it makes QEMU's GICv2
    /// model recompute what to signal. QEMU does not do that after a guest deactivates a physical
    /// interrupt through a HW list register, so an interrupt that became pending again meanwhile
    /// (a level-triggered timer that fired while still active) would otherwise wait for an
    /// unrelated GIC event that may never come.
    pub fn refresh(&self) {
        self.gicc.pmr.set(0xff);
    }

    pub fn misr(&self) -> u32 {
        self.gich.misr.get()
    }

    /// Empty list registers (GICH_ELRSR1:GICH_ELRSR0).
    pub fn elrsr(&self) -> u64 {
        let low = self.gich.elrsr[0].get() as u64;
        // GICH_ELRSR1 only when there are more than 32 list registers (a GIC-400 has 4): this is
        // read on every interrupt delivered.
        if self.lr_count() <= 32 {
            return low;
        }
        low | (self.gich.elrsr[1].get() as u64) << 32
    }

    pub fn vmcr(&self) -> u32 {
        self.gich.vmcr.get()
    }

    pub fn set_vmcr(&self, v: u32) {
        self.gich.vmcr.set(v)
    }

    /// GICH_APR, the active priorities of the virtual CPU interface.
    pub fn apr(&self) -> u32 {
        self.gich.apr.get()
    }

    pub fn set_apr(&self, v: u32) {
        self.gich.apr.set(v)
    }

    /// The virtual CPU interface as out of reset: GICH_VMCR and GICH_APR 0, GICH_HCR enabled
    /// only (no maintenance requests, EOICount 0). The list registers are left as they are.
    pub fn reset_vif(&self) {
        self.gich.vmcr.set(0);
        self.gich.apr.set(0);
        self.gich.hcr.write(GICH_HCR::En::SET);
    }
}
