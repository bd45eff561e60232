//! The list-register side of one vCPU: the interrupts queued for it and the manager that puts
//! them into the list registers of the pCPU it runs on. Each vCPU owns one [`VcpuIrq`] (it lives
//! in its VM); only the vCPU's own pCPU touches the manager and the hardware list registers,
//! other CPUs only queue into its inbox and kick it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cpu;
use crate::gic::hw::{host, kick_pcpu};
use crate::gic::vgic::lr::{Injected, LrManager, LrState};
use crate::gic::vgic::Virq;
use crate::gic::Acked;

/// One vCPU's interrupt delivery state.
pub struct VcpuIrq {
    /// The pCPU the vCPU is pinned to.
    pub pcpu: usize,
    /// Its list-register manager, made on its pCPU when the vCPU is first prepared there.
    lrs: spin::Mutex<Option<LrManager>>,
    /// Interrupts not yet handed to the manager. Only the pCPU itself drains it, right after
    /// reading back its list registers, so the manager's view is never stale when one is added.
    inbox: spin::Mutex<Vec<Virq>>,
    /// Something was queued since the list registers were last filled.
    pending: AtomicBool,
}

impl VcpuIrq {
    pub fn new(pcpu: usize) -> Self {
        VcpuIrq { pcpu, lrs: spin::Mutex::new(None), inbox: spin::Mutex::new(Vec::new()), pending: AtomicBool::new(false) }
    }

    /// Look at the inbox and list registers before the next guest entry.
    pub fn mark_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }
}

/// Queue `virq` for vCPU `vcpu` of `vcpus` and make it notice.
pub fn queue(vcpus: &[VcpuIrq], vcpu: usize, virq: Virq) {
    let Some(target) = vcpus.get(vcpu) else { return };
    log::trace!("queue INTID {} for vCPU {vcpu}", virq.intid);
    {
        // A vCPU that is off drains nothing: an interrupt already waiting is not queued again, so
        // a guest sending SGIs in a loop to a stopped vCPU cannot grow the inbox without bound.
        let mut inbox = target.inbox.lock();
        if !inbox.contains(&virq) {
            inbox.push(virq);
        }
    }
    target.mark_pending();
    if target.pcpu != cpu::current() {
        kick_pcpu(target.pcpu);
    }
}

/// Sync and refill this vCPU's list registers if anything changed: call on its own pCPU before
/// every guest entry.
pub fn before_entry(me: &VcpuIrq) {
    if !me.pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(h) = host() else { return };
    let mut guard = me.lrs.lock();
    let m = guard.get_or_insert_with(|| LrManager::new(h.lr_format(), h.lr_count()));
    // Read back the list registers in use (a bit mask: this path runs on every interrupt and
    // should not allocate), then take the inbox in place, keeping its capacity. Lock order is
    // the manager then the inbox; queue() takes the inbox alone.
    let used = m.in_use().fold(0u64, |mask, i| mask | 1 << i);
    for i in (0..64).filter(|i| used & (1 << i) != 0) {
        m.sync_lr(i, h.read_lr(i));
    }
    for virq in me.inbox.lock().drain(..) {
        if m.inject(virq) == Injected::HwBusy {
            log::warn!("virtual GIC: INTID {} fired again while its list register holds it active", virq.intid);
        }
    }
    let (writes, more) = m.fill();
    for (i, v) in writes {
        h.write_lr(i, v);
    }
    h.set_underflow(more);
    if more {
        // The maintenance interrupt will come when list registers free up; look again then.
        me.mark_pending();
    }
}

/// Whether a virtual interrupt is pending in this pCPU's list registers (a guest WFI would not
/// sleep).
pub fn virq_pending() -> bool {
    let Some(h) = host() else { return false };
    let format = h.lr_format();
    (0..h.lr_count()).any(|i| matches!(format.decode(h.read_lr(i)).state, LrState::Pending | LrState::PendingActive))
}

/// A trapped guest WFI (or a PSCI standby): sleep at EL2 until a physical interrupt is pending,
/// unless this vCPU already has a virtual interrupt pending (the guest's WFI would not sleep then
/// either). IRQs stay masked at EL2; the pending interrupt is taken when the guest resumes.
pub fn idle(me: &VcpuIrq) {
    let Some(h) = host() else { return };
    before_entry(me);
    if !virq_pending() {
        h.refresh();
        cpu::wait_for_interrupt();
    }
}

/// The vCPU stops (a VM reset): empty its list registers and inbox, deactivating any physical
/// interrupt a list register still held (it would otherwise stay active for ever).
pub fn clear(me: &VcpuIrq) {
    let Some(h) = host() else { return };
    me.inbox.lock().clear();
    me.pending.store(false, Ordering::Release);
    let format = h.lr_format();
    for i in 0..h.lr_count() {
        let v = format.decode(h.read_lr(i));
        if let (Some(p), false) = (v.pintid, v.state == LrState::Invalid) {
            if let Some(a) = Acked::from_iar(p) {
                h.deactivate(a);
            }
        }
        h.write_lr(i, 0);
    }
    if let Some(m) = me.lrs.lock().as_mut() {
        m.reset();
    }
    h.set_underflow(false);
}
