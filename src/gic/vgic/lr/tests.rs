//! List-register manager tests: unit cases and a model-based property test that drives the
//! manager and a simulated guest through random inject / acknowledge / EOI sequences.

use super::*;
use alloc::collections::BTreeSet;
use alloc::vec;
use proptest::prelude::*;

pub(super) fn sw(intid: u32, priority: u8, source: u8) -> Virq {
    Virq { intid, pintid: None, priority, group1: true, source, level: false }
}

pub(super) fn hw(intid: u32, priority: u8) -> Virq {
    Virq { intid, pintid: Some(intid), priority, group1: true, source: 0, level: true }
}

/// Apply `fill`'s writes to a simulated register file.
pub(super) fn enter(m: &mut LrManager, regs: &mut [u64]) -> bool {
    let (writes, underflow) = m.fill();
    for (i, v) in writes {
        regs[i] = v;
    }
    underflow
}

pub(super) fn set_state(format: LrFormat, v: u64, state: LrState) -> u64 {
    format.encode(&LrValue { state, ..format.decode(v) })
}

#[test]
fn fills_in_priority_order_and_asks_for_underflow() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    let mut regs = [0u64; 2];
    assert_eq!(m.inject(sw(1, 0x80, 0)), Injected::Queued);
    assert_eq!(m.inject(hw(27, 0x20)), Injected::Queued);
    assert_eq!(m.inject(sw(2, 0x40, 0)), Injected::Queued);
    assert!(enter(&mut m, &mut regs), "three interrupts, two LRs: underflow needed");
    let vintids: Vec<u32> = regs.iter().map(|&v| LrFormat::V3.decode(v).vintid).collect();
    assert_eq!(vintids, vec![27, 2]);
    assert_eq!(m.state_of(1, 0), Some(LrState::Pending));
    // The guest takes and finishes both; the third goes in and the underflow is no longer needed.
    for r in regs.iter_mut() {
        *r = set_state(LrFormat::V3, *r, LrState::Invalid);
    }
    m.sync(&regs);
    assert!(!enter(&mut m, &mut regs));
    assert_eq!(LrFormat::V3.decode(regs[0]).vintid, 1);
    assert_eq!(LrFormat::V3.decode(regs[1]).state, LrState::Invalid, "the retired LR stays free");
    assert_eq!(m.in_use().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn higher_priority_preempts_a_pending_lr() {
    let mut m = LrManager::new(LrFormat::V2, 1);
    let mut regs = [0u64; 1];
    m.inject(sw(5, 0xa0, 0));
    enter(&mut m, &mut regs);
    m.sync(&regs);
    m.inject(hw(27, 0x10));
    assert!(enter(&mut m, &mut regs));
    assert_eq!(LrFormat::V2.decode(regs[0]).vintid, 27);
    assert_eq!(m.state_of(5, 0), Some(LrState::Pending));
    // An active entry is never evicted.
    regs[0] = set_state(LrFormat::V2, regs[0], LrState::Active);
    m.sync(&regs);
    m.inject(sw(1, 0x00, 0));
    assert_eq!(m.fill().0, vec![]);
}

#[test]
fn hw_interrupt_is_never_held_twice() {
    let mut m = LrManager::new(LrFormat::V3, 4);
    let mut regs = [0u64; 4];
    m.inject(hw(40, 0x80));
    assert_eq!(m.inject(hw(40, 0x80)), Injected::AlreadyPending);
    enter(&mut m, &mut regs);
    regs[0] = set_state(LrFormat::V3, regs[0], LrState::Active);
    m.sync(&regs);
    assert_eq!(m.inject(hw(40, 0x80)), Injected::HwBusy);
    assert_eq!(m.fill().0, vec![]);
    // A software interrupt becomes pending+active in its LR instead.
    m.inject(sw(3, 0x80, 1));
    enter(&mut m, &mut regs);
    regs[1] = set_state(LrFormat::V3, regs[1], LrState::Active);
    m.sync(&regs);
    assert_eq!(m.inject(sw(3, 0x80, 1)), Injected::PendingInLr);
    // The same SGI from another source is a different interrupt on GICv2.
    assert_eq!(m.inject(sw(3, 0x80, 2)), Injected::Queued);
    enter(&mut m, &mut regs);
    assert_eq!(LrFormat::V3.decode(regs[1]).state, LrState::PendingActive);
}

#[test]
fn retract_takes_back_only_the_cleared_state() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    let mut regs = [0u64; 2];
    m.inject(hw(33, 0x80));
    m.inject(sw(3, 0x80, 0));
    m.inject(hw(34, 0x90));
    enter(&mut m, &mut regs);
    // HW 34 is still queued: gone from the queue, its acknowledged physical copy deactivated.
    assert_eq!(m.retract(34, None, true, false), Retracted { writes: vec![], deactivate: vec![34] });
    assert_eq!(m.state_of(34, 0), None);
    // HW 33 pending in LR 0: clearing its active state changes nothing; clearing pending empties
    // the LR and deactivates the physical interrupt.
    assert_eq!(m.retract(33, None, false, true), Retracted::default());
    assert_eq!(m.retract(33, None, true, false), Retracted { writes: vec![(0, 0)], deactivate: vec![33] });
    // SGI 3 pending and active in LR 1: each clear leaves the other state.
    regs[1] = set_state(LrFormat::V3, regs[1], LrState::PendingActive);
    m.sync(&regs);
    let r = m.retract(3, None, true, false);
    assert_eq!(r.deactivate, vec![]);
    assert_eq!(r.writes, vec![(1, set_state(LrFormat::V3, regs[1], LrState::Active))]);
    assert_eq!(m.state_of(3, 0), Some(LrState::Active));
    let r = m.retract(3, None, false, true);
    assert_eq!(r, Retracted { writes: vec![(1, 0)], deactivate: vec![] });
    // Nothing held, nothing to do; nothing left for `fill` to repeat.
    assert_eq!(m.retract(35, None, true, true), Retracted::default());
    assert_eq!(m.fill(), (vec![], false));
    assert!(m.is_idle());
}

