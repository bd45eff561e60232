//! The one dispatcher for exceptions from guests: every lower-EL exception that the assembly
//! fast path did not answer comes here with its saved frame, is counted, and goes to a small
//! handler: PSCI/SMCCC and el2visor's vendor calls (HVC, trapped SMC), trapped system registers
//! (the TVM slow path, ACTLR), Stage-2 aborts (an access to an address the VM does not own gets a
//! synchronous external abort, and a log line), and everything else an UNDEF plus a report.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::boot::MAX_CPUS;
use crate::arch::exception::{Kind, TrapFrame};
use crate::arch::{cpu, sysreg};
use crate::coherency;
use crate::trap::esr::{hpfar_to_ipa, Esr, ExceptionClass};
use crate::trap::psci::{handle_call, CallOutcome};
use crate::trap::sysreg::TvmReg;
use crate::trap::vendor::{TrapCounter, VendorCall};
use crate::trap::ratelimit::{suppressed_note, RateLimit};
use crate::trap::{inject_hw, report};
use crate::vcpu::run;
use crate::vcpu::stats::{ExitCounters, ExitReason, Totals};
use crate::vm::instance::{Vm, OFF, VM};

/// Exit counters, one set per physical CPU.
static COUNTERS: [ExitCounters; MAX_CPUS] = [const { ExitCounters::new() }; MAX_CPUS];

/// Per-CPU state the assembly fast path (boot/tvm_fastpath.S) reads and writes; the layout is
/// part of its code: 16 bytes per CPU, `guest_mair` at 0, `fast_count` at 8.
#[repr(C)]
pub struct TvmPerCpu {
    /// The MAIR_EL1 value the guest last wrote, before the mair-trap override (the hardware
    /// holds the rewritten value; the fast and the slow path both keep this). Reported in the
    /// guest fault report; docs/coherency.md says what the guest reads back.
    pub guest_mair: AtomicU64,
    /// TVM register writes served by the fast path.
    pub fast_count: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<TvmPerCpu>() == 16);

#[no_mangle]
pub static TVM_PERCPU: [TvmPerCpu; MAX_CPUS] =
    [const { TvmPerCpu { guest_mair: AtomicU64::new(0), fast_count: AtomicU64::new(0) } }; MAX_CPUS];

/// The MAIR_EL1 value this CPU's guest wrote last (in mair-trap mode), else the register itself.
pub fn guest_mair(vm: &Vm) -> u64 {
    match vm.setting.mode {
        coherency::Mode::MairTrap => TVM_PERCPU[cpu::current()].guest_mair.load(Ordering::Relaxed),
        _ => sysreg::mair_el1(),
    }
}

/// TVM register writes served by the Rust slow path, per CPU.
static TVM_SLOW_COUNT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Consecutive identical aborts per CPU (ELR, ESR, count): a guest that keeps faulting at the same
/// place after the injected abort is stuck, and gets a report instead of an endless loop.
static LAST_ABORT: [spin::Mutex<(u64, u64, u32)>; MAX_CPUS] = [const { spin::Mutex::new((0, 0, 0)) }; MAX_CPUS];
const ABORT_LOOP: u32 = 16;

/// Every CPU's counters, summed; fast-path TVM writes counted as `sysreg_fast` exits.
pub fn totals() -> Totals {
    let mut t = Totals::default();
    for (c, tvm) in COUNTERS.iter().zip(&TVM_PERCPU) {
        t.add(&c.snapshot());
        t.add_count(ExitReason::SysregFast, tvm.fast_count.load(Ordering::Relaxed));
    }
    t
}

/// Install the dispatcher as the handler of lower-EL exceptions.
pub fn install() {
    crate::arch::exception::set_lower_handler(handle);
}

fn handle(frame: &mut TrapFrame, kind: Kind) {
    let pcpu = cpu::current();
    if crate::fatal::failed() {
        cpu::park();
    }
    let Some(vm) = VM.get() else {
        crate::fatal::hypervisor_fault(frame, kind, sysreg::esr_el2(), sysreg::far_el2())
    };
    let vcpu = vm.vcpu_on(pcpu).unwrap_or(0);
    let counters = &COUNTERS[pcpu];
    if kind != Kind::Sync {
        run::check_state(vm, vcpu);
    }
    match kind {
        Kind::Sync => sync(vm, vcpu, frame, counters),
        Kind::Irq | Kind::Fiq => {
            counters.count(ExitReason::Irq);
            crate::gic::runtime::on_irq(vm, vcpu);
        }
        Kind::SError => {
            counters.count(ExitReason::Other);
            report::guest_fault(&vm.name, vcpu, "SError taken from the guest", frame, sysreg::esr_el2());
            end_vm(vm);
        }
    }
    run::check_state(vm, vcpu);
    crate::gic::runtime::before_entry();
    crate::gic::runtime::refresh();
}

