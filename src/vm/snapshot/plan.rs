//! The pure parts of snapshots: where each piece of the VM's RAM goes in its snapshot area, the
//! pool of `snapshot_mem=` the areas come from, which VMs `snapshot_on=` watches, the console
//! matcher, and what a reset does under `reset=snapshot restores=<n>`.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

/// One linear piece of the VM's RAM (as Stage 2 maps it) and its copy in the snapshot area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub ipa: u64,
    pub pa: u64,
    pub size: u64,
    /// Where its copy lives in the snapshot area.
    pub copy: u64,
}

/// Why the VM's RAM cannot have a snapshot: it needs `needed` bytes, `left` of the `pool`
/// bytes of `snapshot_mem=` are free (the rest hold other VMs' snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoesNotFit {
    pub needed: u64,
    pub left: u64,
    pub pool: u64,
}

impl core::fmt::Display for DoesNotFit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the VM's {} MiB of RAM do not fit snapshot_mem= (", self.needed.div_ceil(1 << 20))?;
        if self.left == self.pool {
            write!(f, "{} MiB", self.pool >> 20)?;
        } else {
            write!(f, "{} MiB left of {} MiB, the rest holds other VMs' snapshots", self.left >> 20, self.pool >> 20)?;
        }
        write!(f, "): no snapshots for it")
    }
}

/// `snapshot_mem=`: one range of host RAM from which each VM that takes its first snapshot gets
/// an area of its RAM's size, for good (a VM keeps its snapshot until el2visor ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub start: u64,
    pub size: u64,
    used: u64,
}

impl Pool {
    pub fn new(start: u64, size: u64) -> Self {
        Pool { start, size, used: 0 }
    }

    /// An area of `size` bytes (rounded up to 64 KiB, so that the next area stays aligned for
    /// the copies), or why not.
    pub fn take(&mut self, size: u64) -> Result<u64, DoesNotFit> {
        let rounded = size.next_multiple_of(1 << 16);
        let left = self.size - self.used;
        if rounded > left {
            return Err(DoesNotFit { needed: size, left, pool: self.size });
        }
        let at = self.start + self.used;
        self.used += rounded;
        Ok(at)
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
        return Err(DoesNotFit { needed, left: area_size, pool: area_size });
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

/// `snapshot_on=` (`on`) for the VM `vm` among the VMs `names`: the text it watches its console
/// for, if any. `<vm>:<text>`, where `<vm>` is one of `names`, is for that VM only; any other
/// value (a text with no `:`, or whose part before the first `:` names no VM) is for every VM.
pub fn watch_text<'a>(on: &'a str, vm: &str, names: &[&str]) -> Option<&'a str> {
    match on.split_once(':') {
        Some((target, text)) if !text.is_empty() && names.contains(&target) => (target == vm).then_some(text),
        _ => Some(on),
    }
}

/// `snapshot_on=`: a VM's console output is fed here byte by byte; `seen` is set when the text
/// is complete, and the snapshot is taken at the writing vCPU's instruction boundary (once).
pub struct ConsoleWatch {
    matcher: spin::Mutex<Matcher>,
    seen: AtomicBool,
    done: AtomicBool,
}

impl ConsoleWatch {
    pub fn new(text: &[u8]) -> Self {
        ConsoleWatch { matcher: spin::Mutex::new(Matcher::new(text)), seen: AtomicBool::new(false), done: AtomicBool::new(false) }
    }

    /// A byte the VM wrote to its console.
    pub fn feed(&self, b: u8) {
        if !self.done.load(Ordering::Relaxed) && self.matcher.lock().feed(b) {
            self.done.store(true, Ordering::Relaxed);
            self.seen.store(true, Ordering::Release);
        }
    }

