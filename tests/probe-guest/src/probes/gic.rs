//! The probe's side of the GIC: the distributor (and GICv3 redistributor) el2visor emulates, the
//! CPU interface (GICv3 ICC system registers, the GICv2 GICC frame where el2visor maps GICV) and
//! the EL1 virtual timer. The probe runs with PSTATE.I masked and never takes an IRQ exception:
//! it acknowledges interrupts by polling the IAR, as a handler would read it.

use core::arch::asm;

use aarch64_cpu::registers::{Readable, Writeable, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, MPIDR_EL1};
use probe_guest::dt::{Gic, Platform};
use probe_guest::msg;
use probe_guest::msg::Msg;

use crate::sysreg;

/// The EL1 virtual timer's PPI.
pub const VTIMER: u32 = 27;
/// What IAR returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;

const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
pub const IGROUPR: u64 = 0x080;
pub const ISENABLER: u64 = 0x100;
pub const ICENABLER: u64 = 0x180;
pub const ISPENDR: u64 = 0x200;
pub const ICPENDR: u64 = 0x280;
pub const ISACTIVER: u64 = 0x300;
pub const ICACTIVER: u64 = 0x380;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const ICFGR: u64 = 0xc00;
const GICD_SGIR: u64 = 0xf00;
pub const GICD_CPENDSGIR: u64 = 0xf10;
const GICD_IROUTER: u64 = 0x6000;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const SGI_BASE: u64 = 0x1_0000;
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;

// The accessors are single `ldr`/`str` instructions with a plain base register: a compiler's
// choice of a pre- or post-indexed form would have no instruction syndrome (ISV = 0), which a
// hypervisor emulating the register cannot decode (el2visor answers it with an abort, as Linux's
// readl/writel avoid for the same reason).

