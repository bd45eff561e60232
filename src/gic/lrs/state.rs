//! A vCPU's list-register side taken away or put back as a whole, on its own pCPU: emptied
//! ([`clear`], a VM reset), its pending interrupts handed elsewhere ([`evict`], CPU_OFF), saved
//! and loaded ([`save`], [`restore`], snapshots). The per-entry work is the parent module's.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{before_entry, deactivate_phys, set_trap, sync, Lrs, VcpuIrq};
use crate::gic::hw::host;
use crate::gic::vgic::lr::{LrManager, LrState};
use crate::gic::vgic::Virq;
use crate::gic::Acked;

/// The vCPU stops (a VM reset) or resumes from a snapshot: empty its list registers and inbox,
/// deactivating any physical interrupt either still held (it would otherwise stay active for
/// ever). A vCPU that was off through a reset or restore is emptied by [`start`] instead.
pub fn clear(me: &VcpuIrq) {
    let Some(h) = host() else { return };
    // Interrupts el2visor acknowledged for the vCPU and had not yet put in a list register (a
    // stopped vCPU's pCPU takes them while it waits) are deactivated too: dropped while active,
    // a passthrough interrupt would never fire again.
    let inbox = core::mem::take(&mut *me.inbox.lock());
    for p in inbox.virqs.iter().filter_map(|v| v.pintid).chain(inbox.deactivate.iter().copied()) {
        deactivate_phys(h, me.pcpu, p);
    }
    me.pending.store(false, Ordering::Release);
    me.stale.store(false, Ordering::Release);
    empty(me, h, |_| true);
}

/// Empty vCPU `me`'s list registers and manager, on its own pCPU, deactivating the physical
/// interrupts they held that `deactivate` chooses.
fn empty(me: &VcpuIrq, h: &crate::gic::host::HostGic, deactivate: impl Fn(u32) -> bool) {
    let format = h.lr_format();
    for i in 0..h.lr_count() {
        let v = format.decode(h.read_lr(i));
        if let (Some(p), false) = (v.pintid.filter(|&p| deactivate(p)), v.state == LrState::Invalid) {
            if let Some(a) = Acked::from_iar(p) {
                h.deactivate(a);
            }
        }
        h.write_lr(i, 0);
    }
    if let Some(l) = me.lrs.lock().as_mut() {
        // Held back while the guest had them disabled: acknowledged for it, in no list register.
        for p in l.m.held_back_hw().filter(|&p| deactivate(p)) {
            deactivate_phys(h, me.pcpu, p);
        }
        l.m.reset();
        l.finished.clear();
        l.resample.clear();
    }
    h.set_underflow(false);
    set_trap(me, h, false);
}

/// vCPU `me` starts (CPU_ON, a VM's first vCPU after a reset), on its own pCPU before its
/// first entry: if the distributor was reset or restored while it was off
/// ([`super::mark_stale`], which emptied its inbox then), its list registers and manager are
/// emptied, and the banked physical interrupts they held deactivated (a passthrough SPI's
/// active state the reset or restore cleared, and it may be another vCPU's again by now); what
/// the new state sent it since waits in its inbox. Otherwise what it holds stays: a GIC keeps
/// an interrupt pending across a CPU's power-down.
pub fn start(me: &VcpuIrq) {
    if me.stale.swap(false, Ordering::AcqRel) {
        if let Some(h) = host() {
            empty(me, h, |p| p < crate::gic::FIRST_SPI);
        }
    }
}

/// vCPU `me` goes off (PSCI CPU_OFF), on its own pCPU: take out what it holds only pending of
/// the interrupts `pick` chooses (the caller's: shared ones now routed to another vCPU), its
/// inbox and retractions carried out first, and return them for delivery there; and, apart,
/// what it holds back of them because the guest disabled them, for the distributor to hold
/// pending instead. A GIC forwards a pending SPI to its new target when the guest re-routes it,
/// as Linux does with every interrupt of a CPU it takes down before that CPU's CPU_OFF; held
/// here, a passthrough one would stay active at the physical GIC, its device silent, until this
/// vCPU ran again.
pub fn evict(me: &VcpuIrq, mut pick: impl FnMut(&Virq) -> bool) -> (Vec<Virq>, Vec<Virq>) {
    let Some(h) = host() else { return (Vec::new(), Vec::new()) };
    me.mark_pending();
    before_entry(me);
    let mut guard = me.lrs.lock();
    let Some(l) = guard.as_mut() else { return (Vec::new(), Vec::new()) };
    sync(h, l);
    l.finished.clear();
    let (taken, writes) = l.m.take_pending(&mut pick);
    for (i, v) in writes {
        h.write_lr(i, v);
    }
    h.set_underflow(l.m.queued() > 0);
    let held = l.m.take_held_back(pick);
    l.m.forget_disabled();
    l.resample.retain(|i| !taken.iter().chain(&held).any(|t| t.intid == *i));
    (taken, held)
}

/// A vCPU's list-register side as a snapshot holds it: the manager, the raw list registers and
/// the virtual CPU interface (VMCR, active priorities).
#[derive(Clone)]
pub struct LrSnapshot {
    m: Option<LrManager>,
    lrs: Vec<u64>,
    vif: crate::gic::host::VifState,
}

/// Save vCPU `me`'s list-register side, on its own pCPU, the guest stopped.
pub fn save(me: &VcpuIrq) -> Option<LrSnapshot> {
    let h = host()?;
    let mut guard = me.lrs.lock();
    if let Some(l) = guard.as_mut() {
        sync(h, l);
        l.finished.clear();
    }
    Some(LrSnapshot {
        m: guard.as_ref().map(|l| l.m.clone()),
        lrs: (0..h.lr_count()).map(|i| h.read_lr(i)).collect(),
        vif: h.save_vif(),
    })
}

/// Load a saved list-register side for vCPU `me`, on its own pCPU before it resumes: what it
/// held is cleared first (physical interrupts it had active deactivated), its inbox emptied.
pub fn restore(me: &VcpuIrq, s: &LrSnapshot) {
    let Some(h) = host() else { return };
    clear(me);
    {
        let mut guard = me.lrs.lock();
        let l = guard.get_or_insert_with(|| Lrs::new(h));
        if let Some(m) = &s.m {
            l.m = m.clone();
        }
        for (i, &v) in s.lrs.iter().enumerate().take(h.lr_count()) {
            h.write_lr(i, v);
        }
        h.set_underflow(l.m.queued() > 0);
    }
    h.restore_vif(&s.vif);
    me.mark_pending();
}
