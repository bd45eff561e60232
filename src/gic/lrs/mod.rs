//! The list-register side of one vCPU: the interrupts queued for it and the manager that puts
//! them into the list registers of the pCPU it runs on. Each vCPU owns one [`VcpuIrq`] (it lives
//! in its VM); only the vCPU's own pCPU touches the manager and the hardware list registers,
//! other CPUs only queue into its inbox (interrupts to add, [`Retraction`]s to carry out) and
//! kick it.
//!
//! A level-sensitive passthrough interrupt can be asserted again the moment the guest ends it
//! (an EOI before the handler clears the device, as kvm-unit-tests' pl031 test does): el2visor
//! takes it at once and puts it in a list register, but the guest clears the line a few
//! instructions later without an exit. On a real GIC the pending state follows the line, so the
//! guest would not see the interrupt again. el2visor re-samples such an interrupt before the
//! guest can acknowledge it: on GICv3 it traps the guest's group 1 CPU interface accesses
//! (ICH_HCR_EL2.TALL1) until then ([`icc_trap`]), and at every entry it drops one whose line has
//! gone low. GICv2 has no such trap: there the re-sampling happens at the next exit only.
//!
//! The virtual timer's line is CNTV_CTL_EL0, which this pCPU reads directly: it is re-sampled at
//! the entry and never trapped for (as KVM, whose guests lower it by timer writes that do not
//! exit either; Linux's handler checks ISTATUS).
//!
//! The fast ways in (issue 15): [`deliver_here`] puts an interrupt for the vCPU running on this
//! pCPU straight into a free list register (the IRQ path's, for the virtual timer), and
//! [`before_entry`] places what the inbox holds the same way when nothing is queued, retracted
//! or waiting for a re-sample, and the interrupt is not one the guest disabled while this vCPU
//! held it ([`LrManager::place`]); both read the empty list register status
//! rather than the list registers. Every other case takes the manager's general inject and fill.
//! [`queue`] stays the one entry for delivering from any pCPU (the distributor's SGIs included).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::cpu;
use crate::gic::host::HostGic;
use crate::gic::hw::{host, kick_pcpu};
use crate::gic::vgic::lr::{Injected, LrManager, LrState};
use crate::gic::vgic::{Retraction, Virq};
use crate::gic::{FIRST_SPI, VTIMER_INTID};
use crate::percpu;

mod state;
pub use state::{clear, evict, restore, save, start, LrSnapshot};

/// One vCPU's interrupt delivery state.
pub struct VcpuIrq {
    /// The pCPU the vCPU is pinned to.
    pub pcpu: usize,
    /// Its list-register manager, made on its pCPU when the vCPU is first prepared there.
    lrs: spin::Mutex<Option<Lrs>>,
    /// What other CPUs (and this one) left for the manager. Only the pCPU itself drains it,
    /// right after reading back its list registers, so the manager's view is never stale when
    /// one is added.
    inbox: spin::Mutex<Inbox>,
    /// Something was queued since the list registers were last filled.
    pending: AtomicBool,
    /// The virtual timer's interrupt as the distributor last delivered it to this vCPU
    /// ([`Self::vtimer`]), so the IRQ path need not take the VM-wide distributor lock for it; 0
    /// when unknown. Forgotten ([`forget_vtimer`]) whenever the distributor's state may have
    /// changed (a guest write, a reset, a snapshot restore).
    vtimer: AtomicU64,
    /// el2visor trapped the guest's group 1 CPU interface accesses to re-sample ([`icc_trap`]),
    /// so that a trapped ICC_SGI1R_EL1 write knows without a lock whether it is el2visor's doing.
    trapping: AtomicBool,
    /// The distributor was reset or restored while this vCPU was off ([`mark_stale`]): what its
    /// manager and list registers hold is the old run's, emptied when it next starts
    /// ([`state::start`]).
    stale: AtomicBool,
}

/// [`VcpuIrq::vtimer`]'s encoding: valid, level, group 1, priority in bits 0..8.
const VT_VALID: u64 = 1 << 63;
const VT_LEVEL: u64 = 1 << 9;
const VT_GROUP1: u64 = 1 << 8;

