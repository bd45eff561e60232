//! Where the vCPUs of a VM held for a debugger (`vm::debug_hold`: `on_crash=debug`) wait: at
//! EL2, after their exit, their guest state in their trap frame, sleeping until a kick. When
//! the hold is released (or the VM ends, or resets) they carry on where they stopped. A
//! debugger stub attaches here: the VM is held, each vCPU sits in [`wait_while_held`] with its
//! frame, and releasing the hold (then kicking the vCPUs) lets them go.

use crate::arch::cpu;
use crate::gic::hw;
use crate::vm::instance::{Vm, RUNNING};

/// Wait while `vm` is held and still running; vCPU `v` is this pCPU's.
pub fn wait_while_held(vm: &Vm, v: usize) {
    while vm.crash.hold.is_held() && vm.state() == RUNNING {
        if crate::fatal::failed() {
            cpu::park();
        }
        hw::sleep();
        // Take what woke us: a kick, or an interrupt for the vCPU, queued for when it runs.
        crate::gic::virt::on_irq(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
    }
}
