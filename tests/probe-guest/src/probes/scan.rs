//! `abort_scan` (with `scan` in the bootargs): a hostile guest's memory scan. From ONE load
//! instruction (entry.S's `probe_scan_load_insn`) the probe reads every 16 KiB of the IPA space
//! outside its RAM and outside every DT `reg` and `ranges` window, from 0 up to the VM's IPA size
//! or 4 GiB, whichever is less (the limit keeps the run to a few seconds under QEMU TCG). Its own
//! abort handler (vectors.S) skips the load each time. Every access must come back as an abort
//! and the scan must finish: el2visor must not take the same instruction aborting on new
//! addresses for a guest stuck on one abort. Runs with the MMU off, before anything else.

use crate::report;
use core::sync::atomic::{AtomicU64, Ordering};
use fdt::Fdt;
use probe_guest::dt::{claimed_regions, Region};
use probe_guest::msg;
use probe_guest::pagetable::pa_range_bits;

extern "C" {
    fn probe_scan_load(addr: u64) -> u64;
    #[link_name = "probe_aborts_caught"]
    static ABORTS_CAUGHT: AtomicU64;
}

const STEP: u64 = 16 * 1024;
const LIMIT: u64 = 4 << 30;

/// Never returns: reports and powers off.
pub fn run(fdt: &Fdt<'_>) -> ! {
    let ipa_bits = pa_range_bits(crate::sysreg::pa_range()).unwrap_or(32);
    let end = LIMIT.min(1u64 << ipa_bits);
    // SAFETY: the counter vectors.S increments; only read here.
    let caught = || unsafe { ABORTS_CAUGHT.load(Ordering::Relaxed) };
    let before = caught();
    let mut claimed = [Region::default(); 256];
    let n = match claimed_regions(fdt, &mut claimed) {
        Ok(Some(n)) => n,
        Ok(None) => {
            report::fail("abort_scan", "more than 256 reg entries and ranges windows in the DT");
            report::finish();
        }
        Err(e) => {
            report::fail("abort_scan", e);
            report::finish();
        }
    };
    let claimed = &claimed[..n];
    let (mut scanned, mut completed, mut a) = (0u64, 0u64, 0u64);
    let t0 = cntvct();
    while a < end {
        let owner = claimed.iter().find(|r| r.base < a + STEP && a < r.base.saturating_add(r.size));
        if let Some(r) = owner {
            // Someone's: skip to the first 16 KiB step past it.
            a = r.base.saturating_add(r.size).max(a + 1).next_multiple_of(STEP);
            continue;
        }
        let n = caught();
        // SAFETY: nothing the VM owns is in `a..a + 16 KiB` (no DT node claims it), so the read
        // touches no one's memory; the abort it takes is resumed past by vectors.S.
        unsafe { probe_scan_load(a) };
        if caught() == n {
            completed += 1;
        }
        scanned += 1;
        a += STEP;
    }
    let aborted = caught() - before;
    let ticks = cntvct() - t0;
    println!(
        "probe: scanned {scanned} addresses below {end:#x} from one load, {aborted} aborted, in {} ms ({} counter ticks each)",
        ticks * 1000 / crate::sysreg::cntfrq().max(1),
        ticks / scanned.max(1)
    );
    let r = if scanned == 0 {
        Err(msg!("nothing to scan below {end:#x}"))
    } else if completed != 0 {
        Err(msg!("{completed} of {scanned} unowned addresses read without an abort"))
    } else {
        Ok(())
    };
    report::outcome("abort_scan", r);
    report::finish()
}

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}