/// The manager and what the pCPU keeps beside it.
struct Lrs {
    m: LrManager,
    /// Level-sensitive HW interrupts the guest finished during its last run (found when the
    /// list registers are read back); reused buffer.
    finished: Vec<u32>,
    /// Level-sensitive HW interrupts asserted again right after the guest finished them, now
    /// pending in a list register: their line is sampled before the guest may acknowledge them.
    resample: Vec<u32>,
}

impl Lrs {
    /// An empty manager for the host GIC's list registers, made on the vCPU's first entry.
    fn new(h: &HostGic) -> Self {
        Lrs { m: LrManager::new(h.lr_format(), h.lr_count()), finished: Vec::new(), resample: Vec::new() }
    }
}

#[derive(Default)]
struct Inbox {
    virqs: Vec<Virq>,
    /// Retractions to carry out on the manager, in order, before `virqs` are added.
    retractions: Vec<Retraction>,
    /// Physical INTIDs el2visor acknowledged for a queue entry a retraction dropped.
    deactivate: Vec<u32>,
}

impl VcpuIrq {
    pub fn new(pcpu: usize) -> Self {
        VcpuIrq {
            pcpu,
            lrs: spin::Mutex::new(None),
            inbox: spin::Mutex::new(Inbox::default()),
            pending: AtomicBool::new(false),
            vtimer: AtomicU64::new(0),
            trapping: AtomicBool::new(false),
            stale: AtomicBool::new(false),
        }
    }

    /// The virtual timer's interrupt as the distributor delivers it to this vCPU, if known.
    pub fn vtimer(&self) -> Option<Virq> {
        let v = self.vtimer.load(Ordering::Acquire);
        (v & VT_VALID != 0).then_some(Virq {
            intid: VTIMER_INTID,
            pintid: Some(VTIMER_INTID),
            priority: v as u8,
            group1: v & VT_GROUP1 != 0,
            source: 0,
            level: v & VT_LEVEL != 0,
        })
    }

    /// Remember how the distributor delivered the virtual timer's interrupt (`virq`) to this
    /// vCPU: call under the distributor's lock, so that a write that changes it, which forgets
    /// it under the same lock, cannot come in between.
    pub fn remember_vtimer(&self, virq: &Virq) {
        if virq.intid == VTIMER_INTID && virq.pintid == Some(VTIMER_INTID) && virq.source == 0 {
            let v = VT_VALID | u64::from(virq.priority) | if virq.group1 { VT_GROUP1 } else { 0 } | if virq.level { VT_LEVEL } else { 0 };
            self.vtimer.store(v, Ordering::Release);
        }
    }

    /// Look at the inbox and list registers before the next guest entry.
    pub fn mark_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }
}

/// The distributor was reset or restored (a VM reset, a snapshot restore; call under its lock,
/// every vCPU stopped or paused): what each vCPU of `vcpus` holds belongs to the old state. Its
/// inbox is emptied now, so that what the new state sends a vCPU that is off stays for it (a
/// passthrough SPI's active state the reset or restore clears already; a banked interrupt's is
/// deactivated on the vCPU's own pCPU at its next entry). Its manager and list registers are
/// emptied on its own pCPU: when it resumes from a snapshot ([`clear`]), or, for one that was
/// off, when it next starts ([`state::start`]), as what it held back while the guest had it
/// disabled would block that interrupt in the new run.
pub fn mark_stale(vcpus: &[VcpuIrq]) {
    for v in vcpus {
        {
            let mut inbox = v.inbox.lock();
            let Inbox { virqs, retractions, deactivate } = &mut *inbox;
            deactivate.extend(virqs.drain(..).filter_map(|q| q.pintid).filter(|&p| p < FIRST_SPI));
            retractions.clear();
        }
        v.stale.store(true, Ordering::Release);
        v.mark_pending();
    }
}

/// The distributor's state may have changed: forget what [`VcpuIrq::remember_vtimer`] noted, for
/// every vCPU of `vcpus` (call under the distributor's lock).
pub fn forget_vtimer(vcpus: &[VcpuIrq]) {
    for v in vcpus {
        v.vtimer.store(0, Ordering::Release);
    }
}

