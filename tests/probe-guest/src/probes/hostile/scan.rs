//! `hostile_scan`: read, then write a marker to, one word at every step of the VM's IPA space
//! ([`ScanPlan`]: every 2 MiB from 4 GiB up to the CPU's PA size capped at 40 bits, then every
//! 64 KiB of the first 4 GiB, where QEMU virt has all its devices and RAM, then every 4 KiB
//! within 64 KiB of each range its DT gives it). Its own RAM is
//! skipped; its own device ranges (GIC, vpl011, passthrough) are only read. Anywhere else every
//! access must end in the synchronous external abort el2visor injects: an access that completes
//! there reached memory or a device the VM was not given (another VM's, el2visor's), a leak.

use super::{now_ms, read32, write32};
use fdt::Fdt;
use probe_guest::dt::{given_regions, GivenKind, Platform};
use probe_guest::hostile::{is_injected_abort, ScanPlan};
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::pagetable::pa_range_bits;

const FINE_STEP: u64 = 64 << 10;
const COARSE_STEP: u64 = 2 << 20;
/// Around every given range, every 4 KiB page this far out is scanned too.
const EDGE: u64 = 64 << 10;
/// What the scan writes ("HOST" in ASCII): a leak that reaches another VM shows as this.
pub const MARKER: u32 = 0x5453_4f48;

#[derive(Default)]
struct Tally {
    aborted: u64,
    own_reads: u64,
    skipped_ram: u64,
    leaks: u64,
    first_leak: Option<(u64, &'static str, u32)>,
    odd_faults: u64,
    first_odd: Option<(u64, u64)>,
}

impl Tally {
    fn leak(&mut self, addr: u64, what: &'static str, value: u32) {
        self.leaks += 1;
        if self.first_leak.is_none() {
            self.first_leak = Some((addr, what, value));
        }
        if self.leaks <= 8 {
            println!("probe: LEAK: {what} at IPA {addr:#x} completed (value {value:#x})");
        }
    }

    fn fault(&mut self, addr: u64, esr: u64) {
        self.aborted += 1;
        if !is_injected_abort(esr) {
            self.odd_faults += 1;
            self.first_odd.get_or_insert((addr, esr));
        }
    }
}

pub fn run(p: &Platform, fdt: &Fdt<'_>) -> Result<(), Msg> {
    let given = given_regions(fdt).map_err(|e| msg!("reading the DT's ranges: {e}"))?;
    if given.overflow {
        return Err(msg!("the DT gives more ranges than the probe records"));
    }
    for (r, k) in given.regions() {
        println!(
            "probe: given {:#x}+{:#x} {}",
            r.base,
            r.size,
            if *k == GivenKind::Ram {
                "RAM"
            } else {
                "device"
            }
        );
    }
    let pa_bits = pa_range_bits(crate::sysreg::pa_range()).unwrap_or(32);
    let plan = ScanPlan::new(pa_bits, FINE_STEP, COARSE_STEP);
    println!(
        "probe: hostile scan of IPA 0..{:#x} ({} addresses: every {} KiB above 4 GiB, then every {} KiB below)",
        plan.end,
        plan.count(),
        COARSE_STEP >> 10,
        FINE_STEP >> 10
    );
    let start = now_ms();
    let mut t = Tally::default();
    for a in plan.addresses() {
        if a & ((1 << 38) - 1) == 0 || a == plan.fine_end {
            println!("probe: hostile scan at {a:#x}, {} ms", now_ms() - start);
        }
        match given.kind_of(a) {
            Some(GivenKind::Ram) => t.skipped_ram += 1,
            Some(GivenKind::Device) => match read32(a) {
                Ok(_) => t.own_reads += 1,
                Err(esr) => t.fault(a, esr),
            },
            None => {
                match read32(a) {
                    Ok(v) => t.leak(a, "read", v),
                    Err(esr) => t.fault(a, esr),
                }
                match write32(a, MARKER) {
                    Ok(()) => t.leak(a, "write", MARKER),
                    Err(esr) => t.fault(a, esr),
                }
            }
        }
    }
    // Every page within EDGE of a given range (a mapping a little too large, or off by a page,
    // shows there first), and the word just past RAM.
    let mut edges = 0u64;
    for &(r, _) in given.regions() {
        let below = r.base.saturating_sub(EDGE) & !0xfff;
        let above = (r.base + r.size + 0xfff) & !0xfff;
        for a in (below..r.base).chain(above..above + EDGE).step_by(0x1000) {
            if a >= plan.end || given.kind_of(a).is_some() {
                continue;
            }
            edges += 1;
            match read32(a) {
                Ok(v) => t.leak(a, "read next to a given range", v),
                Err(esr) => t.fault(a, esr),
            }
            match write32(a, MARKER) {
                Ok(()) => t.leak(a, "write next to a given range", MARKER),
                Err(esr) => t.fault(a, esr),
            }
        }
    }
    for r in p.ram() {
        let a = r.base + r.size;
        if given.kind_of(a).is_none() {
            match read32(a) {
                Ok(v) => t.leak(a, "read past RAM", v),
                Err(esr) => t.fault(a, esr),
            }
        }
    }
    println!(
        "probe: hostile scan: {} aborted, {} own-device reads, {} RAM addresses skipped, {edges} pages next to given ranges, {} leaks, {} ms",
        t.aborted,
        t.own_reads,
        t.skipped_ram,
        t.leaks,
        now_ms() - start
    );
    if let Some((addr, what, value)) = t.first_leak {
        return Err(msg!(
            "{} accesses outside the VM's ranges completed; first: {what} at IPA {addr:#x} ({value:#x})",
            t.leaks
        ));
    }
    if let Some((addr, esr)) = t.first_odd {
        return Err(msg!(
            "{} faults were not the injected synchronous external abort; first at IPA {addr:#x}: ESR_EL1 {esr:#x}",
            t.odd_faults
        ));
    }
    if t.aborted == 0 {
        return Err(msg!("nothing aborted: the scan did not run"));
    }
    Ok(())
}
