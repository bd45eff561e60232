//! Stream table entries (IHI 0070, 5.2), the steps in which one the SMMU may be using is changed
//! (3.21.3), and the stream table's layout (linear, or two levels with level-1 descriptors, 5.1).
//! An STE is eight 64-bit words.

#![forbid(unsafe_code)]

/// Bytes per STE.
pub const STE_BYTES: usize = 64;
/// StreamID bits resolved by a level-2 table in the two-level format: 256 STEs, 16 KiB.
pub const SPLIT: u8 = 8;
/// Largest stream table el2visor builds (log2 of stream IDs): a linear table of 2^16 STEs is
/// 4 MiB; a two-level one of 2^20 has a 32 KiB level-1 table. Higher stream IDs abort
/// (C_BAD_STREAMID), as the architecture does for any ID beyond the table.
pub const MAX_LINEAR_LOG2: u8 = 16;
pub const MAX_TWO_LEVEL_LOG2: u8 = 20;

pub type Ste = [u64; 8];

/// STE.Config values (word 0 bits 3:1).
const CFG_ABORT: u64 = 0b000;
const CFG_BYPASS: u64 = 0b100;
const CFG_S2: u64 = 0b110;

/// An STE whose transactions abort without a translation (V = 1, Config = abort). No event is
/// recorded for them: the device just sees an abort.
pub const fn abort() -> Ste {
    [1 | (CFG_ABORT << 1), 0, 0, 0, 0, 0, 0, 0]
}

/// A VM's Stage-2 configuration, as its VTTBR_EL2 and VTCR_EL2 say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Config {
    pub vmid: u16,
    /// VTTBR_EL2 BADDR: the root table(s).
    pub root: u64,
    /// VTCR_EL2: T0SZ, SL0, IRGN0, ORGN0, SH0, TG0 are used as they are; PS is replaced by `ps`.
    pub vtcr: u64,
    /// The output size field (the VM's PS, capped at the SMMU's OAS).
    pub ps: u32,
    /// STE.S2FWB: the descriptors use the FEAT_S2FWB attribute encoding.
    pub fwb: bool,
}

/// STE word 2's VTCR-shaped field (bits 50:32) holds VTCR_EL2 bits 18:0 (T0SZ 5:0, SL0 7:6,
/// IRGN0 9:8, ORGN0 11:10, SH0 13:12, TG0 15:14, PS 18:16).
const VTCR_LOW: u64 = (1 << 16) - 1;
const S2AA64: u64 = 1 << 51;
/// Record stage-2 faults in the event queue.
const S2R: u64 = 1 << 58;
/// STE word 1: SHCFG = use the incoming shareability (bits 45:44 = 0b01).
const SHCFG_INCOMING: u64 = 1 << 44;
const S2FWB: u64 = 1 << 25;
const S2TTB_MASK: u64 = ((1 << 52) - 1) & !0xf;

/// A stage-2 STE (Config = stage 2 translates, stage 1 bypassed) for a VM's tables: S2AA64,
/// little-endian walks, faults terminate the transaction and are recorded (S2R), no stall.
pub fn stage2(c: &S2Config) -> Ste {
    let vtcr = (c.vtcr & VTCR_LOW) | (u64::from(c.ps & 7) << 16);
    [
        1 | (CFG_S2 << 1),
        SHCFG_INCOMING | if c.fwb { S2FWB } else { 0 },
        u64::from(c.vmid) | (vtcr << 32) | S2AA64 | S2R,
        c.root & S2TTB_MASK,
        0,
        0,
        0,
        0,
    ]
}

/// The words of an STE (bit i: word i) the SMMU reads for the configuration its word 0 selects:
/// word 0 alone when it is invalid (V = 0) or aborts, SHCFG in word 1 too to bypass, words 0-3 for
/// stage 2, all of them for anything else (Linux's `arm_smmu_get_ste_used`, a word at a time).
pub const fn used_words(w0: u64) -> u8 {
    if w0 & 1 == 0 {
        return 0b1;
    }
    match (w0 >> 1) & 7 {
        CFG_ABORT => 0b1,
        CFG_BYPASS => 0b11,
        CFG_S2 => 0b1111,
        _ => 0xff,
    }
}

/// One step of an STE update: the words to store (`Some`). Before the next step the stores must
/// be visible to the SMMU (DSB) and it must have dropped what it cached (CMD_CFGI_STE, CMD_SYNC).
pub type Step = [Option<u64>; 8];

