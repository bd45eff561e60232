//! The per-pCPU run loop. Each pCPU runs at most one vCPU: it sets up EL2 for the VM once,
//! waits until its vCPU is asked to start (vCPU 0 when the VM starts, the others by PSCI CPU_ON),
//! and enters the guest. Every exit comes back here as an [`Exit`] from the trap dispatcher, and
//! this is the one place that acts on it. A vCPU that stops (CPU_OFF, a reset) comes back to the
//! wait on a fresh stack.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::exception::{Kind, TrapFrame};
use crate::arch::{cpu, sysreg};
use crate::gic::virt::FastIrq;
use crate::gic::{hw, lrs};
use crate::trap::dispatch::{self, Exit};
use crate::vcpu::snapshot::{self, After};
use crate::vcpu::{el2, lifecycle};
use crate::vm::instance::{VcpuStart, Vm, OFF, PAUSED, RESETTING, RUNNING};
use crate::vm::snapshot::VcpuState;
use crate::vm::power::VcpuPower;
use crate::vm::table;

extern "C" {
    fn enter_guest(frame: *const TrapFrame, stack_top: u64) -> !;
    fn reset_stack_and_call(sp: u64, f: extern "C" fn(usize) -> !, arg: usize) -> !;
}

/// Set once every VM exists: secondaries wait for it before looking for their vCPU.
static VMS_READY: AtomicBool = AtomicBool::new(false);

/// Make this loop the handler of guest exits (once, before any guest runs).
pub fn install() {
    crate::arch::exception::set_lower_handler(on_exit);
}

/// Tell every pCPU the VMs are built and their CPUs assigned: an event for those still waiting
/// for the host GIC, a kick for those asleep in [`sleep_until`].
pub fn announce_vms() {
    VMS_READY.store(true, Ordering::Release);
    cpu::send_event();
    let me = cpu::current();
    for c in crate::percpu::online().filter(|c| c.index != me) {
        hw::kick_pcpu(c.index);
    }
}

/// Sleep until `ready()` holds, before this pCPU runs a vCPU: in WFI once its GIC CPU interface
/// is up (woken by a kick, which is taken so that the next WFI sleeps), else in WFE. WFE alone
/// would do on hardware, but QEMU's TCG treats it as a yield, and a pCPU waiting there for the
/// VMs to be built spins on a host core that the boot CPU building them needs.
pub fn sleep_until(ready: impl Fn() -> bool) {
    while !ready() {
        hw::sleep();
        crate::gic::virt::on_irq(None, &[], 0, false, "(no VM yet)");
    }
}

/// The VM and vCPU this pCPU runs, if any.
fn assignment() -> Option<(&'static Vm, usize)> {
    let (slot, v) = cpu::this().assignment()?;
    Some((table::get(slot)?, v))
}

/// Run this pCPU's vCPU, if it has one, for ever (its GIC CPU interface is set up: `boot`).
pub fn pcpu_main(pcpu: usize) -> ! {
    sleep_until(|| VMS_READY.load(Ordering::Acquire));
    let Some((vm, v)) = assignment() else { cpu::park() };
    if let Some(vg) = &vm.vgic {
        vg.prepare_vcpu(pcpu);
    }
    el2::configure(vm, v);
    wait_and_enter(vm, v)
}

