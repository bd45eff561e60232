//! The emulated UART a VM gets with Xen's `vpl011` property: an SBSA generic UART (the PL011
//! subset Arm's Server Base System Architecture defines, `compatible = "arm,sbsa-uart"`), as Xen
//! emulates it. Pure: the model takes register accesses and input bytes and says what to print
//! and what the interrupt line does; the runtime owns the VM's console buffer and the vGIC.
//!
//! Registers (32-bit, 8/16-bit accesses to DR allowed): DR 0x000, RSR/ECR 0x004, FR 0x018,
//! IMSC 0x038, RIS 0x03c, MIS 0x040, ICR 0x044, and the PL011 identification registers at
//! 0xfe0..0xffc (so a guest that treats it as a PL011 finds one). Everything else in the 4 KiB
//! frame reads as zero and ignores writes, as on Xen. Transmit never waits: a written byte goes
//! to the console at once, so the transmit FIFO is always empty: TXRIS is set after each write
//! (the FIFO drains through its trigger level at once), and ICR clears it (a handler that
//! clears it and keeps TXIM unmasked sees no more, as on hardware); it is also set out of reset,
//! as this model always had it, so that a driver that unmasks TXIM before its first byte still
//! starts (a PL011 raises it only once data drains; Linux writes first); the
//! receive FIFO holds [`RX_FIFO`] bytes. A byte that arrives when it is full is lost, as on a
//! PL011: overrun is reported in RSR.OE, RIS.OERIS and, with the last byte received before the
//! loss, DR.OE (Linux counts it as an input overrun). A break, framing or parity error on the
//! console line comes with its byte in DR bits 10:8 and its RIS bit (Linux takes a break as
//! SysRq).

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

/// Where Xen puts the vpl011 in a domU's IPA space, and its frame size.
pub const GUEST_BASE: u64 = 0x2200_0000;
pub const GUEST_SIZE: u64 = 0x1000;
/// Its interrupt: SPI 0, INTID 32, level-high (Xen's GUEST_VPL011_SPI).
pub const GUEST_INTID: u32 = 32;
/// Receive FIFO depth (the PL011's).
pub const RX_FIFO: usize = 32;

const DR: u64 = 0x000;
const RSR: u64 = 0x004;
const FR: u64 = 0x018;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;

/// FR bits.
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
/// Interrupt bits (RIS/MIS/IMSC/ICR): receive, transmit, receive timeout, overrun.
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
pub const INT_OE: u32 = 1 << 10;
/// The framing, parity and break error interrupts (RIS bits 7, 8, 9).
const INT_FE: u32 = 1 << 7;
const INT_PE: u32 = 1 << 8;
const INT_BE: u32 = 1 << 9;
/// UARTDR's overrun error bit, read with a received byte.
const DR_OE: u32 = 1 << 11;
/// RSR's overrun error bit (DR's bit 11 shifted down, as RSR holds bits 11:8).
const RSR_OE: u32 = DR_OE >> 8;
/// Receive errors a byte of input can carry ([`Vpl011::push_rx_with_errors`]), as UARTDR bits
/// 11:8 shifted down.
pub const RX_FRAMING: u8 = 1;
pub const RX_PARITY: u8 = 2;
pub const RX_BREAK: u8 = 4;
const INT_ALL: u32 = 0x7ff;

/// PL011 peripheral and PrimeCell IDs (r1p5), 0xfe0..0xffc.
const IDS: [u32; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Why an access is refused (the guest gets an abort).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// Not 32 bits, outside DR, or not aligned.
    Width,
    Outside,
}

impl core::fmt::Display for AccessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AccessError::Width => "vpl011: registers are 32-bit (DR also 8/16-bit), aligned",
            AccessError::Outside => "vpl011: offset outside the 4 KiB frame",
        })
    }
}

/// The UART's state.
#[derive(Clone, Debug)]
pub struct Vpl011 {
    imsc: u32,
    /// Raw interrupt status that the guest clears with ICR (transmit, receive timeout,
    /// overrun); RX is a level condition computed from the FIFO.
    latched: u32,
    /// Received bytes with their UARTDR error bits (DR_OE).
    rx: VecDeque<u16>,
    /// RSR: the receive errors of the byte last read from DR (bits 3:0: framing, parity, break,
    /// overrun), or an overrun since, until cleared through ECR.
    rsr: u32,
}

impl Default for Vpl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Vpl011 {
    pub fn new() -> Self {
        Vpl011 { imsc: 0, latched: INT_TX, rx: VecDeque::with_capacity(RX_FIFO), rsr: 0 }
    }

