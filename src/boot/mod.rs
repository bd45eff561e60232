//! The boot sequence of the primary CPU and the secondaries: find the console and the machine in
//! the device tree, refuse to run anywhere but EL2, set up memory, start the other CPUs, and hand
//! over to the VMs.

use el2visor_version::VERSION;

use crate::arch::{cpu, psci, sysreg};
use crate::println;

mod el2visor_version {
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
}

/// Known PL011 consoles, tried in turn when the device tree is unusable so that the error can
/// still be seen: QEMU virt, then BCM2711 (Raspberry Pi 4 and QEMU raspi4b).
const FALLBACK_CONSOLES: [usize; 2] = [0x0900_0000, 0xfe20_1000];

/// Most a device tree may be: the arm64 boot protocol's limit.
const MAX_DTB: usize = 2 << 20;

fn dtb_slice(dtb: usize) -> Result<&'static [u8], &'static str> {
    if dtb == 0 || dtb % 8 != 0 {
        return Err("no device tree: x0 is 0 or not 8-byte aligned");
    }
    // SAFETY: the boot protocol says x0 points at the DTB; 40 bytes are read to learn its size.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 40) };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != 0xd00d_feed {
        return Err("bad magic: this is not a flattened device tree");
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if !(40..=MAX_DTB).contains(&size) {
        return Err("implausible totalsize in the header");
    }
    // SAFETY: the header says the blob is `size` bytes long, within the protocol's 2 MiB.
    Ok(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

/// Print `msg` on every fallback console, surviving addresses that are not there.
fn shout_everywhere(args: core::fmt::Arguments<'_>) {
    use crate::arch::exception::PROBING;
    use core::sync::atomic::Ordering;
    PROBING.store(true, Ordering::Relaxed);
    for base in FALLBACK_CONSOLES {
        crate::logging::set_console(base);
        crate::logging::print_line(args);
    }
    PROBING.store(false, Ordering::Relaxed);
}

/// Primary CPU entry: never returns.
pub fn primary(dtb_pa: usize, el: u8) -> ! {
    let dtb = match dtb_slice(dtb_pa) {
        Ok(d) => d,
        Err(why) => {
            if el == 2 {
                shout_everywhere(format_args!("el2visor: cannot boot: device tree at {dtb_pa:#x}: {why}; parked"));
            }
            cpu::park()
        }
    };
    let fdt = match fdt::Fdt::new(dtb) {
        Ok(f) => f,
        Err(e) => {
            if el == 2 {
                shout_everywhere(format_args!("el2visor: cannot boot: device tree at {dtb_pa:#x} is malformed: {e:?}; parked"));
            }
            cpu::park()
        }
    };
    if let Some(base) = fdt.chosen().stdout().and_then(|n| n.reg()).and_then(|mut r| r.next()) {
        crate::logging::set_console(base.starting_address as usize);
    }
    if el != 2 {
        println!(
            "el2visor: started at EL{el}, but el2visor must be entered at EL2 (QEMU: -M virt,virtualization=on; Pi: the stock armstub); parked"
        );
        cpu::park();
    }
    crate::mm::heap::init();
    let cpus = fdt.cpus().count();
    println!("el2visor {VERSION} at EL2 on {} cpus={cpus}", fdt.root().model());
    println!("coherency: off");
    let _ = sysreg::current_el();
    crate::logging::flush();
    psci::system_off(psci::Conduit::Smc);
    println!("el2visor: halted");
    cpu::park()
}

/// Secondary CPU entry.
pub fn secondary(_index: usize) {}
