//! One vCPU's list registers and the queue of interrupts waiting for one.
//!
//! The runtime drives an [`LrManager`] around each guest entry:
//! 1. on exit, [`LrManager::sync`] with the list registers read back (only the indices
//!    [`LrManager::in_use`] names need reading): entries the guest finished (state invalid) retire,
//!    pending and active ones stay;
//! 2. [`LrManager::inject`] whatever became pending;
//! 3. before entry, [`LrManager::fill`]: write the returned `(index, value)` pairs, and set the
//!    underflow maintenance interrupt (GICH_HCR/ICH_HCR_EL2.UIE) when it says so, so the vCPU exits
//!    to take more once the guest has drained the list registers.
//!
//! When the guest clears an interrupt's pending or active state through the distributor
//! (a [`Retraction`](super::Retraction) from [`VDist::take_retractions`](super::VDist::take_retractions)),
//! the vCPU's pCPU calls [`LrManager::retract`] between steps 1 and 3 and applies what it returns.
//!
//! The queue is in priority order (lower value first, first come first served among equals); a
//! queued interrupt that outranks a merely pending list-register entry takes its place.
//!
//! An interrupt the guest disabled while this vCPU held it pending ([`LrManager::set_enabled`])
//! is held back: its pending copy leaves the list registers and the queue and waits, still
//! reading pending, until the guest enables it again, as a GIC keeps a disabled interrupt
//! pending without signalling it (a list register holding it pending and active keeps the
//! active part).

mod format;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hold;

use alloc::vec::Vec;

pub use format::{LrFormat, LrState, LrValue};

use super::types::Virq;

/// Most list registers any GIC has (GICH_VTR.ListRegs is 6 bits).
pub const MAX_LRS: usize = 64;

/// What [`LrManager::inject`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Queued for the next `fill`.
    Queued,
    /// Already pending (queued or in a list register): nothing changed.
    AlreadyPending,
    /// A list register held it active; it is now pending and active there.
    PendingInLr,
    /// A HW interrupt a list register still holds active fired again. The physical GIC cannot do
    /// that while the interrupt is active, so the caller has a bookkeeping bug; nothing changed.
    HwBusy,
    /// The guest has it disabled here ([`LrManager::set_enabled`]): held back until enabled.
    HeldBack,
}

/// What [`LrManager::retract`] asks of the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retracted {
    /// List registers to write, `(index, value)`, before the guest runs again (value 0 for an
    /// emptied one). `fill` does not repeat them.
    pub writes: Vec<(usize, u64)>,
    /// Physical INTIDs el2visor acknowledged for the guest whose list register or queue entry
    /// is gone: the guest's EOI will no longer deactivate them, so the runtime must (clear their
    /// physical active state; doing so when the distributor also asked for it is harmless).
    pub deactivate: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    virq: Virq,
    state: LrState,
}

/// A vCPU's list registers and pending queue.
#[derive(Clone, Debug)]
pub struct LrManager {
    format: LrFormat,
    slots: Vec<Option<Slot>>,
    /// Which `slots` hold an interrupt (bit i: slot i), kept with them: read on every interrupt.
    used: u64,
    queue: Vec<Virq>,
    /// List registers whose value changed since the last `fill`.
    dirty: u64,
    /// INTIDs the guest disabled after this vCPU was handed them ([`Self::set_enabled`]).
    disabled: Vec<u32>,
    /// Their pending copies, waiting until enabled again.
    held_back: Vec<Virq>,
}

/// The same interrupt: same INTID and, for GICv2 SGIs, the same source.
fn same(a: &Virq, b: &Virq) -> bool {
    a.intid == b.intid && a.source == b.source
}

impl LrManager {
    /// A manager for `count` list registers (from [`LrFormat::count_from_vtr`]), clamped to
    /// 1..=[`MAX_LRS`].
    pub fn new(format: LrFormat, count: usize) -> Self {
        Self {
            format,
            slots: alloc::vec![None; count.clamp(1, MAX_LRS)],
            used: 0,
            queue: Vec::new(),
            dirty: 0,
            disabled: Vec::new(),
            held_back: Vec::new(),
        }
    }

