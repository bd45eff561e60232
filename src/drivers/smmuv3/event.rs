//! Event-queue records (IHI 0070, 7.3): four 64-bit words. Word 0: type (7:0), SSV (11),
//! SubstreamID (31:12), StreamID (63:32). For translation-related faults word 1 has RnW (35),
//! S2 (39: the fault is in stage 2) and Class (41:40), word 2 the input address and word 3
//! (51:12) the IPA a stage-2 fault was on.

#![forbid(unsafe_code)]

use core::fmt;

pub type Record = [u64; 4];
pub const RECORD_BYTES: usize = 32;

pub const F_UUT: u8 = 0x01;
pub const C_BAD_STREAMID: u8 = 0x02;
pub const F_STE_FETCH: u8 = 0x03;
pub const C_BAD_STE: u8 = 0x04;
pub const F_BAD_ATS_TREQ: u8 = 0x05;
pub const F_STREAM_DISABLED: u8 = 0x06;
pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
pub const C_BAD_SUBSTREAMID: u8 = 0x08;
pub const F_CD_FETCH: u8 = 0x09;
pub const C_BAD_CD: u8 = 0x0a;
pub const F_WALK_EABT: u8 = 0x0b;
pub const F_TRANSLATION: u8 = 0x10;
pub const F_ADDR_SIZE: u8 = 0x11;
pub const F_ACCESS: u8 = 0x12;
pub const F_PERMISSION: u8 = 0x13;
pub const F_TLB_CONFLICT: u8 = 0x20;
pub const F_CFG_CONFLICT: u8 = 0x21;
pub const E_PAGE_REQUEST: u8 = 0x24;
pub const F_VMS_FETCH: u8 = 0x25;

/// The architecture's name of an event type and what it means here.
pub fn describe(kind: u8) -> (&'static str, &'static str) {
    match kind {
        F_UUT => ("F_UUT", "unsupported upstream transaction"),
        C_BAD_STREAMID => ("C_BAD_STREAMID", "stream ID beyond the stream table or in an invalid span"),
        F_STE_FETCH => ("F_STE_FETCH", "could not fetch the STE"),
        C_BAD_STE => ("C_BAD_STE", "invalid or illegal STE"),
        F_BAD_ATS_TREQ => ("F_BAD_ATS_TREQ", "bad ATS translation request"),
        F_STREAM_DISABLED => ("F_STREAM_DISABLED", "stream disabled"),
        F_TRANSL_FORBIDDEN => ("F_TRANSL_FORBIDDEN", "translated transaction forbidden"),
        C_BAD_SUBSTREAMID => ("C_BAD_SUBSTREAMID", "bad substream ID"),
        F_CD_FETCH => ("F_CD_FETCH", "could not fetch the context descriptor"),
        C_BAD_CD => ("C_BAD_CD", "invalid context descriptor"),
        F_WALK_EABT => ("F_WALK_EABT", "external abort during the table walk"),
        F_TRANSLATION => ("F_TRANSLATION", "no translation: the address is not mapped for this VM"),
        F_ADDR_SIZE => ("F_ADDR_SIZE", "address beyond the input or output size"),
        F_ACCESS => ("F_ACCESS", "access flag fault"),
        F_PERMISSION => ("F_PERMISSION", "permission fault"),
        F_TLB_CONFLICT => ("F_TLB_CONFLICT", "TLB conflict"),
        F_CFG_CONFLICT => ("F_CFG_CONFLICT", "configuration cache conflict"),
        E_PAGE_REQUEST => ("E_PAGE_REQUEST", "page request"),
        F_VMS_FETCH => ("F_VMS_FETCH", "could not fetch the VMS"),
        _ => ("unknown", "event type not known to el2visor"),
    }
}

/// An event record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: u8,
    pub sid: u32,
    pub ssid: Option<u32>,
    /// Whether the record carries the fields below (a translation, access, permission,
    /// address-size or walk fault, or a forbidden or unsupported transaction).
    pub has_addr: bool,
    /// The transaction's input address (for a stage-2-only stream: the IPA).
    pub addr: u64,
    /// The IPA of a stage-2 fault (word 3).
    pub ipa: u64,
    /// RnW: a read (else a write).
    pub read: bool,
    /// S2: the fault is in stage 2.
    pub stage2: bool,
}

impl Event {
    pub fn decode(r: &Record) -> Event {
        let kind = (r[0] & 0xff) as u8;
        let has_addr = matches!(
            kind,
            F_UUT | F_TRANSL_FORBIDDEN | F_WALK_EABT | F_TRANSLATION | F_ADDR_SIZE | F_ACCESS | F_PERMISSION
        );
        Event {
            kind,
            sid: (r[0] >> 32) as u32,
            ssid: (r[0] & (1 << 11) != 0).then_some(((r[0] >> 12) & 0xf_ffff) as u32),
            has_addr,
            addr: r[2],
            ipa: r[3] & (((1 << 52) - 1) & !0xfff),
            read: r[1] & (1 << 35) != 0,
            stage2: r[1] & (1 << 39) != 0,
        }
    }
}

/// `F_TRANSLATION (no translation: …) write to 0x… (stage 2, IPA 0x…)`: everything after the
/// VM name and stream ID.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, what) = describe(self.kind);
        write!(f, "{name} ({what})")?;
        if self.has_addr {
            let dir = if self.read { "read of" } else { "write to" };
            write!(f, ", {dir} {:#x}", self.addr)?;
            if self.stage2 {
                write!(f, " (stage 2")?;
                if self.ipa != 0 && self.ipa != self.addr & !0xfff {
                    write!(f, ", IPA {:#x}", self.ipa)?;
                }
                write!(f, ")")?;
            }
        }
        if let Some(s) = self.ssid {
            write!(f, ", substream {s:#x}")?;
        }
        Ok(())
    }
}

/// Log lines a device can provoke at will, limited per stream: the first [`BURST`] events of a
/// stream get a line each, after that one line whenever the stream's count reaches a power of
/// two, saying how many were not logged. A DMA storm thus costs a few dozen lines, not one per
/// transaction, and the count is never lost.
pub const BURST: u64 = 8;
/// Streams whose counts are kept; beyond that all streams share one count.
pub const TRACKED: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log this event.
    Log,
    /// Log this event, adding that `n` earlier events of this stream were not logged.
    LogAfter(u64),
    /// Count it only.
    Quiet,
}

#[derive(Debug, Default)]
pub struct Limiter {
    /// (stream ID, events seen).
    streams: alloc::vec::Vec<(u32, u64)>,
    /// Events of streams beyond `TRACKED`.
    others: u64,
}

impl Limiter {
    pub const fn new() -> Self {
        Self { streams: alloc::vec::Vec::new(), others: 0 }
    }

    /// Count one event of stream `sid` and say whether to log it.
    pub fn note(&mut self, sid: u32) -> Verdict {
        let tracked = self.streams.len() < TRACKED;
        let n = match self.streams.iter_mut().find(|(s, _)| *s == sid) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None if tracked => {
                self.streams.push((sid, 1));
                1
            }
            None => {
                self.others += 1;
                self.others
            }
        };
        if n <= BURST {
            Verdict::Log
        } else if n.is_power_of_two() {
            Verdict::LogAfter(n - 1 - BURST - (n.trailing_zeros() as u64 - BURST.trailing_zeros() as u64 - 1))
        } else {
            Verdict::Quiet
        }
    }

    /// Events seen for `sid` so far.
    pub fn seen(&self, sid: u32) -> u64 {
        self.streams.iter().find(|(s, _)| *s == sid).map_or(self.others, |(_, n)| *n)
    }
}
