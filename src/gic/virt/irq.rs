//! Physical interrupts taken on a pCPU (HCR_EL2.IMO routes them all to EL2): the IRQ exit's
//! first try for the two that come most ([`on_irq_fast`]: the virtual timer's tick, el2visor's
//! kick) and the general intake ([`on_irq`]), which delivers each to the vCPU it belongs to, to
//! a device handler of el2visor's, or to the virtual ITS.

use super::VGic;
use crate::arch::cpu;
use crate::gic::host::HostGic;
use crate::gic::hw::{host, is_maintenance, is_own, KICK_SGI};
use crate::gic::its::lpi::is_lpi;
use crate::gic::lrs::{self, VcpuIrq};
use crate::gic::vgic::HwIrq;
use crate::gic::VTIMER_INTID;
use crate::percpu;

/// Physical IRQs arrived on this pCPU, which runs vCPU `me` of a VM with virtual GIC `vgic` and
/// vCPUs `vcpus` (HCR_EL2.IMO routes them all to EL2). `running`: whether the VM is running;
/// while it resets or ends nothing is delivered. `vm_name` names the VM in the log.
pub fn on_irq(vgic: Option<&VGic>, vcpus: &[VcpuIrq], me: usize, running: bool, vm_name: &str) {
    let Some(h) = host() else { return };
    // Every acknowledge only when one is pending (ISR_EL1, one register read): an acknowledge
    // that finds nothing costs a GIC access, and [`on_irq_fast`] may have taken the only one.
    let mut next = if cpu::interrupt_pending() { h.ack() } else { None };
    while let Some(a) = next {
        take(h, a, vgic, vcpus, me, running, vm_name);
        // One arriving later is taken when the guest resumes.
        next = if cpu::interrupt_pending() { h.ack() } else { None };
    }
}

/// What [`on_irq_fast`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastIrq {
    /// The virtual timer's tick is in a list register and nothing else is pending: the guest may
    /// resume at once (anything that needs the run loop's checks comes with a kick, which would
    /// be pending).
    Done,
    /// The kick SGI, handled as [`on_irq`] handles it, and nothing else pending: the run loop's
    /// checks and the list-register refill are all that is left.
    Kick,
    /// Take the general way ([`on_irq`]) for the rest; whatever was acknowledged here has been
    /// handled as `on_irq` handles it.
    Slow,
}

/// The IRQ exit's first try (issue 15), before the run loop's general path: acknowledge one
/// interrupt; the virtual timer's tick goes straight into a free list register of vCPU `me`
/// ([`lrs::deliver_here`]), el2visor's kick is noted. Same arguments as [`on_irq`].
pub fn on_irq_fast(vgic: Option<&VGic>, vcpus: &[VcpuIrq], me: usize, running: bool, vm_name: &str) -> FastIrq {
    let Some(h) = host() else { return FastIrq::Slow };
    let Some(a) = h.ack() else { return FastIrq::Slow };
    let intid = a.intid();
    if intid == VTIMER_INTID && running && !crate::trace::on(crate::cmdline::TraceClass::Irq) {
        if let Some((v, virq)) = vcpus.get(me).and_then(|v| Some((v, v.vtimer()?))) {
            h.eoi(a);
            if lrs::deliver_here(v, virq) {
                return if cpu::interrupt_pending() { FastIrq::Slow } else { FastIrq::Done };
            }
            lrs::queue(vcpus, me, virq);
            return FastIrq::Slow;
        }
    }
    if intid == KICK_SGI && !crate::trace::on(crate::cmdline::TraceClass::Irq) {
        // el2visor's kick, as `take` handles it: deactivated, the vCPU marked.
        h.eoi(a);
        h.deactivate(a);
        if let Some(v) = vcpus.get(me) {
            v.mark_pending();
        }
    } else {
        take(h, a, vgic, vcpus, me, running, vm_name);
    }
    if intid == KICK_SGI && !cpu::interrupt_pending() {
        FastIrq::Kick
    } else {
        FastIrq::Slow
    }
}

/// One acknowledged physical interrupt `a`, for [`on_irq`].
fn take(h: &HostGic, a: crate::gic::Acked, vgic: Option<&VGic>, vcpus: &[VcpuIrq], me: usize, running: bool, vm_name: &str) {
    let intid = a.intid();
    h.eoi(a);
    if intid == VTIMER_INTID && running && !crate::trace::on(crate::cmdline::TraceClass::Irq) {
        // The virtual timer's tick (issue 15): the delivery the distributor made last time,
        // straight into a free list register of this vCPU, no distributor lock, no inbox.
        if let Some(v) = vcpus.get(me) {
            if let Some(virq) = v.vtimer() {
                if !lrs::deliver_here(v, virq) {
                    lrs::queue(vcpus, me, virq);
                }
                return;
            }
        }
    }
    log::trace!("irq {intid} on vCPU {me}");
    if crate::trace::on(crate::cmdline::TraceClass::Irq) {
        let what = if is_own(intid) { "el2visor's own" } else { "taken" };
        crate::trace::event(crate::cmdline::TraceClass::Irq, vm_name, me, crate::arch::sysreg::elr_el2(), format_args!("physical INTID {intid}: {what}"));
    }
    if is_own(intid) {
        if is_maintenance(intid) {
            // The underflow maintenance interrupt is a level that stays up until the list
            // registers are refilled, which only the entry does (`lrs::before_entry`, which asks
            // for it again while interrupts stay queued): off until then, or every acknowledge
            // here would find it pending again and the exit would never end.
            h.set_underflow(false);
        }
        h.deactivate(a);
        if let Some(v) = vcpus.get(me) {
            v.mark_pending();
        }
        return;
    }
    if is_lpi(intid) {
        // LPIs have no active state: the priority drop above was all the GIC needs.
        let mine = running && vgic.and_then(|vg| vg.its.get()).is_some_and(|i| i.on_lpi(&vgic.expect("checked").dist, vcpus, intid));
        if !mine && running {
            log::warn!("VM {vm_name} vCPU {me}: LPI {intid} is routed to no virtual LPI (dropped)");
        }
        return;
    }
    if let Some(handler) = crate::gic::hw::device_handler(intid) {
        handler();
        h.deactivate(a);
        return;
    }
    if !running {
        // A reset or the VM's end is under way: nothing is delivered to a guest that is going.
        h.deactivate(a);
        return;
    }
    match vgic.map_or(HwIrq::NotOwned, |vg| vg.hw_irq(vcpus, me, intid)) {
        HwIrq::Deliver { vcpu: target, virq } => lrs::queue(vcpus, target, virq),
        HwIrq::Held => {}
        HwIrq::NotOwned => {
            // Disabled, not just ignored: a stuck level-triggered line would storm otherwise.
            h.deactivate(a);
            let _ = h.disable(intid, percpu::mpidr_of(cpu::current()));
            log::warn!("VM {vm_name} vCPU {me}: physical interrupt {intid} belongs to no VM; disabled");
        }
    }
}
