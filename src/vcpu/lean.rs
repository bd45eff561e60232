//! The lean synchronous exit (issue 15): a guest's access to the virtual GIC distributor (a data
//! abort) or a trapped GICv3 CPU-interface register (its IPIs, ICC_SGI1R_EL1, and the IAR that
//! `gic::lrs::icc_trap` armed), and on GICv2 hosts a trapped WFI ([`wfi`]), served with only the
//! caller-saved registers saved (`lower_sync_lean` in boot/vectors.S, [`LeanRegs`]) and none of
//! the run loop's generic work; and the lean IRQ exit (`lower_irq_lean`, [`irq`]) for el2visor's
//! kick and the virtual timer's tick.
//!
//! What the run loop does on every exit (`run::on_exit`) and what this path does instead:
//! - the fatal flag, a GDB stop request, a VM held (for a debugger or after a crash), paused for
//!   a snapshot, resetting or ended, and a `trace=` class that wants these exits' lines
//!   (mmio, sysreg, s2fault): checked first, before anything is done; if any is set the exit
//!   goes to the slow path untouched, which handles it as always. A request that arrives while
//!   this path runs comes with a kick (a physical SGI), taken as soon as the guest resumes;
//! - the exit's decision from ESR_EL2 alone (`trap::dispatch_fast`, `trap::fastmmio`); an exit it
//!   does not serve, or whose register is one of x19..x29 (not saved here), goes to the slow
//!   path with nothing done;
//! - the exit counts (`STATS`) and the "same abort again" history: as the slow path;
//! - before the guest resumes: the list registers (`lrs::before_entry`, one atomic when nothing
//!   is queued; not after a distributor read, which queues nothing, nor after a GICv2 IPI sent
//!   to other vCPUs only) and the GICv2 interface
//!   refresh (`hw::refresh`), as the slow path;
//! - not done: collecting an SError the guest left pending and checking for el2visor's own
//!   (`arch::serror`). The path touches no memory of the guest's and no device but the GIC's own
//!   registers; a guest's SError still pending is taken at EL2 the moment the guest resumes
//!   (HCR_EL2.AMO routes it there whatever the guest's mask) and handled as the guest's by the
//!   slow path's SError entry. The cost of that choice: an SError of el2visor's own (a GIC
//!   register access that errs, which no GIC el2visor supports does) raised on this path is
//!   taken the same way after the ERET and so answered as the guest's (a virtual SError)
//!   rather than reported as el2visor's fatal error. Checking would cost a `dsb sy; isb` and an
//!   ISR_EL1 read on every lean exit.

use crate::arch::frame::LeanRegs;
use crate::arch::{cpu, sysreg};
use crate::cmdline::TraceClass::{Mmio, S2fault, Sysreg};
use crate::cmdline::TraceSet;
use crate::gic::virt::FastIrq;
use crate::gic::{hw, lrs};
use crate::trap::dispatch::Exit;
use crate::trap::dispatch_fast;
use crate::vm::instance::RUNNING;

/// ESR_EL2.EC of the exits this path takes: a data abort from a lower EL, a trapped MSR/MRS.
const EC_DABT_LOWER: u64 = 0x24;
const EC_SYSREG: u64 = 0x18;
/// A trapped WFI/WFE/WFIT/WFET (only WFI and WFIT trap, and only on GICv2 hosts).
const EC_WFX: u64 = 0x01;

/// Called by `lower_sync_lean` with the registers it saved: 0 when the exit is served (the guest
/// resumes with them), anything else to send it to the slow path (nothing has been done).
#[no_mangle]
extern "C" fn lean_sync_exit(regs: &mut LeanRegs) -> u64 {
    if serve(regs) {
        0
    } else {
        1
    }
}

fn serve(regs: &mut LeanRegs) -> bool {
    let traced = TraceSet(Mmio.bit() | Sysreg.bit() | S2fault.bit());
    if crate::fatal::failed() || crate::trace::any(traced) {
        return false;
    }
    let Some((slot, v)) = cpu::this().assignment() else { return false };
    if crate::debug::target::stop_pending(slot) {
        return false;
    }
    let Some(vm) = crate::vm::table::get(slot) else { return false };
    if vm.state() != RUNNING || vm.crash.hold.is_held() {
        return false;
    }
    let esr = sysreg::esr_el2();
    let ec = esr >> 26 & 0x3f;
    if ec == EC_WFX {
        return wfi(vm, v, esr, regs);
    }
    // Whether this vCPU's list registers need a look: not after a distributor read, which
    // changes no interrupt state, nor a GICv2 IPI to others (`dispatch_fast::gic_dist_access`;
    // what another CPU queues for it meanwhile comes with a kick, taken on entry).
    let lrs = match ec {
        EC_DABT_LOWER => dispatch_fast::gic_dist_access(vm, v, esr, regs),
        EC_SYSREG => dispatch_fast::sgi1r(vm, v, esr, regs).filter(|e| matches!(e, Exit::Resume)).map(|_| true),
        _ => None,
    };
    let Some(lrs) = lrs else { return false };
    if lrs {
        if let Some(me) = vm.irqs.get(v) {
            lrs::before_entry(me);
        }
    }
    hw::refresh();
    true
}