fn wait_and_enter(vm: &'static Vm, v: usize) -> ! {
    loop {
        if crate::fatal::failed() {
            cpu::park();
        }
        if vm.state() == OFF {
            idle_forever();
        }
        if let Some(start) = take_start(vm, v) {
            enter(vm, v, start);
        }
        if let Some(state) = take_resume(vm, v) {
            enter_restored(vm, v, state);
        }
        // Sleep until an interrupt is pending (IRQs stay masked at EL2): CPU_ON, a reset, the VM's
        // end and a fatal error all kick this pCPU with an SGI. WFE would do on hardware, but
        // QEMU's TCG treats it as a yield, and the spinning pCPU then takes a host core from the
        // vCPUs that run.
        hw::sleep();
        // Take what woke us (the kick, or a passthrough interrupt for this vCPU, which is queued
        // for it), so that the next WFI sleeps.
        crate::gic::virt::on_irq(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
        if vm.snapshot.as_ref().is_some_and(|s| s.live[v].lock().is_some()) {
            log::debug!("VM {}: vCPU {v} woke with a saved state, VM state {}", vm.name, vm.state());
        }
    }
}

/// Take vCPU `v`'s start request, if it has one and the VM runs, and mark it `On`: both under
/// the VM's power lock, where a reset marks the VM resetting and a CPU_ON makes the request, so
/// a vCPU either starts before a reset begins (and is then stopped by it like any running one)
/// or not at all. A request left from before a reset never enters the old guest.
fn take_start(vm: &Vm, v: usize) -> Option<VcpuStart> {
    let mut power = vm.power.lock();
    if vm.state() != RUNNING {
        return None;
    }
    let start = vm.vcpus[v].start.lock().take()?;
    power.states[v] = VcpuPower::On;
    Some(start)
}

/// Take vCPU `v`'s saved state after a snapshot operation (`vcpu::snapshot`), if the VM runs,
/// and mark it `On`: under the power lock, as [`take_start`].
fn take_resume(vm: &Vm, v: usize) -> Option<VcpuState> {
    let s = vm.snapshot.as_ref()?;
    let mut power = vm.power.lock();
    if vm.state() != RUNNING {
        return None;
    }
    let state = s.live[v].lock().take()?;
    power.states[v] = VcpuPower::On;
    Some(state)
}

/// Resume vCPU `v` from a saved state: its EL1 registers and timers, FP/SIMD, SVE and SME registers, the
/// TVM values el2visor keeps for it, its banked passthrough interrupts, list registers and
/// virtual CPU interface, then its general registers.
fn enter_restored(vm: &Vm, v: usize, mut st: VcpuState) -> ! {
    log::debug!("VM {}: vCPU {v} resumes from its saved state at {:#x}", vm.name, st.frame.elr);
    el2::reset_el1(false);
    crate::debug::target::vcpu_starts(false);
    st.el1.restore();
    st.feat.restore();
    crate::debug::target::vcpu_enters(vm.slot, &mut st.frame);
    let me = cpu::this();
    me.guest_mair.store(st.guest_mair, Ordering::Relaxed);
    me.guest_tcr.store(st.guest_tcr, Ordering::Relaxed);
    me.guest_sctlr.store(st.guest_sctlr, Ordering::Relaxed);
    // HCR_EL2.DC follows the restored SCTLR_EL1 (mair-trap mode).
    crate::trap::tvm::set_sctlr_el1(st.el1.sctlr);
    st.fp.restore();
    // After the FP registers: their Advanced SIMD loads zero each Z register above bit 127.
    if let Some(sve) = &st.sve {
        sve.restore();
    }
    // Last: entering streaming mode zeroes Z and P, turning ZA on zeroes ZA.
    if let Some(sme) = &st.sme {
        sme.restore(&st.fp);
    }
    if let Some(k) = &st.keys {
        k.restore();
    }
    if let Some(g) = &vm.vgic {
        g.reset_local(&vm.irqs[v]);
        g.restore_local(vm.vcpus[v].pcpu);
    }
    if let Some(l) = &st.lrs {
        lrs::restore(&vm.irqs[v], l);
    }
    lrs::before_entry(&vm.irqs[v]);
    check_own_serror(&st.frame);
    snapshot::report_restore(vm);
    let top = cpu::this().stack_hi.load(Ordering::Relaxed);
    // SAFETY: the frame is a guest context saved at an exit of this VM; the stack top is this
    // CPU's own, and nothing on the abandoned stack is used again.
    unsafe { enter_guest(&st.frame, top) }
}

/// Start vCPU `v` at `start.entry` in EL1h, DAIF masked, MMU and caches off, with the
/// endianness `start` asks for and `x0 = start.context`, its EL1 registers and virtual CPU
/// interface in their reset state.
fn enter(vm: &Vm, v: usize, start: VcpuStart) -> ! {
    el2::reset_el1(start.big_endian);
    lrs::start(&vm.irqs[v]);
    crate::debug::target::vcpu_starts(true);
    let mut frame = TrapFrame::new_el1(start.entry, start.context);
    crate::debug::target::vcpu_enters(vm.slot, &mut frame);
    // Started while GDB stops the VMs: it stops before its first instruction (again if another
    // stop comes while it is let go, as below).
    while crate::debug::target::must_stop(vm) {
        debugged(vm, crate::debug::target::park(vm, v, &mut frame, crate::debug::stub::StopWhy::Asked));
    }
    lrs::before_entry(&vm.irqs[v]);
    check_own_serror(&frame);
    let top = cpu::this().stack_hi.load(Ordering::Relaxed);
    // SAFETY: the frame is a complete EL1h context; the stack top is this CPU's own, and nothing
    // on the abandoned stack is used again.
    unsafe { enter_guest(&frame, top) }
}

extern "C" fn idle_entry(_pcpu: usize) -> ! {
    let Some((vm, v)) = assignment() else { cpu::park() };
    wait_and_enter(vm, v)
}

/// Leave the guest for good on this pCPU (CPU_OFF, a reset): drop the trap's stack and wait for
/// the next start request.
fn stop_this_vcpu() -> ! {
    let me = cpu::this();
    let top = me.stack_hi.load(Ordering::Relaxed);
    // SAFETY: idle_entry never returns and uses only the fresh stack.
    unsafe { reset_stack_and_call(top, idle_entry, me.index) }
}

/// This pCPU's VM has ended: from now on it only serves el2visor's own interrupts (a kick, the
/// console's input when it is routed here), sleeping in between.
fn idle_forever() -> ! {
    loop {
        if crate::fatal::failed() {
            cpu::park();
        }
        hw::sleep();
        crate::gic::virt::on_irq(None, &[], 0, false, "(ended)");
    }
}

/// What a vCPU must do after an exit, given the VM's state: wait while it is held for a
/// debugger, idle when it is over, stop when it resets, save its state (`frame`) and stop when it
/// is paused for a snapshot.
fn check_state(vm: &Vm, me: usize, frame: &TrapFrame) {
    if vm.crash.hold.is_held() {
        crate::vcpu::debug_wait::wait_while_held(vm, me);
    }
    match vm.state() {
        OFF => idle_forever(),
        RESETTING => {
            lifecycle::leave_for_reset(vm, me);
            stop_this_vcpu()
        }
        PAUSED => {
            snapshot::leave_for_pause(vm, me, frame);
            stop_this_vcpu()
        }
        _ => {}
    }
}

/// Act on what a snapshot operation says.
fn after_snapshot(vm: &Vm, after: After) {
    match after {
        After::Resume => {}
        After::Stop => stop_this_vcpu(),
        After::Off => idle_forever(),
        After::Reboot => {
            log::error!("VM {}: snapshot: unexpected reboot request", vm.name);
        }
    }
}

/// Every exception from a guest comes here, but those the vector's fast paths answer (the TVM
/// writes, the HVC calls of `boot/hvc_fastpath.S`) and those the lean synchronous exit serves
/// (`vcpu::lean`): the dispatcher handles it and says what the vCPU does next; this acts on it.
fn on_exit(frame: &mut TrapFrame, kind: Kind) {
    if crate::fatal::failed() {
        cpu::park();
    }
    let Some((vm, v)) = assignment() else {
        crate::fatal::hypervisor_fault(frame, kind, sysreg::esr_el2(), sysreg::far_el2())
    };
    // An SError the guest left pending is the guest's: collect it before anything else runs.
    if let Some(esr) = crate::arch::serror::take_guest_pending() {
        dispatch::guest_serror(vm, v, frame.elr, esr);
    }
    let irq = if kind == Kind::Irq { irq_fast(vm, v) } else { FastIrq::Slow };
    if irq == FastIrq::Done {
        check_own_serror(frame);
        return;
    }
    // A kick: the checks after the exit's handling below are the ones it asks for.
    let kicked = irq == FastIrq::Kick;
    if kind != Kind::Sync && !kicked {
        check_state(vm, v, frame);
    }
    // The virtual GIC distributor's accesses and GICv3 IPIs take the lean paths; everything else
    // the dispatcher (and these too while `trace=mmio`/`sysreg`/`s2fault` wants their lines).
    let traced = {
        use crate::cmdline::TraceClass::{Mmio, S2fault, Sysreg};
        crate::trace::any(crate::cmdline::TraceSet(Mmio.bit() | Sysreg.bit() | S2fault.bit()))
    };
    let fast = if kind == Kind::Sync && !traced {
        let esr = sysreg::esr_el2();
        crate::trap::dispatch_fast::gic_dist(vm, v, esr, frame).or_else(|| crate::trap::dispatch_fast::sgi1r(vm, v, esr, frame))
    } else {
        None
    };
    match fast.unwrap_or_else(|| if kicked { Exit::Resume } else { dispatch::handle(vm, v, frame, kind) }) {
        Exit::Resume => {}
        Exit::Idle { deadline: None } => {
            lrs::idle(&vm.irqs[v]);
            take_woken(vm, v);
        }
        Exit::Idle { deadline: Some(d) } => {
            lrs::idle_until(&vm.irqs[v], d);
            take_woken(vm, v);
        }
        Exit::StopVcpu => {
            // CPU_OFF: what it holds of interrupts routed elsewhere by now goes there, and its
            // timers stop (a CPU_ON resets them): a timer left enabled would fire at this pCPU.
            if let Some(vg) = &vm.vgic {
                vg.vcpu_off(&vm.irqs, v);
            }
            crate::arch::vcpu_state::stop_timers();
            stop_this_vcpu()
        }
        Exit::ResetVm { call } => match snapshot::on_reset(vm, v, frame, call) {
            After::Reboot => {
                if lifecycle::reset_vm(vm, v) {
                    stop_this_vcpu()
                }
                // Another vCPU is pausing, resetting or ending the VM (the state check below
                // stops this one as that asks): a SYSTEM_RESET is made again once that is done,
                // from the state a pause saves or at once if it is over; a crash restart is lost
                // to it, and the log says so.
                snapshot::replay(frame, call);
                if !call {
                    log::warn!("VM {}: vCPU {v}: crash restart not done: the VM was being paused, reset or ended", vm.name);
                }
            }
            after => after_snapshot(vm, after),
        },
        Exit::Snapshot { log_dirty, call } => after_snapshot(vm, snapshot::take(vm, v, frame, log_dirty, call)),
        Exit::Restore(k) => after_snapshot(vm, snapshot::restore(vm, v, frame, k, true)),
        Exit::VmOff => {
            lifecycle::end_vm(vm);
            idle_forever()
        }
        Exit::Debug(event, esr) => debugged(vm, crate::debug::exit::on_event(vm, v, frame, event, esr)),
    }
    // `on_crash=debug` with a GDB stub: the panicked VM stops for GDB, which is told SIGSEGV,
    // rather than waiting held for a debugger that cannot come.
    if vm.crash.hold.reason() == Some(crate::vm::debug_hold::HoldReason::Crash) && crate::debug::uart::enabled() {
        vm.crash.hold.release();
        debugged(vm, crate::debug::target::park(vm, v, frame, crate::debug::stub::StopWhy::Crash));
    }
    // GDB stops every vCPU (an attach, Ctrl-C, another vCPU's breakpoint). Again when another
    // stop is asked for while this one is let go: a vCPU resumed first can stop at once, and its
    // kick may be taken here, in `park`'s wait, before this vCPU is told to go; entering the
    // guest then would hold the stop reply until this vCPU's next exit.
    while crate::debug::target::must_stop(vm) {
        debugged(vm, crate::debug::target::park(vm, v, frame, crate::debug::stub::StopWhy::Asked));
    }
    // A snapshot or restore asked for on el2visor's console (`vcpu::console`).
    if let Some(after) = snapshot::on_request(vm, v, frame) {
        after_snapshot(vm, after);
    }
    check_state(vm, v, frame);
    lrs::before_entry(&vm.irqs[v]);
    hw::refresh();
    check_own_serror(frame);
}

/// An IRQ exit's first try (`gic::virt::on_irq_fast`). [`FastIrq::Done`]: the virtual timer's
/// tick is in a list register and nothing else is pending; the guest resumes without the run
/// loop's checks: none of what they look at (the VM's state, a GDB stop, a crash hold, an
/// interrupt queued by another pCPU) changes without a kick SGI to this pCPU, which would be
/// pending, so the fast path would have declined. [`FastIrq::Kick`]: only the kick came; the
/// checks run, but not the general dispatch. Either is counted as the dispatcher counts an IRQ.
fn irq_fast(vm: &Vm, v: usize) -> FastIrq {
    let r = crate::gic::virt::on_irq_fast(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
    if r != FastIrq::Slow {
        let me = cpu::this();
        me.exits.count(crate::percpu::stats::ExitReason::Irq);
        // Progress, as every exit but an abort is for the abort loop detector (trap::dispatch).
        me.forget_aborts();
        if r == FastIrq::Done {
            hw::refresh();
        }
    }
    r
}

/// After an EL2 wait (a trapped WFI): take the interrupt that ended it here, before the guest
/// runs, rather than entering the guest only to exit again at once for it (IRQs are masked at
/// EL2, so it would be taken the moment the guest resumed). ISR_EL1 says whether one is pending
/// without the cost of an acknowledge that finds nothing.
fn take_woken(vm: &Vm, v: usize) {
    if cpu::interrupt_pending() {
        crate::gic::virt::on_irq(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
    }
}

/// After a stop for GDB: a VM the debugger killed ends.
fn debugged(vm: &Vm, parked: crate::debug::target::Parked) {
    if parked == crate::debug::target::Parked::Kill {
        lifecycle::end_vm(vm);
        idle_forever()
    }
}

/// Before a guest entry: an SError pending now is el2visor's own, reported as its fatal error
/// rather than left for the guest to be blamed for (`arch::serror`).
fn check_own_serror(frame: &TrapFrame) {
    if let Some(syndrome) = crate::arch::serror::check_own() {
        crate::fatal::hypervisor_fault(frame, Kind::SError, syndrome, sysreg::far_el2());
    }
}
