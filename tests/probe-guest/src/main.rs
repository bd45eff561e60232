//! el2visor's probe guest: a bare-metal EL1 program booted like any arm64 Linux Image. It builds its
//! own stage-1 tables, asks el2visor (vendor HVCs) how its memory types came out, exercises the
//! TVM-trapped registers and prints `PROBE` lines, then powers off. See README.md.

#![no_std]
#![no_main]
// Failure reasons are fixed-size text on the stack (no heap); returning them by value is intended.
#![allow(clippy::result_large_err)]

#[macro_use]
mod console;
mod hvc;
mod mmu;
mod probes;
mod report;
mod sysreg;

use core::arch::global_asm;
use fdt::Fdt;
use probe_guest::dt::{self, Conduit};

global_asm!(include_str!("asm/entry.S"));
global_asm!(include_str!("asm/vectors.S"));
global_asm!(include_str!("asm/hostile.S"));
global_asm!(include_str!("asm/aa32.S"));

/// Rust entry from entry.S: relocated, .bss zeroed, on the boot stack, MMU still off.
#[no_mangle]
extern "C" fn probe_main(dtb: usize) -> ! {
    // SAFETY: x0 holds the DTB address per the arm64 boot protocol; `from_ptr` checks the magic
    // before trusting the header's size.
    let fdt = match unsafe { Fdt::from_ptr(dtb as *const u8) } {
        Ok(f) => f,
        // No DT, so no console: power off through the usual conduit rather than hang.
        Err(_) => report::power_off(),
    };
    if let Ok(Some(uart)) = dt::console_uart(&fdt) {
        console::set_uart(uart);
    }
    hvc::set_psci_conduit(dt::psci_conduit(&fdt));
    println!("PROBE START");
    let el = sysreg::current_el();
    if el != 1 {
        report::fail(
            "entry",
            probe_guest::msg!("running at EL{el}; the probe must be entered at EL1 (under el2visor, or QEMU without virtualization=on)"),
        );
        report::finish();
    }
    let platform = match dt::discover(&fdt) {
        Ok(p) => p,
        Err(e) => {
            report::fail("dt", e);
            report::finish();
        }
    };
    if platform.panic {
        probes::panic::run(&platform);
    }
    if platform.reset {
        probes::reset::run(&platform);
    }
    if platform.reset_race {
        probes::race::run(&platform);
    }
    if platform.scan {
        probes::scan::run(&fdt);
    }
    if platform.hostile {
        probes::hostile::run(&platform, &fdt);
    }
    if platform.dma {
        let bootargs = fdt.chosen().bootargs();
        probes::dma::run(&platform, &fdt, bootargs);
    }
    let (start, end) = mmu::image_range();
    println!(
        "probe: image {:#x}..{:#x}, dtb {:#x}, uart {:#x}, psci {}",
        start,
        end,
        dtb,
        platform.uart.unwrap_or(0),
        if platform.conduit == Conduit::Smc {
            "smc"
        } else {
            "hvc"
        }
    );
    for r in platform.ram() {
        println!("probe: ram {:#x}+{:#x}", r.base, r.size);
    }
    if let Some(d) = platform.passthrough {
        println!(
            "probe: passthrough {} at {:#x}",
            d.compatible, d.region.base
        );
    }
    if let Some(a) = platform.unowned {
        println!("probe: unowned {:#x}", a);
    }
    let pa_range = sysreg::pa_range();
    // What this CPU reports to EL1 (the real CPU's values on bare QEMU; tests compare them with
    // the VTCR_EL2 el2visor chose).
    println!(
        "probe: ID_AA64MMFR0_EL1.PARange {} ({}-bit PA), ID_AA64MMFR1_EL1.VMIDBits {}",
        pa_range,
        probe_guest::pagetable::pa_range_bits(pa_range).unwrap_or(0),
        sysreg::vmid_bits()
    );
    match mmu::enable(&platform) {
        Ok(tables) => println!("probe: MMU on, {} page tables", tables),
        Err(e) => {
            report::fail("mmu", e);
            report::finish();
        }
    }
    let mode = hvc::coherency_mode();
    match &mode {
        Ok(m) => println!("probe: el2visor coherency mode {}", m.name()),
        Err(e) => println!("probe: coherency mode unknown: {}", e),
    }
    let ctx = probes::Context { platform, mode };
    if ctx.platform.snapshot {
        probes::snapshot::run(&ctx.platform, ctx.mode_if_known());
    }
    if ctx.platform.gdb_gate {
        probes::gdb_gate::run(&ctx);
    }
    probes::run_all(&ctx);
    report::finish()
}
