//! The one dispatcher for exceptions from guests: every lower-EL exception that the assembly
//! fast path did not answer comes here with its saved frame, is counted, and goes to a small
//! handler: PSCI/SMCCC and el2visor's vendor calls (HVC, trapped SMC), trapped system registers
//! (the TVM slow path, ACTLR, the GICv3 SGI register), Stage-2 aborts (emulated MMIO, or an
//! access to an address the VM does not own, which gets a synchronous external abort and a log
//! line; external aborts and other unusual fault codes go to `trap::s2fault`), WFx, and
//! everything else an UNDEF plus a log line.
//!
//! A physical SError the guest caused becomes a virtual SError for it (`trap::serror`), never the
//! end of the VM. The "same abort keeps recurring" detector counts an abort only when its
//! instruction, syndrome and address all repeat with no other exit in between.
//!
//! Handlers change the guest's frame and return an [`Exit`]: what the vCPU must do next. Only the
//! run loop (`vcpu`) acts on it; nothing here stops a CPU, resets a VM or powers anything off.

use crate::arch::cpu;
use crate::arch::exception::{Kind, TrapFrame};
use crate::arch::frame::{aarch32_condition_passed, SPSR_AARCH32};
use crate::arch::{sysreg, translate};
use crate::cmdline::TraceClass;
use crate::gic::{lrs, virt};
use crate::percpu::stats::{ExitCounters, ExitReason};
use crate::trap::esr::{hpfar_to_ipa, hpfar_valid, Esr, ExceptionClass};
use crate::trap::wfx::{self as wfx_rule, WfxAction};
use crate::trap::serror::{self as serror_rule, SErrorAction};
use crate::trap::ratelimit::{suppressed_note, RateLimit};
use crate::trap::sysreg::SysReg;
use crate::trap::{calls, inject_hw, mmio, report, s2fault, tvm};
use crate::vm::instance::Vm;

/// What the vCPU does after an exit; the run loop acts on it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Return to the guest with the frame as the handler left it.
    Resume,
    /// Wait at EL2 until an interrupt is pending for the vCPU (a trapped WFI, a PSCI standby),
    /// or, for a trapped WFIT, until the virtual counter (CNTVCT_EL0) reaches the deadline; then
    /// resume.
    Idle { deadline: Option<u64> },
    /// The vCPU turned itself off (PSCI CPU_OFF): leave the guest until a CPU_ON.
    StopVcpu,
    /// PSCI SYSTEM_RESET (`call`: the vCPU's HVC or SMC, which its frame has stepped over), or
    /// a crash restart: restart the VM from its pristine images.
    ResetVm { call: bool },
    /// The VM is over: PSCI SYSTEM_OFF, or a fault it cannot survive (already reported).
    VmOff,
    /// A debug exception routed to EL2 (MDCR_EL2.TDE, only while GDB is attached), or a guest
    /// access to a debug register trapped meanwhile: for the GDB stub (`debug`), with ESR_EL2.
    Debug(DebugEvent, u64),
    /// Take a snapshot of the VM (`vm::snapshot`) at this instruction boundary: asked by the
    /// vCPU's vendor call (`call`: its x0 is already 0), or its console printed `snapshot_on=`'s
    /// text. `log_dirty`: track the pages written from now on.
    Snapshot { log_dirty: bool, call: bool },
    /// Restore the VM's snapshot (a vendor call; a snapshot is taken).
    Restore(crate::cmdline::RestoreKind),
}

/// What a debug exit was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugEvent {
    /// A hardware breakpoint (DBGBCR/DBGBVR) matched.
    Breakpoint,
    /// A software step completed.
    Step,
    /// A watchpoint matched an access to `far` (a write when `write`).
    Watchpoint { far: u64, write: bool },
    /// A BRK instruction: the debugger's, or the guest's own (then injected back).
    Brk,
    /// MRS/MSR of a debug register (op0 = 2), trapped by MDCR_EL2.TDA/TDOSA/TDRA.
    RegAccess,
}

/// A guest that takes the same abort (same instruction, syndrome and address) this many times in
/// a row after the injected abort, with no other exit in between, is stuck, and gets a report
/// instead of an endless loop.
pub const ABORT_LOOP: u32 = 16;