/// How to turn the STE `old`, which the SMMU may be using, into `new`. The SMMU may fetch an STE
/// at any time, each 64-bit word single-copy atomic but not the whole entry, and keep what it
/// fetched until told (IHI 0070 3.21.3): storing the eight words in a row, in any order, can
/// let it use a new word 0 (V = 1, Config = stage 2) with old words 2 and 3. As Linux's
/// `arm_smmu_write_entry`: (1) the words the old configuration ignores, (2) the one word both
/// configurations read that changes, in practice word 0 (V, Config: the switch), (3) the words
/// only the old one read. When more than one word both read changes, the stream aborts meanwhile:
/// word 0 = abort, then words 1-7, then word 0. No step when `old == new`.
pub fn update_steps(old: &Ste, new: &Ste) -> alloc::vec::Vec<Step> {
    let (was, will) = (used_words(old[0]), used_words(new[0]));
    let (mut unused, mut switch, mut stale) = ([None; 8], [None; 8], [None; 8]);
    let mut both = 0;
    for i in (0..8).filter(|&i| old[i] != new[i]) {
        let (o, n) = (was >> i & 1 != 0, will >> i & 1 != 0);
        let slot = match (o, n) {
            (false, _) => &mut unused,
            (true, false) => &mut stale,
            (true, true) => {
                both += 1;
                &mut switch
            }
        };
        slot[i] = Some(new[i]);
    }
    let steps = if both <= 1 {
        [unused, switch, stale]
    } else {
        let mut rest = [None; 8];
        for i in (1..8).filter(|&i| old[i] != new[i]) {
            rest[i] = Some(new[i]);
        }
        let mut off = [None; 8];
        off[0] = Some(abort()[0]);
        let mut on = [None; 8];
        on[0] = Some(new[0]);
        [off, rest, on]
    };
    steps.into_iter().filter(|s| s.iter().any(Option::is_some)).collect()
}

/// A level-1 descriptor pointing at a level-2 table of 2^SPLIT STEs (Span = SPLIT + 1), or an
/// invalid one (Span = 0: every stream it covers aborts with C_BAD_STREAMID).
pub fn l1_desc(l2: Option<u64>) -> u64 {
    match l2 {
        Some(pa) => (pa & (((1 << 52) - 1) & !0x3f)) | u64::from(SPLIT + 1),
        None => 0,
    }
}

/// How the stream table is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 2^log2 STEs in one table.
    Linear { log2: u8 },
    /// A level-1 table of 2^(log2 - SPLIT) descriptors, each for a level-2 table of 2^SPLIT STEs.
    TwoLevel { log2: u8 },
}

impl Layout {
    /// The smallest table that holds stream ID `highest` (none: a table of one STE), within what
    /// the SMMU supports (`sid_bits`) and el2visor's caps; two levels when the SMMU has them and
    /// more than one level-2 table's worth of IDs is needed.
    pub fn choose(sid_bits: u8, two_level: bool, highest: Option<u32>) -> Layout {
        let need = highest.map_or(0, |h| (32 - h.leading_zeros()) as u8);
        let log2 = need.min(sid_bits);
        if two_level && log2 > SPLIT {
            Layout::TwoLevel { log2: log2.min(MAX_TWO_LEVEL_LOG2) }
        } else {
            Layout::Linear { log2: log2.min(MAX_LINEAR_LOG2) }
        }
    }

    pub fn log2(&self) -> u8 {
        match *self {
            Layout::Linear { log2 } | Layout::TwoLevel { log2 } => log2,
        }
    }

    /// Stream IDs below this have an entry.
    pub fn covers(&self) -> u64 {
        1 << self.log2()
    }

    /// The part of stream IDs `first..=last` below `covers()`, if any: the IDs the table has (or
    /// can have) an entry for. The rest abort with C_BAD_STREAMID and need no work; a DT range
    /// of nearly 2^32 IDs is thus not walked ID by ID.
    pub fn clip(&self, first: u32, last: u32) -> Option<(u32, u32)> {
        let end = u32::try_from(self.covers() - 1).unwrap_or(u32::MAX);
        (first <= last && first <= end).then_some((first, last.min(end)))
    }

    /// STRTAB_BASE_CFG: FMT (17:16), SPLIT (10:6), LOG2SIZE (5:0).
    pub fn base_cfg(&self) -> u32 {
        match *self {
            Layout::Linear { log2 } => u32::from(log2),
            Layout::TwoLevel { log2 } => (1 << 16) | (u32::from(SPLIT) << 6) | u32::from(log2),
        }
    }

    /// Bytes of the top table: STEs (linear) or level-1 descriptors (two levels).
    pub fn top_bytes(&self) -> usize {
        match *self {
            Layout::Linear { log2 } => STE_BYTES << log2,
            Layout::TwoLevel { log2 } => 8 << (log2 - SPLIT),
        }
    }
}

/// Which level-2 spans (2^SPLIT stream IDs each) of a two-level table of 2^`log2` IDs hold a
/// stream some device uses; `used` gives (first, last) stream IDs. Only those get a level-2 table.
pub fn spans_used(log2: u8, used: &[(u32, u32)]) -> alloc::vec::Vec<bool> {
    let spans = 1usize << log2.saturating_sub(SPLIT);
    (0..spans)
        .map(|span| {
            let (lo, hi) = ((span as u64) << SPLIT, (((span as u64) + 1) << SPLIT) - 1);
            used.iter().any(|&(a, b)| u64::from(a) <= hi && u64::from(b) >= lo)
        })
        .collect()
}