/// Queue `virq` for vCPU `vcpu` of `vcpus` and make it notice. THE way to deliver an interrupt to
/// a vCPU from any pCPU; its own pCPU may try [`deliver_here`] first.
pub fn queue(vcpus: &[VcpuIrq], vcpu: usize, virq: Virq) {
    let Some(target) = vcpus.get(vcpu) else { return };
    log::trace!("queue INTID {} for vCPU {vcpu}", virq.intid);
    {
        // A vCPU that is off drains nothing: an interrupt already waiting (the same INTID, and for
        // a GICv2 SGI the same source) is not queued again but updated, so a guest sending SGIs in
        // a loop to a stopped vCPU, or firing LPIs at it with a new priority each time, cannot
        // grow the inbox past one entry per interrupt.
        let mut inbox = target.inbox.lock();
        let Inbox { virqs, deactivate, .. } = &mut *inbox;
        match virqs.iter_mut().find(|v| v.intid == virq.intid && v.source == virq.source) {
            Some(v) => {
                // A physical interrupt the replaced copy stood for is still active at the GIC.
                if v.pintid != virq.pintid {
                    deactivate.extend(v.pintid);
                }
                *v = virq;
            }
            None => virqs.push(virq),
        }
    }
    target.mark_pending();
    if target.pcpu != cpu::current() {
        kick_pcpu(target.pcpu);
    }
}

/// The guest cleared `r`'s pending or active state through the distributor, or disabled or
/// enabled it (`r.hold`): take it back from (or hold it back at, or let it go from) vCPU `r.vcpu`
/// of `vcpus`. Copies of it still in the inbox go at once when cleared (they were queued before
/// the write), or wait to be held back with the rest; the list registers and the manager's queue
/// are seen to on the vCPU's own pCPU, before anything queued later is added.
pub fn retract(vcpus: &[VcpuIrq], r: Retraction) {
    let Some(target) = vcpus.get(r.vcpu) else { return };
    {
        let mut inbox = target.inbox.lock();
        let Inbox { virqs, retractions, deactivate } = &mut *inbox;
        if r.pending {
            virqs.retain(|v| {
                let hit = v.intid == r.intid && r.source.is_none_or(|s| v.source == s);
                if hit {
                    deactivate.extend(v.pintid);
                }
                !hit
            });
        }
        // One per interrupt: a vCPU that is off drains nothing, and a guest clearing the same
        // interrupt (or unmapping LPIs) in a loop must not grow the list. Merging is exact, as
        // every retraction is carried out before anything queued (`before_entry`).
        match retractions.iter_mut().find(|q| q.intid == r.intid && q.source == r.source) {
            Some(q) => {
                q.pending |= r.pending;
                q.active |= r.active;
                // The guest's last enable or disable is what holds; a pending state cleared
                // before or after is cleared either way (`before_entry_general` holds first).
                q.hold = r.hold.or(q.hold);
            }
            None => retractions.push(r),
        }
    }
    target.mark_pending();
    if target.pcpu != cpu::current() {
        kick_pcpu(target.pcpu);
    }
}

/// Clear the physical active state of `intid`, which el2visor acknowledged for the guest, on
/// this pCPU.
fn deactivate_phys(h: &HostGic, pcpu: usize, intid: u32) {
    if let Err(e) = h.clear_active(intid, percpu::mpidr_of(pcpu)) {
        log::warn!("virtual GIC: deactivating INTID {intid}: {e}");
    }
}

/// Read back the list registers in use (a bit mask: this path runs on every interrupt and should
/// not allocate), noting level-sensitive HW interrupts the guest finished.
fn sync(h: &HostGic, l: &mut Lrs) {
    let used = l.m.used_mask();
    if used == 0 {
        return;
    }
    // The empty list register status (one register) says which the guest finished: those retire
    // without reading them; only the ones still holding something are read (issue 15: the
    // common case, the guest finished what it had, reads no list register at all).
    let empty = h.elrsr();
    // Only the set bits: a scan of all 64 cost more than the rest of the entry path together.
    let mut bits = used;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let retired = if empty & (1 << i) != 0 { l.m.sync_empty(i) } else { l.m.sync_lr(i, h.read_lr(i)) };
        if let Some(v) = retired {
            if v.level && v.pintid.is_some() && !l.finished.contains(&v.intid) {
                l.finished.push(v.intid);
            }
        }
    }
}

