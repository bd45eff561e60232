//! The per-pCPU run loop. Each pCPU runs at most one vCPU: it sets up EL2 for the VM once,
//! waits (WFE) until its vCPU is asked to start (vCPU 0 at VM creation, the others by PSCI
//! CPU_ON), and enters the guest. A vCPU that stops (CPU_OFF) comes back here on a fresh stack.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::boot::{stack_base, STACK_SIZE};
use crate::arch::exception::TrapFrame;
use crate::arch::{cpu, sysreg};
use crate::trap::psci::{PowerState, VcpuPower};
use crate::vcpu::regs;
use crate::vm::instance::{vmpidr, Vm, OFF, RESETTING, RUNNING, VM};

extern "C" {
    fn enter_guest(frame: *const TrapFrame, stack_top: u64) -> !;
    fn reset_stack_and_call(sp: u64, f: extern "C" fn(usize) -> !, arg: usize) -> !;
}

/// Set once the VM exists: secondaries wait for it before looking for their vCPU.
static VM_READY: AtomicBool = AtomicBool::new(false);

/// Tell every pCPU the VM is built.
pub fn announce_vm() {
    VM_READY.store(true, Ordering::Release);
    cpu::send_event();
}

fn stack_top(pcpu: usize) -> u64 {
    stack_base(pcpu) + STACK_SIZE as u64
}

