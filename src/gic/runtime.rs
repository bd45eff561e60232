//! The GIC at run time: physical interrupts taken while a guest runs, the guest's accesses to the
//! emulated distributor, and the trapped GIC system registers.

use crate::arch::exception::TrapFrame;
use crate::trap::esr::Esr;
use crate::trap::iss::SysRegAccess;
use crate::vm::instance::Vm;

/// A physical IRQ arrived while `vcpu` ran (HCR_EL2.IMO routes them all to EL2).
pub fn on_irq(vm: &Vm, vcpu: usize) {
    log::warn!("VM {} vCPU {vcpu}: physical interrupt with no GIC driver running", vm.name);
}

/// A Stage-2 data abort at `ipa`: emulate it if it is the VM's virtual GIC. `false` if not ours.
pub fn mmio(_vm: &Vm, _vcpu: usize, _frame: &mut TrapFrame, _esr: Esr, _ipa: u64) -> bool {
    false
}

/// A trapped GIC system register (ICC_SGI1R_EL1 and friends). `false` if not one.
pub fn sysreg(_vm: &Vm, _vcpu: usize, _frame: &mut TrapFrame, _acc: &SysRegAccess) -> bool {
    false
}
