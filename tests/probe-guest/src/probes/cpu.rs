//! PSCI CPU_ON with a second vCPU (entry.S's `probe_secondary_entry`, which records the EL1
//! registers the vCPU starts with before touching any):
//!
//! - `cpu_on_already_on`: CPU_ON of a vCPU that is on (or being started) answers ALREADY_ON, and so
//!   does CPU_ON of the caller itself;
//! - `cpu_on_reset_state`: a vCPU that sets its EL1 registers (and its virtual CPU interface: on
//!   GICv3 ICC_PMR_EL1 and ICC_IGRPEN1_EL1, on GICv2 GICC_PMR and GICC_CTLR), turns itself off and
//!   is turned on again starts with
//!   SCTLR_EL1 as the boot protocol says (MMU, caches and alignment checks off, little-endian as
//!   its caller), every other one of them back at 0 (el2visor's reset value, KVM's for most),
//!   not what its previous life left; so are those of newer features and the PMU's enables
//!   (`cpu_feat`).
//! - `cpu_on_endianness`: a CPU_ON made with SCTLR_EL1.EE set starts its target with EE set
//!   (PSCI: the caller's endianness).
//!
//! - `cpu_off_moves_spi`: an SPI made pending for the secondary while it runs with its
//!   interrupts masked, then routed to this vCPU, arrives here once the secondary turns itself off
//!   (a GIC forwards a pending SPI to its new target; Linux re-routes a CPU's interrupts before
//!   its CPU_OFF).
//! - `vgic_active_after_eoi`: the secondary acknowledges an SPI, reads its own ISACTIVER (an exit,
//!   at which el2visor notes the interrupt active), ends it and then spins without exiting; this
//!   vCPU's ISACTIVER must show it inactive within 100 ms (Linux's `synchronize_irq` polls it
//!   so, and would wait for the secondary's next exit otherwise).
//!
//! The secondary runs with its MMU off and talks to this vCPU through [`SHARED`] with plain loads
//! and stores; the primary cleans and invalidates those lines around each exchange.

use super::Context;
use crate::{hvc, sysreg};
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::abi;
use probe_guest::msg;
use probe_guest::msg::Msg;

extern "C" {
    fn probe_secondary_entry();
    /// PSCI CPU_ON made with SCTLR_EL1.EE set (entry.S); returns x0.
    fn probe_cpu_on_big_endian(target: u64, entry: u64, context: u64) -> i64;
}

/// Modes of the secondary (its CPU_ON context id).
pub const MODE_DIRTY: u64 = 1;
pub const MODE_CHECK: u64 = 2;
pub const MODE_STORM: u64 = 3;
pub const MODE_OFF: u64 = 4;
/// The `ipi_latency` benchmark's second vCPU (`bench_ipi::secondary`).
pub const MODE_BENCH_IPI: u64 = 5;
/// Say it runs (stage 3), then wait, interrupts masked, until it may turn off.
pub const MODE_HOLD: u64 = 6;
/// Turn its virtual CPU interface on, say so (stage 4), acknowledge the SPI `ack_spi`, read its
/// active bit, end it, report (stage 5), then spin without exiting until it may turn off.
pub const MODE_ACK: u64 = 7;

/// The registers entry.S records, in its order.
const SEEN_NAMES: [&str; 22] = [
    "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "VBAR_EL1", "CONTEXTIDR_EL1",
    "TPIDR_EL1", "TPIDR_EL0", "TPIDRRO_EL0", "CPACR_EL1", "CNTKCTL_EL1", "CNTV_CTL_EL0",
    "CNTV_CVAL_EL0", "CNTP_CTL_EL0", "CNTP_CVAL_EL0", "SP_EL0", "ELR_EL1", "SPSR_EL1", "ESR_EL1",
    "FAR_EL1", "PAR_EL1",
];

/// What entry.S records (written there with the MMU off).
#[export_name = "probe_secondary_seen"]
static SEEN: [AtomicU64; 24] = [const { AtomicU64::new(0) }; 24];

