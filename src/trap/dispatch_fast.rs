//! The lean paths for the exits a running guest makes most that need Rust: its loads and stores
//! of the virtual GIC distributor, and (GICv3) its IPIs, writes of ICC_SGI1R_EL1 (issue 15). The run loop tries it before the general
//! dispatcher (`trap::dispatch`); it decides from ESR_EL2 and the fault address alone
//! (`trap::fastmmio`), hands the access straight to the VM's distributor model, and leaves
//! everything else, and every access the model refuses, to the general path, which then reports
//! it and injects the abort as always. What it skips is generic: the abort-class checks, the
//! search of the VM's device and MMIO region lists, the device trait object and its error
//! conversions.

use crate::arch::exception::TrapFrame;
use crate::arch::{cpu, sysreg};
use crate::percpu::stats::ExitReason;
use crate::trap::dispatch::Exit;
use crate::trap::esr::hpfar_to_ipa;
use crate::trap::fastmmio;
use crate::vm::instance::Vm;

/// A guest access to vCPU `vcpu`'s distributor, emulated; `None` for anything else (the frame
/// untouched).
pub fn gic_dist(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) -> Option<Exit> {
    let esr = sysreg::esr_el2();
    let a = fastmmio::decode(esr)?;
    let vg = vm.vgic.as_ref()?;
    let ipa = hpfar_to_ipa(sysreg::hpfar_el2(), sysreg::far_el2());
    let offset = ipa.wrapping_sub(vg.dist_ipa.start.raw());
    if offset >= vg.dist_ipa.size {
        return None;
    }
    if a.write {
        vg.dist_write(&vm.irqs, vcpu, offset, a.size, a.store_value(frame.reg(a.rt as usize))).ok()?;
    } else {
        let v = vg.dist_read(&vm.irqs, vcpu, offset, a.size).ok()?;
        frame.set_reg(a.rt as usize, a.load_value(v));
    }
    let me = cpu::this();
    me.exits.count(ExitReason::Dabt);
    // Progress, as for every emulated access: the "same abort again" history starts afresh.
    me.last_abort.lock().clear();
    frame.skip_instruction(esr);
    Some(Exit::Resume)
}

/// A guest's access to a GICv3 CPU-interface register, as `trap::dispatch` serves it: first the
/// trap el2visor may have armed to re-sample a level interrupt (`gic::lrs::icc_trap`: then the
/// instruction runs again; this is the guest's IAR after a timer tick on GICv3), else an
/// ICC_SGI1R_EL1 write (an IPI) through the distributor model. `None` for anything else, or a VM
/// without a virtual GIC.
pub fn sgi1r(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) -> Option<Exit> {
    let esr = sysreg::esr_el2();
    if !fastmmio::is_icc_access(esr) {
        return None;
    }
    let me = cpu::this();
    if vm.irqs.get(vcpu).is_some_and(crate::gic::lrs::icc_trap) {
        me.exits.count(ExitReason::Sysreg);
        me.last_abort.lock().clear();
        return Some(Exit::Resume);
    }
    let rt = fastmmio::sgi1r_write_rt(esr)?;
    let vg = vm.vgic.as_ref()?;
    me.exits.count(ExitReason::Sysreg);
    me.last_abort.lock().clear();
    if let Err(e) = vg.sgi1r_write(&vm.irqs, vcpu, frame.reg(rt as usize)) {
        log::warn!("VM {} vCPU {vcpu}: ICC_SGI1R_EL1: {e}", vm.name);
    }
    frame.skip_instruction(esr);
    Some(Exit::Resume)
}