#[test]
fn retract_active_hw_interrupt_and_reuse_its_lr() {
    let mut m = LrManager::new(LrFormat::V2, 1);
    let mut regs = [0u64; 1];
    m.inject(hw(40, 0x80));
    m.inject(sw(5, 0xa0, 0));
    enter(&mut m, &mut regs);
    regs[0] = set_state(LrFormat::V2, regs[0], LrState::Active);
    m.sync(&regs);
    assert_eq!(m.retract(40, None, true, false), Retracted::default(), "active, not pending");
    assert_eq!(m.retract(40, None, false, true), Retracted { writes: vec![(0, 0)], deactivate: vec![40] });
    // The freed list register takes the queued interrupt at the next fill.
    enter(&mut m, &mut regs);
    assert_eq!(LrFormat::V2.decode(regs[0]).vintid, 5);
}

#[test]
fn retract_gicv2_sgi_by_source() {
    let mut m = LrManager::new(LrFormat::V2, 4);
    let mut regs = [0u64; 4];
    for src in 0..3 {
        m.inject(sw(7, 0x80, src));
    }
    m.inject(sw(6, 0x80, 1));
    enter(&mut m, &mut regs);
    // CPENDSGIR for source 1 only.
    let r = m.retract(7, Some(1), true, false);
    assert_eq!(r.writes.len(), 1);
    assert_eq!(m.state_of(7, 1), None);
    assert_eq!(m.state_of(7, 0), Some(LrState::Pending));
    assert_eq!(m.state_of(6, 1), Some(LrState::Pending));
    // Every source.
    assert_eq!(m.retract(7, None, true, true).writes.len(), 2);
    assert_eq!((m.state_of(7, 0), m.state_of(7, 2)), (None, None));
    assert_eq!(m.in_use().count(), 1);
}

#[test]
fn reset_drops_everything() {
    let mut m = LrManager::new(LrFormat::V2, 1);
    let mut regs = [0u64; 1];
    m.inject(hw(33, 0x80));
    m.inject(hw(34, 0x80));
    enter(&mut m, &mut regs);
    assert_eq!(m.reset(), vec![(0, 0)]);
    assert!(m.is_idle());
}