    /// Whether the text was just completed (once).
    pub fn take_seen(&self) -> bool {
        self.seen.swap(false, Ordering::AcqRel)
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

/// The VM a DMA master behind an SMMU el2visor owns is given, as an index into the VMs boot
/// builds (the dom0-like VM first when there is one, then the domains in order): the domain
/// (`domain`, its index among the domains) whose partial DT names it, else the dom0-like VM if
/// the device is enabled. `None`: no VM has it (its DMA aborts).
pub fn stream_vm(domain: Option<usize>, enabled: bool, has_dom0: bool) -> Option<usize> {
    match domain {
        Some(i) => Some(i + usize::from(has_dom0)),
        None if has_dom0 && enabled => Some(0),
        None => None,
    }
}

/// Why a VM given `streams` DMA masters through the SMMU has no snapshots (`None`: it may have
/// them). Their STEs share its Stage-2 tables with S2S = 0, so a device write to a page that
/// log-dirty write-protects or a lazy restore unmaps is terminated (the DMA aborts, and is
/// never logged dirty), and break-before-make on those tables aborts DMA in flight; an eager
/// restore would also rewrite RAM under a device still running.
pub fn dma_refusal(streams: usize) -> Option<&'static str> {
    (streams > 0).then_some("DMA master(s) behind the SMMU write its RAM past what snapshots track (log-dirty, lazy restores)")
}

/// Where a vCPU's SVE registers go in its save buffer, for a vector length of `vl` bytes (the
/// CPU's maximum, RDVL #1 at EL2): Z0-Z31 (`vl` bytes each) from 0, then P0-P15 and FFR
/// (`vl / 8` bytes each) from `p`. `words`: the buffer's size in 16-byte words. The `mul vl`
/// offsets of STR/LDR (Z: 0..=31, P: 0..=16) then address every slot from the two bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SveLayout {
    pub p: usize,
    pub words: usize,
}

/// [`SveLayout`] for `vl` bytes; `None` for a length SVE cannot have (not a multiple of 16 in
/// 16..=256).
pub fn sve_layout(vl: usize) -> Option<SveLayout> {
    if vl == 0 || !vl.is_multiple_of(16) || vl > 256 {
        return None;
    }
    let p = 32 * vl;
    Some(SveLayout { p, words: (p + 17 * (vl / 8)).div_ceil(16) })
}

/// ZT0's size in bytes (FEAT_SME2).
pub const ZT0_BYTES: usize = 64;