/// The exchange with the secondary, one word each.
#[repr(C, align(64))]
struct Shared {
    /// The secondary's stage: 1 = registers dirtied, 2 = registers checked (GIC ones read).
    stage: AtomicU64,
    /// The primary lets the dirtied secondary turn off.
    may_turn_off: AtomicU64,
    /// Whether the GIC is a GICv3 (the secondary then uses the ICC system registers).
    gic_v3: AtomicU64,
    /// Else the GICv2 CPU interface's address (0: none).
    gicc: AtomicU64,
    /// The priority mask and the enable as the checked secondary found them (ICC_PMR_EL1 and
    /// ICC_IGRPEN1_EL1, or GICC_PMR and GICC_CTLR).
    icc_pmr: AtomicU64,
    icc_igrpen1: AtomicU64,
    /// The storm's CPU_ON target (reset_race).
    storm_target: AtomicU64,
    /// MODE_ACK: the distributor's address, the SPI, and what the secondary saw (its IAR value,
    /// and whether ISACTIVER showed the SPI active before the EOI).
    gicd: AtomicU64,
    ack_spi: AtomicU64,
    ack_iar: AtomicU64,
    ack_active: AtomicU64,
}

static SHARED: Shared = Shared {
    stage: AtomicU64::new(0),
    may_turn_off: AtomicU64::new(0),
    gic_v3: AtomicU64::new(0),
    gicc: AtomicU64::new(0),
    icc_pmr: AtomicU64::new(0),
    icc_igrpen1: AtomicU64::new(0),
    storm_target: AtomicU64::new(0),
    gicd: AtomicU64::new(0),
    ack_spi: AtomicU64::new(0),
    ack_iar: AtomicU64::new(0),
    ack_active: AtomicU64::new(0),
};

/// Push the shared words to memory / drop stale copies (the secondary's MMU is off).
fn sync_shared() {
    let shared = &SHARED as *const Shared as u64;
    let seen = SEEN.as_ptr() as u64;
    let lines = (shared..shared + core::mem::size_of::<Shared>() as u64).step_by(64).chain((seen & !63..seen + 8 * 24).step_by(64));
    for a in lines {
        // SAFETY: clean+invalidate of lines of the probe's own statics only moves data to memory.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
    }
    sysreg::dsb();
}

/// Values the dirtying life writes.
const DIRTY: [(&str, u64); 11] = [
    ("tcr_el1", 0x0000_0035_b510_3510),
    ("ttbr0_el1", 0x1234_5000),
    ("ttbr1_el1", 0x5678_9000),
    ("mair_el1", 0x44ff_04ee),
    ("contextidr_el1", 0x42),
    ("tpidr_el1", 0x1111),
    ("tpidr_el0", 0x2222),
    ("tpidrro_el0", 0x3333),
    ("cntkctl_el1", 0x3),
    ("cntv_cval_el0", 0xffff_ffff_ffff),
    ("sp_el0", 0x5555_0000),
];

macro_rules! msr {
    ($reg:literal, $v:expr) => {
        // SAFETY: an EL1/EL0 register of this secondary vCPU, which runs with its MMU off and
        // uses none of them; the value only has to be read back after a reset.
        unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) $v, options(nostack, preserves_flags)) }
    };
}

