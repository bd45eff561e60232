//! The Arm PL011 UART, transmit side only: el2visor's console. The firmware (or QEMU) has already
//! set the baud rate; el2visor only makes sure the UART and its transmitter are enabled.

const DR: usize = 0x00;
const FR: usize = 0x18;
const CR: usize = 0x30;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
/// Status polls before a stuck transmitter is given up on: far longer than a byte takes at 9600
/// baud on any core, short enough that a dead console costs milliseconds per byte, not a hang.
const MAX_WAIT_POLLS: u32 = 1 << 20;

/// A PL011 at an identity-mapped (or, with the MMU off, physical) address.
#[derive(Clone, Copy, Debug)]
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the register block of a PL011 that el2visor may drive.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read(&self, off: usize) -> u32 {
        // SAFETY: `new`'s contract: base + off is a PL011 register.
        unsafe { core::ptr::read_volatile((self.base + off) as *const u32) }
    }

    fn write(&self, off: usize, v: u32) {
        // SAFETY: `new`'s contract: base + off is a PL011 register.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u32, v) }
    }

    /// Enable the UART and its transmitter if firmware left them off.
    pub fn enable_tx(&self) {
        let cr = self.read(CR);
        if cr & (CR_UARTEN | CR_TXE) != (CR_UARTEN | CR_TXE) {
            self.write(CR, cr | CR_UARTEN | CR_TXE);
        }
    }

    /// Send one byte, waiting while the FIFO is full, but not for ever: a UART that the guest
    /// disabled, or flow control that never clears, must not hang el2visor. `false` if the byte
    /// had to be dropped.
    pub fn putc(&self, b: u8) -> bool {
        let mut budget = MAX_WAIT_POLLS;
        while self.read(FR) & FR_TXFF != 0 {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            core::hint::spin_loop();
        }
        self.write(DR, b as u32);
        true
    }

    /// Send `s`, turning `\n` into `\r\n`; the rest is dropped once the transmitter is stuck.
    pub fn write_bytes(&self, s: &[u8]) {
        for &b in s {
            if (b == b'\n' && !self.putc(b'\r')) || !self.putc(b) {
                return;
            }
        }
    }

    /// Wait until everything sent has left the shifter (before powering off).
    pub fn flush(&self) {
        let mut budget = MAX_WAIT_POLLS;
        while self.read(FR) & FR_BUSY != 0 && budget > 0 {
            budget -= 1;
            core::hint::spin_loop();
        }
    }
}
