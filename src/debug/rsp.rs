//! The GDB remote serial protocol's byte level: packet framing (`$data#xx`, the modulo-256
//! checksum, `+`/`-` acknowledgements, the Ctrl-C interrupt byte), hex and binary codecs. Pure.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// The byte GDB sends (outside any packet) to interrupt a running target.
pub const INTERRUPT: u8 = 0x03;

/// The longest packet the stub accepts (announced as `PacketSize`).
pub const MAX_PACKET: usize = 0x4000;

/// What one received byte completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A packet with a good checksum: its data (escapes still in; `X` decodes them itself).
    Packet(Vec<u8>),
    /// A packet whose checksum did not match: answer `-` so GDB sends it again.
    BadChecksum,
    /// Ctrl-C outside a packet.
    Interrupt,
    /// `+` or `-` from GDB for the stub's last packet.
    Ack,
    Nack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Data,
    Sum1,
    Sum2(u8),
}

/// Reassembles packets from the byte stream.
#[derive(Clone, Debug)]
pub struct Framer {
    state: State,
    buf: Vec<u8>,
    sum: u8,
    overflow: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Framer {
    pub const fn new() -> Self {
        Framer { state: State::Idle, buf: Vec::new(), sum: 0, overflow: false }
    }

    fn start(&mut self) {
        self.state = State::Data;
        self.buf.clear();
        self.sum = 0;
        self.overflow = false;
    }

    /// Take one byte; returns what it completed, if anything. A 0x03 inside a packet is data
    /// (an `X` packet may carry it unescaped; GDB sends Ctrl-C only between packets), and a `$`
    /// anywhere starts a new packet, dropping the one it cut off.
    pub fn push(&mut self, b: u8) -> Option<Event> {
        if b == b'$' {
            self.start();
            return None;
        }
        match self.state {
            State::Idle => match b {
                INTERRUPT => Some(Event::Interrupt),
                b'+' => Some(Event::Ack),
                b'-' => Some(Event::Nack),
                _ => None,
            },
            State::Data => {
                match b {
                    b'#' => self.state = State::Sum1,
                    _ => {
                        self.sum = self.sum.wrapping_add(b);
                        if self.buf.len() < MAX_PACKET {
                            self.buf.push(b);
                        } else {
                            self.overflow = true;
                        }
                    }
                }
                None
            }
            State::Sum1 => {
                self.state = match hex_val(b) {
                    Some(h) => State::Sum2(h),
                    None => State::Idle,
                };
                if self.state == State::Idle {
                    return Some(Event::BadChecksum);
                }
                None
            }
            State::Sum2(hi) => {
                self.state = State::Idle;
                match hex_val(b) {
                    Some(lo) if (hi << 4 | lo) == self.sum && !self.overflow => {
                        Some(Event::Packet(core::mem::take(&mut self.buf)))
                    }
                    _ => Some(Event::BadChecksum),
                }
            }
        }
    }
}

/// `$data#xx` for `data`, with `#`, `$`, `}` and `*` escaped (so binary replies are safe too).
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4);
    out.push(b'$');
    let mut sum = 0u8;
    for &b in data {
        if matches!(b, b'#' | b'$' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
            sum = sum.wrapping_add(b'}').wrapping_add(b ^ 0x20);
        } else {
            out.push(b);
            sum = sum.wrapping_add(b);
        }
    }
    out.push(b'#');
    out.extend_from_slice(&hex_byte(sum));
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn hex_byte(b: u8) -> [u8; 2] {
    [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
}

/// Append the hex of `bytes` to `out`.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.extend_from_slice(&hex_byte(b));
    }
}

/// Bytes from an even-length hex string.
pub fn from_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2).map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?)).collect()
}

/// A big-endian hex number as GDB writes addresses and lengths (`1f`, at most 16 digits).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| Some(acc << 4 | u64::from(hex_val(b)?)))
}

/// Undo the `}` escapes of an `X` packet's binary data.
pub fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b == b'}' {
            out.push(it.next()? ^ 0x20);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn feed(f: &mut Framer, s: &[u8]) -> Vec<Event> {
        s.iter().filter_map(|&b| f.push(b)).collect()
    }

    #[test]
    fn frames_and_checksums() {
        assert_eq!(frame(b"OK"), b"$OK#9a".to_vec());
        assert_eq!(frame(b""), b"$#00".to_vec());
        let mut f = Framer::new();
        assert_eq!(feed(&mut f, b"+$g#67"), vec![Event::Ack, Event::Packet(b"g".to_vec())]);
        assert_eq!(feed(&mut f, b"$g#68"), vec![Event::BadChecksum]);
        assert_eq!(feed(&mut f, b"-\x03$m0,4#fd"), vec![Event::Nack, Event::Interrupt, Event::Packet(b"m0,4".to_vec())]);
        // Noise between packets is dropped; a restart mid-packet keeps only the new one.
        assert_eq!(feed(&mut f, b"xy$qq$?#3f"), vec![Event::Packet(b"?".to_vec())]);
        assert_eq!(feed(&mut f, b"$?#zz"), vec![Event::BadChecksum]);
    }

    #[test]
    fn a_dollar_restarts_even_in_the_checksum_and_ctrl_c_in_a_packet_is_data() {
        let mut f = Framer::new();
        // Cut off before or inside its checksum: the new packet counts, the old one is gone
        // (its `$` used to be taken as a bad checksum digit, and the new packet as noise).
        assert_eq!(feed(&mut f, b"$m0#$?#3f"), vec![Event::Packet(b"?".to_vec())]);
        assert_eq!(feed(&mut f, b"$m0#1$?#3f"), vec![Event::Packet(b"?".to_vec())]);
        // …so a `-` in the new packet's data is data, not a NACK.
        assert_eq!(feed(&mut f, b"$m0#$m-#9a"), vec![Event::Packet(b"m-".to_vec())]);
        // 0x03 inside a packet is packet data (the RSP's "Interrupts" section), between packets
        // an interrupt.
        let mut p = frame(b"X0,1:\x03");
        p.push(INTERRUPT);
        assert_eq!(feed(&mut f, &p), vec![Event::Packet(b"X0,1:\x03".to_vec()), Event::Interrupt]);
    }

    #[test]
    fn escapes_round_trip() {
        let data = b"a#b$c}d*e".to_vec();
        let framed = frame(&data);
        let mut f = Framer::new();
        let ev = feed(&mut f, &framed);
        let Event::Packet(raw) = &ev[0] else { panic!("{ev:?}") };
        assert_eq!(unescape(raw).unwrap(), data);
        assert_eq!(unescape(b"}"), None);
    }

    #[test]
    fn hex_codecs() {
        let mut v = Vec::new();
        push_hex(&mut v, &[0, 0xab, 0x7f]);
        assert_eq!(v, b"00ab7f".to_vec());
        assert_eq!(from_hex(b"00AB7f"), Some(vec![0, 0xab, 0x7f]));
        assert_eq!(from_hex(b"0"), None);
        assert_eq!(from_hex(b"0g"), None);
        assert_eq!(parse_u64(b"ffffffc008000000"), Some(0xffff_ffc0_0800_0000));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"10000000000000000"), None);
    }

    #[test]
    fn oversized_packets_are_refused() {
        let mut f = Framer::new();
        let mut p = vec![b'$'];
        p.extend(core::iter::repeat_n(b'a', MAX_PACKET + 1));
        let sum = p[1..].iter().fold(0u8, |s, &b| s.wrapping_add(b));
        p.push(b'#');
        p.extend_from_slice(&hex_byte(sum));
        assert_eq!(feed(&mut f, &p), vec![Event::BadChecksum]);
    }
}