fn dirty_registers() {
    msr!("tcr_el1", DIRTY[0].1);
    msr!("ttbr0_el1", DIRTY[1].1);
    msr!("ttbr1_el1", DIRTY[2].1);
    msr!("mair_el1", DIRTY[3].1);
    msr!("contextidr_el1", DIRTY[4].1);
    msr!("tpidr_el1", DIRTY[5].1);
    msr!("tpidr_el0", DIRTY[6].1);
    msr!("tpidrro_el0", DIRTY[7].1);
    msr!("cntkctl_el1", DIRTY[8].1);
    msr!("cntv_cval_el0", DIRTY[9].1);
    msr!("sp_el0", DIRTY[10].1);
    // The virtual timer enabled but masked, the physical one the same: state, no interrupt.
    msr!("cntv_ctl_el0", 3u64);
    msr!("cntp_cval_el0", DIRTY[9].1);
    msr!("cntp_ctl_el0", 3u64);
    msr!("esr_el1", 0x77u64);
    msr!("far_el1", 0x88u64);
    super::cpu_feat::dirty_fp();
    // The instruction cache and alignment checks on (harmless with the MMU off).
    // SAFETY: as for `msr!`; bits 12 (I) and 1 (A) change nothing the probe's code relies on.
    unsafe { sysreg::set_sctlr(sysreg::sctlr() | (1 << 12)) };
    if SHARED.gic_v3.load(Ordering::Relaxed) != 0 {
        // VMCR: priority mask and group 1 enable.
        msr!("s3_0_c4_c6_0", 0x80u64); // ICC_PMR_EL1
        msr!("s3_0_c12_c12_7", 1u64); // ICC_IGRPEN1_EL1
    } else if let Some(gicc) = gicc() {
        // GICH_VMCR through the virtual CPU interface: GICC_PMR and GICC_CTLR.EnableGrp1.
        // SAFETY: the GICv2 CPU interface the DT names, a device page (the MMU is off); these
        // two registers only change this vCPU's interrupt masking.
        unsafe {
            core::ptr::write_volatile((gicc + GICC_PMR) as *mut u32, 0x80);
            core::ptr::write_volatile((gicc + GICC_CTLR) as *mut u32, 1);
        }
    }
    sysreg::isb();
}

const GICC_CTLR: u64 = 0x0;
const GICC_PMR: u64 = 0x4;
const GICC_IAR: u64 = 0xc;
const GICC_EOIR: u64 = 0x10;

fn gicc() -> Option<u64> {
    Some(SHARED.gicc.load(Ordering::Relaxed)).filter(|&a| a != 0)
}

/// The priority mask and the enable of the virtual CPU interface, if the probe knows the GIC.
fn read_vif() -> Option<(u64, u64)> {
    if SHARED.gic_v3.load(Ordering::Relaxed) != 0 {
        return Some(read_icc());
    }
    let gicc = gicc()?;
    // SAFETY: as in `dirty_registers`; reading these two registers has no side effect.
    Some(unsafe {
        (
            core::ptr::read_volatile((gicc + GICC_PMR) as *const u32) as u64,
            core::ptr::read_volatile((gicc + GICC_CTLR) as *const u32) as u64,
        )
    })
}

fn read_icc() -> (u64, u64) {
    let (pmr, grp): (u64, u64);
    // SAFETY: reading the virtual CPU interface's registers (GICv3 only) has no side effect.
    unsafe {
        asm!("mrs {}, s3_0_c4_c6_0", "mrs {}, s3_0_c12_c12_7", out(reg) pmr, out(reg) grp,
            options(nomem, nostack, preserves_flags))
    };
    (pmr, grp)
}

