//! Stage-2 aborts that are not el2visor's own doing: anything but a translation, access flag or
//! permission fault (`trap::esr::s2_fault`). For those HPFAR_EL2 may be UNKNOWN or stale and
//! there is nothing to emulate or to map, so they never reach MMIO emulation: each gets the
//! answer the guest would get from hardware, or what KVM and Xen give, and a log line.
//!
//! - A synchronous external abort or a parity/ECC error on the access itself (a passed-through
//!   device's bus error): a synchronous external abort at the instruction, what the guest gets
//!   from that device without a hypervisor (a process's SIGBUS in Linux), as Xen gives.
//! - The same on a translation table walk: a virtual SError, as KVM gives
//!   (`kvm_handle_guest_sea`); the guest takes it when it unmasks SErrors and the access runs
//!   again.
//! - An alignment fault that stage 2's Device type made: the same alignment fault, injected.
//! - A TLB conflict abort: this CPU's TLB entries for the VM are invalidated and the access runs
//!   again (the Arm ARM's remedy; el2visor's break-before-make should make it impossible).
//! - Anything else (address size, granule protection, IMPLEMENTATION DEFINED): a synchronous
//!   external abort, as Xen gives for a fault status it does not handle.
//!
//! The same abort again and again ends the VM with a report, as any injected abort does.

use crate::arch::exception::TrapFrame;
use crate::arch::{sysreg, translate};
use crate::trap::dispatch::{count_abort, injected, Exit};
use crate::trap::esr::{s2_fault, Esr, S2Fault};
use crate::trap::ratelimit::{suppressed_note, RateLimit};
use crate::trap::serror as serror_rule;
use crate::trap::inject_hw;
use crate::vm::instance::Vm;

/// Answer a Stage-2 abort with syndrome `esr` that is not a mapping fault; `None` for a mapping
/// fault, which the caller resolves at its IPA.
pub fn unusual(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr) -> Option<Exit> {
    let kind = s2_fault(esr.0);
    if kind == S2Fault::Mapping {
        return None;
    }
    let far = sysreg::far_el2();
    let repeats = match count_abort(vm, vcpu, frame, esr, far, "the same stage-2 fault keeps recurring") {
        Ok(r) => r,
        Err(exit) => return Some(exit),
    };
    let (what, done) = match kind {
        S2Fault::ExternalAccess => {
            ("an external abort or memory error on the access: injecting a synchronous external abort", inject_hw::abort(frame, esr, far))
        }
        S2Fault::ExternalWalk => {
            crate::arch::serror::inject_virtual(serror_rule::VIRTUAL_SYNDROME);
            ("an external abort or memory error on a translation table walk: injecting a virtual SError", Ok(()))
        }
        S2Fault::Alignment => {
            ("an alignment fault from stage 2's Device type: injecting it", inject_hw::alignment_fault(frame, esr, far))
        }
        S2Fault::TlbConflict => {
            translate::tlbi_vmalls12e1();
            ("a TLB conflict abort: the VM's TLB entries on this CPU invalidated, running the access again", Ok(()))
        }
        S2Fault::Mapping | S2Fault::Other => (
            "a stage-2 fault status el2visor does not handle: injecting a synchronous external abort",
            inject_hw::abort(frame, esr, far),
        ),
    };
    static LIMIT: RateLimit = RateLimit::new();
    if repeats <= 2 {
        if let Some(n) = LIMIT.allow(vm.slot) {
            log::warn!("VM {} vCPU {vcpu}: {esr} at VA {far:#x} from {:#x}: {what}{}", vm.name, frame.elr, suppressed_note(n));
        }
    }
    Some(injected(vm, vcpu, frame, esr, done))
}
