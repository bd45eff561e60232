//! The Arm PL011 UART: el2visor's console. The firmware (or QEMU) has already set the baud rate;
//! el2visor makes sure the UART and its transmitter are enabled, and, when it owns console input
//! (several VMs, switched with Ctrl-A), the receiver and its interrupt.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    DR [
        /// The byte to send, or received.
        DATA OFFSET(0) NUMBITS(8) [],
        /// The received byte's errors: framing (8), parity (9), break (10), overrun (11).
        ERRORS OFFSET(8) NUMBITS(4) [],
    ],
    FR [
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Busy sending: set until the last byte, stop bits included, has left the shifter.
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
    ],
    INT [
        /// Receive.
        RX OFFSET(4) NUMBITS(1) [],
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
    ],
}

register_structs! {
    /// The PL011 registers el2visor uses.
    Regs {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcrh: ReadWrite<u32>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32, INT::Register>),
        (0x3c => _reserved3),
        (0x44 => icr: ReadWrite<u32, INT::Register>),
        (0x48 => @END),
    }
}

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

    fn regs(&self) -> &'static Regs {
        // SAFETY: `new`'s contract: `base` is a PL011's register block, which stays where it is
        // (identity mapped once the MMU is on) for as long as el2visor runs. `Regs` is made of
        // tock-registers cells accessed with volatile 32-bit reads and writes, and reserved gaps
        // nothing writes, so a shared reference may coexist with the UART changing them.
        unsafe { &*(self.base as *const Regs) }
    }

    /// Take console input: the receiver on, its receive and receive-timeout interrupts unmasked.
    pub fn enable_rx_interrupt(&self) {
        let cr = self.regs().cr.extract();
        if !cr.matches_all(CR::RXE::SET) {
            self.regs().cr.modify_no_read(cr, CR::RXE::SET);
        }
        self.regs().icr.write(INT::RX::SET + INT::RT::SET);
        self.regs().imsc.write(INT::RX::SET + INT::RT::SET);
    }

    /// A received byte, if one is waiting.
    pub fn getc(&self) -> Option<u8> {
        self.getc_with_errors().map(|(b, _)| b)
    }

    /// A received byte and its error bits (UARTDR bits 11:8 shifted down: 1 framing, 2 parity,
    /// 4 break, 8 overrun), if one is waiting.
    pub fn getc_with_errors(&self) -> Option<(u8, u8)> {
        if self.regs().fr.is_set(FR::RXFE) {
            return None;
        }
        let dr = self.regs().dr.extract();
        Some((dr.read(DR::DATA) as u8, dr.read(DR::ERRORS) as u8))
    }

    /// Enable the UART and its transmitter if firmware left them off.
    pub fn enable_tx(&self) {
        let cr = self.regs().cr.extract();
        let on = CR::UARTEN::SET + CR::TXE::SET;
        if !cr.matches_all(on) {
            self.regs().cr.modify_no_read(cr, on);
        }
    }

    /// Set up a UART no firmware prepared (the GDB stub's): `baud` from a `uartclk` Hz
    /// reference clock, 8 data bits, no parity, one stop bit, FIFOs on, receiver and
    /// transmitter enabled.
    pub fn setup(&self, uartclk: u32, baud: u32) {
        self.regs().cr.set(0);
        // The divisor in 1/64ths: uartclk / (16 * baud), rounded.
        let div64 = (u64::from(uartclk) * 4 + u64::from(baud) / 2) / u64::from(baud.max(1));
        self.regs().ibrd.set((div64 >> 6) as u32);
        self.regs().fbrd.set((div64 & 0x3f) as u32);
        // LCRH: WLEN = 8 bits (0b11 << 5), FEN (bit 4). Written after the divisors, as the
        // PL011 latches them on an LCRH write.
        self.regs().lcrh.set((0b11 << 5) | (1 << 4));
        self.regs().cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        // Changing LCRH.FEN empties the receive FIFO; QEMU's model then stops taking input from
        // its back end until the next read of DR, so read it once (an empty FIFO reads as junk,
        // dropped: nothing can have arrived in a UART that was just set up).
        let _ = self.regs().dr.get();
    }

    /// Wait while the transmit FIFO is full, as [`Self::putc`] does (not for ever); `false` if
    /// it stayed full.
    pub fn wait_tx_space(&self) -> bool {
        let mut budget = MAX_WAIT_POLLS;
        while self.regs().fr.is_set(FR::TXFF) {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            core::hint::spin_loop();
        }
        true
    }

    /// Send one byte, waiting while the FIFO is full, but not for ever: a UART that the guest
    /// disabled, or flow control that never clears, must not hang el2visor. `false` if the byte
    /// had to be dropped.
    pub fn putc(&self, b: u8) -> bool {
        if !self.wait_tx_space() {
            return false;
        }
        self.regs().dr.write(DR::DATA.val(b as u32));
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
        while self.regs().fr.is_set(FR::BUSY) && budget > 0 {
            budget -= 1;
            core::hint::spin_loop();
        }
    }
}