#[test]
fn take_pending_moves_only_what_is_merely_pending() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    let mut regs = [0u64; 2];
    m.inject(hw(40, 0x20));
    m.inject(hw(41, 0x40));
    m.inject(sw(42, 0x10, 0));
    m.inject(sw(5, 0x30, 0));
    enter(&mut m, &mut regs);
    // 42 and 40 are in list registers; the guest acknowledged 42.
    let i42 = (0..2).find(|&i| LrFormat::V3.decode(regs[i]).vintid == 42).unwrap();
    regs[i42] = set_state(LrFormat::V3, regs[i42], LrState::Active);
    m.sync(&regs);
    let (taken, writes) = m.take_pending(|v| v.intid >= 32);
    // 40 (pending in a list register) and 41 (queued) go, by priority; 42 is active and stays,
    // and SGI 5 was not picked.
    assert_eq!(taken.iter().map(|v| v.intid).collect::<Vec<_>>(), vec![40, 41]);
    assert_eq!(taken[0].pintid, Some(40), "a HW interrupt keeps its physical INTID");
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1, 0);
    assert_eq!(m.state_of(42, 0), Some(LrState::Active));
    assert_eq!(m.state_of(5, 0), Some(LrState::Pending));
    assert_eq!((m.state_of(40, 0), m.state_of(41, 0)), (None, None));
    // The freed list register takes SGI 5 at the next entry.
    regs[writes[0].0] = 0;
    enter(&mut m, &mut regs);
    assert_eq!(m.queued(), 0);
    assert!(regs.iter().any(|&v| LrFormat::V3.decode(v).vintid == 5));
}

/// One step of the simulation.
#[derive(Clone, Debug)]
enum Op {
    /// Raise interrupt `n` (0..6: SGIs 0..3 from sources 0 and 1; 6..: HW interrupts) with a priority.
    Inject(u32, u8),
    /// The guest acknowledges the `k`-th pending LR.
    Ack(usize),
    /// The guest EOIs (and so deactivates) the `k`-th active LR.
    Eoi(usize),
    /// The guest clears interrupt `n`'s pending and/or active state through the distributor
    /// (for a GICv2 SGI, from its own source or, with `all`, from every source).
    Retract { n: u32, pending: bool, active: bool, all: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..12, 0u8..8).prop_map(|(n, p)| Op::Inject(n, p << 5)),
        (0usize..8).prop_map(Op::Ack),
        (0usize..8).prop_map(Op::Eoi),
        (0u32..12, 1u8..4, any::<bool>()).prop_map(|(n, which, all)| Op::Retract {
            n,
            pending: which & 1 != 0,
            active: which & 2 != 0,
            all
        }),
    ]
}

/// GICv2 SGIs carry a source (in the LR's CPUID field); GICv3 ones do not.
fn virq_for(format: LrFormat, n: u32, priority: u8) -> Virq {
    if n < 6 {
        sw(n % 3, priority, if format == LrFormat::V2 { (n / 3) as u8 } else { 0 })
    } else {
        hw(28 + n, priority)
    }
}

type Key = (u32, u8);

/// The guest-visible state: what the LRs say plus what is still queued.
fn observed(m: &LrManager, regs: &[u64]) -> (BTreeSet<Key>, BTreeSet<Key>) {
    let mut pending = BTreeSet::new();
    let mut active = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for &v in regs {
        let lr = m.format.decode(v);
        if lr.state == LrState::Invalid {
            continue;
        }
        let key = (lr.vintid, lr.source);
        assert!(seen.insert(key), "{key:?} in two list registers");
        if lr.state.is_pending() {
            pending.insert(key);
        }
        if lr.state.is_active() {
            active.insert(key);
        }
    }
    for q in &m.queue {
        let key = (q.intid, q.source);
        assert!(!seen.contains(&key), "{key:?} both queued and in a list register");
        assert!(pending.insert(key), "{key:?} queued twice");
    }
    (pending, active)
}