fn sync(vm: &'static Vm, vcpu: usize, frame: &mut TrapFrame, counters: &ExitCounters) {
    let esr = Esr(sysreg::esr_el2());
    match esr.class() {
        ExceptionClass::Hvc64 => {
            counters.count(ExitReason::Hvc);
            call(vm, vcpu, frame);
        }
        ExceptionClass::Smc64 => {
            counters.count(ExitReason::Smc);
            frame.elr += 4;
            call(vm, vcpu, frame);
        }
        ExceptionClass::SysReg => {
            counters.count(ExitReason::Sysreg);
            sysreg_access(vm, vcpu, frame, esr);
        }
        ExceptionClass::DataAbortLower => {
            counters.count(ExitReason::Dabt);
            let ipa = hpfar_to_ipa(sysreg::hpfar_el2(), sysreg::far_el2());
            if vm.is_device(ipa) {
                counters.count(ExitReason::S2Mmio);
            }
            if !crate::gic::runtime::mmio(vm, vcpu, frame, esr, ipa) {
                abort(vm, vcpu, frame, esr, ipa, "data abort");
            }
        }
        ExceptionClass::InstrAbortLower => {
            counters.count(ExitReason::Iabt);
            let ipa = hpfar_to_ipa(sysreg::hpfar_el2(), sysreg::far_el2());
            abort(vm, vcpu, frame, esr, ipa, "instruction fetch");
        }
        ExceptionClass::Wfx => {
            counters.count(ExitReason::Wfx);
            crate::gic::runtime::idle();
            frame.elr += 4;
        }
        _ => {
            counters.count(ExitReason::Other);
            static LIMIT: RateLimit = RateLimit::new();
            if let Some(n) = LIMIT.allow() {
                log::warn!(
                    "VM {} vCPU {vcpu}: unhandled {} at {:#x}: injecting UNDEF{}",
                    vm.name,
                    esr,
                    frame.elr,
                    suppressed_note(n)
                );
            }
            if inject_hw::undef(frame, esr).is_err() {
                report::guest_fault(&vm.name, vcpu, "unhandled exception class", frame, esr.0);
                end_vm(vm);
            }
        }
    }
}

/// A Stage-2 abort on an address the VM does not own: inject a synchronous external abort and
/// say so; a guest that faults at the same place again and again gets the full report and ends.
fn abort(vm: &'static Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr, ipa: u64, what: &str) {
    let pcpu = cpu::current();
    let repeats = {
        let mut last = LAST_ABORT[pcpu].lock();
        if last.0 == frame.elr && last.1 == esr.0 {
            last.2 += 1;
        } else {
            *last = (frame.elr, esr.0, 1);
        }
        last.2
    };
    if repeats >= ABORT_LOOP {
        report::guest_fault(&vm.name, vcpu, "the same abort keeps recurring after injection", frame, esr.0);
        end_vm(vm);
    }
    let owner = if vm.is_ram(ipa) {
        "RAM, with permissions that forbid it"
    } else if vm.is_device(ipa) {
        "a passthrough device, which is never executable"
    } else {
        "not owned by the VM"
    };
    // The same fault over and over is said twice; different ones are rate limited.
    static LIMIT: RateLimit = RateLimit::new();
    if repeats <= 2 && LIMIT.allow().is_some() {
        log::warn!(
            "VM {} vCPU {vcpu}: {what} at IPA {ipa:#x} ({owner}) from {:#x}: injecting a synchronous external abort ({}){}",
            vm.name,
            frame.elr,
            esr,
            if repeats == 2 { "; repeats of this fault are not logged" } else { "" }
        );
    }
    if inject_hw::abort(frame, esr, sysreg::far_el2()).is_err() {
        report::guest_fault(&vm.name, vcpu, "cannot inject the abort", frame, esr.0);
        end_vm(vm);
    }
}

/// HVC or trapped SMC: PSCI, SMCCC, el2visor's vendor calls.
fn call(vm: &'static Vm, vcpu: usize, frame: &mut TrapFrame) {
    let fid = frame.x[0] as u32;
    let args = [frame.x[1], frame.x[2], frame.x[3]];
    let outcome = handle_call(fid, args, vcpu, &mut *vm.power.lock());
    match outcome {
        CallOutcome::Return(v) => frame.x[0] = v as u64,
        CallOutcome::ReturnRegs(r) => frame.x[..4].copy_from_slice(&r),
        CallOutcome::StartVcpu { index, entry, context_id } => {
            frame.x[0] = 0;
            run::request_start(vm, index, entry, context_id);
        }
        CallOutcome::StopVcpu => run::stop_this_vcpu(),
        CallOutcome::SystemOff => {
            log::info!("VM {}: PSCI SYSTEM_OFF from vCPU {vcpu}", vm.name);
            end_vm(vm);
        }
        CallOutcome::SystemReset => {
            log::info!("VM {}: PSCI SYSTEM_RESET from vCPU {vcpu}", vm.name);
            run::reset_vm(vm, vcpu);
        }
        CallOutcome::Suspend => {
            // A standby: wait as for a WFI, waking for an interrupt already pending for the vCPU.
            frame.x[0] = 0;
            crate::gic::runtime::idle();
        }
        CallOutcome::Vendor(v) => frame.x[0] = vendor(vcpu, v),
    }
}