    /// Number of list registers managed.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// Interrupts waiting for a list register.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Indices of the list registers that hold an interrupt (the ones `sync` needs).
    pub fn in_use(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i)
    }

    /// Nothing queued and no list register in use (what is held back while the guest has it
    /// disabled cannot be signalled, and does not count).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(Option::is_none)
    }

    /// Where `intid` (from `source`, for GICv2 SGIs) is: `Pending` when queued, the list
    /// register's state when it holds it, `None` when neither.
    pub fn state_of(&self, intid: u32, source: u8) -> Option<LrState> {
        let key = |v: &Virq| v.intid == intid && v.source == source;
        if let Some(s) = self.slots.iter().flatten().find(|s| key(&s.virq)) {
            return Some(s.state);
        }
        self.queue.iter().chain(&self.held_back).any(key).then_some(LrState::Pending)
    }

    /// The guest disabled (`enabled` false) or enabled again interrupt `intid`, which this vCPU
    /// was handed. Disabled: its pending copies in the list registers and the queue are held
    /// back (returned: the list registers to write; one pending and active stays active there),
    /// and so is any that arrives until it is enabled again; enabled: what was held back is
    /// injected again for the next [`fill`](Self::fill). Call it after [`sync`](Self::sync), as
    /// [`retract`](Self::retract).
    pub fn set_enabled(&mut self, intid: u32, enabled: bool) -> Vec<(usize, u64)> {
        let mut writes = Vec::new();
        if enabled {
            self.disabled.retain(|&i| i != intid);
            let mut back = Vec::new();
            self.held_back.retain(|v| {
                let hit = v.intid == intid;
                if hit {
                    back.push(*v);
                }
                !hit
            });
            for v in back {
                self.inject(v);
            }
            return writes;
        }
        if !self.disabled.contains(&intid) {
            self.disabled.push(intid);
        }
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].filter(|s| s.virq.intid == intid && s.state.is_pending()) else { continue };
            if slot.state == LrState::PendingActive {
                // Only a purely virtual interrupt is both (a HW one is never pending again while
                // its physical copy is active): the guest still owes the active one's end.
                let active = Slot { state: LrState::Active, ..slot };
                self.slots[i] = Some(active);
                writes.push((i, self.encode(&active)));
            } else {
                self.slots[i] = None;
                self.used &= !(1 << i);
                writes.push((i, 0));
            }
            self.dirty &= !(1 << i);
            self.held_back.push(slot.virq);
        }
        let held_back = &mut self.held_back;
        self.queue.retain(|q| {
            let hit = q.intid == intid;
            if hit {
                held_back.push(*q);
            }
            !hit
        });
        writes
    }

    /// Forget the disabled INTIDs nothing is held back for, once what arrived with their
    /// disabling is injected: another copy comes only after the guest enables one again (the
    /// distributor hands a vCPU nothing disabled, and says so before it hands it anything new).
    /// What stays keeps [`place`](Self::place) out, so it should be nothing on most entries:
    /// guests disable interrupts they are not holding all the time.
    pub fn forget_disabled(&mut self) {
        let held_back = &self.held_back;
        self.disabled.retain(|&i| held_back.iter().any(|h| h.intid == i));
    }

    /// Make `virq` pending on this vCPU.
    pub fn inject(&mut self, virq: Virq) -> Injected {
        if !self.disabled.is_empty() && self.disabled.contains(&virq.intid) {
            if !self.held_back.iter().any(|h| same(h, &virq)) {
                self.held_back.push(virq);
            }
            return Injected::HeldBack;
        }
        if let Some((i, slot)) = self
            .slots
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.as_mut().filter(|s| same(&s.virq, &virq)).map(|s| (i, s)))
        {
            return match slot.state {
                LrState::Pending | LrState::PendingActive => Injected::AlreadyPending,
                LrState::Active if virq.pintid.is_some() || slot.virq.pintid.is_some() => Injected::HwBusy,
                LrState::Active => {
                    slot.state = LrState::PendingActive;
                    self.dirty |= 1 << i;
                    Injected::PendingInLr
                }
                LrState::Invalid => unreachable!("invalid list registers are never kept in a slot"),
            };
        }
        if self.queue.iter().any(|q| same(q, &virq)) {
            return Injected::AlreadyPending;
        }
        self.enqueue(virq);
        Injected::Queued
    }

    fn enqueue(&mut self, virq: Virq) {
        let at = self.queue.partition_point(|q| q.priority <= virq.priority);
        self.queue.insert(at, virq);
    }

    /// Take `intid` (for a GICv2 SGI: from `source` only, or from every source when `None`) out
    /// of the pending state (`pending`) and/or the active state (`active`), as when the guest
    /// writes GICD_ICPENDR / GICD_CPENDSGIR (pending) or GICD_ICACTIVER (active), or the
    /// redistributor's ICPENDR0 / ICACTIVER0.
    ///
    /// Call it on the vCPU's own pCPU after [`sync`](Self::sync), so the list registers it
    /// changes are what the hardware holds. A queued interrupt (always pending) leaves the
    /// queue; a list register loses the cleared state: pending+active becomes active (or
    /// pending), and one left with no state is emptied. The caller writes
    /// [`Retracted::writes`] to the list registers and deactivates [`Retracted::deactivate`]
    /// in the physical GIC. Nothing held: nothing to do.
    pub fn retract(&mut self, intid: u32, source: Option<u8>, pending: bool, active: bool) -> Retracted {
        let hit = |v: &Virq| v.intid == intid && source.is_none_or(|s| v.source == s);
        let mut out = Retracted::default();
        if pending {
            let deactivate = &mut out.deactivate;
            let mut keep = |q: &Virq| {
                if !hit(q) {
                    return true;
                }
                deactivate.extend(q.pintid);
                false
            };
            self.queue.retain(&mut keep);
            self.held_back.retain(keep);
        }
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].filter(|s| hit(&s.virq)) else { continue };
            let state = match (slot.state.is_pending() && !pending, slot.state.is_active() && !active) {
                (false, false) => LrState::Invalid,
                (true, false) => LrState::Pending,
                (false, true) => LrState::Active,
                (true, true) => LrState::PendingActive,
            };
            if state == slot.state {
                continue;
            }
            if state == LrState::Invalid {
                self.slots[i] = None;
                self.used &= !(1 << i);
                out.deactivate.extend(slot.virq.pintid);
            } else {
                self.slots[i] = Some(Slot { state, ..slot });
            }
            self.dirty &= !(1 << i);
            out.writes.push((i, self.slots[i].map_or(0, |s| self.encode(&s))));
        }
        out
    }

    /// The fast way in (issue 15): put `virq` straight into a free list register, when nothing
    /// is queued, no list register changed since the last fill, the guest has not disabled it
    /// here ([`set_enabled`](Self::set_enabled)), and no list register holds the same interrupt
    /// (in any state). Returns the list register to write and its value; `None`
    /// when any of that is not so, and then nothing changed ([`inject`](Self::inject) and
    /// [`fill`](Self::fill) decide instead). Call it after [`sync`](Self::sync), as `inject`.
    /// With the queue empty no priority order is at stake: the GIC itself presents the highest
    /// priority pending list register.
    pub fn place(&mut self, virq: Virq) -> Option<(usize, u64)> {
        if !self.queue.is_empty() || self.dirty != 0 || (!self.disabled.is_empty() && self.disabled.contains(&virq.intid)) {
            return None;
        }
        // Only the registers in use can hold it (usually none: the guest finished them).
        let mut bits = self.used;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.slots.get(i).copied().flatten().is_some_and(|s| same(&s.virq, &virq)) {
                return None;
            }
        }
        let i = (!self.used).trailing_zeros() as usize;
        if i >= self.slots.len() {
            return None;
        }
        let slot = Slot { virq, state: LrState::Pending };
        self.slots[i] = Some(slot);
        self.used |= 1 << i;
        Some((i, self.encode(&slot)))
    }

    /// Move queued interrupts into list registers. Returns the list registers to write
    /// (index, value) and whether interrupts are still queued, in which case the caller enables
    /// the underflow maintenance interrupt.
    pub fn fill(&mut self) -> (Vec<(usize, u64)>, bool) {
        let mut writes = Vec::new();
        let more = self.fill_with(|i, v| writes.push((i, v)));
        (writes, more)
    }

    /// [`fill`](Self::fill) handing each list register to write to `write` as it goes, without
    /// allocating: the run loop's path before every guest entry (issue 15; an allocation there
    /// took the heap's lock, which every CPU shares, and cost more than the rest together).
    pub fn fill_with(&mut self, mut write: impl FnMut(usize, u64)) -> bool {
        for i in 0..self.slots.len() {
            if self.queue.is_empty() {
                break;
            }
            if self.slots[i].is_none() {
                let virq = self.queue.remove(0);
                self.slots[i] = Some(Slot { virq, state: LrState::Pending });
                self.used |= 1 << i;
                self.dirty |= 1 << i;
            }
        }
        // A queued interrupt that outranks a list register that is only pending takes its place.
        while let Some(head) = self.queue.first().copied() {
            let victim = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.filter(|s| s.state == LrState::Pending).map(|s| (i, s)))
                .max_by_key(|(_, s)| s.virq.priority);
            match victim {
                Some((i, slot)) if head.priority < slot.virq.priority => {
                    self.queue.remove(0);
                    self.slots[i] = Some(Slot { virq: head, state: LrState::Pending });
                    self.dirty |= 1 << i;
                    self.enqueue(slot.virq);
                }
                _ => break,
            }
        }
        for i in (0..self.slots.len()).filter(|i| self.dirty & (1 << i) != 0) {
            write(i, self.slots[i].map_or(0, |s| self.encode(&s)));
        }
        self.dirty = 0;
        !self.queue.is_empty()
    }

    /// Take back what the hardware made of every list register (`values[i]` = LR i; indices
    /// not [`in_use`](Self::in_use) may hold anything).
    pub fn sync(&mut self, values: &[u64]) {
        for (i, &v) in values.iter().enumerate().take(self.slots.len()) {
            self.sync_lr(i, v);
        }
    }

    /// The list registers that hold an interrupt, as a bit mask (bit i: LR i): [`in_use`](Self::in_use)
    /// without an iterator, for the paths that run on every interrupt.
    pub fn used_mask(&self) -> u64 {
        self.used
    }

    /// Whether a list register holds a physical interrupt (the HW bit: pending, active or
    /// both), by the record: one the guest finished stays counted until the next sync. Only the
    /// used slots are looked at (usually none or one).
    pub fn holds_hw(&self) -> bool {
        let mut bits = self.used;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.slots.get(i).and_then(Option::as_ref).is_some_and(|s| s.virq.pintid.is_some()) {
                return true;
            }
        }
        false
    }

    /// List register `index` is empty in the hardware (its bit in ICH_ELRSR_EL2 / GICH_ELRSR):
    /// what [`sync_lr`](Self::sync_lr) does with an invalid value, without reading the register.
    pub fn sync_empty(&mut self, index: usize) -> Option<Virq> {
        if index < MAX_LRS && self.dirty & (1 << index) != 0 {
            return None;
        }
        let taken = self.slots.get_mut(index)?.take()?;
        self.used &= !(1 << index);
        Some(taken.virq)
    }

    /// Take back list register `index` as read from the hardware: an entry whose state became
    /// invalid retires (and is returned: the guest finished it); otherwise its state (pending,
    /// active, both) is kept. A list register changed since the last `fill` is not what the
    /// hardware holds yet and is left alone.
    pub fn sync_lr(&mut self, index: usize, value: u64) -> Option<Virq> {
        if index < MAX_LRS && self.dirty & (1 << index) != 0 {
            return None;
        }
        let slot = self.slots.get_mut(index)?.as_mut()?;
        match self.format.decode(value).state {
            LrState::Invalid => {
                self.used &= !(1 << index);
                self.slots[index].take().map(|s| s.virq)
            }
            state => {
                slot.state = state;
                None
            }
        }
    }

    /// Whether `intid` (from any source, for GICv2 SGIs) is pending and whether it is active
    /// here: queued counts as pending, a list register as its state.
    pub fn held(&self, intid: u32) -> (bool, bool) {
        let mut out = (self.queue.iter().chain(&self.held_back).any(|q| q.intid == intid), false);
        for s in self.slots.iter().flatten().filter(|s| s.virq.intid == intid) {
            out.0 |= s.state.is_pending();
            out.1 |= s.state.is_active();
        }
        out
    }

    /// The sources (a bit per sending CPU) GICv2 SGI `intid` is pending from here: queued, or
    /// pending in a list register.
    pub fn pending_sources(&self, intid: u32) -> u8 {
        let bit = |v: &Virq| 1u8.checked_shl(u32::from(v.source)).unwrap_or(0);
        let queued = self.queue.iter().chain(&self.held_back).filter(|q| q.intid == intid).fold(0, |m, q| m | bit(q));
        self.slots.iter().flatten().filter(|s| s.virq.intid == intid && s.state.is_pending()).fold(queued, |m, s| m | bit(&s.virq))
    }

    /// Take out every interrupt `pick` chooses that is only pending here (queued, or pending in
    /// a list register; an active one stays: the guest owes its end), for delivery elsewhere:
    /// what a vCPU going off holds of interrupts now routed to another. Returns them, in
    /// priority order, and the list registers to clear. Call it after [`sync`](Self::sync), as
    /// [`retract`](Self::retract). A HW interrupt goes with its physical INTID, still active at
    /// the GIC: whoever holds it next deactivates it.
    pub fn take_pending(&mut self, mut pick: impl FnMut(&Virq) -> bool) -> (Vec<Virq>, Vec<(usize, u64)>) {
        let mut taken = Vec::new();
        let mut writes = Vec::new();
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].filter(|s| s.state == LrState::Pending && pick(&s.virq)) else { continue };
            self.slots[i] = None;
            self.used &= !(1 << i);
            self.dirty &= !(1 << i);
            taken.push(slot.virq);
            writes.push((i, 0));
        }
        self.queue.retain(|q| {
            if pick(q) {
                taken.push(*q);
                return false;
            }
            true
        });
        taken.sort_by_key(|v| v.priority);
        (taken, writes)
    }

    /// Take out the held-back copies `pick` chooses (a vCPU going off: those of interrupts now
    /// routed to another vCPU), for the distributor to hold pending instead. A HW one goes with
    /// its physical INTID, still active at the GIC.
    pub fn take_held_back(&mut self, mut pick: impl FnMut(&Virq) -> bool) -> Vec<Virq> {
        let mut taken = Vec::new();
        self.held_back.retain(|v| {
            if pick(v) {
                taken.push(*v);
                return false;
            }
            true
        });
        taken
    }

    /// The physical INTIDs of the held-back copies (el2visor acknowledged them for the guest):
    /// what a [`reset`](Self::reset) must have deactivated, as it drops them.
    pub fn held_back_hw(&self) -> impl Iterator<Item = u32> + '_ {
        self.held_back.iter().filter_map(|v| v.pintid)
    }

    /// Drop everything (vCPU reset). Returns the list registers to clear.
    pub fn reset(&mut self) -> Vec<(usize, u64)> {
        self.queue.clear();
        self.disabled.clear();
        self.held_back.clear();
        self.dirty = 0;
        let used: Vec<usize> = self.in_use().collect();
        for &i in &used {
            self.slots[i] = None;
        }
        self.used = 0;
        used.into_iter().map(|i| (i, 0)).collect()
    }

    fn encode(&self, s: &Slot) -> u64 {
        self.format.encode(&LrValue {
            vintid: s.virq.intid,
            pintid: s.virq.pintid,
            priority: s.virq.priority,
            group1: s.virq.group1,
            state: s.state,
            eoi_maintenance: false,
            source: s.virq.source,
        })
    }
}
