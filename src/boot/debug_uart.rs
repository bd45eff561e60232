//! `debug_uart=`: the PL011 el2visor's GDB stub serves. It must be a PL011 in the host DT with
//! one register block, and not the console; no VM gets it (it is taken from the dom0-like VM as a
//! device assigned elsewhere is, and a domain may not be assigned it). A node the DT disables is
//! fine (a Pi 4's extra UARTs are, unless an overlay enables them for Linux): it is el2visor's.

use alloc::string::String;

use crate::cmdline::Options;
use crate::platform::{Device, Irq, Platform};

/// The debug UART's device, or `None` (with the reason printed) when there is none to use.
pub fn choose<'p>(p: &'p Platform, opts: &Options) -> Option<&'p Device> {
    let path = opts.debug_uart.as_deref()?;
    let problem = |why: &str| {
        crate::println!("el2visor: debug_uart={path}: {why}: no GDB stub");
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
    Some(d)
}

/// Take the debug UART from the dom0-like VM: added to the paths no VM but their domain gets.
pub fn take(p: &Platform, opts: &Options, taken: &mut alloc::vec::Vec<String>) -> Result<(), String> {
    let Some(d) = choose(p, opts) else { return Ok(()) };
    if taken.contains(&d.path) {
        return Err(alloc::format!("{} is both debug_uart= and assigned to a domain", d.path));
    }
    taken.push(d.path.clone());
    Ok(())
}

/// Start the GDB stub on the debug UART, once the VMs exist.
pub fn start(p: &Platform, opts: &Options) {
    let Some(d) = choose(p, opts) else { return };
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