/// Handle one exception from vCPU `vcpu` of `vm`, taken on this CPU.
pub fn handle(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, kind: Kind) -> Exit {
    let counters = &cpu::this().exits;
    if !is_stage2_abort(kind) {
        // Anything but an abort is progress: the abort detector starts afresh.
        cpu::this().forget_aborts();
    }
    match kind {
        Kind::Sync => sync(vm, vcpu, frame, counters),
        Kind::Irq | Kind::Fiq => {
            counters.count(ExitReason::Irq);
            virt::on_irq(vm.vgic.as_ref(), &vm.irqs, vcpu, vm.is_running(), &vm.name);
            Exit::Resume
        }
        Kind::SError => {
            counters.count(ExitReason::Other);
            guest_serror(vm, vcpu, frame.elr, sysreg::esr_el2());
            Exit::Resume
        }
    }
}

/// Whether this exit is a Stage-2 abort (the only exits that do not clear the abort history).
fn is_stage2_abort(kind: Kind) -> bool {
    kind == Kind::Sync
        && matches!(Esr(sysreg::esr_el2()).class(), ExceptionClass::DataAbortLower | ExceptionClass::InstrAbortLower)
}

/// A physical SError the guest caused (taken from it, or found pending right after its exit),
/// with syndrome `esr`: a virtual SError for the guest, which takes it at its own SError vector
/// when it unmasks them; the VM and the machine go on.
pub fn guest_serror(vm: &Vm, vcpu: usize, elr: u64, esr: u64) {
    let action = serror_rule::action(esr, crate::arch::serror::has_ras());
    static LIMIT: RateLimit = RateLimit::new();
    if let Some(n) = LIMIT.allow(vm.slot) {
        log::warn!(
            "VM {} vCPU {vcpu}: SError (syndrome {esr:#x}) from the guest near {elr:#x}: {}{}",
            vm.name,
            match action {
                SErrorAction::Inject => "injecting a virtual SError",
                SErrorAction::Ignore => "corrected or restartable, nothing to do",
            },
            suppressed_note(n)
        );
    }
    if action == SErrorAction::Inject {
        crate::arch::serror::inject_virtual(serror_rule::VIRTUAL_SYNDROME);
    }
}