/// Drop each interrupt waiting for a re-sample whose line is low by now (it is still only
/// pending in its list register, its physical copy active and no longer pending); forget the
/// ones the guest took or that went. `all`: stop waiting for the rest too (the guest is about
/// to acknowledge). Returns whether some still wait.
fn resample(h: &HostGic, pcpu: usize, l: &mut Lrs, all: bool) -> bool {
    let mpidr = percpu::mpidr_of(pcpu);
    let Lrs { m, resample, .. } = l;
    resample.retain(|&intid| {
        if m.held(intid) != (true, false) {
            return false;
        }
        if intid == VTIMER_INTID {
            // The virtual timer's line is its control register, which this pCPU reads directly:
            // high, the interrupt is genuine and needs no trap (the guest lowering it later, by a
            // timer write that does not exit, is what KVM allows too: Linux's handler checks
            // ISTATUS); low, it is dropped below like any other.
            if vtimer_line_high() {
                return false;
            }
        } else if h.is_pending(intid, mpidr).unwrap_or(true) {
            return !all;
        }
        log::debug!("virtual GIC: INTID {intid} went low before the guest took it; dropped");
        let out = m.retract(intid, None, true, false);
        for (i, v) in out.writes {
            h.write_lr(i, v);
        }
        for p in out.deactivate {
            deactivate_phys(h, pcpu, p);
        }
        false
    });
    !resample.is_empty()
}

/// `virq` straight into a free list register ([`LrManager::place`]), when the general path has
/// nothing to decide: not an interrupt that would wait for a re-sample (a level HW interrupt
/// the guest finished in its last run; the virtual timer's line is read instead).
fn place(l: &mut Lrs, virq: Virq) -> Option<(usize, u64)> {
    if virq.level && virq.pintid.is_some() && l.finished.contains(&virq.intid) && !(virq.intid == VTIMER_INTID && vtimer_line_high()) {
        return None;
    }
    l.m.place(virq)
}

/// Deliver `virq` to vCPU `me`, whose pCPU this is, straight into a free list register: the IRQ
/// path's way for the common case (issue 15), without the inbox, and without waiting for the
/// next entry. `false`: nothing done, queue it ([`queue`]). Declines whenever the general path
/// has something to decide first (anything queued or waiting in the inbox, which keeps its
/// order, a re-sample, no free list register, the interrupt already held).
pub fn deliver_here(me: &VcpuIrq, virq: Virq) -> bool {
    if me.pending.load(Ordering::Acquire) {
        return false;
    }
    let Some(h) = host() else { return false };
    let Some(mut guard) = me.lrs.try_lock() else { return false };
    let Some(l) = guard.as_mut() else { return false };
    if !l.resample.is_empty() {
        return false;
    }
    sync(h, l);
    let placed = place(l, virq);
    l.finished.clear();
    // Not placed: queued, and the next entry's `before_entry` sets the trap.
    let Some((i, v)) = placed else { return false };
    h.write_lr(i, v);
    set_wfi_trap(h, l);
    true
}

/// HCR_EL2.TWI.
const HCR_TWI: u64 = 1 << 13;

/// GICv2 hosts: trap the guest's WFIs while a list register holds a physical interrupt (the HW
/// bit), and only then. After the guest deactivates one through its list register, QEMU's GICv2
/// does not re-evaluate what to signal ([`HostGic::refresh`]), so el2visor must refresh before
/// the CPU sleeps: its own WFI ([`idle`]) does. The record is a superset of what the list
/// registers hold (a finished one counts until the next sync), and every list register write
/// that can add one is followed by this, so while the guest may deactivate a HW interrupt its
/// WFI traps; every entry refreshes, which covers one deactivated before an exit of another
/// kind. Without one (an SMP guest's IPIs), the guest's WFI sleeps in the guest as on GICv3, and
/// the kick SGI wakes it through the IRQ exit. On this vCPU's own pCPU; a read-modify-write of
/// that one bit, leaving DC and TVM (which mair-trap mode changes while the guest runs) alone.
/// The ERET that enters the guest makes the write take effect.
#[inline(always)]
fn set_wfi_trap(h: &HostGic, l: &Lrs) {
    if !h.needs_wfi_trap() {
        return;
    }
    let hcr = crate::arch::sysreg::hcr_el2();
    let want = if l.m.holds_hw() { hcr | HCR_TWI } else { hcr & !HCR_TWI };
    if want != hcr {
        crate::arch::sysreg::set_hcr_el2(want);
    }
}

