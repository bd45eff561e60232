//! The per-pCPU run loop. Each pCPU runs at most one vCPU: it sets up EL2 for the VM once,
//! waits (WFE) until its vCPU is asked to start (vCPU 0 at VM creation, the others by PSCI
//! CPU_ON), and enters the guest. A vCPU that stops (CPU_OFF) comes back here on a fresh stack.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::boot::{stack_base, STACK_SIZE};
use crate::arch::exception::TrapFrame;
use crate::arch::{cpu, sysreg};
use crate::trap::psci::{PowerState, VcpuPower};
use crate::vcpu::regs;
use crate::vm::instance::{vmpidr, Vm, VM};

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
        if !vm.is_running() {
            cpu::park();
        }
        let start = vm.vcpus[v].start.lock().take();
        if let Some((entry, context)) = start {
            enter(vm, v, entry, context);
        }
        // SAFETY: WFE only waits; a CPU_ON for this vCPU sends an event.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// Start vCPU `v` at `entry` in EL1h, DAIF masked, MMU and caches off, `x0 = context`.
fn enter(vm: &Vm, v: usize, entry: u64, context: u64) -> ! {
    sysreg::set_sctlr_el1(regs::SCTLR_EL1_RESET);
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
    cpu::send_event();
}
