//! The Arm PL011 UART, transmit side only: el2visor's console. The firmware (or QEMU) has already
//! set the baud rate; el2visor only makes sure the UART and its transmitter are enabled.

const DR: usize = 0x00;
const FR: usize = 0x18;
const CR: usize = 0x30;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;

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

    /// Send one byte, waiting while the FIFO is full.
    pub fn putc(&self, b: u8) {
        while self.read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write(DR, b as u32);
    }

    /// Send `s`, turning `\n` into `\r\n`.
    pub fn write_bytes(&self, s: &[u8]) {
        for &b in s {
            if b == b'\n' {
                self.putc(b'\r');
            }
            self.putc(b);
        }
    }

    /// Wait until everything sent has left the shifter (before powering off).
    pub fn flush(&self) {
        while self.read(FR) & FR_BUSY != 0 {
            core::hint::spin_loop();
        }
    }
}
