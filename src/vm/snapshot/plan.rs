//! The pure parts of snapshots: where each piece of the VM's RAM goes in the snapshot area, the
//! console matcher of `snapshot_on=`, and what a reset does under `reset=snapshot restores=<n>`.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// One linear piece of the VM's RAM (as Stage 2 maps it) and its copy in the snapshot area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub ipa: u64,
    pub pa: u64,
    pub size: u64,
    /// Where its copy lives in the snapshot area.
    pub copy: u64,
}

/// Why the VM's RAM cannot have a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoesNotFit {
    pub needed: u64,
    pub area: u64,
}

impl core::fmt::Display for DoesNotFit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the VM's {} MiB of RAM do not fit snapshot_mem= ({} MiB): no snapshots for it",
            self.needed.div_ceil(1 << 20),
            self.area >> 20
        )
    }
}

/// Lay out `mapped` (IPA, PA, size) RAM mappings, in IPA order, in an area at `area_pa` of
/// `area_size` bytes: adjacent mappings (contiguous in IPA and PA) become one piece.
pub fn layout(mapped: &[(u64, u64, u64)], area_pa: u64, area_size: u64) -> Result<Vec<Piece>, DoesNotFit> {
    let mut pieces: Vec<Piece> = Vec::new();
    for &(ipa, pa, size) in mapped {
        if let Some(last) = pieces.last_mut() {
            if last.ipa + last.size == ipa && last.pa + last.size == pa {
                last.size += size;
                continue;
            }
        }
        pieces.push(Piece { ipa, pa, size, copy: 0 });
    }
    let needed: u64 = pieces.iter().map(|p| p.size).sum();
    if needed > area_size {
        return Err(DoesNotFit { needed, area: area_size });
    }
    let mut at = area_pa;
    for p in &mut pieces {
        p.copy = at;
        at += p.size;
    }
    Ok(pieces)
}

/// Finds a text in a stream of bytes (a VM's console output), across writes.
#[derive(Clone, Debug)]
pub struct Matcher {
    pattern: Vec<u8>,
    /// KMP failure function.
    fail: Vec<usize>,
    /// Bytes of `pattern` matched so far.
    at: usize,
}

impl Matcher {
    pub fn new(pattern: &[u8]) -> Self {
        let mut fail = alloc::vec![0; pattern.len()];
        let mut k = 0;
        for i in 1..pattern.len() {
            while k > 0 && pattern[i] != pattern[k] {
                k = fail[k - 1];
            }
            if pattern[i] == pattern[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Matcher { pattern: pattern.to_vec(), fail, at: 0 }
    }

    /// Feed one byte; `true` when it completes the text (matching starts afresh after).
    pub fn feed(&mut self, b: u8) -> bool {
        if self.pattern.is_empty() {
            return false;
        }
        while self.at > 0 && b != self.pattern[self.at] {
            self.at = self.fail[self.at - 1];
        }
        if b == self.pattern[self.at] {
            self.at += 1;
        }
        if self.at == self.pattern.len() {
            self.at = 0;
            return true;
        }
        false
    }
}

/// What a PSCI SYSTEM_RESET does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnReset {
    /// Reload the pristine images and reboot (no `reset=snapshot`, or no snapshot taken yet).
    Reboot,
    /// Restore the snapshot; this is restore number `n` (from 1).
    Restore(u32),
    /// `restores=` used up: power the VM off.
    PowerOff,
}

/// The rule of `reset=snapshot restores=<limit>`: after `done` restores by reset.
pub fn on_reset(reset_restores: bool, taken: bool, done: u32, limit: Option<u32>) -> OnReset {
    if !reset_restores || !taken {
        return OnReset::Reboot;
    }
    match limit {
        Some(l) if done >= l => OnReset::PowerOff,
        _ => OnReset::Restore(done + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_merges_and_checks_the_size() {
        let m = [(0x4000_0000, 0x8000_0000, 0x20_0000), (0x4020_0000, 0x8020_0000, 0x1000), (0x5000_0000, 0x9000_0000, 0x1000)];
        let p = layout(&m, 0x1_0000_0000, 0x40_0000).unwrap();
        assert_eq!(
            p,
            [
                Piece { ipa: 0x4000_0000, pa: 0x8000_0000, size: 0x20_1000, copy: 0x1_0000_0000 },
                Piece { ipa: 0x5000_0000, pa: 0x9000_0000, size: 0x1000, copy: 0x1_0020_1000 },
            ]
        );
        assert_eq!(layout(&m, 0, 0x20_1000), Err(DoesNotFit { needed: 0x20_2000, area: 0x20_1000 }));
        // A hole in the PA (not IPA) keeps pieces apart.
        let p = layout(&[(0, 0x1000, 0x1000), (0x1000, 0x3000, 0x1000)], 0, 0x2000).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn matcher_finds_text_across_writes_and_overlaps() {
        let mut m = Matcher::new(b"abab!");
        let hits: Vec<usize> = b"xxababab!yyabab!".iter().enumerate().filter_map(|(i, &b)| m.feed(b).then_some(i)).collect();
        assert_eq!(hits, [8, 15]);
        let mut m = Matcher::new(b"");
        assert!(!m.feed(b'a'));
        let mut m = Matcher::new(b"aab");
        assert!(b"aaab".iter().any(|&b| m.feed(b)));
    }

    #[test]
    fn reset_rule() {
        assert_eq!(on_reset(false, true, 0, Some(3)), OnReset::Reboot);
        assert_eq!(on_reset(true, false, 0, Some(3)), OnReset::Reboot);
        assert_eq!(on_reset(true, true, 0, Some(3)), OnReset::Restore(1));
        assert_eq!(on_reset(true, true, 2, Some(3)), OnReset::Restore(3));
        assert_eq!(on_reset(true, true, 3, Some(3)), OnReset::PowerOff);
        assert_eq!(on_reset(true, true, 1000, None), OnReset::Restore(1001));
        assert_eq!(on_reset(true, true, 0, Some(0)), OnReset::PowerOff);
    }
}
