//! Host tests of the SMMUv3 encodings against the field positions of IHI 0070.

use super::cmd;
use super::event::{self, Event, Limiter, Verdict};
use super::queue::{Ring, OVFLG};
use super::regs::{self, Features};
use super::ste::{self, Layout, S2Config};
use super::stop::{self, Access};

/// QEMU 10's arm-smmuv3 with stage=2: S2P, TTF = AArch64, COHACC, ST_LEVEL = 2-level, VMID16,
/// SIDSIZE 16, CMDQS/EVENTQS 19, OAS 44 bits, 4K and 64K granules.
const QEMU_IDR0: u32 = 1 | (2 << 2) | (1 << 4) | (1 << 18) | (1 << 27);
const QEMU_IDR1: u32 = 16 | (19 << 16) | (19 << 21);
const QEMU_IDR5: u32 = 4 | (1 << 4) | (1 << 6);

#[test]
fn features_of_qemus_smmu() {
    let f = Features::decode(QEMU_IDR0, QEMU_IDR1, 0, QEMU_IDR5);
    assert!(f.stage2 && f.two_level && f.vmid16 && f.aarch64 && f.coherent && f.gran4k && !f.fwb);
    assert_eq!((f.sid_bits, f.cmdq_log2, f.eventq_log2, f.oas_bits), (16, 19, 19, 44));
    assert_eq!(f.unusable(), None);
    // A 48-bit PS (cortex-max) is capped at the SMMU's 44 bits; a 40-bit one stays.
    assert_eq!(f.s2ps(5), 4);
    assert_eq!(f.s2ps(2), 2);
    // Stage 1 only (QEMU's default stage=1): not usable for isolation, and it says why.
    let s1 = Features::decode(QEMU_IDR0 & !1 | 2, QEMU_IDR1, 0, QEMU_IDR5);
    assert!(s1.unusable().unwrap().contains("stage-2"));
    let nc = Features::decode(QEMU_IDR0 & !(1 << 4), QEMU_IDR1, 0, QEMU_IDR5);
    assert!(nc.unusable().unwrap().contains("COHACC"));
}

#[test]
fn abort_ste_is_valid_with_config_abort() {
    let s = ste::abort();
    assert_eq!(s[0] & 1, 1, "V");
    assert_eq!((s[0] >> 1) & 7, 0, "Config = abort");
    assert!(s[1..].iter().all(|&w| w == 0));
}

#[test]
fn stage2_ste_carries_the_vms_tables() {
    // VTCR_EL2 of a 40-bit IPA VM: T0SZ 24, SL0 1 (level 1), IRGN0/ORGN0 WB, SH0 inner, TG0 4K,
    // PS 48 bits, and bits above 18 (VS, HA...) that must not leak into the STE.
    let vtcr = 24 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16) | (1 << 19) | (1 << 31);
    let s = ste::stage2(&S2Config { vmid: 3, root: 0x4_8765_2000, vtcr, ps: 4, fwb: false });
    assert_eq!(s[0], 0b1101, "V = 1, Config = 0b110 (stage 2 only)");
    assert_eq!((s[1] >> 44) & 3, 1, "SHCFG = incoming");
    assert_eq!(s[1] & (1 << 25), 0, "no S2FWB");
    assert_eq!(s[2] & 0xffff, 3, "S2VMID");
    assert_eq!((s[2] >> 32) & 0x3f, 24, "S2T0SZ");
    assert_eq!((s[2] >> 38) & 3, 1, "S2SL0");
    assert_eq!((s[2] >> 40) & 0xf, 0b0101, "S2IR0/S2OR0 write-back");
    assert_eq!((s[2] >> 44) & 3, 3, "S2SH0");
    assert_eq!((s[2] >> 46) & 3, 0, "S2TG 4 KiB");
    assert_eq!((s[2] >> 48) & 7, 4, "S2PS capped at 44 bits");
    assert_ne!(s[2] & (1 << 51), 0, "S2AA64");
    assert_eq!(s[2] & (1 << 52), 0, "S2ENDI little-endian");
    assert_eq!(s[2] & (1 << 57), 0, "S2S: terminate, no stall");
    assert_ne!(s[2] & (1 << 58), 0, "S2R: faults recorded");
    assert_eq!(s[3], 0x4_8765_2000, "S2TTB");
    let f = ste::stage2(&S2Config { vmid: 3, root: 0x4_8765_2000, vtcr, ps: 4, fwb: true });
    assert_ne!(f[1] & (1 << 25), 0, "S2FWB");
}

