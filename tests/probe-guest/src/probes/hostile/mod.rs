//! The hostile guest (`hostile` in the bootargs): it attacks el2visor's isolation from inside a
//! VM and reports what got through, while another VM runs beside it (tests/qemu/isolation.rs).
//! It runs with its MMU off (every access is Device, nothing speculates, any IPA below the CPU's
//! PA size can be named) and interrupts masked. It first looks at its GIC untouched
//! (`hostile_gic_observe`), sleeps `wait=<seconds>` from its bootargs (so that the attack lands
//! while the other VM is up), then:
//!
//! - `hostile_scan` ([`scan`]): reads and writes one word per step of its whole IPA space outside
//!   its RAM; an access that completes outside what its DT gives it is a leak;
//! - `hostile_gic_*` ([`gic`]): observes, then writes, every register of its distributor (and
//!   redistributor or CPU interface), enables, pends and activates every interrupt, points SPIs
//!   at other CPUs, and sends SGIs to CPUs outside the VM;
//! - `hostile_psci` ([`psci`]): PSCI calls naming MPIDRs outside the VM, through HVC and SMC;
//!
//! then `PROBE DONE` and SYSTEM_OFF, which must end this VM only. Accesses that may fault go
//! through the stubs of `asm/hostile.S`, which vectors.S resumes past.

mod gic;
mod psci;
mod scan;
mod wait;

use crate::report;
use core::sync::atomic::{AtomicU64, Ordering};
use fdt::Fdt;
use probe_guest::dt::Platform;

extern "C" {
    fn probe_try_load32(addr: u64) -> u32;
    fn probe_try_store32(addr: u64, value: u32);
    fn probe_try_load64(addr: u64) -> u64;
    fn probe_try_store64(addr: u64, value: u64);
    fn probe_try_sgi1r(value: u64);
    fn probe_try_asgi1r(value: u64);
    fn probe_try_sgi0r(value: u64);
    fn probe_try_smc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64;
    fn probe_try_setm(buf: *mut u8, len: u64) -> u64;
}

/// Faults vectors.S resumed past at a try instruction (it adds one each time; plain load/store,
/// no exclusives, since the MMU is off).
#[export_name = "probe_try_faults"]
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// ESR_EL1 of the last of them.
#[export_name = "probe_try_last_esr"]
static LAST_ESR: AtomicU64 = AtomicU64::new(0);

/// Run `f` (one try stub) and return its result, or the ESR_EL1 of the exception it took.
fn attempt<T>(f: impl FnOnce() -> T) -> Result<T, u64> {
    let before = FAULTS.load(Ordering::Relaxed);
    let v = f();
    if FAULTS.load(Ordering::Relaxed) == before {
        Ok(v)
    } else {
        Err(LAST_ESR.load(Ordering::Relaxed))
    }
}

// SAFETY (for the stubs below): each is a C-ABI function of hostile.S that clobbers only x0-x2
// (x0-x3 for the SMC and the SETM), and any exception it raises at EL1 is resumed past by vectors.S. What the
// access does to the VM's own state is the point of the probe; it never touches the probe's RAM
// (but for `probe_try_setm`, which writes only the buffer it is given).

/// A memory set of `buf` whose SETM runs with the PSTATE.C of the option the CPU does not
/// implement (FEAT_MOPS only): `Err` with the ESR_EL1 of the exception it raised, else the
/// length the prologue left to the SETM (0: it had nothing to do, and may have done nothing).
pub fn setm_in_the_other_option(buf: &mut [u8]) -> Result<u64, u64> {
    // SAFETY: see above; the sequence writes nothing but `buf` (its length is the size operand).
    attempt(|| unsafe { probe_try_setm(buf.as_mut_ptr(), buf.len() as u64) })
}

/// A 32-bit read of `addr`.
pub fn read32(addr: u64) -> Result<u32, u64> {
    // SAFETY: see above.
    attempt(|| unsafe { probe_try_load32(addr) })
}

/// A 32-bit write of `value` to `addr`.
pub fn write32(addr: u64, value: u32) -> Result<(), u64> {
    // SAFETY: see above.
    attempt(|| unsafe { probe_try_store32(addr, value) })
}

/// A 64-bit read of `addr`.
pub fn read64(addr: u64) -> Result<u64, u64> {
    // SAFETY: see above.
    attempt(|| unsafe { probe_try_load64(addr) })
}

/// A 64-bit write of `value` to `addr`.
pub fn write64(addr: u64, value: u64) -> Result<(), u64> {
    // SAFETY: see above.
    attempt(|| unsafe { probe_try_store64(addr, value) })
}

/// The GICv3 SGI generation registers.
#[derive(Clone, Copy, Debug)]
pub enum SgiReg {
    Sgi1r,
    Asgi1r,
    Sgi0r,
}

/// Write `value` to one of the GICv3 SGI registers.
pub fn write_sgi(reg: SgiReg, value: u64) -> Result<(), u64> {
    // SAFETY: see above.
    attempt(|| unsafe {
        match reg {
            SgiReg::Sgi1r => probe_try_sgi1r(value),
            SgiReg::Asgi1r => probe_try_asgi1r(value),
            SgiReg::Sgi0r => probe_try_sgi0r(value),
        }
    })
}

/// An SMCCC call through a trapped SMC.
pub fn smc(fid: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, u64> {
    // SAFETY: see above; el2visor traps SMC (HCR_EL2.TSC) and answers like an HVC.
    attempt(|| unsafe { probe_try_smc(fid, a1, a2, a3) })
}

/// Counter ticks since boot, in milliseconds.
pub fn now_ms() -> u64 {
    let t: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t / (crate::sysreg::cntfrq() / 1000).max(1)
}

/// Never returns: run every hostile probe, print DONE, power off.
pub fn run(p: &Platform, fdt: &Fdt<'_>) -> ! {
    println!("probe: hostile mode: MMU off, interrupts masked");
    let bootargs = fdt.chosen().bootargs().unwrap_or("");
    let wait = probe_guest::hostile::arg(bootargs, "wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0);
    let view = match gic::view(fdt) {
        Ok(v) => Some(v),
        Err(e) => {
            report::fail("hostile_gic_observe", e);
            None
        }
    };
    if let Some(v) = &view {
        report::outcome("hostile_gic_observe", gic::observe(v));
        if wait > 0 {
            if let Err(e) = wait::sleep(v, wait) {
                report::fail("hostile_wait", e);
            }
        }
    }
    let start = now_ms();
    println!("probe: hostile attack starts");
    report::outcome("hostile_scan", scan::run(p, fdt));
    if let Some(v) = &view {
        gic::attack(v);
    }
    report::outcome("hostile_psci", psci::run(fdt));
    println!("probe: hostile attack took {} ms", now_ms() - start);
    report::finish()
}