fn rd32(a: u64) -> u32 {
    let v: u32;
    // SAFETY: every address passed here is in a GIC frame or the RTC page, mapped Device-nGnRE at
    // stage 1 by mmu.rs (or the MMU is off); a 32-bit access is what those registers take.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) a, v = out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

fn wr32(a: u64, v: u32) {
    // SAFETY: as for rd32.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack, preserves_flags)) }
}

pub fn rd64(a: u64) -> u64 {
    let v: u64;
    // SAFETY: as for rd32; GICR_TYPER and GICD_IROUTER take 64-bit accesses.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) a, v = out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

fn wr64(a: u64, v: u64) {
    // SAFETY: as for rd64.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack, preserves_flags)) }
}

/// A read of a device register at `a` (for the RTC).
pub fn mmio_read(a: u64) -> u32 {
    rd32(a)
}

/// A write of a device register at `a` (for the RTC).
pub fn mmio_write(a: u64, v: u32) {
    wr32(a, v)
}

macro_rules! icc {
    ($read:ident, $write:ident, $enc:literal) => {
        fn $read() -> u64 {
            let v: u64;
            // SAFETY: a GICv3 CPU interface register; under el2visor the virtual interface
            // answers. Reading IAR acknowledges an interrupt, which is what the callers want.
            unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nostack, preserves_flags)) };
            v
        }
        fn $write(v: u64) {
            // SAFETY: as above; the values written only affect interrupt delivery to this CPU.
            unsafe { asm!(concat!("msr ", $enc, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
            sysreg::isb();
        }
    };
}

icc!(icc_sre, set_icc_sre, "s3_0_c12_c12_5");
icc!(_icc_pmr, set_icc_pmr, "s3_0_c4_c6_0");
icc!(icc_iar1, _set_icc_iar1, "s3_0_c12_c12_0");
icc!(_icc_eoir1, set_icc_eoir1, "s3_0_c12_c12_1");
icc!(_icc_igrpen1, set_icc_igrpen1, "s3_0_c12_c12_7");
icc!(_icc_ctlr, set_icc_ctlr, "s3_0_c12_c12_4");
icc!(_icc_sgi1r, set_icc_sgi1r, "s3_0_c12_c11_5");
icc!(_icc_asgi1r, set_icc_asgi1r, "s3_0_c12_c11_6");
icc!(_icc_sgi0r, set_icc_sgi0r, "s3_0_c12_c11_7");

/// Write ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 (GICv3) with an empty target list: nothing is sent.
pub fn write_group0_sgi_regs_to_nobody() {
    set_icc_sgi0r(0);
    set_icc_asgi1r(0);
}

/// The guest's GIC, set up for polling on this CPU.
pub struct GuestGic {
    pub gic: Gic,
    /// GICv3: this CPU's redistributor (RD_base).
    rd: u64,
    /// This CPU's index in the GICv2 CPU-interface numbering (the SGI source el2visor records).
    cpu_if: u32,
}

impl GuestGic {
    /// Enable the distributor and this CPU's interface (group 1 on GICv3, group 0 on GICv2),
    /// priority mask open.
    pub fn init(p: &Platform) -> Result<Self, Msg> {
        let gic = p.gic.ok_or_else(|| msg!("no GIC node the probe knows in the DT"))?;
        let aff = MPIDR_EL1.get() & 0xff_00ff_ffff;
        match gic {
            Gic::V3 { dist, redist, .. } => {
                let stride = gic.redist_stride();
                let rd = (0..redist.size / stride)
                    .map(|i| redist.base + i * stride)
                    .find(|&rd| {
                        let t = rd64(rd + GICR_TYPER) >> 32;
                        (t & 0xff_ffff) | (t >> 24) << 32 == aff
                    })
                    .ok_or_else(|| msg!("no redistributor in {:#x}+{:#x} has MPIDR affinity {aff:#x}", redist.base, redist.size))?;
                wr32(rd + GICR_WAKER, 0);
                set_icc_sre(icc_sre() | 1);
                set_icc_ctlr(0);
                set_icc_pmr(0xff);
                set_icc_igrpen1(1);
                // ARE and EnableGrp1A.
                wr32(dist + GICD_CTLR, 1 << 4 | 1 << 1);
                Ok(Self { gic, rd, cpu_if: 0 })
            }
            Gic::V2 { dist, cpu } => {
                wr32(dist + GICD_CTLR, 1);
                wr32(cpu + GICC_PMR, 0xff);
                wr32(cpu + GICC_CTLR, 1);
                let cpu_if = rd32(dist + ITARGETSR).trailing_zeros() % 8;
                Ok(Self { gic, rd: 0, cpu_if })
            }
        }
    }

    /// GICv3: this CPU's redistributor (its RD_base frame).
    pub fn rd_base(&self) -> Option<u64> {
        self.is_v3().then_some(self.rd)
    }

    pub fn is_v3(&self) -> bool {
        matches!(self.gic, Gic::V3 { .. })
    }

    /// Where the bitmap registers of `intid` are: this CPU's SGI_base for GICv3 SGIs and PPIs,
    /// the distributor otherwise.
    fn bank(&self, intid: u32) -> u64 {
        if intid < 32 && self.is_v3() {
            self.rd + SGI_BASE
        } else {
            self.gic.dist()
        }
    }

    /// The bitmap register at `reg` (ISENABLER, ISPENDR, ...) that holds `intid`.
    pub fn bitmap_reg(&self, reg: u64, intid: u32) -> u64 {
        self.bank(intid) + reg + (intid / 32) as u64 * 4
    }

    /// Whether `intid`'s bit is set in the bitmap register `reg`.
    pub fn bit(&self, reg: u64, intid: u32) -> bool {
        rd32(self.bitmap_reg(reg, intid)) & (1 << (intid % 32)) != 0
    }

    /// Write `intid`'s bit (alone) to the write-1 bitmap register `reg`.
    pub fn set_bit(&self, reg: u64, intid: u32) {
        wr32(self.bitmap_reg(reg, intid), 1 << (intid % 32));
    }

    pub fn pending(&self, intid: u32) -> bool {
        self.bit(ISPENDR, intid)
    }

    pub fn active(&self, intid: u32) -> bool {
        self.bit(ISACTIVER, intid)
    }

    /// `intid`'s priority byte.
    pub fn priority(&self, intid: u32) -> u8 {
        let p = self.bank(intid) + IPRIORITYR + (intid & !3) as u64;
        (rd32(p) >> (8 * (intid % 4))) as u8
    }

    pub fn set_priority(&self, intid: u32, prio: u8) {
        let p = self.bank(intid) + IPRIORITYR + (intid & !3) as u64;
        let shift = 8 * (intid % 4);
        wr32(p, (rd32(p) & !(0xff << shift)) | (prio as u32) << shift);
    }

    pub fn enable(&self, intid: u32, on: bool) {
        self.set_bit(if on { ISENABLER } else { ICENABLER }, intid);
    }

    /// Get `intid` ready to be enabled: group 1 on GICv3, priority 0xa0, level-sensitive (SPIs and
    /// PPIs), and an SPI routed to this CPU.
    pub fn configure(&self, intid: u32) {
        let bank = self.bank(intid);
        if self.is_v3() {
            let g = bank + IGROUPR + (intid / 32) as u64 * 4;
            wr32(g, rd32(g) | 1 << (intid % 32));
        }
        let p = bank + IPRIORITYR + (intid & !3) as u64;
        let shift = 8 * (intid % 4);
        wr32(p, (rd32(p) & !(0xff << shift)) | 0xa0 << shift);
        if intid >= 16 {
            let c = bank + ICFGR + (intid / 16) as u64 * 4;
            wr32(c, rd32(c) & !(2 << (2 * (intid % 16))));
        }
        if intid >= 32 {
            match self.gic {
                Gic::V3 { dist, .. } => wr64(dist + GICD_IROUTER + 8 * intid as u64, MPIDR_EL1.get() & 0xff_00ff_ffff),
                Gic::V2 { dist, .. } => {
                    let t = dist + ITARGETSR + (intid & !3) as u64;
                    wr32(t, (rd32(t) & !(0xff << shift)) | (1 << self.cpu_if) << shift);
                }
            }
        }
    }

    /// Route SPI `intid` to one CPU: on GICv3 the one with MPIDR `mpidr` (GICD_IROUTER), on GICv2
    /// the CPU interfaces in `cpu_if_mask` (its GICD_ITARGETSR byte).
    pub fn route(&self, intid: u32, mpidr: u64, cpu_if_mask: u32) {
        match self.gic {
            Gic::V3 { dist, .. } => wr64(dist + GICD_IROUTER + 8 * intid as u64, mpidr & 0xff_00ff_ffff),
            Gic::V2 { dist, .. } => {
                let t = dist + ITARGETSR + (intid & !3) as u64;
                let shift = 8 * (intid % 4);
                wr32(t, (rd32(t) & !(0xff << shift)) | (cpu_if_mask & 0xff) << shift);
            }
        }
    }

    /// One past the last INTID the distributor implements (GICD_TYPER.ITLinesNumber).
    pub fn lines(&self) -> u32 {
        ((rd32(self.gic.dist() + GICD_TYPER) & 0x1f) + 1) * 32
    }

    /// Acknowledge the highest-priority pending interrupt: the raw IAR (INTID in bits 9:0, the
    /// GICv2 SGI source above).
    pub fn ack(&self) -> u32 {
        match self.gic {
            Gic::V3 { .. } => icc_iar1() as u32,
            Gic::V2 { cpu, .. } => rd32(cpu + GICC_IAR),
        }
    }

    /// Acknowledge the highest-priority pending interrupt and, if one was, end it: the raw IAR.
    pub fn ack_and_end(&self) -> u32 {
        let iar = self.ack();
        if iar & 0x3ff < 1020 {
            self.eoi(iar);
        }
        iar
    }

    /// End of interrupt (priority drop and, with EOImode 0, deactivation) for a raw IAR value.
    pub fn eoi(&self, iar: u32) {
        match self.gic {
            Gic::V3 { .. } => set_icc_eoir1(iar as u64),
            Gic::V2 { cpu, .. } => wr32(cpu + GICC_EOIR, iar),
        }
    }

    /// Send SGI `intid` to this CPU (ICC_SGI1R_EL1 / GICD_SGIR "this CPU only").
    pub fn sgi_self(&self, intid: u32) {
        match self.gic {
            Gic::V3 { .. } => set_icc_sgi1r(sgi1r_value(MPIDR_EL1.get(), intid)),
            Gic::V2 { dist, .. } => wr32(dist + GICD_SGIR, 2 << 24 | intid),
        }
    }

    /// Send SGI `intid` to one other CPU: on GICv3 the one with MPIDR `mpidr` (ICC_SGI1R_EL1's
    /// target list, as Linux sends IPIs), on GICv2 the CPU interfaces in `cpu_if_mask`
    /// (GICD_SGIR's target list).
    pub fn sgi_to(&self, mpidr: u64, cpu_if_mask: u32, intid: u32) {
        match self.gic {
            Gic::V3 { .. } => set_icc_sgi1r(sgi1r_value(mpidr, intid)),
            Gic::V2 { dist, .. } => wr32(dist + GICD_SGIR, (cpu_if_mask & 0xff) << 16 | intid),
        }
    }

    /// This CPU's bit in GICv2 target lists (0 on GICv3).
    pub fn cpu_if_mask(&self) -> u32 {
        if self.is_v3() {
            0
        } else {
            1 << self.cpu_if
        }
    }

    /// GICv2: clear SGI `intid` from this CPU's own source (GICD_CPENDSGIR).
    pub fn clear_sgi_v2(&self, intid: u32) {
        let reg = self.gic.dist() + GICD_CPENDSGIR + (intid & !3) as u64;
        wr32(reg, (1 << self.cpu_if) << (8 * (intid % 4)));
    }

    /// GICv2: the sources SGI `intid` is pending from for this CPU (its GICD_SPENDSGIR byte),
    /// and this CPU's own source bit.
    pub fn sgi_sources_v2(&self, intid: u32) -> (u32, u32) {
        let reg = self.gic.dist() + GICD_CPENDSGIR + 0x10 + (intid & !3) as u64;
        ((rd32(reg) >> (8 * (intid % 4))) & 0xff, 1 << self.cpu_if)
    }

    /// Acknowledge and complete everything pending (leftovers of an earlier step); how many.
    pub fn drain(&self) -> u32 {
        let mut n = 0;
        loop {
            let iar = self.ack();
            if iar & 0x3ff >= 1020 || n >= 64 {
                return n;
            }
            self.eoi(iar);
            n += 1;
        }
    }
}

/// ICC_SGI1R_EL1 sending SGI `intid` to the one CPU with MPIDR `m` (a target list of one).
fn sgi1r_value(m: u64, intid: u32) -> u64 {
    let aff0 = m & 0xff;
    (1 << (aff0 & 0xf)) | (m >> 8 & 0xff) << 16 | (intid as u64) << 24 | (m >> 16 & 0xff) << 32 | (aff0 >> 4) << 44 | (m >> 32 & 0xff) << 48
}

/// Counter ticks in `us` microseconds.
pub fn ticks(us: u64) -> u64 {
    sysreg::cntfrq() * us / 1_000_000
}

pub fn now() -> u64 {
    sysreg::isb();
    CNTVCT_EL0.get()
}

/// Spin for `us` microseconds.
pub fn delay(us: u64) {
    let end = now() + ticks(us);
    while now() < end {
        core::hint::spin_loop();
    }
}

/// Arm the EL1 virtual timer to fire `us` microseconds from now (enabled, not masked).
pub fn vtimer_arm(us: u64) {
    CNTV_CVAL_EL0.set(now() + ticks(us));
    CNTV_CTL_EL0.set(1);
    sysreg::isb();
}

/// Stop the virtual timer: its interrupt line goes low.
pub fn vtimer_stop() {
    CNTV_CTL_EL0.set(0);
    sysreg::isb();
}

/// CNTV_CTL_EL0.ISTATUS: the timer condition is met.
pub fn vtimer_fired() -> bool {
    CNTV_CTL_EL0.get() & 4 != 0
}