/// Whether an SMMU that fetched `seen` uses a configuration el2visor meant: `old`'s, `new`'s or
/// abort, in every word that configuration reads.
fn coherent(seen: &ste::Ste, old: &ste::Ste, new: &ste::Ste) -> bool {
    let used = ste::used_words(seen[0]);
    let is = |s: &ste::Ste| (0..8).all(|i| used >> i & 1 == 0 || seen[i] == s[i]);
    is(old) || is(new) || is(&ste::abort())
}

/// Apply `update_steps(old, new)`; at each step the SMMU may fetch any mix of the step's words
/// stored so far (the step's stores are unordered) with the earlier steps' words (completed and
/// synced): every such fetch must be coherent, and the end must be `new`. The number of steps.
fn update(old: &ste::Ste, new: &ste::Ste) -> usize {
    let steps = ste::update_steps(old, new);
    let mut cur = *old;
    for step in &steps {
        let stores: alloc::vec::Vec<(usize, u64)> = step.iter().enumerate().filter_map(|(i, w)| w.map(|w| (i, w))).collect();
        for mask in 0..1u32 << stores.len() {
            let mut seen = cur;
            for (_, &(i, w)) in stores.iter().enumerate().filter(|(k, _)| mask >> k & 1 != 0) {
                seen[i] = w;
            }
            assert!(coherent(&seen, old, new), "{old:x?} -> {new:x?}: the SMMU may fetch {seen:x?}");
        }
        for &(i, w) in &stores {
            cur[i] = w;
        }
    }
    assert_eq!(cur, *new);
    steps.len()
}

#[test]
fn ste_updates_never_show_the_smmu_a_mix() {
    let vtcr = 24 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12);
    let a = ste::stage2(&S2Config { vmid: 3, root: 0x4_8765_2000, vtcr, ps: 4, fwb: false });
    let b = ste::stage2(&S2Config { vmid: 4, root: 0x4_9000_0000, vtcr, ps: 4, fwb: false });
    let abort = ste::abort();
    // Storing all of abort -> stage 2 at once could be seen as the new word 0 with old words 2/3.
    assert!(!coherent(&[a[0], a[1], 0, 0, 0, 0, 0, 0], &abort, &a));
    // Abort -> stage 2 (assign): words 1-3 while the stream still aborts, then word 0 alone.
    let steps = ste::update_steps(&abort, &a);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0], [None, Some(a[1]), Some(a[2]), Some(a[3]), None, None, None, None]);
    assert_eq!(steps[1], [Some(a[0]), None, None, None, None, None, None, None]);
    assert_eq!(update(&abort, &a), 2);
    // Stage 2 -> abort: word 0 first, the words only stage 2 read after.
    assert_eq!(ste::update_steps(&a, &abort)[0], [Some(abort[0]), None, None, None, None, None, None, None]);
    assert_eq!(update(&a, &abort), 2);
    // One VM's stage 2 -> another's (VMID and root change): through abort, three steps.
    assert_eq!(update(&a, &b), 3);
    // Only the root changes: one 64-bit store.
    let mut c = a;
    c[3] = 0x4_a000_0000;
    assert_eq!(update(&a, &c), 1);
    // From an invalid (V = 0) STE, and nothing to do for an equal one.
    assert_eq!(update(&[0; 8], &a), 2);
    assert_eq!(update(&a, &a), 0);
    assert_eq!((ste::used_words(0), ste::used_words(abort[0]), ste::used_words(a[0])), (1, 1, 0b1111));
}

