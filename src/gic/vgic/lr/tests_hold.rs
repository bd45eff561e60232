//! List-register manager tests: interrupts the guest disables while the vCPU holds them
//! ([`LrManager::set_enabled`]).

use super::tests::{enter, hw, set_state, sw};
use super::*;
use alloc::vec;

#[test]
fn a_disabled_interrupt_is_held_back_until_enabled_again() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    let mut regs = [0u64; 2];
    m.inject(sw(40, 0xa0, 0));
    m.inject(sw(41, 0xa0, 0));
    m.inject(hw(27, 0x20));
    enter(&mut m, &mut regs);
    m.sync(&regs);
    // 27 and one of 40/41 in the LRs, the other queued. The guest acknowledges 27 (active).
    let i27 = (0..2).find(|&i| LrFormat::V3.decode(regs[i]).vintid == 27).unwrap();
    regs[i27] = set_state(LrFormat::V3, regs[i27], LrState::Active);
    m.sync(&regs);
    let i40 = 1 - i27;
    assert_eq!(LrFormat::V3.decode(regs[i40]).vintid, 40);

    // Disabling 40 clears its LR (only pending there); disabling 27 leaves it (active).
    assert_eq!(m.set_enabled(40, false), vec![(i40, 0)]);
    regs[i40] = 0;
    assert!(m.set_enabled(27, false).is_empty());
    assert_eq!(m.held(40), (true, false), "held back, it still reads pending");
    assert_eq!(m.state_of(40, 0), Some(LrState::Pending));
    // A copy arriving while disabled waits with it; the queue's 41 takes the free LR.
    assert_eq!(m.inject(sw(40, 0xa0, 0)), Injected::HeldBack);
    assert!(!enter(&mut m, &mut regs), "nothing left to fill but what is held back: no underflow");
    assert_eq!(LrFormat::V3.decode(regs[i40]).vintid, 41);
    assert_eq!(m.place(sw(42, 0xa0, 0)), None, "both list registers are in use");

    // Enabled again: it is queued and filled once a list register is free.
    regs[i40] = set_state(LrFormat::V3, regs[i40], LrState::Invalid);
    m.sync(&regs);
    assert!(m.set_enabled(40, true).is_empty());
    assert!(!enter(&mut m, &mut regs));
    assert_eq!(LrFormat::V3.decode(regs[i40]).vintid, 40);
    assert_eq!(LrFormat::V3.decode(regs[i40]).state, LrState::Pending);
    assert_eq!(m.held(40), (true, false));
}

#[test]
fn a_held_back_copy_goes_with_a_cleared_pending_state_and_a_reset() {
    let mut m = LrManager::new(LrFormat::V2, 1);
    let mut regs = [0u64; 1];
    m.inject(hw(33, 0xa0));
    enter(&mut m, &mut regs);
    m.sync(&regs);
    m.set_enabled(33, false);
    let out = m.retract(33, None, true, false);
    assert_eq!(out.deactivate, vec![33], "its physical copy, acknowledged for the guest, is deactivated");
    assert_eq!(m.held(33), (false, false));
    // Enabled again, nothing comes back.
    m.set_enabled(33, true);
    assert!(!enter(&mut m, &mut regs));
    assert_eq!(m.queued(), 0);

    m.inject(sw(34, 0xa0, 0));
    m.set_enabled(34, false);
    m.reset();
    assert_eq!(m.held(34), (false, false));
    assert_eq!(m.inject(sw(34, 0xa0, 0)), Injected::Queued, "a reset forgets what the guest disabled");
}

#[test]
fn a_disabling_with_nothing_held_is_forgotten_after_the_entry() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    // The guest disables an interrupt this vCPU holds nothing of (as Linux does all the time):
    // once the entry has injected what arrived with it, the fast way is open again.
    assert!(m.set_enabled(40, false).is_empty());
    assert_eq!(m.inject(sw(40, 0xa0, 0)), Injected::HeldBack, "an arrival of the same entry waits");
    m.forget_disabled();
    assert_eq!(m.held(40), (true, false), "what is held back keeps its INTID disabled");
    assert_eq!(m.place(sw(40, 0xa0, 0)), None, "not the fast way for a disabled one");
    m.set_enabled(41, false);
    m.set_enabled(40, true);
    m.forget_disabled();
    let mut regs = [0u64; 2];
    enter(&mut m, &mut regs);
    assert!(m.place(sw(41, 0xa0, 0)).is_some(), "nothing held back: 41's disabling is forgotten");
}

#[test]
fn other_interrupts_keep_the_fast_way_while_one_is_held_back() {
    let mut m = LrManager::new(LrFormat::V3, 2);
    m.set_enabled(40, false);
    m.inject(sw(40, 0xa0, 0));
    m.forget_disabled();
    assert!(m.place(sw(27, 0x20, 0)).is_some(), "the timer's tick goes straight in");
    assert_eq!(m.place(sw(40, 0xa0, 0)), None);
}

#[test]
fn pending_and_active_keeps_the_active_part_and_holds_the_pending_one() {
    let mut m = LrManager::new(LrFormat::V3, 1);
    let mut regs = [0u64; 1];
    m.inject(sw(45, 0xa0, 0));
    enter(&mut m, &mut regs);
    // The guest acknowledges it (active), and it fires again: pending and active.
    regs[0] = set_state(LrFormat::V3, regs[0], LrState::Active);
    m.sync(&regs);
    assert_eq!(m.inject(sw(45, 0xa0, 0)), Injected::PendingInLr);
    enter(&mut m, &mut regs);
    assert_eq!(LrFormat::V3.decode(regs[0]).state, LrState::PendingActive);
    m.sync(&regs);
    let w = m.set_enabled(45, false);
    assert_eq!(w.len(), 1);
    assert_eq!(LrFormat::V3.decode(w[0].1).state, LrState::Active, "the active part stays, the pending one is held back");
    regs[0] = w[0].1;
    assert_eq!(m.held(45), (true, true));
    // The guest ends the active one: nothing is signalled while disabled.
    regs[0] = set_state(LrFormat::V3, regs[0], LrState::Invalid);
    m.sync(&regs);
    assert!(!enter(&mut m, &mut regs));
    assert_eq!(LrFormat::V3.decode(regs[0]).state, LrState::Invalid);
    // Enabled again, the pending copy comes.
    m.set_enabled(45, true);
    enter(&mut m, &mut regs);
    assert_eq!(LrFormat::V3.decode(regs[0]).vintid, 45);
    assert_eq!(LrFormat::V3.decode(regs[0]).state, LrState::Pending);
}

#[test]
fn a_vcpu_going_off_gives_up_held_back_copies_it_is_asked_for() {
    let mut m = LrManager::new(LrFormat::V2, 2);
    m.inject(hw(40, 0xa0));
    m.inject(sw(41, 0xa0, 0));
    m.set_enabled(40, false);
    m.set_enabled(41, false);
    assert_eq!(m.held_back_hw().collect::<Vec<_>>(), vec![40]);
    let taken = m.take_held_back(|v| v.intid == 40);
    assert_eq!(taken.iter().map(|v| (v.intid, v.pintid)).collect::<Vec<_>>(), vec![(40, Some(40))]);
    assert_eq!(m.held(40), (false, false));
    assert_eq!(m.held(41), (true, false), "the one not chosen stays held back");
}
