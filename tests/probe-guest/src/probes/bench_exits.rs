//! The exit benchmarks of `bench` mode (issue 15; tests/bench/exits.bench.sh turns their
//! `BENCHRAW` lines into instructions, docs/benchmarks.md says how). Under QEMU `-icount shift=0`
//! the virtual counter follows executed instructions (every CPU's, EL2 included), so counter ticks
//! are instruction counts: one per tick at 1 GHz, 16 per tick at 62.5 MHz.
//!
//! - `exit_hvc`: 10 000 `hvc #0` calls of SMCCC_VERSION against the same loop with a `mov`;
//! - `exit_gicd_read`: 10 000 32-bit reads of GICD_TYPER (the emulated distributor) against the
//!   same loop with a `mov`;
//! - `timer_latency`: 200 times, the virtual timer armed 100 µs ahead, WFI until it fires,
//!   the counter read right after IAR gives INTID 27, minus the deadline;
//! - `exit_wfi_wake` (GICv2 only, where el2visor traps WFI and waits in its own): in the same
//!   loop, the counter read right after the WFI that the timer ended, minus the deadline (a WFI
//!   with an interrupt already pending does not wait, and so does not trap either);
//! - `ipi_latency` (`bench_ipi`): an SGI from this vCPU to the second one.
//!
//! The latencies are sums over iterations; each iteration first spins a different number of
//! instructions (`dither`), so that where an event falls within a counter tick varies and the
//! rounding to whole ticks averages out. The harness also runs the probe on bare QEMU (no EL2)
//! and reports el2visor's latencies above those.

use super::gic::{self, GuestGic, VTIMER};
use super::Context;
use crate::sysreg;
use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0, CNTV_CVAL_EL0};
use core::arch::asm;
use probe_guest::abi;
use probe_guest::dt::Gic;
use probe_guest::msg;
use probe_guest::msg::Msg;

/// Loop iterations of the per-operation benchmarks.
pub const LOOP_ITERS: u64 = 10_000;
/// Events timed by the latency benchmarks.
pub const LATENCY_ITERS: u64 = 200;

/// Spin `2 * (i % 16) + 2` instructions: moves the next event across counter ticks.
pub fn dither(i: u64) {
    let mut k = i % 16;
    // SAFETY: a register-only loop.
    unsafe { asm!("2:", "subs {k}, {k}, #1", "b.hs 2b", k = inout(reg) k, options(nomem, nostack)) };
    let _ = k;
}

pub fn now() -> u64 {
    gic::now()
}

fn print_loop(name: &str, ticks: u64, base: u64) {
    println!("BENCHRAW {name} ticks={ticks} base={base} iters={LOOP_ITERS} cntfrq={}", sysreg::cntfrq());
}

fn print_latency(name: &str, ticks: u64, iters: u64) {
    println!("BENCHRAW {name} ticks={ticks} base=0 iters={iters} cntfrq={}", sysreg::cntfrq());
}

/// The loop with `mov` in place of the operation: what every per-operation figure is above.
fn base_loop() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: register-only loop.
    unsafe {
        asm!(
            "isb", "mrs {t0}, cntvct_el0",
            "2:", "mov {tmp}, {n}", "subs {n}, {n}, #1", "b.ne 2b",
            "isb", "mrs {t1}, cntvct_el0",
            t0 = out(reg) t0, t1 = out(reg) t1, n = inout(reg) LOOP_ITERS => _, tmp = out(reg) _,
            options(nostack, nomem),
        )
    };
    t1.wrapping_sub(t0)
}