#[test]
fn layouts() {
    // QEMU's PCI bridge maps every requester ID (0..0xffff): two levels, 256 level-2 tables.
    let l = Layout::choose(16, true, Some(0xffff));
    assert_eq!(l, Layout::TwoLevel { log2: 16 });
    assert_eq!(l.base_cfg(), (1 << 16) | (8 << 6) | 16);
    assert_eq!(l.top_bytes(), 256 * 8);
    // A few platform stream IDs: one linear table.
    let l = Layout::choose(16, true, Some(0x23));
    assert_eq!(l, Layout::Linear { log2: 6 });
    assert_eq!((l.base_cfg(), l.top_bytes(), l.covers()), (6, 64 * 64, 64));
    // No two-level support: linear, capped.
    assert_eq!(Layout::choose(32, false, Some(u32::MAX)), Layout::Linear { log2: ste::MAX_LINEAR_LOG2 });
    assert_eq!(Layout::choose(32, true, Some(u32::MAX)), Layout::TwoLevel { log2: ste::MAX_TWO_LEVEL_LOG2 });
    // Never beyond the SMMU's SIDSIZE; nothing owned: one entry.
    assert_eq!(Layout::choose(5, true, Some(0xffff)), Layout::Linear { log2: 5 });
    assert_eq!(Layout::choose(16, true, None), Layout::Linear { log2: 0 });
    assert_eq!(ste::l1_desc(Some(0x4_0000_4000)), 0x4_0000_4000 | 9);
    // Level-2 tables only where a device's stream IDs fall: bus 0 and bus 2 of 4.
    assert_eq!(ste::spans_used(10, &[(0x10, 0x18), (0x200, 0x200)]), [true, false, true, false]);
    assert_eq!(ste::spans_used(16, &[(0, 0xffff)]).iter().filter(|u| **u).count(), 256);
    assert_eq!(ste::spans_used(9, &[(0xff, 0x100)]), [true, true], "a run across a span boundary");
    assert_eq!(ste::l1_desc(None), 0);
}

#[test]
fn stream_ranges_are_clipped_to_the_table() {
    let l = Layout::choose(16, true, Some(0xffff));
    // An `iommu-map` length near 2^32: only the 65536 IDs the table covers are walked.
    assert_eq!(l.clip(0, u32::MAX), Some((0, 0xffff)));
    assert_eq!(l.clip(0x10, 0x18), Some((0x10, 0x18)));
    assert_eq!(l.clip(0xff00, 0x1_00ff), Some((0xff00, 0xffff)));
    assert_eq!(l.clip(0x1_0000, u32::MAX), None);
    assert_eq!(l.clip(5, 4), None);
    // One STE (nothing owned) and a table as large as el2visor builds.
    assert_eq!(Layout::choose(16, true, None).clip(0, 7), Some((0, 0)));
    assert_eq!(Layout::choose(32, true, Some(u32::MAX)).clip(3, u32::MAX), Some((3, (1 << 20) - 1)));
}

#[test]
fn commands() {
    assert_eq!(cmd::cfgi_ste(0x0810), [0x03 | 0x0810 << 32, 1]);
    assert_eq!(cmd::cfgi_all(), [0x04, 31]);
    assert_eq!(cmd::tlbi_s12_vmall(7), [0x28 | 7 << 32, 0]);
    assert_eq!(cmd::tlbi_s2_ipa(7, 0x8_1234_5678, true), [0x2a | 7 << 32, 0x8_1234_5000 | 1]);
    assert_eq!(cmd::tlbi_s2_ipa(1, u64::MAX, false)[1], ((1 << 52) - 1) & !0xfff);
    let s = cmd::sync();
    assert_eq!((s[0] & 0xff, (s[0] >> 12) & 3, (s[0] >> 22) & 3), (0x46, 0, 3));
    assert_eq!(cmd::name(0x2a), "TLBI_S2_IPA");
    assert!(cmd::error_name(1 << 24).starts_with("CERROR_ILL"));
}