fn run(format: LrFormat, count: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = LrManager::new(format, count);
    let mut regs = vec![0u64; count];
    let mut in_guest = false;
    let mut pending: BTreeSet<Key> = BTreeSet::new();
    let mut active: BTreeSet<Key> = BTreeSet::new();
    for op in ops {
        prop_assert_eq!(m.used_mask(), m.slots.iter().enumerate().filter(|(_, s)| s.is_some()).fold(0u64, |a, (i, _)| a | 1 << i), "used mask");
        match *op {
            Op::Inject(n, prio) => {
                if in_guest {
                    m.sync(&regs);
                    in_guest = false;
                    for i in m.in_use().collect::<Vec<_>>() {
                        let slot = m.slots[i].expect("in use");
                        prop_assert_eq!(slot.state, format.decode(regs[i]).state);
                    }
                }
                let virq = virq_for(format, n, prio);
                let key = (virq.intid, virq.source);
                let expected = match (virq.pintid.is_some(), pending.contains(&key), active.contains(&key)) {
                    (_, true, _) => Injected::AlreadyPending,
                    (true, false, true) => Injected::HwBusy,
                    (false, false, true) => Injected::PendingInLr,
                    (_, false, false) => Injected::Queued,
                };
                prop_assert_eq!(m.inject(virq), expected);
                if matches!(expected, Injected::Queued | Injected::PendingInLr) {
                    pending.insert(key);
                }
            }
            Op::Retract { n, pending: clear_pending, active: clear_active, all } => {
                // The runtime syncs the list registers first, then applies what retract returns.
                if in_guest {
                    m.sync(&regs);
                    in_guest = false;
                }
                let virq = virq_for(format, n, 0);
                let hit = |k: &Key| k.0 == virq.intid && (all || k.1 == virq.source);
                let held = |p: &BTreeSet<Key>, a: &BTreeSet<Key>| p.iter().chain(a).any(hit);
                let was_held = held(&pending, &active);
                if clear_pending {
                    pending.retain(|k| !hit(k));
                }
                if clear_active {
                    active.retain(|k| !hit(k));
                }
                let source = (!all).then_some(virq.source);
                let r = m.retract(virq.intid, source, clear_pending, clear_active);
                let gone = was_held && !held(&pending, &active);
                let expect: Vec<u32> = virq.pintid.filter(|_| gone).into_iter().collect();
                prop_assert_eq!(&r.deactivate, &expect, "deactivations");
                for (i, v) in r.writes {
                    regs[i] = v;
                }
            }
            Op::Ack(k) | Op::Eoi(k) => {
                if !in_guest {
                    let underflow = enter(&mut m, &mut regs);
                    in_guest = true;
                    prop_assert_eq!(underflow, !m.queue.is_empty());
                    if underflow {
                        prop_assert!(m.slots.iter().all(Option::is_some), "queued with a free LR");
                        let worst_pending = m
                            .slots
                            .iter()
                            .flatten()
                            .filter(|s| s.state == LrState::Pending)
                            .map(|s| s.virq.priority)
                            .max();
                        if let Some(worst) = worst_pending {
                            prop_assert!(m.queue[0].priority >= worst, "queue outranks an LR");
                        }
                    }
                }
                let ack = matches!(op, Op::Ack(_));
                let candidates: Vec<usize> = (0..count)
                    .filter(|&i| {
                        let s = format.decode(regs[i]).state;
                        if ack { s == LrState::Pending } else { s.is_active() }
                    })
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let i = candidates[k % candidates.len()];
                let lr = format.decode(regs[i]);
                let key = (lr.vintid, lr.source);
                let next = match lr.state {
                    LrState::Pending => {
                        pending.remove(&key);
                        active.insert(key);
                        LrState::Active
                    }
                    LrState::Active => {
                        active.remove(&key);
                        LrState::Invalid
                    }
                    _ => {
                        active.remove(&key);
                        LrState::Pending
                    }
                };
                regs[i] = set_state(format, regs[i], next);
            }
        }
        if in_guest {
            let (p, a) = observed(&m, &regs);
            prop_assert_eq!(&p, &pending);
            prop_assert_eq!(&a, &active);
        }
    }
    // Drain: the guest acknowledges and EOIs everything; nothing is lost on the way.
    for _ in 0..64 {
        if in_guest {
            m.sync(&regs);
        }
        enter(&mut m, &mut regs);
        in_guest = true;
        for r in regs.iter_mut() {
            let s = format.decode(*r).state;
            if s != LrState::Invalid {
                // Pending: acknowledged and finished; active: finished; both: the active part.
                let next = if s == LrState::PendingActive { LrState::Pending } else { LrState::Invalid };
                *r = set_state(format, *r, next);
            }
        }
    }
    m.sync(&regs);
    prop_assert!(m.is_idle(), "interrupts left after draining: {:?}", m);
    Ok(())
}