    fn ris(&self) -> u32 {
        let mut r = self.latched;
        if !self.rx.is_empty() {
            r |= INT_RX;
        }
        r
    }

    /// Whether the interrupt line is asserted (level): some masked-in condition holds.
    pub fn irq_level(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    fn check(offset: u64, size: u8) -> Result<(), AccessError> {
        if offset >= GUEST_SIZE {
            return Err(AccessError::Outside);
        }
        let ok = match offset {
            DR => matches!(size, 1 | 2 | 4),
            _ => size == 4,
        };
        if !ok || !offset.is_multiple_of(u64::from(size)) {
            return Err(AccessError::Width);
        }
        Ok(())
    }

    /// A guest read; reading DR takes a byte from the receive FIFO.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u32, AccessError> {
        Self::check(offset, size)?;
        Ok(match offset {
            DR => {
                let v = self.rx.pop_front().map_or(0, u32::from);
                // RSR mirrors the error bits of the byte read, as on a PL011 (bits 11:8 of DR);
                // an overrun stays until ECR clears it.
                self.rsr = (v >> 8) & 0xf | (self.rsr & RSR_OE);
                if self.rx.is_empty() {
                    self.latched &= !INT_RT;
                }
                v
            }
            RSR => self.rsr,
            FR => {
                let mut fr = FR_TXFE;
                if self.rx.is_empty() {
                    fr |= FR_RXFE;
                }
                if self.rx.len() >= RX_FIFO {
                    fr |= FR_RXFF;
                }
                fr & !FR_TXFF
            }
            IMSC => self.imsc,
            RIS => self.ris(),
            MIS => self.ris() & self.imsc,
            0xfe0..=0xffc if offset.is_multiple_of(4) => IDS[((offset - 0xfe0) / 4) as usize],
            _ => 0,
        })
    }