/// The size in 16-byte words of a buffer for SME's ZA at a streaming vector length of `svl`
/// bytes (`svl` rows of `svl` bytes), then ZT0 with `zt0`; `None` for a length SME cannot have.
pub fn za_words(svl: usize, zt0: bool) -> Option<usize> {
    sve_layout(svl)?;
    Some((svl * svl + if zt0 { ZT0_BYTES } else { 0 }) / 16)
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
        assert_eq!(layout(&m, 0, 0x20_1000), Err(DoesNotFit { needed: 0x20_2000, left: 0x20_1000, pool: 0x20_1000 }));
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
    fn the_pool_gives_each_vm_its_area_until_full() {
        let mut p = Pool::new(0x1_0000_0000, 512 << 20);
        assert_eq!(p.take(256 << 20), Ok(0x1_0000_0000));
        assert_eq!(p.take(128 << 20), Ok(0x1_1000_0000));
        let e = p.take(256 << 20).unwrap_err();
        assert_eq!(e, DoesNotFit { needed: 256 << 20, left: 128 << 20, pool: 512 << 20 });
        assert_eq!(
            alloc::format!("{e}"),
            "the VM's 256 MiB of RAM do not fit snapshot_mem= (128 MiB left of 512 MiB, the rest holds other VMs' snapshots): no snapshots for it"
        );
        assert_eq!(p.take(128 << 20), Ok(0x1_1800_0000), "a refusal takes nothing");
        assert!(p.take(1).is_err());
        // An odd size keeps the next area aligned.
        let mut p = Pool::new(0, 1 << 20);
        assert_eq!(p.take(0x1001), Ok(0));
        assert_eq!(p.take(0x1000), Ok(0x1_0000));
        let e = Pool::new(0, 64 << 20).take(128 << 20).unwrap_err();
        assert_eq!(alloc::format!("{e}"), "the VM's 128 MiB of RAM do not fit snapshot_mem= (64 MiB): no snapshots for it");
    }

    #[test]
    fn snapshot_on_names_one_vm_or_all() {
        let names = ["guest", "domU1", "domU2"];
        assert_eq!(watch_text("READY", "domU1", &names), Some("READY"));
        assert_eq!(watch_text("domU1:READY", "domU1", &names), Some("READY"));
        assert_eq!(watch_text("domU1:READY", "domU2", &names), None);
        assert_eq!(watch_text("domU1:READY", "guest", &names), None);
        // Not a VM's name: the whole word is the text, for every VM.
        assert_eq!(watch_text("login:", "domU2", &names), Some("login:"));
        assert_eq!(watch_text("Run:now", "guest", &names), Some("Run:now"));
        assert_eq!(watch_text("domU1:", "domU2", &names), Some("domU1:"));
        assert_eq!(watch_text("domU2:a:b", "domU2", &names), Some("a:b"));
    }

    #[test]
    fn console_watch_fires_once() {
        let w = ConsoleWatch::new(b"go!");
        for &b in b"xgo" {
            w.feed(b);
        }
        assert!(!w.take_seen());
        w.feed(b'!');
        assert!(w.take_seen());
        assert!(!w.take_seen());
        for &b in b"go!" {
            w.feed(b);
        }
        assert!(!w.take_seen(), "a snapshot_on= text takes one snapshot");
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

    #[test]
    fn sve_buffer_layout() {
        // 128 bits: 32 Z of 16 bytes, then 17 predicates of 2 bytes (34 bytes: 3 words).
        assert_eq!(sve_layout(16), Some(SveLayout { p: 512, words: 32 + 3 }));
        // 2048 bits: 8 KiB of Z, 17 * 32 bytes of P and FFR.
        assert_eq!(sve_layout(256), Some(SveLayout { p: 8192, words: 512 + 34 }));
        assert_eq!(sve_layout(48).map(|l| l.words * 16 >= 48 * 32 + 17 * 6), Some(true));
        assert_eq!(sve_layout(0), None);
        assert_eq!(sve_layout(24), None);
        assert_eq!(sve_layout(512), None);
    }

    #[test]
    fn za_buffer_takes_its_rows_and_zt0() {
        // 128 bits: 16 rows of 16 bytes; 2048 bits: 256 rows of 256 bytes (64 KiB).
        assert_eq!(za_words(16, false), Some(16));
        assert_eq!(za_words(16, true), Some(20));
        assert_eq!(za_words(256, false).map(|w| w * 16), Some(64 * 1024));
        assert_eq!(za_words(24, false), None);
    }

    #[test]
    fn streams_go_to_their_vm() {
        // With a dom0-like VM (index 0), domain 1 is VM 2; an enabled device no domain names goes
        // to the dom0-like VM, a disabled one to none.
        assert_eq!(stream_vm(Some(1), true, true), Some(2));
        assert_eq!(stream_vm(Some(1), false, true), Some(2));
        assert_eq!(stream_vm(None, true, true), Some(0));
        assert_eq!(stream_vm(None, false, true), None);
        // Dom0less: domain i is VM i, and a device no domain names is in no VM.
        assert_eq!(stream_vm(Some(0), true, false), Some(0));
        assert_eq!(stream_vm(None, true, false), None);
    }

    #[test]
    fn a_vm_with_dma_streams_has_no_snapshots() {
        assert_eq!(dma_refusal(0), None);
        assert!(dma_refusal(1).is_some());
        assert!(dma_refusal(3).is_some());
    }
}