fn vendor(_vcpu: usize, call: VendorCall) -> u64 {
    let pcpu = cpu::current();
    match call {
        VendorCall::AtS12e1r { va } => at(va, false),
        VendorCall::AtS12e1w { va } => at(va, true),
        VendorCall::TrapCount { counter, .. } => match counter {
            TrapCounter::FastTvmWrites => TVM_PERCPU[pcpu].fast_count.load(Ordering::Relaxed),
            TrapCounter::SlowTvmWrites => TVM_SLOW_COUNT[pcpu].load(Ordering::Relaxed),
        },
    }
}

/// Run AT S12E1R/W for the guest's VA with its EL1 context live, and return PAR_EL1, keeping the
/// guest's own PAR_EL1.
fn at(va: u64, write: bool) -> u64 {
    let saved = sysreg::par_el1();
    // SAFETY: address translation instructions only update PAR_EL1, restored below.
    unsafe {
        if write {
            core::arch::asm!("at s12e1w, {}", "isb", in(reg) va, options(nostack));
        } else {
            core::arch::asm!("at s12e1r, {}", "isb", in(reg) va, options(nostack));
        }
    }
    let par = sysreg::par_el1();
    sysreg::set_par_el1(saved);
    par
}

fn write_tvm(reg: TvmReg, v: u64) {
    match reg {
        TvmReg::Sctlr => sysreg::set_sctlr_el1(v),
        TvmReg::Ttbr0 => sysreg::set_ttbr0_el1(v),
        TvmReg::Ttbr1 => sysreg::set_ttbr1_el1(v),
        TvmReg::Tcr => sysreg::set_tcr_el1(v),
        TvmReg::Esr => sysreg::set_esr_el1(v),
        TvmReg::Far => sysreg::set_far_el1(v),
        TvmReg::Afsr0 => sysreg::set_afsr0_el1(v),
        TvmReg::Afsr1 => sysreg::set_afsr1_el1(v),
        TvmReg::Mair => sysreg::set_mair_el1(v),
        TvmReg::Amair => sysreg::set_amair_el1(v),
        TvmReg::Contextidr => sysreg::set_contextidr_el1(v),
    }
}

/// A trapped MSR/MRS: the TVM slow path, ACTLR_EL1, the GICv3 SGI register; anything else is
/// UNDEFINED for the guest, and the log names the register.
fn sysreg_access(vm: &'static Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr) {
    let Some(acc) = esr.sysreg() else {
        // Not reachable for EC 0x18, but a trap must never be left to repeat silently.
        let _ = inject_hw::undef(frame, esr);
        return;
    };
    let rt = acc.rt as usize;
    if let (false, Some(reg)) = (acc.read, acc.reg.tvm_register()) {
        let raw = frame.reg(rt);
        if reg == TvmReg::Mair {
            TVM_PERCPU[cpu::current()].guest_mair.store(raw, Ordering::Relaxed);
        }
        write_tvm(reg, coherency::tvm_write_value(vm.setting.mode, reg, raw));
        TVM_SLOW_COUNT[cpu::current()].fetch_add(1, Ordering::Relaxed);
        frame.elr += 4;
        return;
    }
    if acc.reg == crate::trap::sysreg::SysReg::new(3, 0, 1, 0, 1) {
        if acc.read {
            frame.set_reg(rt, sysreg::actlr_el1());
        } else {
            log::debug!("VM {} vCPU {vcpu}: write to ACTLR_EL1 ({:#x}) ignored", vm.name, frame.reg(rt));
        }
        frame.elr += 4;
        return;
    }
    if crate::gic::runtime::sysreg(vm, vcpu, frame, &acc) {
        frame.elr += 4;
        return;
    }
    static LIMIT: RateLimit = RateLimit::new();
    if let Some(n) = LIMIT.allow() {
        log::warn!(
            "VM {} vCPU {vcpu}: {} of {} at {:#x} is not emulated: injecting UNDEF{}",
            vm.name,
            if acc.read { "read" } else { "write" },
            acc.reg,
            frame.elr,
            suppressed_note(n)
        );
    }
    if inject_hw::undef(frame, esr).is_err() {
        report::guest_fault(&vm.name, vcpu, "cannot inject UNDEF", frame, esr.0);
        end_vm(vm);
    }
}

/// The VM is over (SYSTEM_OFF, or a fault it cannot survive): print the STATS line and power the
/// machine off (PSCI SYSTEM_OFF) where the platform can, else say `el2visor: halted` and park.
pub fn end_vm(vm: &Vm) -> ! {
    vm.state.store(OFF, Ordering::Release);
    // Every other vCPU leaves its guest and parks when it sees the VM is off.
    let me = vm.vcpu_on(cpu::current());
    for v in (0..vm.vcpus.len()).filter(|v| Some(*v) != me) {
        crate::gic::runtime::kick_vcpu(v);
    }
    cpu::send_event();
    crate::println!("{}", totals());
    crate::boot::power_off()
}

/// Exits counted on this CPU (for the probe's counters and tests).
pub fn counters_here() -> &'static ExitCounters {
    &COUNTERS[cpu::current()]
}

