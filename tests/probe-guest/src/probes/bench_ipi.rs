//! `ipi_latency` (bench mode, see `bench_exits`): an SGI from this vCPU to the second one, from
//! the counter read just before the send to the counter the second vCPU reads right after its
//! IAR gave the SGI. Both vCPUs wait in WFI (interrupts masked, IAR polled after each wake), as
//! an idle SMP guest does: under QEMU's round-robin `-icount` scheduling a spinning vCPU would
//! keep the other one from running for a whole time slice. The second vCPU answers each SGI
//! with one back, which wakes this one for the next round; only the way there is timed.
//!
//! The second vCPU runs with its MMU off (`probe_secondary_entry`, mode `MODE_BENCH_IPI`): the
//! words below are plain loads and stores, non-cacheable on this side, Device on that one.

use super::bench_exits::{dither, now, LATENCY_ITERS};
use super::cpu::{entry_point, other_cpu, MODE_BENCH_IPI};
use super::gic::{self, GuestGic, VTIMER};
use super::Context;
use crate::hvc;
use aarch64_cpu::registers::{Readable, Writeable, CNTV_CTL_EL0, CNTV_CVAL_EL0, MPIDR_EL1};
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::abi;
use probe_guest::dt::Platform;
use probe_guest::msg;
use probe_guest::msg::Msg;

/// The SGI to the second vCPU, and the one it answers with.
const SGI_PING: u32 = 1;
const SGI_PONG: u32 = 2;

/// The platform (for the second vCPU's GIC setup), identity-mapped on both sides.
static PLATFORM: AtomicU64 = AtomicU64::new(0);
/// Who to answer: this vCPU's MPIDR and (GICv2) CPU-interface bit.
static PRIMARY_MPIDR: AtomicU64 = AtomicU64::new(0);
static PRIMARY_MASK: AtomicU64 = AtomicU64::new(0);
/// The second vCPU's CPU-interface bit (GICv2), 0 before it is ready and `u64::MAX` if its GIC
/// setup failed.
static SECONDARY_MASK: AtomicU64 = AtomicU64::new(0);
/// The counter the second vCPU read on the last SGI.
static STAMP: AtomicU64 = AtomicU64::new(0);
/// Set to end the second vCPU's loop (it turns itself off after the next SGI).
static STOP: AtomicU64 = AtomicU64::new(0);

/// The second vCPU's side (from `probe_secondary_main`); returns when told to stop.
pub fn secondary() {
    // SAFETY: the primary stored the address of its `Platform` (in probe_main's frame, alive
    // until power-off) before CPU_ON; the MMU is off, so the address is the memory itself.
    let p = unsafe { &*(PLATFORM.load(Ordering::Acquire) as *const Platform) };
    let g = match GuestGic::init(p) {
        Ok(g) => g,
        Err(_) => {
            SECONDARY_MASK.store(u64::MAX, Ordering::Release);
            return;
        }
    };
    g.configure(SGI_PING);
    g.enable(SGI_PING, true);
    g.drain();
    let primary = PRIMARY_MPIDR.load(Ordering::Relaxed);
    let primary_mask = PRIMARY_MASK.load(Ordering::Relaxed) as u32;
    SECONDARY_MASK.store(g.cpu_if_mask().max(1) as u64, Ordering::Release);
    g.sgi_to(primary, primary_mask, SGI_PONG);
    loop {
        aarch64_cpu::asm::wfi();
        let iar = g.ack();
        let intid = iar & 0x3ff;
        if intid == SGI_PING {
            STAMP.store(now(), Ordering::Release);
            g.eoi(iar);
            if STOP.load(Ordering::Acquire) != 0 {
                return;
            }
            g.sgi_to(primary, primary_mask, SGI_PONG);
        } else if intid < 1020 {
            g.eoi(iar);
        }
    }
}

/// Wait in WFI until IAR gives the answer SGI; the virtual timer (armed by the caller) is the
/// watchdog.
fn wait_pong(g: &GuestGic) -> Result<(), Msg> {
    loop {
        aarch64_cpu::asm::wfi();
        let iar = g.ack();
        let intid = iar & 0x3ff;
        if intid < 1020 {
            g.eoi(iar);
        }
        if intid == SGI_PONG {
            return Ok(());
        }
        if intid == VTIMER {
            return Err(msg!("the second vCPU did not answer the SGI within 5 s"));
        }
    }
}

pub fn ipi_latency(ctx: &Context, g: &GuestGic) -> Result<(), Msg> {
    let Ok(target) = other_cpu(ctx) else {
        println!("probe: ipi_latency not run: the VM has one vCPU");
        return Ok(());
    };
    PLATFORM.store(&ctx.platform as *const Platform as u64, Ordering::Relaxed);
    PRIMARY_MPIDR.store(MPIDR_EL1.get() & 0xff_00ff_ffff, Ordering::Relaxed);
    PRIMARY_MASK.store(g.cpu_if_mask() as u64, Ordering::Relaxed);
    SECONDARY_MASK.store(0, Ordering::Relaxed);
    STOP.store(0, Ordering::Relaxed);
    gic::vtimer_stop();
    g.configure(SGI_PONG);
    g.enable(SGI_PONG, true);
    g.configure(VTIMER);
    g.enable(VTIMER, true);
    g.drain();
    // The CPU_ON probes turned the second vCPU off last; give its CPU_OFF time to complete.
    let end = now() + gic::ticks(2_000_000);
    loop {
        match hvc::psci(abi::PSCI_CPU_ON_64, target, entry_point(), MODE_BENCH_IPI) {
            0 => break,
            r if now() > end => return Err(msg!("CPU_ON of MPIDR {target:#x} returned {r}")),
            _ => gic::delay(1000),
        }
    }
    // Watchdog for everything below: the virtual timer 5 s ahead.
    CNTV_CVAL_EL0.set(now() + gic::ticks(5_000_000));
    CNTV_CTL_EL0.set(1);
    let r = (|| {
        wait_pong(g)?;
        let mask = SECONDARY_MASK.load(Ordering::Acquire);
        if mask == u64::MAX {
            return Err(msg!("the second vCPU could not set up its GIC CPU interface"));
        }
        let mut sum = 0;
        for i in 0..LATENCY_ITERS {
            dither(i);
            let t0 = now();
            g.sgi_to(target, mask as u32, SGI_PING);
            wait_pong(g)?;
            sum += STAMP.load(Ordering::Acquire).wrapping_sub(t0);
        }
        println!("BENCHRAW ipi_latency ticks={sum} base=0 iters={LATENCY_ITERS} cntfrq={}", crate::sysreg::cntfrq());
        STOP.store(1, Ordering::Release);
        g.sgi_to(target, mask as u32, SGI_PING);
        Ok(())
    })();
    gic::vtimer_stop();
    g.drain();
    r
}