/// `exit_hvc`: SMCCC_VERSION through HVC, which el2visor answers itself.
pub fn exit_hvc() {
    let (t0, t1): (u64, u64);
    // SAFETY: SMCCC_VERSION has no effect; an SMCCC callee may change x0..x17, all declared
    // clobbered, and keeps the rest and the stack.
    unsafe {
        asm!(
            "isb", "mrs x20, cntvct_el0",
            "2:", "mov x0, x23", "hvc #0", "subs x22, x22, #1", "b.ne 2b",
            "isb", "mrs x21, cntvct_el0",
            out("x20") t0, out("x21") t1, inout("x22") LOOP_ITERS => _,
            in("x23") abi::SMCCC_VERSION,
            clobber_abi("C"),
            options(nostack),
        )
    };
    // The HVC loop has the `mov x0` the base loop also has: the difference is the HVC alone.
    print_loop("exit_hvc", t1.wrapping_sub(t0), base_loop());
}

/// `exit_gicd_read`: GICD_TYPER, a register el2visor's distributor model answers.
pub fn exit_gicd_read(g: &GuestGic) {
    let typer = g.gic.dist() + 4;
    let (t0, t1): (u64, u64);
    // SAFETY: GICD_TYPER is read-only and mapped Device at stage 1 (mmu.rs); a 32-bit read.
    unsafe {
        asm!(
            "isb", "mrs {t0}, cntvct_el0",
            "2:", "ldr {v:w}, [{a}]", "subs {n}, {n}, #1", "b.ne 2b",
            "isb", "mrs {t1}, cntvct_el0",
            t0 = out(reg) t0, t1 = out(reg) t1, n = inout(reg) LOOP_ITERS => _, a = in(reg) typer,
            v = out(reg) _,
            options(nostack, readonly),
        )
    };
    print_loop("exit_gicd_read", t1.wrapping_sub(t0), base_loop());
}

/// `timer_latency`: from the virtual timer's deadline to the counter read after IAR gave its
/// interrupt, the vCPU waiting in WFI.
pub fn timer_latency(g: &GuestGic) -> Result<(), Msg> {
    gic::vtimer_stop();
    g.configure(VTIMER);
    g.enable(VTIMER, true);
    g.drain();
    let ahead = gic::ticks(100);
    let (mut sum, mut wake_sum) = (0, 0);
    for i in 0..LATENCY_ITERS {
        dither(i);
        let deadline = now() + ahead;
        CNTV_CVAL_EL0.set(deadline);
        CNTV_CTL_EL0.set(1);
        let t = loop {
            aarch64_cpu::asm::wfi();
            let woke = now();
            let iar = g.ack();
            let intid = iar & 0x3ff;
            if intid == VTIMER {
                let t = now();
                wake_sum += woke.wrapping_sub(deadline);
                CNTV_CTL_EL0.set(0);
                sysreg::isb();
                g.eoi(iar);
                break t;
            }
            if intid < 1020 {
                g.eoi(iar);
            }
            if now() > deadline + gic::ticks(1_000_000) {
                gic::vtimer_stop();
                return Err(msg!("the virtual timer's interrupt did not come within a second of its deadline"));
            }
        };
        sum += t.wrapping_sub(deadline);
    }
    print_latency("timer_latency", sum, LATENCY_ITERS);
    if matches!(g.gic, Gic::V2 { .. }) {
        print_latency("exit_wfi_wake", wake_sum, LATENCY_ITERS);
    }
    Ok(())
}

/// Every exit benchmark, after the probes (only with `bench` in the bootargs).
pub fn run(ctx: &Context) {
    let under_el2visor = ctx.mode.is_ok();
    if under_el2visor {
        // On bare QEMU the HVC is UNDEFINED: there is nothing to compare it with.
        exit_hvc();
    }
    let g = match GuestGic::init(&ctx.platform) {
        Ok(g) => g,
        Err(e) => {
            println!("probe: exit benchmarks not run: {e}");
            return;
        }
    };
    if under_el2visor {
        exit_gicd_read(&g);
    }
    if let Err(e) = timer_latency(&g) {
        println!("probe: timer_latency failed: {e}");
    }
    if let Err(e) = super::bench_ipi::ipi_latency(ctx, &g) {
        println!("probe: ipi_latency failed: {e}");
    }
}