/// The secondary vCPU's Rust entry (entry.S), with the MMU off; never returns.
#[no_mangle]
extern "C" fn probe_secondary_main(mode: u64) -> ! {
    match mode {
        MODE_DIRTY => {
            dirty_registers();
            super::cpu_feat::dirty();
            SHARED.stage.store(1, Ordering::Release);
            while SHARED.may_turn_off.load(Ordering::Acquire) == 0 {
                core::hint::spin_loop();
            }
        }
        MODE_CHECK => {
            super::cpu_feat::record();
            if let Some((pmr, enable)) = read_vif() {
                SHARED.icc_pmr.store(pmr, Ordering::Relaxed);
                SHARED.icc_igrpen1.store(enable, Ordering::Relaxed);
            }
            SHARED.stage.store(2, Ordering::Release);
        }
        MODE_BENCH_IPI => super::bench_ipi::secondary(),
        MODE_HOLD => {
            SHARED.stage.store(3, Ordering::Release);
            while SHARED.may_turn_off.load(Ordering::Acquire) == 0 {
                core::hint::spin_loop();
            }
        }
        MODE_ACK => {
            ack_one();
            while SHARED.may_turn_off.load(Ordering::Acquire) == 0 {
                core::hint::spin_loop();
            }
        }
        MODE_STORM => loop {
            let target = SHARED.storm_target.load(Ordering::Relaxed);
            hvc::psci(abi::PSCI_CPU_ON_64, target, probe_secondary_entry as *const () as u64, MODE_OFF);
        },
        _ => {}
    }
    hvc::psci(abi::PSCI_CPU_OFF, 0, 0, 0);
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// MODE_ACK's work (MMU off: the GIC through its registers, SHARED with plain loads and stores).
fn ack_one() {
    let v3 = SHARED.gic_v3.load(Ordering::Relaxed) != 0;
    let gicc = SHARED.gicc.load(Ordering::Relaxed);
    let gicd = SHARED.gicd.load(Ordering::Relaxed);
    let spi = SHARED.ack_spi.load(Ordering::Relaxed) as u32;
    // SAFETY: the virtual CPU interface (GICv3 system registers, or GICC, which el2visor maps to
    // the virtual interface) and the distributor's ISACTIVER: MMIO and registers of this VM's
    // own GIC; PSTATE.I stays masked, so nothing is taken, only polled.
    unsafe {
        if v3 {
            asm!("msr s3_0_c4_c6_0, {pmr}", "msr s3_0_c12_c12_7, {en}", "isb", pmr = in(reg) 0xffu64, en = in(reg) 1u64, options(nostack));
        } else {
            core::ptr::write_volatile((gicc + GICC_PMR) as *mut u32, 0xff);
            core::ptr::write_volatile((gicc + GICC_CTLR) as *mut u32, 1);
        }
    }
    SHARED.stage.store(4, Ordering::Release);
    let ack = || -> u64 {
        // SAFETY: as above; an acknowledge takes the highest pending interrupt.
        unsafe {
            if v3 {
                let v: u64;
                asm!("mrs {}, s3_0_c12_c12_0", out(reg) v, options(nostack));
                v
            } else {
                u64::from(core::ptr::read_volatile((gicc + GICC_IAR) as *const u32))
            }
        }
    };
    let end = cntvct() + ticks(2000);
    let mut iar = ack();
    while iar & 0x3ff != u64::from(spi) && cntvct() < end {
        iar = ack();
    }
    // SAFETY: as above.
    let active = unsafe { core::ptr::read_volatile((gicd + 0x300 + u64::from(spi / 32) * 4) as *const u32) } >> (spi % 32) & 1;
    if iar & 0x3ff < 1020 {
        // SAFETY: as above; ends the interrupt just acknowledged.
        unsafe {
            if v3 {
                asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) iar, options(nostack));
            } else {
                core::ptr::write_volatile((gicc + GICC_EOIR) as *mut u32, iar as u32);
            }
        }
    }
    SHARED.ack_iar.store(iar, Ordering::Relaxed);
    SHARED.ack_active.store(u64::from(active), Ordering::Relaxed);
    SHARED.stage.store(5, Ordering::Release);
}

fn active_after_eoi(ctx: &Context) -> Result<(), Msg> {
    use super::gic::{ICACTIVER, ICPENDR, ISPENDR};
    use probe_guest::dt::Gic;
    let (target, g, spi, others) = spi_for_secondary(ctx)?;
    g.configure(spi);
    g.route(spi, target, others);
    g.enable(spi, true);
    let gicd = match g.gic {
        Gic::V3 { dist, .. } | Gic::V2 { dist, .. } => dist,
    };
    SHARED.gic_v3.store(ctx.platform.gic_v3 as u64, Ordering::Relaxed);
    SHARED.gicc.store(ctx.platform.gicc.unwrap_or(0), Ordering::Relaxed);
    SHARED.gicd.store(gicd, Ordering::Relaxed);
    SHARED.ack_spi.store(u64::from(spi), Ordering::Relaxed);
    start(target, MODE_ACK)?;
    let r = (|| {
        wait("the secondary's CPU interface", || stage() == 4)?;
        g.set_bit(ISPENDR, spi);
        wait("the secondary to acknowledge and end the SPI", || stage() == 5)?;
        let (iar, active) = (SHARED.ack_iar.load(Ordering::Relaxed), SHARED.ack_active.load(Ordering::Relaxed));
        if iar & 0x3ff != u64::from(spi) {
            return Err(msg!("the secondary acknowledged {iar:#x}, expected SPI {spi}"));
        }
        if active != 1 {
            return Err(msg!("the secondary's ISACTIVER showed SPI {spi} inactive while it had it acknowledged"));
        }
        let end = cntvct() + ticks(100);
        while g.active(spi) {
            if cntvct() > end {
                return Err(msg!("SPI {spi} still reads active 100 ms after the secondary ended it (and went on without an exit)"));
            }
        }
        Ok(())
    })();
    g.enable(spi, false);
    g.set_bit(ICPENDR, spi);
    g.set_bit(ICACTIVER, spi);
    SHARED.may_turn_off.store(1, Ordering::Release);
    sync_shared();
    r.and(wait_off(target))
}