#[test]
fn queue_wraps() {
    let q = Ring::new(2); // 4 entries, positions 0..8
    assert!(q.empty(0, 0) && !q.full(0, 0));
    assert!(q.full(4, 0) && !q.empty(4, 0));
    assert_eq!((q.len(4, 0), q.len(1, 6), q.len(OVFLG | 6, 6), q.len(3, 3)), (4, 3, 0, 0));
    assert_eq!(q.next(7), 0);
    assert_eq!(q.index(5), 1);
    // ERR / OVFLG bits above the position are ignored.
    assert!(q.empty(0x8000_0003, 0x0100_0003));
    // Entry at position 6 written with CONS at 5: consumed once CONS passes 6, across the wrap.
    assert!(!q.consumed(6, 5, 6));
    assert!(q.consumed(6, 5, 7));
    assert!(q.consumed(6, 5, 0));
    assert_eq!(q.base(0x4_0000_0000), 0x4_0000_0000 | 2 | (1 << 62));
}

#[test]
fn event_queue_consumer_keeps_and_acknowledges_ovackflg() {
    let q = Ring::new(2); // 4 records, positions 0..8
    // Consuming wraps (position 7 -> 0, the wrap bit toggles) and keeps OVACKFLG.
    assert_eq!(q.next_cons(3), 4);
    assert_eq!(q.next_cons(7), 0);
    assert_eq!(q.next_cons(OVFLG | 7), OVFLG);
    assert_eq!(q.next_cons(OVFLG | 2), OVFLG | 3);
    // The SMMU overflows the queue: PROD.OVFLG toggles to 1, records 1..5 (wrapped) are in it.
    let (prod, cons) = (OVFLG | 5, 1);
    assert!(Ring::overflowed(prod, cons));
    // A drain acknowledges it and consumes every record; the CONS it writes keeps the flag.
    let mut c = q.acknowledged(cons, prod);
    assert_eq!(c, OVFLG | 1);
    while !q.empty(prod, c) {
        c = q.next_cons(c);
    }
    assert_eq!(c, OVFLG | 5);
    // The next drain (same PROD, nothing new) sees no overflow, and its CONS still matches.
    assert!(!Ring::overflowed(prod, c));
    assert_eq!(q.acknowledged(c, prod), c);
    // A second overflow toggles OVFLG back to 0: seen, then acknowledged with 0.
    assert!(Ring::overflowed(5, c));
    assert_eq!(q.acknowledged(c, 5), 5);
    assert!(!Ring::overflowed(5, 5));
}

#[test]
fn a_stage2_translation_fault_decodes() {
    // What QEMU writes for edu's DMA write to an unmapped IPA on stream 0x10.
    let r = [0x10u64 | 0x10 << 32, 1 << 39, 0x7fe0_0000, 0x7fe0_0000];
    let e = Event::decode(&r);
    assert_eq!((e.kind, e.sid, e.has_addr, e.read, e.stage2), (event::F_TRANSLATION, 0x10, true, false, true));
    let line = alloc::format!("{e}");
    assert!(line.starts_with("F_TRANSLATION (no translation"), "{line}");
    assert!(line.contains("write to 0x7fe00000 (stage 2)"), "{line}");
    // A bad STE has no address; an unknown type still prints.
    let e = Event::decode(&[0x04 | 3 << 32, 0, 0, 0]);
    assert_eq!(alloc::format!("{e}"), "C_BAD_STE (invalid or illegal STE)");
    let e = Event::decode(&[0x7f | 1 << 11 | 5 << 12, 1 << 35, 0x1000, 0]);
    assert_eq!(e.ssid, Some(5));
    assert!(alloc::format!("{e}").starts_with("unknown"));
}