fn sync(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, counters: &ExitCounters) -> Exit {
    let esr = Esr(sysreg::esr_el2());
    // A conditional AArch32 instruction that failed its condition but trapped all the same: it
    // does nothing, so it is neither emulated nor refused.
    if !aarch32_condition_passed(esr.0, frame.spsr) {
        counters.count(if esr.class() == ExceptionClass::Wfx { ExitReason::Wfx } else { ExitReason::Other });
        frame.skip_instruction(esr.0);
        return Exit::Resume;
    }
    match esr.class() {
        ExceptionClass::Hvc64 => {
            counters.count(ExitReason::Hvc);
            // ELR_EL2 already points past an HVC.
            calls::smccc_or_reserved(vm, vcpu, frame, esr)
        }
        ExceptionClass::Smc64 => {
            counters.count(ExitReason::Smc);
            frame.skip_instruction(esr.0);
            calls::smccc_or_reserved(vm, vcpu, frame, esr)
        }
        ExceptionClass::SysReg => {
            counters.count(ExitReason::Sysreg);
            sysreg_access(vm, vcpu, frame, esr)
        }
        ExceptionClass::DataAbortLower => {
            counters.count(ExitReason::Dabt);
            if let Some(exit) = s2fault::unusual(vm, vcpu, frame, esr) {
                return exit;
            }
            let Some(ipa) = fault_ipa(esr) else { return untranslatable(vm, vcpu, frame, esr) };
            if vm.is_device(ipa) {
                counters.count(ExitReason::S2Mmio);
            }
            // A first write to an image span whose pristine copy is still to make.
            if vm.pristine_fault(ipa) {
                cpu::this().last_abort.lock().clear();
                return Exit::Resume;
            }
            // ISS.WnR (bit 6): a write.
            if snapshot_region_fault(vm, ipa, esr.iss() & (1 << 6) != 0) {
                return Exit::Resume;
            }
            let region = vm.mmio.find(ipa);
            if crate::trace::on(TraceClass::S2fault) {
                trace_s2fault(vm, vcpu, frame.elr, esr, ipa, region.map(|r| r.name));
            }
            // ISS.CM (bit 8): a cache maintenance or address translation instruction by VA on an
            // emulated device or on nothing at all (not on its stage-1 walk, ISS.S1PTW: that is an
            // abort like any other). On Device memory it would complete without
            // effect, and there is no cache line el2visor holds for it: stepped over, as KVM
            // does, not answered with an external abort.
            if esr.data_abort().is_some_and(|d| d.cm && !d.s1ptw) {
                frame.skip_instruction(esr.0);
                return Exit::Resume;
            }
            match region {
                Some(region) => match mmio::emulate(vm, vcpu, frame, esr, region, ipa) {
                    Ok(()) => {
                        cpu::this().forget_aborts();
                        // A pvpanic write, or the panic line on the VM's console; else the
                        // console may have printed `snapshot_on=`'s text.
                        match crate::trap::crash::check(vm, vcpu, frame) {
                            None | Some(crate::trap::crash::After::Resume) => console_trigger(vm),
                            Some(crate::trap::crash::After::ResetVm) => Exit::ResetVm { call: false },
                            Some(crate::trap::crash::After::VmOff) => Exit::VmOff,
                        }
                    }
                    Err(mmio::NotEmulated) => abort(vm, vcpu, frame, esr, ipa, "data abort"),
                },
                None => abort(vm, vcpu, frame, esr, ipa, "data abort"),
            }
        }
        ExceptionClass::InstrAbortLower => {
            counters.count(ExitReason::Iabt);
            if let Some(exit) = s2fault::unusual(vm, vcpu, frame, esr) {
                return exit;
            }
            let Some(ipa) = fault_ipa(esr) else { return untranslatable(vm, vcpu, frame, esr) };
            // A fetch while a lazy pristine copy remapped its span (break-before-make).
            if vm.pristine_fault(ipa) {
                cpu::this().last_abort.lock().clear();
                return Exit::Resume;
            }
            if snapshot_region_fault(vm, ipa, false) {
                return Exit::Resume;
            }
            if crate::trace::on(TraceClass::S2fault) {
                trace_s2fault(vm, vcpu, frame.elr, esr, ipa, None);
            }
            abort(vm, vcpu, frame, esr, ipa, "instruction fetch")
        }
        ExceptionClass::BreakpointLower => debug(counters, DebugEvent::Breakpoint, esr),
        ExceptionClass::StepLower => debug(counters, DebugEvent::Step, esr),
        ExceptionClass::WatchpointLower => {
            // ISS.WnR (bit 6): the access was a write.
            debug(counters, DebugEvent::Watchpoint { far: sysreg::far_el2(), write: esr.iss() & (1 << 6) != 0 }, esr)
        }
        ExceptionClass::Brk64 => debug(counters, DebugEvent::Brk, esr),
        ExceptionClass::Wfx => {
            counters.count(ExitReason::Wfx);
            frame.skip_instruction(esr.0);
            wfx(vm, frame, esr)
        }
        _ => {
            counters.count(ExitReason::Other);
            static LIMIT: RateLimit = RateLimit::new();
            if let Some(n) = LIMIT.allow(vm.slot) {
                log::warn!(
                    "VM {} vCPU {vcpu}: unhandled {} at {:#x}: injecting UNDEF{}",
                    vm.name,
                    esr,
                    frame.elr,
                    suppressed_note(n)
                );
            }
            undef(vm, vcpu, frame, esr, "unhandled exception class")
        }
    }
}

/// `trace=s2fault`: one Stage-2 abort, and whether an emulated device takes it.
fn trace_s2fault(vm: &Vm, vcpu: usize, pc: u64, esr: Esr, ipa: u64, region: Option<&str>) {
    crate::trace::event(
        TraceClass::S2fault,
        &vm.name,
        vcpu,
        pc,
        format_args!(
            "IPA {ipa:#x} VA {:#x} {esr}: {}",
            sysreg::far_el2(),
            region.unwrap_or("no emulated device there: the guest gets a synchronous external abort")
        ),
    );
}

fn debug(counters: &ExitCounters, event: DebugEvent, esr: Esr) -> Exit {
    counters.count(ExitReason::Other);
    Exit::Debug(event, esr.0)
}

/// A Stage-2 abort in the VM's RAM that a snapshot region explains (a lazy restore's missing
/// page, a log-dirty first write): resolved, the guest runs the access again.
fn snapshot_region_fault(vm: &Vm, ipa: u64, write: bool) -> bool {
    if vm.snapshot.is_none() || !vm.is_ram(ipa) {
        return false;
    }
    let done = crate::vm::snapshot::stage2_fault(vm, ipa, write);
    if done {
        cpu::this().forget_aborts();
    }
    done
}

/// After an emulated access: the VM's console printed `snapshot_on=`'s text, so the snapshot is
/// taken here, at this instruction boundary.
fn console_trigger(vm: &Vm) -> Exit {
    match &vm.snapshot {
        Some(s) if s.watch.as_ref().is_some_and(|w| w.take_seen()) => {
            Exit::Snapshot { log_dirty: s.options.kind == crate::cmdline::RestoreKind::DirtyOnly, call: false }
        }
        _ => Exit::Resume,
    }
}