/// A trapped WFI (GICv2 hosts, while a list register holds a physical interrupt,
/// `gic::lrs::set_wfi_trap`; issue 15): the slow path's `Exit::Idle` without its frame and
/// dispatch. Counted, stepped over, then the EL2 wait of `lrs::idle`; what woke the pCPU is taken
/// here as the IRQ exit's first try takes it (`gic::virt::on_irq_fast`: the kick, or the virtual
/// timer's tick into a free list register) rather than by an IRQ exit the moment the guest
/// resumes. Anything else that woke it (a device's interrupt, more than one pending), and every
/// request that reached this vCPU while it waited (a pause, reset, GDB stop, crash hold, console
/// snapshot, fatal error: each comes with a kick, so is visible once the kick is acknowledged),
/// is left to the slow path's IRQ exit: a kick to this pCPU, taken as the guest resumes, whose
/// exit runs every check of the run loop. A WFIT, and a WFI on a CPU with FEAT_WFxT (some report
/// a WFIT as a WFI: `trap::dispatch` reads the instruction), take the slow path.
#[inline(always)]
fn wfi(vm: &crate::vm::instance::Vm, v: usize, esr: u64, regs: &mut LeanRegs) -> bool {
    use crate::trap::dispatch_fast::GuestRegs;
    // ISS.TI (bits 1:0): 0 is WFI.
    // An AArch32 WFI that fails its condition is only stepped over: the slow path's.
    if esr & 0b11 != 0
        || sysreg::id_aa64isar2_el1() & 0xf >= 2
        || !crate::arch::frame::aarch32_condition_passed(esr, sysreg::spsr_el2())
    {
        return false;
    }
    let Some(me) = vm.irqs.get(v) else {
        return false;
    };
    let c = cpu::this();
    c.exits.count(crate::percpu::stats::ExitReason::Wfx);
    // Progress, as every exit but an abort is for the abort loop detector (trap::dispatch).
    c.forget_aborts();
    regs.step(esr);
    lrs::idle(me);
    if cpu::interrupt_pending() {
        let r =
            crate::gic::virt::on_irq_fast(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
        if r == FastIrq::Slow || requests(vm) {
            hw::kick_pcpu(cpu::current());
        } else {
            c.exits.count(crate::percpu::stats::ExitReason::Irq);
        }
    }
    lrs::before_entry(me);
    hw::refresh();
    true
}

/// Called by `lower_irq_lean` (boot/vectors.S): an IRQ from the guest that is el2visor's kick or
/// the virtual timer's tick, taken as the run loop's IRQ exit takes them (`run::irq_fast`,
/// `gic::virt::on_irq_fast`) without the full frame. 0 when served; anything else sends the
/// exit to the slow path with nothing done.
#[no_mangle]
extern "C" fn lean_irq_exit(_regs: &mut LeanRegs) -> u64 {
    if irq() {
        0
    } else {
        1
    }
}

/// The lean IRQ exit (issue 15). Declines, before acknowledging anything, while any of the run
/// loop's checks has something to do (the fatal flag, a GDB stop, `trace=irq`, the VM not
/// running, held, or asked for a console snapshot) and for any interrupt but the kick and the
/// timer's tick (the highest pending one, read without acknowledging it: a device's interrupt
/// and everything else take the slow path). After the acknowledge, a request that came with the
/// kick just taken is looked for again: if there is one, the kick is sent again to this pCPU,
/// so the guest exits at once and the slow path (whose checks come before anything is
/// acknowledged here) serves it. Not done, as on the lean synchronous exit: collecting a guest's
/// pending SError (it is taken at EL2 as the guest resumes) and the own-SError check (nothing
/// here touches a device but the GIC).
#[inline(always)]
fn irq() -> bool {
    if crate::trace::on(crate::cmdline::TraceClass::Irq) {
        return false;
    }
    let Some((slot, v)) = cpu::this().assignment() else { return false };
    let Some(vm) = crate::vm::table::get(slot) else { return false };
    if requests(vm) {
        return false;
    }
    let Some(h) = hw::host() else { return false };
    let next = h.highest_pending();
    if next != hw::KICK_SGI && next != crate::gic::VTIMER_INTID {
        return false;
    }
    let r = crate::gic::virt::on_irq_fast(vm.vgic.as_ref(), &vm.irqs, v, true, &vm.name);
    let c = cpu::this();
    c.exits.count(crate::percpu::stats::ExitReason::Irq);
    c.forget_aborts();
    if r != FastIrq::Done {
        if requests(vm) {
            hw::kick_pcpu(cpu::current());
        }
        if let Some(me) = vm.irqs.get(v) {
            lrs::before_entry(me);
        }
    }
    hw::refresh();
    true
}

/// Whether something the run loop's checks after an exit act on is asked of vCPUs of `vm`: the
/// VM not running (paused, resetting, ended), held for a debugger or after a crash, a console
/// snapshot or restore, or el2visor's fatal error. Each comes with a kick.
#[inline(always)]
fn requests(vm: &crate::vm::instance::Vm) -> bool {
    crate::fatal::failed()
        || crate::debug::target::stop_pending(vm.slot)
        || vm.state() != RUNNING
        || vm.crash.hold.is_held()
        || vm.snapshot.as_ref().is_some_and(|s| s.request.load(core::sync::atomic::Ordering::Acquire) != 0)
}