proptest! {
    #[test]
    fn never_loses_or_duplicates(
        v3 in any::<bool>(),
        count in 1usize..5,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(if v3 { LrFormat::V3 } else { LrFormat::V2 }, count, &ops)?;
    }
}

#[test]
fn held_and_retired_entries() {
    let mut m = LrManager::new(LrFormat::V2, 4);
    m.inject(sw(3, 0x80, 0));
    m.inject(sw(3, 0x80, 1));
    m.inject(hw(27, 0xa0));
    assert_eq!(m.held(3), (true, false), "queued is pending");
    assert_eq!(m.pending_sources(3), 0b11, "queued from sources 0 and 1");
    let (writes, _) = m.fill();
    assert_eq!(writes.len(), 3);
    let mut regs = [0u64; 4];
    for (i, v) in writes {
        regs[i] = v;
    }
    // The guest acknowledged SGI 3 from source 1 and finished INTID 27.
    let lr_of = |regs: &[u64; 4], f: &dyn Fn(&LrValue) -> bool| (0..4).find(|&i| f(&LrFormat::V2.decode(regs[i]))).unwrap();
    let a = lr_of(&regs, &|v| v.vintid == 3 && v.source == 1);
    let t = lr_of(&regs, &|v| v.vintid == 27);
    regs[a] = LrFormat::V2.encode(&LrValue { state: LrState::Active, ..LrFormat::V2.decode(regs[a]) });
    assert_eq!(m.sync_lr(a, regs[a]), None);
    assert_eq!(m.sync_lr(t, 0), Some(hw(27, 0xa0)), "a finished entry is returned");
    assert_eq!(m.held(3), (true, true), "one source pending, the other active");
    assert_eq!(m.pending_sources(3), 0b01, "source 1's copy is active, not pending");
    assert_eq!(m.held(27), (false, false));
    // A list register changed since the last fill is not taken back from stale hardware.
    let out = m.retract(3, Some(0), true, false);
    assert_eq!(out.writes.len(), 1);
    assert_eq!(m.held(3), (false, true));
    assert_eq!(m.inject(sw(3, 0x80, 1)), Injected::PendingInLr);
    assert_eq!(m.sync_lr(a, regs[a]), None);
    assert_eq!(m.held(3), (true, true), "the stale read did not undo the new pending state");
    let (writes, _) = m.fill();
    assert_eq!(writes.iter().map(|w| LrFormat::V2.decode(w.1).state).collect::<Vec<_>>(), [LrState::PendingActive]);
}

#[test]
fn place_takes_a_free_lr_only_when_nothing_else_decides() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    let mut regs = [0u64; 2];
    let (i, v) = m.place(hw(27, 0x20)).expect("a free list register");
    regs[i] = v;
    assert_eq!(LrFormat::V3.decode(v).state, LrState::Pending);
    assert_eq!(LrFormat::V3.decode(v).pintid, Some(27));
    assert_eq!(m.state_of(27, 0), Some(LrState::Pending));
    assert_eq!(m.place(hw(27, 0x20)), None, "already held: inject decides");
    let (j, v) = m.place(sw(3, 0x80, 0)).expect("the second list register");
    assert_ne!(i, j);
    regs[j] = v;
    assert_eq!(m.place(sw(4, 0x80, 0)), None, "no free list register");
    assert_eq!(m.inject(sw(4, 0x80, 0)), Injected::Queued);
    // The guest finishes 27: a register is free, but something is queued, so fill decides.
    regs[i] = set_state(LrFormat::V3, regs[i], LrState::Invalid);
    m.sync(&regs);
    assert_eq!(m.place(sw(5, 0x10, 0)), None, "queue not empty");
    assert!(!enter(&mut m, &mut regs));
    assert_eq!(m.state_of(4, 0), Some(LrState::Pending));
    // Same as inject + fill for what the registers end up holding.
    let mut a = LrManager::new(LrFormat::V2, 4);
    let mut b = LrManager::new(LrFormat::V2, 4);
    let mut ra = [0u64; 4];
    let mut rb = [0u64; 4];
    for q in [sw(1, 0x40, 2), hw(27, 0xa0), sw(1, 0x40, 3)] {
        let (i, v) = a.place(q).expect("free");
        ra[i] = v;
        b.inject(q);
    }
    enter(&mut b, &mut rb);
    // The same values, perhaps in other registers (fill goes in priority order).
    ra.sort_unstable();
    rb.sort_unstable();
    assert_eq!(ra, rb);
}