    /// A guest write; a write to DR returns the byte to print.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Option<u8>, AccessError> {
        Self::check(offset, size)?;
        match offset {
            DR => {
                // The byte leaves at once: the FIFO passes through its trigger level again.
                self.latched |= INT_TX;
                return Ok(Some(value as u8));
            }
            RSR => self.rsr = 0,
            IMSC => self.imsc = value & INT_ALL,
            ICR => self.latched &= !value,
            _ => {}
        }
        Ok(None)
    }

    /// A byte of console input for this VM; `false` if the FIFO was full and it was dropped.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        self.push_rx_with_errors(byte, 0)
    }

    /// A byte of console input that arrived with receive errors (`RX_*`: a break, a framing or
    /// parity error on the physical line), passed on as a PL011 reports them: in DR bits 10:8
    /// with the byte, and their interrupts in RIS; `false` if the FIFO was full.
    pub fn push_rx_with_errors(&mut self, byte: u8, errors: u8) -> bool {
        if self.rx.len() >= RX_FIFO {
            self.rsr |= RSR_OE;
            self.latched |= INT_OE;
            if let Some(last) = self.rx.back_mut() {
                *last |= DR_OE as u16;
            }
            return false;
        }
        let errors = errors & (RX_FRAMING | RX_PARITY | RX_BREAK);
        self.rx.push_back(u16::from(byte) | u16::from(errors) << 8);
        for (bit, int) in [(RX_FRAMING, INT_FE), (RX_PARITY, INT_PE), (RX_BREAK, INT_BE)] {
            if errors & bit != 0 {
                self.latched |= int;
            }
        }
        self.latched |= INT_RT;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_never_waits_and_prints_each_byte() {
        let mut u = Vpl011::new();
        assert_eq!(u.read(FR, 4).unwrap() & (FR_TXFF | FR_TXFE | FR_RXFE), FR_TXFE | FR_RXFE);
        assert_eq!(u.write(DR, 1, u32::from(b'h')).unwrap(), Some(b'h'));
        assert_eq!(u.write(DR, 4, 0x1_00 | u32::from(b'i')).unwrap(), Some(b'i'), "only the data byte");
        assert_eq!(u.write(IMSC, 4, INT_TX).unwrap(), None);
        assert!(u.irq_level(), "TX is always ready: unmasking TXIM raises the line");
        u.write(IMSC, 4, 0).unwrap();
        assert!(!u.irq_level());
    }

    #[test]
    fn receive_fifo_interrupts_and_overrun() {
        let mut u = Vpl011::new();
        u.write(IMSC, 4, INT_RX | INT_RT).unwrap();
        assert!(!u.irq_level());
        assert!(u.push_rx(b'a'));
        assert!(u.irq_level());
        assert_eq!(u.read(MIS, 4).unwrap(), INT_RX | INT_RT);
        assert_eq!(u.read(FR, 4).unwrap() & FR_RXFE, 0);
        assert_eq!(u.read(DR, 4).unwrap(), u32::from(b'a'));
        assert!(!u.irq_level(), "empty FIFO: RX and the timeout drop");
        assert_eq!(u.read(DR, 4).unwrap(), 0, "reading an empty FIFO gives 0");
        for i in 0..RX_FIFO {
            assert!(u.push_rx(i as u8));
        }
        assert_ne!(u.read(FR, 4).unwrap() & FR_RXFF, 0);
        assert!(!u.push_rx(0xff), "a full FIFO drops input");
        assert_eq!(u.read(RSR, 4).unwrap(), 1 << 3, "overrun error");
        assert_ne!(u.read(RIS, 4).unwrap() & INT_OE, 0, "overrun interrupt raised");
        u.write(RSR, 4, 0).unwrap();
        assert_eq!(u.read(RSR, 4).unwrap(), 0);
        assert_eq!(u.read(DR, 4).unwrap(), 0, "first in, first out");
        u.write(ICR, 4, INT_RT | INT_OE).unwrap();
        assert_eq!(u.read(RIS, 4).unwrap() & (INT_RT | INT_OE), 0, "ICR clears the timeout and the overrun");
        // The last byte received before the loss carries DR.OE, and RSR shows it when read.
        for i in 1..RX_FIFO - 1 {
            assert_eq!(u.read(DR, 4).unwrap(), i as u32);
        }
        assert_eq!(u.read(DR, 4).unwrap(), DR_OE | (RX_FIFO as u32 - 1));
        assert_eq!(u.read(RSR, 4).unwrap(), 1 << 3);
        assert!(u.push_rx(b'z'));
        u.write(RSR, 4, 0).unwrap();
        assert_eq!(u.read(DR, 4).unwrap(), u32::from(b'z'), "a byte after the overrun has no error");
        assert_eq!(u.read(RSR, 4).unwrap(), 0);
    }

    #[test]
    fn a_break_reaches_the_guest_as_a_pl011_reports_it() {
        let mut u = Vpl011::new();
        u.write(IMSC, 4, INT_RX | INT_RT).unwrap();
        assert!(u.push_rx_with_errors(0, RX_BREAK));
        assert_ne!(u.read(RIS, 4).unwrap() & INT_BE, 0, "break interrupt raised");
        // Linux's amba-pl011 reads DR, sees BE (bit 10) and hands the break to the tty (SysRq).
        assert_eq!(u.read(DR, 4).unwrap(), 1 << 10);
        assert_eq!(u.read(RSR, 4).unwrap(), 1 << 2, "RSR mirrors the byte's errors");
        u.write(ICR, 4, INT_BE).unwrap();
        assert_eq!(u.read(RIS, 4).unwrap() & INT_BE, 0);
        assert!(u.push_rx_with_errors(b'q', RX_FRAMING | RX_PARITY | 0xf0));
        assert_eq!(u.read(DR, 4).unwrap(), 0x300 | u32::from(b'q'), "only the receive errors");
        assert!(u.push_rx(b'x'));
        assert_eq!(u.read(DR, 4).unwrap(), u32::from(b'x'));
        assert_eq!(u.read(RSR, 4).unwrap(), 0, "a clean byte read clears RSR's byte errors");
    }

    #[test]
    fn transmit_interrupt_is_cleared_by_icr_until_the_next_byte() {
        let mut u = Vpl011::new();
        u.write(IMSC, 4, INT_TX).unwrap();
        assert!(u.irq_level(), "empty transmit FIFO out of reset");
        u.write(ICR, 4, INT_TX).unwrap();
        assert!(!u.irq_level(), "ICR.TXIC clears it, and the line stays low");
        assert_eq!(u.read(RIS, 4).unwrap() & INT_TX, 0);
        assert_eq!(u.write(DR, 4, u32::from(b'x')).unwrap(), Some(b'x'));
        assert!(u.irq_level(), "the byte left: the FIFO drained through its trigger level");
    }

    #[test]
    fn bad_accesses_and_quiet_registers() {
        let mut u = Vpl011::new();
        assert_eq!(u.read(FR, 1), Err(AccessError::Width));
        assert_eq!(u.read(0x3a, 4), Err(AccessError::Width));
        assert_eq!(u.read(0x1000, 4), Err(AccessError::Outside));
        assert_eq!(u.read(0x030, 4), Ok(0), "UARTCR reads as zero, as on Xen");
        assert_eq!(u.write(0x030, 4, 0x301), Ok(None));
        assert_eq!(u.read(0xfe0, 4), Ok(0x11));
        assert_eq!(u.read(0xffc, 4), Ok(0xb1));
    }
}
