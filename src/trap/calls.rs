//! HVC and trapped SMC, for the dispatcher (`trap::dispatch`): PSCI, SMCCC and el2visor's
//! vendor calls, decided by the pure handler (`trap::psci::handle_call`) under the VM's power
//! lock, and their outcome made an [`Exit`] for the run loop: a return value in x0..x3, a vCPU
//! started, stopped or idle, the VM reset or ended, a snapshot taken or restored, a call
//! forwarded to the host firmware (`trap::firmware`). `trace=psci` prints one line per call.

use core::sync::atomic::Ordering;

use crate::arch::cpu;
use crate::arch::exception::TrapFrame;
use crate::arch::{sysreg, translate};
use crate::cmdline::TraceClass;
use crate::trap::call::{TrapCounter, VendorCall};
use crate::trap::dispatch::Exit;
use crate::trap::esr::Esr;
use crate::trap::par;
use crate::trap::psci::{handle_call, CallOutcome};
use crate::vm::instance::{VcpuStart, Vm};

/// HVC or SMC with its immediate: an SMCCC call when it is 0. SMCCC (DEN0028, "SMC and HVC
/// immediate value") reserves every other immediate; like KVM for such an SMC, the caller gets
/// NOT_SUPPORTED (-1) in x0 and every other register as it was.
pub fn smccc_or_reserved(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr) -> Exit {
    if esr.iss() & 0xffff != 0 {
        frame.x[0] = smccc_not_supported();
        return Exit::Resume;
    }
    call(vm, vcpu, frame)
}

fn smccc_not_supported() -> u64 {
    crate::trap::abi::smccc::NOT_SUPPORTED as u64
}

/// HVC or trapped SMC: PSCI, SMCCC, el2visor's vendor calls.
///
/// The call is decided and its effect on the VM's power states (a CPU_ON's start request too)
/// made under the VM's power lock, and only while the VM runs: a VM that is resetting or ending
/// carries out no call (the caller stops right after this exit), so a CPU_ON racing a
/// SYSTEM_RESET cannot leave a vCPU pending or a start request behind for the reset to trip on.
/// A VM paused for a snapshot does not either, but its caller makes the call again on resuming.
fn call(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) -> Exit {
    let fid = frame.x[0] as u32;
    let args = [frame.x[1], frame.x[2], frame.x[3]];
    let pc = frame.elr;
    let exit = call_inner(vm, vcpu, frame, fid, args);
    if crate::trace::on(TraceClass::Psci) {
        crate::trace::event(
            TraceClass::Psci,
            &vm.name,
            vcpu,
            pc,
            format_args!(
                "{} ({fid:#x}) x1 {:#x} x2 {:#x} x3 {:#x} -> x0 {:#x}{}",
                crate::trap::callname::call_name(fid),
                args[0],
                args[1],
                args[2],
                frame.x[0],
                match exit {
                    Exit::Resume => "",
                    Exit::Idle { .. } => ", idle",
                    Exit::StopVcpu => ", vCPU stops",
                    Exit::ResetVm { .. } => ", VM resets",
                    Exit::VmOff => ", VM ends",
                    Exit::Debug(..) => ", debugger stop",
                    Exit::Snapshot { .. } => ", snapshot",
                    Exit::Restore(_) => ", restore",
                }
            ),
        );
    }
    exit
}

fn call_inner(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, fid: u32, args: [u64; 3]) -> Exit {
    let outcome = {
        let mut power = vm.power.lock();
        if !vm.is_running() {
            if vm.state() == crate::vm::instance::PAUSED {
                // Paused for a snapshot: the vCPU stops at this exit, and its saved state must
                // make the call again when it resumes (HVC and SMC are 4-byte instructions).
                frame.elr -= 4;
            }
            return Exit::Resume;
        }
        let outcome = handle_call(fid, args, vcpu, &mut *power);
        if let CallOutcome::StartVcpu { index, entry, context_id } = outcome {
            // The target starts with the caller's endianness (PSCI), whose SCTLR_EL1 is live.
            let big_endian = sysreg::sctlr_el1() & crate::trap::endian::SCTLR_EL1_EE != 0;
            *vm.vcpus[index].start.lock() = Some(VcpuStart { entry, context: context_id, big_endian });
        }
        outcome
    };
    match outcome {
        CallOutcome::Return(v) => frame.x[0] = v as u64,
        CallOutcome::ReturnRegs(r) => frame.x[..4].copy_from_slice(&r),
        CallOutcome::StartVcpu { index, .. } => {
            frame.x[0] = 0;
            vm.kick(index);
        }
        CallOutcome::Forward { fid, args } => frame.x[0] = crate::trap::firmware::forward(fid, args),
        CallOutcome::StopVcpu => return Exit::StopVcpu,
        CallOutcome::SystemOff => {
            log::info!("VM {}: PSCI SYSTEM_OFF from vCPU {vcpu}", vm.name);
            return Exit::VmOff;
        }
        CallOutcome::SystemReset => {
            log::info!("VM {}: PSCI SYSTEM_RESET from vCPU {vcpu}", vm.name);
            return Exit::ResetVm { call: true };
        }
        CallOutcome::Suspend => {
            // A standby: wait as for a WFI, waking for an interrupt already pending for the vCPU.
            frame.x[0] = 0;
            return Exit::Idle { deadline: None };
        }
        CallOutcome::Vendor(VendorCall::SnapshotTake { log_dirty }) => {
            if vm.snapshot.is_none() {
                frame.x[0] = smccc_not_supported();
                return Exit::Resume;
            }
            // x0 keeps the function ID: the snapshot sets it to 0, and a call that must be made
            // again (`vcpu::snapshot::take`) finds it there.
            return Exit::Snapshot { log_dirty, call: true };
        }
        CallOutcome::Vendor(VendorCall::SnapshotRestore { kind }) => {
            match (crate::cmdline::RestoreKind::from_code(kind), vm.snapshot.as_ref().is_some_and(|s| s.is_taken())) {
                (Some(k), true) => return Exit::Restore(k),
                _ => frame.x[0] = smccc_not_supported(),
            }
        }
        CallOutcome::Vendor(v) => frame.x[0] = vendor(vm, vcpu, v),
    }
    Exit::Resume
}

fn vendor(vm: &Vm, vcpu: usize, call: VendorCall) -> u64 {
    let me = cpu::this();
    match call {
        VendorCall::LogLine { ipa, len } => crate::trap::guest_log::log_line(vm, vcpu, ipa, len),
        VendorCall::AtS12e1r { va } => par::guest_par(&vm.ram, translate::at_s12e1(va, false)),
        VendorCall::AtS12e1w { va } => par::guest_par(&vm.ram, translate::at_s12e1(va, true)),
        VendorCall::TrapCount { counter, .. } => match counter {
            TrapCounter::FastTvmWrites => me.tvm_fast.load(Ordering::Relaxed),
            TrapCounter::SlowTvmWrites => me.tvm_slow.load(Ordering::Relaxed),
        },
        VendorCall::SnapshotInfo { which } => match (&vm.snapshot, which) {
            (None, _) => smccc_not_supported(),
            (Some(_), _) => crate::vm::snapshot::info(vm, which)
                .unwrap_or(crate::trap::abi::smccc::INVALID_PARAMETER as u64),
        },
        // Taken by `call` before this.
        VendorCall::SnapshotTake { .. } | VendorCall::SnapshotRestore { .. } => smccc_not_supported(),
    }
}