/// Inject an UNDEF for the trapped instruction; a guest that cannot take one is reported and ends.
fn undef(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr, why: &str) -> Exit {
    match inject_hw::undef(frame, esr) {
        Ok(()) => Exit::Resume,
        Err(_) => {
            report::guest_fault(vm, vcpu, why, frame, esr.0);
            Exit::VmOff
        }
    }
}

/// A trapped WFI or WFIT (see `trap::wfx`), after the step over it. On a CPU with FEAT_WFxT the
/// instruction is read back through the guest's translation, for implementations that report a
/// WFIT as a WFI.
fn wfx(vm: &Vm, frame: &TrapFrame, esr: Esr) -> Exit {
    let Some(w) = esr.wfx() else { return Exit::Resume };
    // WFIT is an A64 instruction: nothing to read back after an AArch32 WFI.
    let wfxt = sysreg::id_aa64isar2_el1() & 0xf >= 2 && frame.spsr & SPSR_AARCH32 == 0;
    let in_ram = |pa: u64| vm.ram.iter().any(|r| pa >= r.pa.raw() && pa - r.pa.raw() < r.size);
    let insn = if wfxt { translate::guest_insn(frame.elr.wrapping_sub(4), in_ram) } else { None };
    match wfx_rule::action(w, guest_cntvct(), |n| frame.reg(n as usize), insn) {
        WfxAction::Resume => Exit::Resume,
        WfxAction::Idle { deadline } => Exit::Idle { deadline },
    }
}

/// The guest's virtual counter (CNTVOFF_EL2 is 0 for every VM, so the physical count).
fn guest_cntvct() -> u64 {
    sysreg::cntpct_el0()
}

/// A permission fault whose address the guest's stage 1 does not translate now ([`fault_ipa`]):
/// the guest retries the access, which normally finds its tables settled. The same fault again
/// and again (a translation AT S1E1R cannot make, such as an EL1 permission overlay the access
/// passed) is counted with the injected aborts and ends the VM with a report, not a silent loop.
fn untranslatable(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr) -> Exit {
    let stuck = "a permission fault the guest's own stage 1 does not translate keeps recurring";
    match count_abort(vm, vcpu, frame, esr, u64::MAX, stuck) {
        Ok(_) => Exit::Resume,
        Err(exit) => exit,
    }
}

/// Count an abort of the guest's instruction for the loop detector, `addr` the address it
/// faulted on (an IPA or a VA, or `u64::MAX` for none): how many times in a row the same one
/// (instruction, syndrome, address) came, with nothing else in between; `Err(Exit::VmOff)` once
/// that reaches [`ABORT_LOOP`], after the full report saying `stuck`.
pub(crate) fn count_abort(vm: &Vm, vcpu: usize, frame: &TrapFrame, esr: Esr, addr: u64, stuck: &str) -> Result<u32, Exit> {
    let repeats = cpu::this().record_abort(frame.elr, esr.0, addr);
    if repeats >= ABORT_LOOP {
        report::guest_fault(vm, vcpu, stuck, frame, esr.0);
        return Err(Exit::VmOff);
    }
    Ok(repeats)
}

/// After an abort was injected (`done`): the guest resumes at its vector, or, when it could not
/// take one, the VM ends with the full report.
pub(crate) fn injected(vm: &Vm, vcpu: usize, frame: &TrapFrame, esr: Esr, done: Result<(), &'static str>) -> Exit {
    match done {
        Ok(()) => Exit::Resume,
        Err(_) => {
            report::guest_fault(vm, vcpu, "cannot inject the abort", frame, esr.0);
            Exit::VmOff
        }
    }
}

/// A Stage-2 abort on an address the VM does not own: inject a synchronous external abort and
/// say so; a guest that takes the very same abort (instruction, syndrome, address) again and
/// again with nothing else in between gets the full report and ends.
fn abort(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr, ipa: u64, what: &str) -> Exit {
    let repeats = match count_abort(vm, vcpu, frame, esr, ipa, "the same abort keeps recurring after injection") {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let owner = if vm.is_ram(ipa) {
        "RAM, with permissions that forbid it"
    } else if vm.is_device(ipa) {
        "a passthrough device, which is never executable"
    } else {
        "not owned by the VM"
    };
    // The same fault over and over is said twice; different ones are rate limited.
    static LIMIT: RateLimit = RateLimit::new();
    if repeats <= 2 && LIMIT.allow(vm.slot).is_some() {
        log::warn!(
            "VM {} vCPU {vcpu}: {what} at IPA {ipa:#x} ({owner}) from {:#x}: injecting a synchronous external abort ({}){}",
            vm.name,
            frame.elr,
            esr,
            if repeats == 2 { "; repeats of this fault are not logged" } else { "" }
        );
    }
    let done = inject_hw::abort(frame, esr, sysreg::far_el2());
    injected(vm, vcpu, frame, esr, done)
}

/// ACTLR_EL1 (trapped by HCR_EL2.TACR).
const ACTLR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 1);
/// ICC_SGI1R_EL1 (GICv3 SGIs; trapped while the virtual CPU interface is in use), and the
/// two that send Group 0 SGIs, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1 (trapped likewise).
const ICC_SGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 5);
const ICC_ASGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 6);
const ICC_SGI0R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 7);