#[test]
fn an_empty_lr_retires_as_an_invalid_one_reads() {
    let mut a = LrManager::new(LrFormat::V3, 4);
    let mut regs = [0u64; 4];
    a.inject(hw(27, 0x20));
    a.inject(sw(3, 0x80, 0));
    enter(&mut a, &mut regs);
    let mut b = a.clone();
    assert_eq!(a.used_mask(), 0b11);
    assert_eq!(a.used_mask(), a.in_use().fold(0, |m, i| m | 1 << i));
    // The guest finished LR 0.
    let i = (0..4).find(|&i| LrFormat::V3.decode(regs[i]).vintid == 27).expect("27 is in");
    regs[i] = set_state(LrFormat::V3, regs[i], LrState::Invalid);
    let by_value = a.sync_lr(i, regs[i]);
    let by_status = b.sync_empty(i);
    assert_eq!(by_value, by_status);
    assert_eq!(by_status.map(|v| v.intid), Some(27));
    assert_eq!(a.used_mask(), b.used_mask());
    // A register changed since the last fill is not what the hardware holds yet: left alone.
    let mut c = LrManager::new(LrFormat::V3, 1);
    let mut r = [0u64; 1];
    c.inject(sw(5, 0x80, 0));
    enter(&mut c, &mut r);
    c.sync_lr(0, set_state(LrFormat::V3, r[0], LrState::Active));
    assert_eq!(c.inject(sw(5, 0x80, 0)), Injected::PendingInLr);
    assert_eq!(c.sync_empty(0), None);
    assert_eq!(c.state_of(5, 0), Some(LrState::PendingActive));
    let mut d = LrManager::new(LrFormat::V3, 2);
    d.inject(sw(9, 0x80, 0));
    let (w, _) = d.fill();
    assert_eq!(d.sync_empty(w[0].0).map(|v| v.intid), Some(9), "after fill the register is the hardware's");
    let mut e = LrManager::new(LrFormat::V3, 2);
    let (k, _) = e.place(sw(9, 0x80, 0)).expect("free");
    e.inject(sw(9, 0x80, 0));
    assert_eq!(e.sync_empty(k).map(|v| v.intid), Some(9));
}

#[test]
fn holds_hw_follows_the_physical_interrupts_in_list_registers() {
    let f = LrFormat::V2;
    let mut m = LrManager::new(f, 4);
    let mut regs = [0u64; 4];
    assert!(!m.holds_hw(), "empty");
    m.inject(sw(1, 0x80, 2));
    enter(&mut m, &mut regs);
    assert!(!m.holds_hw(), "a virtual SGI only: WFI need not trap");
    let (i, v) = m.place(hw(27, 0x20)).expect("a free list register");
    regs[i] = v;
    assert!(m.holds_hw(), "the timer placed");
    // The guest takes the timer: active, then pending and active, still held.
    for state in [LrState::Active, LrState::PendingActive] {
        regs[i] = set_state(f, regs[i], state);
        m.sync(&regs);
        assert!(m.holds_hw(), "{state:?}");
    }
    // The guest finishes the SGI: the timer is still held.
    for r in regs.iter_mut().filter(|r| f.decode(**r).pintid.is_none()) {
        *r = set_state(f, *r, LrState::Invalid);
    }
    m.sync(&regs);
    assert!(m.holds_hw(), "the timer still active");
    // The guest deactivates the timer: it counts until the sync, then not.
    regs[i] = set_state(f, regs[i], LrState::Invalid);
    assert!(m.holds_hw(), "not synced yet");
    m.sync(&regs);
    assert!(!m.holds_hw(), "all finished");
}