/// Whether the virtual timer asserts its interrupt: CNTV_CTL_EL0 ENABLE, not IMASK, ISTATUS (EL2
/// without VHE reads the running vCPU's timer).
fn vtimer_line_high() -> bool {
    crate::arch::sysreg::cntv_ctl_el0() & 0b111 == 0b101
}

/// Sync and refill this vCPU's list registers if anything changed: call on its own pCPU before
/// every guest entry.
pub fn before_entry(me: &VcpuIrq) {
    // A load first: on most entries nothing is queued, and a swap is a read-modify-write loop.
    if !me.pending.load(Ordering::Acquire) || !me.pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(h) = host() else { return };
    let mut guard = me.lrs.lock();
    let l = guard.get_or_insert_with(|| Lrs::new(h));
    sync(h, l);
    // The common case (issue 15): nothing to retract or re-sample, nothing queued, a free list
    // register for each arrival. Then the underflow and group 1 traps are off already (they are
    // on only while something is queued or waits for a re-sample) and stay so. With something
    // queued the refill must run: the underflow interrupt that brought the vCPU here stays
    // asserted until the list registers are refilled, and the queue would wait for good.
    if l.resample.is_empty() && l.m.queued() == 0 {
        // Lock order is the manager then the inbox; queue() and retract() take the inbox alone.
        let mut inbox = me.inbox.lock();
        if inbox.retractions.is_empty() && inbox.deactivate.is_empty() {
            let mut placed = 0;
            while let Some(&virq) = inbox.virqs.get(placed) {
                let Some((i, v)) = place(l, virq) else { break };
                h.write_lr(i, v);
                placed += 1;
            }
            if placed == inbox.virqs.len() {
                // Taken in place, keeping the inbox's capacity.
                inbox.virqs.clear();
                drop(inbox);
                l.finished.clear();
                set_wfi_trap(h, l);
                return;
            }
            // The rest, from the first that found no free list register, the general way.
            inbox.virqs.drain(..placed);
        }
    }
    before_entry_general(me, h, l);
}

/// [`before_entry`] when the common case does not hold: retractions and deactivations first,
/// then each arrival injected into the manager's queue, and the refill. Apart, so that the
/// common case's frame stays small (the IPI's receiving end runs it).
#[cold]
#[inline(never)]
fn before_entry_general(me: &VcpuIrq, h: &HostGic, l: &mut Lrs) {
    {
        let mut inbox = me.inbox.lock();
        for r in inbox.retractions.drain(..) {
            if let Some(disabled) = r.hold {
                for (i, v) in l.m.set_enabled(r.intid, !disabled) {
                    h.write_lr(i, v);
                }
            }
            let out = l.m.retract(r.intid, r.source, r.pending, r.active);
            for (i, v) in out.writes {
                h.write_lr(i, v);
            }
            for p in out.deactivate {
                deactivate_phys(h, me.pcpu, p);
            }
            l.resample.retain(|&i| i != r.intid);
        }
        for p in inbox.deactivate.drain(..) {
            deactivate_phys(h, me.pcpu, p);
        }
        // Taken in place, keeping the inbox's capacity.
        for virq in inbox.virqs.drain(..) {
            if l.m.inject(virq) == Injected::HwBusy {
                log::warn!("virtual GIC: INTID {} fired again while its list register holds it active", virq.intid);
            }
            if virq.level && l.finished.contains(&virq.intid) && !l.resample.contains(&virq.intid) {
                l.resample.push(virq.intid);
            }
        }
        // What arrived before a disabling that came with it is held back now (an arrival the
        // distributor made just before the disabling, but pushed here after this drain, is not:
        // a window of a few instructions on another pCPU, where the guest may take it once).
        l.m.forget_disabled();
    }
    l.finished.clear();
    let more = l.m.fill_with(|i, v| h.write_lr(i, v));
    set_wfi_trap(h, l);
    h.set_underflow(more);
    let waiting = resample(h, me.pcpu, l, false);
    set_trap(me, h, waiting);
    if more {
        // The maintenance interrupt will come when list registers free up; look again then.
        me.mark_pending();
    }
}