/// The IPA a Stage-2 abort with syndrome `esr` faulted on: HPFAR_EL2 where the architecture
/// defines it, else (a permission fault of the access itself: a write to a read-only pristine
/// span or log-dirty page) the guest's own stage-1 translation of FAR_EL2, with its EL1 context
/// still live. `None` when that translation fails now (another vCPU changed the guest's tables
/// since the access): the guest retries it, as with KVM ([`untranslatable`]).
fn fault_ipa(esr: Esr) -> Option<u64> {
    let far = sysreg::far_el2();
    if hpfar_valid(esr.0) {
        return Some(hpfar_to_ipa(sysreg::hpfar_el2(), far));
    }
    crate::trap::par::output_address(crate::arch::translate::at_s1e1r(far), far)
}

/// A trapped MSR/MRS: the TVM slow path (every TVM register, written with the mode's rewrite, or
/// read), ACTLR_EL1, the GICv3 SGI register; anything else is UNDEFINED for the guest, and the
/// log names the register.
fn sysreg_access(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr) -> Exit {
    let Some(acc) = esr.sysreg() else {
        // Not reachable for EC 0x18, but a trap must never be left to repeat silently.
        return undef(vm, vcpu, frame, esr, "cannot inject UNDEF");
    };
    let rt = acc.rt as usize;
    if crate::trace::on(TraceClass::Sysreg) {
        crate::trace::event(
            TraceClass::Sysreg,
            &vm.name,
            vcpu,
            frame.elr,
            format_args!("{} {} x{rt} ({:#x})", if acc.read { "read of" } else { "write to" }, acc.reg, frame.reg(rt)),
        );
    }
    if acc.reg.op0 == 2 {
        // The debug registers trap only while the GDB stub owns them.
        return Exit::Debug(DebugEvent::RegAccess, esr.0);
    }
    if (acc.reg.op0, acc.reg.op1, acc.reg.crn) == (3, 0, 12) && vm.irqs.get(vcpu).is_some_and(lrs::icc_trap) {
        // The virtual GIC trapped the CPU interface for a moment (see gic::lrs): run it again.
        return Exit::Resume;
    }
    if let Some(reg) = acc.reg.tvm_register() {
        if acc.read {
            frame.set_reg(rt, tvm::read(reg));
        } else {
            tvm::write(vm.setting.mode, reg, frame.reg(rt));
        }
        frame.skip_instruction(esr.0);
        return Exit::Resume;
    }
    if acc.reg == ACTLR_EL1 {
        if acc.read {
            frame.set_reg(rt, sysreg::actlr_el1());
        } else {
            log::debug!("VM {} vCPU {vcpu}: write to ACTLR_EL1 ({:#x}) ignored", vm.name, frame.reg(rt));
        }
        frame.skip_instruction(esr.0);
        return Exit::Resume;
    }
    if [ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1].contains(&acc.reg) && !acc.read {
        if let Some(vg) = &vm.vgic {
            if let Err(e) = vg.sgi1r_write(&vm.irqs, vcpu, frame.reg(rt), acc.reg != ICC_SGI1R_EL1) {
                log::warn!("VM {} vCPU {vcpu}: {}: {e}", vm.name, acc.reg);
            }
            frame.skip_instruction(esr.0);
            return Exit::Resume;
        }
    }
    static LIMIT: RateLimit = RateLimit::new();
    if let Some(n) = LIMIT.allow(vm.slot) {
        log::warn!(
            "VM {} vCPU {vcpu}: {} of {} at {:#x} is not emulated: injecting UNDEF{}",
            vm.name,
            if acc.read { "read" } else { "write" },
            acc.reg,
            frame.elr,
            suppressed_note(n)
        );
    }
    undef(vm, vcpu, frame, esr, "cannot inject UNDEF")
}
