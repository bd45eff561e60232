//! The GDB stub's serial line: a PL011 no guest owns (`debug_uart=`), served by its receive
//! interrupt (on pCPU 0) while guests run, and polled by stopped vCPUs while they wait.

use crate::debug::stub::Stub;
use crate::debug::machine::Machine;
use crate::drivers::pl011::Pl011;

struct Line {
    uart: Pl011,
    stub: Stub,
}

static LINE: spin::Mutex<Option<Line>> = spin::Mutex::new(None);

/// Serve GDB on the PL011 at `base` (reference clock `uartclk` Hz; 115200 baud, 8N1), its
/// receive interrupt `intid` taken on pCPU 0.
pub fn start(path: &str, base: usize, uartclk: u32, intid: Option<u32>) {
    // SAFETY: `base` is the debug UART's register block: identity mapped at EL2 as Device, and
    // kept out of every VM (not in its DT, not at its Stage 2).
    let uart = unsafe { Pl011::new(base) };
    uart.setup(uartclk, 115_200);
    *LINE.lock() = Some(Line { uart, stub: Stub::new() });
    crate::debug::target::set_service(service);
    uart.enable_rx_interrupt();
    match intid {
        Some(i) => match crate::gic::hw::claim_device_irq(i, 0, service) {
            Ok(()) => crate::println!("el2visor: GDB stub on {path} (115200 8N1)"),
            Err(e) => log::warn!("debug UART {path}: interrupt {i}: {e}: GDB is served only while a VM is stopped"),
        },
        None => log::warn!("debug UART {path} has no GIC interrupt: GDB is served only while a VM is stopped"),
    }
}

/// Whether the GDB stub runs (`debug_uart=` named a usable UART): what `on_crash=debug` needs.
pub fn enabled() -> bool {
    LINE.lock().is_some()
}

/// Take what GDB sent, act on it, and send the replies. Called from the UART's interrupt and by
/// every stopped vCPU's wait loop; whoever finds the line busy leaves it to its holder.
pub fn service() {
    let Some(mut guard) = LINE.try_lock() else { return };
    let Some(line) = guard.as_mut() else { return };
    let mut m = Machine;
    // At most a FIFO's worth at a time: a UART that is not there (reads as all zeros, "not
    // empty") must not hold this CPU for ever.
    for _ in 0..64 {
        let Some(b) = line.uart.getc() else { break };
        line.stub.input(b, &mut m);
    }
    line.stub.poll(&mut m);
    for b in line.stub.take_output() {
        line.uart.putc(b);
    }
}