/// A trapped guest access to a group 1 CPU interface register (GICv3), on vCPU `me`'s pCPU.
/// `true` if el2visor armed that trap to re-sample interrupts before the guest acknowledges one
/// ([`VcpuIrq`]): done, the trap is off again, and the guest must run the same instruction
/// again. `false`: not el2visor's doing.
pub fn icc_trap(me: &VcpuIrq) -> bool {
    if !me.trapping.load(Ordering::Acquire) {
        return false;
    }
    let Some(h) = host() else { return false };
    let mut guard = me.lrs.lock();
    let Some(l) = guard.as_mut() else { return false };
    if l.resample.is_empty() {
        return false;
    }
    sync(h, l);
    l.finished.clear();
    resample(h, me.pcpu, l, true);
    set_trap(me, h, false);
    true
}

/// What vCPU `v` holds of `intid` (any source): (pending, active), from its list registers and
/// queue. On the vCPU's own pCPU the list registers are read back first; another vCPU's are as
/// of its last exit, so when that says it holds the interrupt, the vCPU is made to exit and read
/// them back (a kick): the guest may have ended it since without exiting, and one polling the
/// state (Linux's `synchronize_irq` reads ISACTIVER until it clears) sees the change at its
/// next read, not at whatever exit that vCPU makes next.
pub fn held(v: &VcpuIrq, intid: u32) -> (bool, bool) {
    let mut out = (false, false);
    let stale = with_manager(v, |m| out = m.held(intid));
    if stale && (out.0 || out.1) {
        v.mark_pending();
        kick_pcpu(v.pcpu);
    }
    out.0 |= v.inbox.lock().virqs.iter().any(|q| q.intid == intid);
    out
}

/// The sources GICv2 SGI `intid` is pending from in vCPU `v`'s list registers, manager queue
/// and inbox (a bit per sending CPU), as [`held`] sees them.
pub fn held_sgi_sources(v: &VcpuIrq, intid: u32) -> u8 {
    let mut sources = 0;
    let stale = with_manager(v, |m| sources = m.pending_sources(intid));
    if stale && sources != 0 {
        v.mark_pending();
        kick_pcpu(v.pcpu);
    }
    let inbox = v.inbox.lock();
    inbox.virqs.iter().filter(|q| q.intid == intid).fold(sources, |m, q| m | 1u8.checked_shl(u32::from(q.source)).unwrap_or(0))
}

/// Run `f` on vCPU `v`'s list-register manager, read back first when this is its pCPU. Returns
/// whether the manager's view may be stale (the vCPU runs elsewhere: what the guest did since
/// its last exit is not in it; the caller kicks it where that matters).
fn with_manager(v: &VcpuIrq, f: impl FnOnce(&LrManager)) -> bool {
    let mut guard = v.lrs.lock();
    let Some(l) = guard.as_mut() else { return false };
    let here = v.pcpu == cpu::current();
    if here {
        if let Some(h) = host() {
            sync(h, l);
        }
    }
    f(&l.m);
    !here
}

/// Whether a virtual interrupt is pending in this pCPU's list registers (a guest WFI would not
/// sleep).
pub fn virq_pending() -> bool {
    let Some(h) = host() else { return false };
    let format = h.lr_format();
    // Only the list registers the empty status (one register) says hold something: usually none.
    let mut held = !h.elrsr() & (u64::MAX >> (64 - h.lr_count().clamp(1, 64)));
    while held != 0 {
        let i = held.trailing_zeros() as usize;
        held &= held - 1;
        if matches!(format.decode(h.read_lr(i)).state, LrState::Pending | LrState::PendingActive) {
            return true;
        }
    }
    false
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

/// A trapped WFIT: as [`idle`], but only until the guest's virtual counter reaches `deadline`
/// (CNTVOFF_EL2 is 0, so a physical count): the pCPU sleeps in WFI with the EL2 physical timer
/// set to wake it then ([`crate::gic::hw::sleep_until`], which polls without a GIC).
pub fn idle_until(me: &VcpuIrq, deadline: u64) {
    before_entry(me);
    if !virq_pending() {
        crate::gic::hw::refresh();
        crate::gic::hw::sleep_until(deadline);
    }
}

/// Trap (or not) the guest's group 1 CPU interface accesses for a re-sample, noting it.
fn set_trap(me: &VcpuIrq, h: &HostGic, on: bool) {
    me.trapping.store(on, Ordering::Release);
    h.set_group1_trap(on);
}