/// Counter ticks in `ms` milliseconds.
fn ticks(ms: u64) -> u64 {
    sysreg::cntfrq() * ms / 1000
}

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Wait up to 2 s for `done`.
fn wait(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Msg> {
    let end = cntvct() + ticks(2000);
    while !done() {
        if cntvct() > end {
            return Err(msg!("timed out waiting for {what}"));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

fn stage() -> u64 {
    sync_shared();
    SHARED.stage.load(Ordering::Acquire)
}

fn wait_off(target: u64) -> Result<(), Msg> {
    wait("AFFINITY_INFO to say the secondary is off", || {
        hvc::psci(abi::PSCI_AFFINITY_INFO_64, target, 0, 0) == abi::PSCI_AFFINITY_OFF as i64
    })
}

fn my_mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effect.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & 0xff_00ff_ffff
}

/// The first vCPU that is not this one.
pub fn other_cpu(ctx: &Context) -> Result<u64, Msg> {
    let me = my_mpidr();
    ctx.platform.cpus().iter().copied().find(|&c| c != me).ok_or_else(|| msg!("the VM has only one vCPU"))
}

pub fn entry_point() -> u64 {
    probe_secondary_entry as *const () as u64
}

/// Ask the secondary (`target`) to run the storm of CPU_ON calls on `storm_target`.
pub fn start_storm(target: u64, storm_target: u64) -> i64 {
    SHARED.storm_target.store(storm_target, Ordering::Relaxed);
    sync_shared();
    hvc::psci(abi::PSCI_CPU_ON_64, target, entry_point(), MODE_STORM)
}

/// One life of the secondary (`target`) in MODE_HOLD: started, seen running, let turn off, off.
pub fn hold_once(target: u64) -> Result<(), Msg> {
    start(target, MODE_HOLD)?;
    wait("the secondary to run", || stage() == 3)?;
    SHARED.may_turn_off.store(1, Ordering::Release);
    sync_shared();
    wait_off(target)
}

/// Start the secondary (`target`) in `mode` with the exchange reset: stage 0, not yet allowed to
/// turn off.
fn start(target: u64, mode: u64) -> Result<(), Msg> {
    SHARED.stage.store(0, Ordering::Relaxed);
    SHARED.may_turn_off.store(0, Ordering::Relaxed);
    sync_shared();
    cpu_on(target, mode)
}

fn cpu_on(target: u64, mode: u64) -> Result<(), Msg> {
    match hvc::psci(abi::PSCI_CPU_ON_64, target, entry_point(), mode) {
        0 => Ok(()),
        r => Err(msg!("CPU_ON of MPIDR {target:#x} returned {r}")),
    }
}

/// Both probes, which share the secondary's two lives.
pub fn run_all(ctx: &Context) {
    // They need a second vCPU: a VM of one (the `-smp 1` benchmarks) skips them, as the RTC and
    // GICv3 probes are skipped where there is no RTC or GICv3; the QEMU tests run them with more.
    if ctx.platform.cpus().len() < 2 {
        println!("probe: cpu_on_already_on and cpu_on_reset_state not run: the VM has one vCPU");
        return;
    }
    let mut already_on = Err(msg!("not run"));
    let reset_state = lives(ctx, &mut already_on);
    crate::report::outcome("cpu_on_already_on", already_on);
    crate::report::outcome("cpu_on_reset_state", reset_state);
    crate::report::outcome("cpu_on_endianness", endianness(ctx));
    crate::report::outcome("cpu_off_moves_spi", off_moves_spi(ctx));
    crate::report::outcome("vgic_active_after_eoi", active_after_eoi(ctx));
}

/// `snapshot_keeps_cpu_on` (the snapshot probes, with a second vCPU): a CPU_ON answered SUCCESS
/// and, at once, `then` (a snapshot, which pauses the VM, quite likely before the secondary ran
/// its first instruction): the secondary must still run afterwards, as the guest was told.
pub fn on_then(platform: &probe_guest::dt::Platform, then: impl FnOnce() -> u64) -> Result<(), Msg> {
    let me = my_mpidr();
    let target = platform.cpus().iter().copied().find(|&c| c != me).ok_or_else(|| msg!("the VM has only one vCPU"))?;
    // No virtual CPU interface to read in MODE_CHECK.
    SHARED.gic_v3.store(0, Ordering::Relaxed);
    SHARED.gicc.store(0, Ordering::Relaxed);
    SHARED.stage.store(0, Ordering::Relaxed);
    sync_shared();
    cpu_on(target, MODE_CHECK)?;
    match then() {
        0 => {}
        x => return Err(msg!("SNAPSHOT_TAKE right after the CPU_ON returned {x:#x}")),
    }
    wait("the vCPU started by a CPU_ON just before the snapshot to run", || stage() == 2)?;
    wait_off(target)
}

/// For a probe with an SPI and the secondary: the secondary's MPIDR, this vCPU's GIC (drained),
/// a free SPI, and the secondary's bit in a GICv2 target list (0 on GICv3).
fn spi_for_secondary(ctx: &Context) -> Result<(u64, super::gic::GuestGic, u32, u32), Msg> {
    let target = other_cpu(ctx)?;
    let g = super::gic::GuestGic::init(&ctx.platform)?;
    g.drain();
    let spi = super::vgic::free_spi(&g, ctx)?;
    // GICv2 target lists: the vCPUs' CPU interfaces are numbered in the DT's order of CPUs.
    let index = ctx.platform.cpus().iter().position(|&c| c == target).unwrap_or(1);
    let others = if g.is_v3() { 0 } else { 1 << index };
    Ok((target, g, spi, others))
}

fn off_moves_spi(ctx: &Context) -> Result<(), Msg> {
    use super::gic::{ISPENDR, SPURIOUS};
    let (target, g, spi, others) = spi_for_secondary(ctx)?;
    let mine = g.cpu_if_mask();
    g.configure(spi);
    g.enable(spi, true);
    start(target, MODE_HOLD)?;
    let r = (|| {
        wait("the secondary to run", || stage() == 3)?;
        // Pending for the secondary, which holds it (PSTATE.I masked); then routed back here.
        g.route(spi, target, others);
        g.set_bit(ISPENDR, spi);
        super::gic::delay(2_000);
        g.route(spi, my_mpidr(), mine);
        SHARED.may_turn_off.store(1, Ordering::Release);
        sync_shared();
        wait_off(target)?;
        let end = cntvct() + ticks(100);
        let mut iar = g.ack();
        while iar & 0x3ff == SPURIOUS && cntvct() < end {
            iar = g.ack();
        }
        if iar & 0x3ff < 1020 {
            g.eoi(iar);
        }
        if iar & 0x3ff != spi {
            return Err(msg!("IAR gave {iar:#x} after the secondary's CPU_OFF, expected SPI {spi}, pending for it and routed here since"));
        }
        Ok(())
    })();
    g.enable(spi, false);
    g.set_bit(super::gic::ICPENDR, spi);
    SHARED.may_turn_off.store(1, Ordering::Release);
    sync_shared();
    r
}

fn lives(ctx: &Context, already_on: &mut Result<(), Msg>) -> Result<(), Msg> {
    let target = other_cpu(ctx)?;
    SHARED.gic_v3.store(ctx.platform.gic_v3 as u64, Ordering::Relaxed);
    SHARED.gicc.store(ctx.platform.gicc.unwrap_or(0), Ordering::Relaxed);
    start(target, MODE_DIRTY)?;
    // Started (pending or on): a second CPU_ON, and one of this running vCPU, are ALREADY_ON.
    let again = hvc::psci(abi::PSCI_CPU_ON_64, target, entry_point(), MODE_DIRTY);
    let me = hvc::psci(abi::PSCI_CPU_ON_64, my_mpidr(), entry_point(), MODE_DIRTY);
    *already_on = if again != abi::PSCI_ALREADY_ON {
        Err(msg!("CPU_ON of a vCPU just started returned {again}, expected ALREADY_ON (-4)"))
    } else if me != abi::PSCI_ALREADY_ON {
        Err(msg!("CPU_ON of the calling vCPU returned {me}, expected ALREADY_ON (-4)"))
    } else {
        Ok(())
    };
    wait("the secondary to dirty its registers", || stage() == 1)?;
    SHARED.may_turn_off.store(1, Ordering::Release);
    sync_shared();
    wait_off(target)?;
    cpu_on(target, MODE_CHECK)?;
    wait("the secondary's second life", || stage() == 2)?;
    wait_off(target)?;
    sync_shared();
    let seen: [u64; 22] = core::array::from_fn(|i| SEEN[i].load(Ordering::Relaxed));
    let sctlr = seen[0];
    // M (0), A (1), C (2), I (12) clear: MMU, alignment checks and caches off; EE (25) clear:
    // little-endian, as the caller.
    if sctlr & 0x1007 != 0 {
        return Err(msg!("SCTLR_EL1 {sctlr:#x} after CPU_ON: MMU, caches or alignment checks left on"));
    }
    if sctlr & SCTLR_EE != 0 {
        return Err(msg!("SCTLR_EL1 {sctlr:#x} after CPU_ON from a little-endian caller: EE set"));
    }
    for (name, v) in SEEN_NAMES.iter().zip(seen).skip(1) {
        if v != 0 {
            return Err(msg!("{name} is {v:#x} after CPU_ON, expected its reset value 0 (what the previous life left?)"));
        }
    }
    super::cpu_feat::check_fp(SEEN[22].load(Ordering::Relaxed), SEEN[23].load(Ordering::Relaxed))?;
    let (pmr, enable) = (SHARED.icc_pmr.load(Ordering::Relaxed), SHARED.icc_igrpen1.load(Ordering::Relaxed));
    if pmr != 0 || enable != 0 {
        let (p, e) = if ctx.platform.gic_v3 { ("ICC_PMR_EL1", "ICC_IGRPEN1_EL1") } else { ("GICC_PMR", "GICC_CTLR") };
        return Err(msg!("virtual CPU interface not reset: {p} {pmr:#x}, {e} {enable:#x} (were 0x80, 1)"));
    }
    super::cpu_feat::sync();
    let checked = super::cpu_feat::verify()?;
    println!("probe: cpu_on_reset_state: also reset:{checked}");
    Ok(())
}

/// SCTLR_EL1.EE: EL1 data accesses big-endian.
const SCTLR_EE: u64 = 1 << 25;

/// `cpu_on_endianness`: a CPU_ON made with SCTLR_EL1.EE set starts its target with EE set
/// (PSCI: the caller's endianness; KVM does so). The secondary's entry clears it before its
/// first store and records SCTLR_EL1 as found.
fn endianness(ctx: &Context) -> Result<(), Msg> {
    let target = other_cpu(ctx)?;
    SHARED.gic_v3.store(0, Ordering::Relaxed);
    SHARED.gicc.store(0, Ordering::Relaxed);
    SHARED.stage.store(0, Ordering::Relaxed);
    SEEN[0].store(0, Ordering::Relaxed);
    sync_shared();
    // SAFETY: the stub only makes the call, touching no memory while EE is set; the entry point
    // is the secondaries' own, which copes with EE (entry.S).
    match unsafe { probe_cpu_on_big_endian(target, entry_point(), MODE_CHECK) } {
        0 => {}
        r => return Err(msg!("CPU_ON of MPIDR {target:#x} from a big-endian caller returned {r}")),
    }
    wait("the secondary started by a big-endian caller", || stage() == 2)?;
    wait_off(target)?;
    sync_shared();
    let sctlr = SEEN[0].load(Ordering::Relaxed);
    if sctlr & SCTLR_EE == 0 {
        return Err(msg!("SCTLR_EL1 {sctlr:#x} after CPU_ON from a big-endian caller: EE clear, the caller's endianness not kept"));
    }
    Ok(())
}
