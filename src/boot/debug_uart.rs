//! `debug_uart=`: the PL011 el2visor's GDB stub serves. It must be a PL011 in the host DT with
//! one register block, and not the console; no VM gets it (it is taken from the dom0-like VM as a
//! device assigned elsewhere is, and a domain may not be assigned it). A node the DT disables is
//! fine (a Pi 4's extra UARTs are, unless an overlay enables them for Linux): it is el2visor's.

use alloc::string::String;

use crate::cmdline::Options;
use crate::platform::{Device, Irq, Platform};

/// The debug UART's device, or `None` (with the reason printed when `say`) when there is none
/// to use.
/// `own_console`: el2visor keeps its console UART (console=hyp, or only dom0less domains).
fn choose<'p>(p: &'p Platform, opts: &Options, own_console: bool, say: bool) -> Option<&'p Device> {
    let path = opts.debug_uart.as_deref()?;
    let problem = |why: &str| {
        if say {
            crate::println!("el2visor: debug_uart={path}: {why}: no GDB stub");
        }
        None
    };
    let Some(d) = p.devices.iter().find(|d| d.path == path) else {
        return problem("no such device in the device tree");
    };
    if !d.compatible.iter().any(|c| c == "arm,pl011") {
        return problem("not an arm,pl011 UART");
    }
    if d.regs.len() != 1 {
        return problem("expected one register block");
    }
    if p.console.as_ref().is_some_and(|c| c.path == d.path) {
        return problem("that is el2visor's console; give the stub a UART of its own");
    }
    // Stage 2 maps whole 4 KiB pages: a device in the same page would go with the UART, or the
    // UART with it (a Pi 4's PL011s share one page with its console).
    let page = |a: u64| a & !0xfff;
    let (start, end) = (page(d.regs[0].start.raw()), page(d.regs[0].end() - 1) + 0x1000);
    let neighbour = p.devices.iter().find(|o| {
        o.path != d.path
            && o.status.is_enabled()
            && !(own_console && p.console.as_ref().is_some_and(|c| c.path == o.path))
            && o.regs.iter().any(|r| r.start.raw() < end && page(r.end() - 1) + 0x1000 > start)
    });
    if let Some(o) = neighbour {
        let why = alloc::format!(
            "{} shares its 4 KiB page and a VM gets that device (Stage 2 maps whole pages; with \
             console=hyp, or dom0less domains only, a Pi 4's console page is el2visor's)",
            o.path
        );
        return problem(&why);
    }
    Some(d)
}

/// Take the debug UART from the dom0-like VM: added to the paths no VM but their domain gets.
pub fn take(p: &Platform, opts: &Options, own_console: bool, taken: &mut alloc::vec::Vec<String>) -> Result<(), String> {
    let Some(d) = choose(p, opts, own_console, true) else { return Ok(()) };
    if taken.contains(&d.path) {
        return Err(alloc::format!("{} is both debug_uart= and assigned to a domain", d.path));
    }
    taken.push(d.path.clone());
    Ok(())
}

/// Start the GDB stub on the debug UART, once the VMs exist.
pub fn start(p: &Platform, opts: &Options, own_console: bool) {
    let Some(d) = choose(p, opts, own_console, false) else { return };
    let intid = d.irqs.iter().find_map(|i| match i {
        Irq::Gic { intid, .. } => Some(*intid),
        Irq::Other { .. } => None,
    });
    // The PL011 reference clock: 48 MHz on the BCM2711 (the Pi 4's firmware default), 24 MHz on
    // QEMU virt (whose PL011 ignores the divisors anyway).
    let bcm2711 = p.compatible.iter().any(|c| c.starts_with("brcm,bcm2711") || c.starts_with("raspberrypi,4"));
    let clock = if bcm2711 { 48_000_000 } else { 24_000_000 };
    crate::debug::uart::start(&d.path, d.regs[0].start.raw() as usize, clock, intid);
}
