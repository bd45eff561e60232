//! `mair_bench` (only with `bench` on the command line): CNTVCT_EL0 ticks for 100 000 MAIR_EL1
//! writes and for the same loop with a plain register move instead of the MSR. Under QEMU
//! `-icount shift=0` ticks follow executed instructions, so a harness turns the difference into
//! instructions per trapped write. Prints a `BENCHRAW` line, not a PROBE line.

use crate::sysreg;
use core::arch::asm;
use probe_guest::pagetable::PROBE_MAIR;

/// Loop iterations per measurement.
pub const BENCH_ITERS: u64 = 100_000;

fn timed_loop(with_msr: bool) -> u64 {
    let (t0, t1): (u64, u64);
    let mut n = BENCH_ITERS;
    let v = PROBE_MAIR;
    if with_msr {
        // SAFETY: writes the probe's own MAIR value, the one its mappings run with.
        unsafe {
            asm!(
                "isb",
                "mrs {t0}, cntvct_el0",
                "2:",
                "msr mair_el1, {v}",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "isb",
                "mrs {t1}, cntvct_el0",
                t0 = out(reg) t0, t1 = out(reg) t1, n = inout(reg) n, v = in(reg) v,
                options(nostack),
            )
        };
    } else {
        // SAFETY: register-only loop.
        unsafe {
            asm!(
                "isb",
                "mrs {t0}, cntvct_el0",
                "2:",
                "mov {tmp}, {v}",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "isb",
                "mrs {t1}, cntvct_el0",
                t0 = out(reg) t0, t1 = out(reg) t1, n = inout(reg) n, v = in(reg) v,
                tmp = out(reg) _,
                options(nostack, nomem),
            )
        };
    }
    let _ = n;
    t1.wrapping_sub(t0)
}

/// Run both loops and print the BENCHRAW line.
pub fn mair_bench() {
    let ticks = timed_loop(true);
    let base = timed_loop(false);
    sysreg::isb();
    println!(
        "BENCHRAW mair_write ticks={} base={} iters={} cntfrq={}",
        ticks,
        base,
        BENCH_ITERS,
        sysreg::cntfrq()
    );
}
