//! PL011 console output (polled, transmit only). Lines end in "\r\n". Before the UART is known
//! (or on a DT without one) output is dropped, never an endless wait.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// UART base; 0 = none. Relaxed load/store only: no exclusives while the MMU is off.
static UART_BASE: AtomicUsize = AtomicUsize::new(0);

/// Use the PL011 at `base` for all further output.
pub fn set_uart(base: u64) {
    UART_BASE.store(base as usize, Ordering::Relaxed);
}

fn putc(base: usize, byte: u8) {
    // SAFETY: `base` is the PL011 the DT names, identity mapped as Device (or accessed with the MMU
    // off); FR and DR are its flag and data registers, 32-bit aligned.
    unsafe {
        while core::ptr::read_volatile((base + UARTFR) as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile((base + UARTDR) as *mut u32, u32::from(byte));
    }
}

/// A `fmt::Write` sink on the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = UART_BASE.load(Ordering::Relaxed);
        if base != 0 {
            for b in s.bytes() {
                putc(base, b);
            }
        }
        Ok(())
    }
}

/// Print one formatted line followed by "\r\n".
pub fn print_line(args: fmt::Arguments<'_>) {
    // Console never fails.
    let _ = Console.write_fmt(args);
    let _ = Console.write_str("\r\n");
}

/// `println!` for the probe: one line on the console, "\r\n" terminated.
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}