/// Run this pCPU's vCPU, if it has one, for ever.
pub fn pcpu_main(pcpu: usize) -> ! {
    while !VM_READY.load(Ordering::Acquire) {
        // SAFETY: WFE only waits; announce_vm's SEV wakes us.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
    if pcpu != 0 {
        if let Err(e) = crate::gic::runtime::init_cpu() {
            log::error!("cpu {pcpu}: GIC CPU interface: {e}");
        }
    }
    let Some(vm) = VM.get() else { cpu::park() };
    let Some(v) = vm.vcpu_on(pcpu) else { cpu::park() };
    crate::gic::runtime::prepare_vcpu(pcpu);
    configure_el2(vm, v);
    wait_and_enter(vm, v)
}

/// EL2 state for running `vm`'s vCPU `v` on this pCPU.
fn configure_el2(vm: &Vm, v: usize) {
    let f = &vm.features;
    sysreg::set_vpidr_el2(sysreg::midr_el1());
    sysreg::set_vmpidr_el2(vmpidr(vm.vcpus[v].mpidr));
    sysreg::set_cptr_el2(regs::cptr_el2(f));
    sysreg::isb();
    if f.sve {
        sysreg::set_zcr_el2(regs::VL_MAX_FIELD);
    }
    if f.sme {
        sysreg::set_smcr_el2(regs::VL_MAX_FIELD | (1 << 31));
    }
    if let Some(hcrx) = regs::hcrx_el2(f) {
        sysreg::set_hcrx_el2(hcrx);
    }
    sysreg::set_cnthctl_el2(regs::CNTHCTL_EL2);
    sysreg::set_cntvoff_el2(0);
    sysreg::set_mdcr_el2(regs::mdcr_el2(f));
    sysreg::set_vtcr_el2(vm.vtcr);
    sysreg::set_vttbr_el2(vm.vttbr);
    sysreg::set_hcr_el2(vm.hcr);
    sysreg::isb();
    // Nothing cached for this VMID may predate its tables.
    // SAFETY: invalidating stage 1+2 TLB entries of the current VMID only drops cached walks.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

fn wait_and_enter(vm: &'static Vm, v: usize) -> ! {
    loop {
        if vm.state() == OFF || crate::fatal::failed() {
            cpu::park();
        }
        // A start request only counts while the VM runs: one left from before a reset must not
        // enter the old guest (reset_vm clears them, and takes them only once it is done).
        let start = if vm.state() == RUNNING { vm.vcpus[v].start.lock().take() } else { None };
        if let Some((entry, context)) = start {
            enter(vm, v, entry, context);
        }
        // Sleep until an interrupt is pending (IRQs stay masked at EL2): CPU_ON, a reset, the VM's
        // end and a fatal error all kick this pCPU with an SGI. WFE would do on hardware, but
        // QEMU's TCG treats it as a yield, and the spinning pCPU then takes a host core from the
        // vCPUs that run.
        if crate::gic::runtime::host().is_some() {
            // SAFETY: WFI only waits.
            unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
        } else {
            // No GIC, so no kicks: wait for the SEV that CPU_ON's caller sends.
            // SAFETY: WFE only waits.
            unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
        }
        // Take what woke us (the kick, or a passthrough interrupt for this vCPU, which is queued
        // for it), so that the next WFI sleeps.
        crate::gic::runtime::on_irq(vm, v);
    }
}

/// Start vCPU `v` at `entry` in EL1h, DAIF masked, MMU and caches off, `x0 = context`.
fn enter(vm: &Vm, v: usize, entry: u64, context: u64) -> ! {
    sysreg::set_sctlr_el1(regs::SCTLR_EL1_RESET);
    // A previous life's timers must not fire into this one.
    // SAFETY: disabling the EL1 virtual and physical timers only stops their interrupts.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "msr cntp_ctl_el0, xzr", options(nostack)) };
    sysreg::isb();
    vm.power.lock().set_power(v, VcpuPower::On);
    let frame = TrapFrame::new_el1(entry, context);
    let pcpu = cpu::current();
    crate::gic::runtime::before_entry();
    // SAFETY: the frame is a complete EL1h context; the stack top is this CPU's own, and nothing
    // on the abandoned stack is used again.
    unsafe { enter_guest(&frame, stack_top(pcpu)) }
}

extern "C" fn idle_entry(pcpu: usize) -> ! {
    let Some(vm) = VM.get() else { cpu::park() };
    let Some(v) = vm.vcpu_on(pcpu) else { cpu::park() };
    wait_and_enter(vm, v)
}

/// Leave the guest for good on this pCPU (CPU_OFF): drop the trap's stack and wait for the
/// next CPU_ON.
pub fn stop_this_vcpu() -> ! {
    let pcpu = cpu::current();
    // SAFETY: idle_entry never returns and uses only the fresh stack.
    unsafe { reset_stack_and_call(stack_top(pcpu), idle_entry, pcpu) }
}

/// Ask vCPU `v` to start at `entry` with `context` (after PSCI CPU_ON accepted it).
pub fn request_start(vm: &Vm, v: usize, entry: u64, context: u64) {
    *vm.vcpus[v].start.lock() = Some((entry, context));
    crate::gic::runtime::kick_vcpu(v);
    cpu::send_event();
}

/// PSCI SYSTEM_RESET from vCPU `me`: stop every other vCPU, put the virtual GIC back to its
/// reset state, reload the pristine images and start vCPU 0 at the kernel entry again.
pub fn reset_vm(vm: &'static Vm, me: usize) -> ! {
    if vm.state.compare_exchange(RUNNING, RESETTING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Someone else is resetting (or powering off): just stop.
        stop_for_reset(vm, me);
    }
    let n = vm.vcpus.len();
    let freq = sysreg::cntfrq_el0().max(1);
    let t0 = sysreg::cntpct_el0();
    let mut last_kick = None;
    loop {
        let running: alloc::vec::Vec<usize> = {
            let p = vm.power.lock();
            (0..n).filter(|&i| i != me && p.power(i) != VcpuPower::Off).collect()
        };
        if running.is_empty() {
            break;
        }
        let now = sysreg::cntpct_el0();
        // Kick every 10 ms: a vCPU in the middle of a trap when the first kick came gets another.
        if last_kick.is_none_or(|t| now - t > freq / 100) {
            for &i in &running {
                crate::gic::runtime::kick_vcpu(i);
            }
            last_kick = Some(now);
        }
        if now - t0 > 2 * freq {
            log::error!(
                "VM {}: reset: vCPUs {running:?} did not stop within 2 s; the VM cannot be reset safely and ends",
                vm.name
            );
            crate::trap::dispatch::end_vm(vm);
        }
        core::hint::spin_loop();
    }
    crate::gic::runtime::reset_local();
    crate::gic::runtime::reset_vgic();
    if vm.clean {
        // Without FWB, lines the old guest left dirty anywhere in its RAM could later be evicted
        // over what the new one writes with its MMU and caches off.
        for r in &vm.ram {
            crate::arch::cache::clean_inval_range(r.pa.raw(), r.size as usize);
        }
    }
    if let Err(e) = vm.reload() {
        log::error!("VM {}: reset: {e}", vm.name);
        crate::trap::dispatch::end_vm(vm);
    }
    {
        let mut p = vm.power.lock();
        for i in 0..n {
            p.set_power(i, VcpuPower::Off);
            *vm.vcpus[i].start.lock() = None;
        }
        p.set_power(0, VcpuPower::OnPending);
    }
    *vm.vcpus[0].start.lock() = Some((vm.entry.raw(), vm.dtb.raw()));
    log::info!("VM {}: reset: images reloaded, vCPU 0 restarts at {:#x}", vm.name, vm.entry.raw());
    vm.state.store(RUNNING, Ordering::Release);
    if me != 0 {
        crate::gic::runtime::kick_vcpu(0);
    }
    stop_this_vcpu()
}

/// This vCPU stops because its VM is resetting.
pub fn stop_for_reset(vm: &Vm, me: usize) -> ! {
    crate::gic::runtime::reset_local();
    vm.power.lock().set_power(me, VcpuPower::Off);
    stop_this_vcpu()
}

/// What a vCPU must do after an exit, given the VM's state.
pub fn check_state(vm: &Vm, me: usize) {
    match vm.state() {
        OFF => cpu::park(),
        RESETTING => stop_for_reset(vm, me),
        _ => {}
    }
}