#[test]
fn limiter_logs_a_burst_then_powers_of_two_with_the_count() {
    let mut l = Limiter::new();
    let verdicts: alloc::vec::Vec<Verdict> = (0..1024).map(|_| l.note(0x10)).collect();
    assert!(verdicts[..8].iter().all(|v| *v == Verdict::Log));
    let logged: alloc::vec::Vec<(usize, Verdict)> =
        verdicts.iter().copied().enumerate().filter(|(_, v)| *v != Verdict::Quiet).skip(8).collect();
    // Events 16, 32, ... 1024 (1-based): each says how many before it were not logged.
    assert_eq!(logged.len(), 7);
    assert_eq!(logged[0], (15, Verdict::LogAfter(7)));
    let lines = 8 + 7;
    assert_eq!(logged[6], (1023, Verdict::LogAfter(1023 - (lines - 1))));
    assert_eq!(l.seen(0x10), 1024);
    // Another stream has its own burst.
    assert_eq!(l.note(0x18), Verdict::Log);
    // Streams beyond the tracked ones share a count and are still limited.
    let mut l = Limiter::new();
    for s in 0..event::TRACKED as u32 {
        l.note(s);
    }
    let extra: alloc::vec::Vec<Verdict> = (0..100).map(|i| l.note(1000 + i)).collect();
    assert_eq!(extra.iter().filter(|v| **v != Verdict::Quiet).count(), 8 + 3);
}

/// An SMMU's CR0/CR0ACK and GBPA, recording the writes; `stuck`: GBPA.Update never clears.
struct Model {
    cr0: core::cell::Cell<u32>,
    gbpa: core::cell::Cell<u32>,
    stuck: bool,
    writes: core::cell::RefCell<alloc::vec::Vec<(usize, u32)>>,
}

impl Model {
    fn new(cr0: u32, gbpa: u32, stuck: bool) -> Self {
        Self { cr0: cr0.into(), gbpa: gbpa.into(), stuck, writes: Default::default() }
    }
}

impl Access for Model {
    fn read32(&self, off: usize) -> u32 {
        match off {
            regs::CR0ACK => self.cr0.get(),
            regs::GBPA => self.gbpa.get(),
            _ => 0,
        }
    }

    fn write32(&self, off: usize, v: u32) {
        self.writes.borrow_mut().push((off, v));
        match off {
            regs::CR0 => self.cr0.set(v),
            regs::GBPA => self.gbpa.set(if self.stuck { v } else { v & !regs::GBPA_UPDATE }),
            _ => {}
        }
    }
}

#[test]
fn stopping_sets_gbpa_abort_before_turning_the_smmu_off() {
    // Firmware left it on (SMMUEN, queues) with GBPA.ABORT = 0 and SHCFG = 0b01: ABORT is set
    // (other fields kept) and has taken effect before CR0 is cleared, so nothing ever bypasses.
    let shcfg = 1 << 12;
    let m = Model::new(regs::CR0_SMMUEN | regs::CR0_CMDQEN, shcfg, false);
    assert_eq!(stop::abort_all(&m, 10), Ok(()));
    let want = [(regs::GBPA, shcfg | regs::GBPA_ABORT | regs::GBPA_UPDATE), (regs::CR0, 0)];
    assert_eq!(*m.writes.borrow(), want);
    assert_eq!((m.gbpa.get(), m.cr0.get()), (shcfg | regs::GBPA_ABORT, 0));
    // GBPA.Update never clears: the SMMU stays on (off with the old GBPA could mean bypass).
    let m = Model::new(regs::CR0_SMMUEN, 0, true);
    assert!(stop::abort_all(&m, 10).is_err());
    assert!(m.writes.borrow().iter().all(|&(off, _)| off != regs::CR0));
    // An update already in progress that never completes: nothing is written at all.
    let m = Model::new(regs::CR0_SMMUEN, regs::GBPA_UPDATE, true);
    assert!(stop::abort_all(&m, 10).is_err());
    assert!(m.writes.borrow().is_empty());
}
