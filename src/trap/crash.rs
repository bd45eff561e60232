//! A guest that panicked: it wrote PANICKED to its pvpanic device, or printed Linux's panic
//! line on its virtual console. After every emulated MMIO access the dispatcher asks
//! [`check`]; on a panic el2visor prints `el2visor: VM <name> panicked (<how>)`, the guest's
//! state (registers, its last exception's ESR_EL1/FAR_EL1 decoded, a stage-1 walk of FAR_EL1,
//! ELR_EL1 and the PC), the last 4 KiB its virtual UART printed, and applies `on_crash=`
//! (`vm::crash`): report (the guest goes on), restart ([`After::ResetVm`]), halt
//! ([`After::VmOff`]) or debug (the VM is held for a debugger, `vm::debug_hold`).

use core::sync::atomic::Ordering;

use crate::arch::exception::TrapFrame;
use crate::arch::{sysreg, translate};
use crate::cmdline::CrashPolicy;
use crate::logging;
use crate::trap::esr::Esr;
use crate::trap::par;
use crate::vm::crash::{self, PVPANIC_CRASH_LOADED, PVPANIC_PANICKED, PVPANIC_SHUTDOWN};
use crate::vm::debug_hold::HoldReason;
use crate::vm::instance::Vm;

/// What the vCPU does after a panic (the dispatcher makes it its `Exit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Back to the guest (on_crash=report; on_crash=debug, where the run loop then holds it).
    Resume,
    /// Reset the VM (on_crash=restart).
    ResetVm,
    /// End the VM (on_crash=halt).
    VmOff,
}

/// After an emulated access by vCPU `vcpu`: what the guest reported, if anything, and what the
/// vCPU does next (`None`: carry on as usual).
pub fn check(vm: &Vm, vcpu: usize, frame: &TrapFrame) -> Option<After> {
    let events = vm.crash.events.swap(0, Ordering::AcqRel);
    let console = vm.vuart.as_ref().is_some_and(|u| u.take_panic_seen());
    if events == 0 && !console {
        return None;
    }
    if events & PVPANIC_SHUTDOWN != 0 {
        log::info!("VM {}: pvpanic: the guest reports a shutdown", vm.name);
    }
    let how = if events & PVPANIC_PANICKED != 0 {
        "pvpanic PANICKED"
    } else if events & PVPANIC_CRASH_LOADED != 0 {
        // A crash kernel takes over: it runs, and says what happened itself.
        logging::print_line(format_args!("el2visor: VM {} panicked; its crash kernel takes over (pvpanic CRASH_LOADED)", vm.name));
        vm.crash.panicked.store(true, Ordering::Relaxed);
        return None;
    } else if console {
        "Linux's panic line on its console"
    } else {
        return None;
    };
    if vm.crash.panicked.swap(true, Ordering::AcqRel) {
        // Already reported in this run (pvpanic after the console line, or again).
        return None;
    }
    logging::print_line(format_args!("el2visor: VM {} panicked ({how})", vm.name));
    guest_state(vm, vcpu, frame);
    console_tail(vm);
    Some(apply(vm, vcpu))
}

/// `on_crash=` for a VM that just panicked.
fn apply(vm: &Vm, vcpu: usize) -> After {
    let p = crash::policy();
    let what = match p {
        CrashPolicy::Report => "the guest goes on (its own reboot, if it makes one, counts towards crash_restarts=)",
        CrashPolicy::Restart => "restarting it",
        CrashPolicy::Halt => "halting it",
        CrashPolicy::Debug => "stopping its vCPUs; they wait at EL2 for a debugger",
    };
    logging::print_line(format_args!("el2visor: VM {}: on_crash={}: {what}", vm.name, p.name()));
    match p {
        CrashPolicy::Report => After::Resume,
        CrashPolicy::Restart => After::ResetVm,
        CrashPolicy::Halt => After::VmOff,
        CrashPolicy::Debug => {
            if vm.crash.hold.hold(HoldReason::Crash) {
                for v in (0..vm.vcpus.len()).filter(|&v| v != vcpu) {
                    vm.kick(v);
                }
            }
            logging::print_line(format_args!("el2visor: VM {} stopped (on_crash=debug), waiting for a debugger", vm.name));
            After::Resume
        }
    }
}

/// The guest's state as vCPU `vcpu` left it: where it is, its registers, its last exception at
/// EL1 and how its own stage 1 maps the addresses of that exception.
pub fn guest_state(vm: &Vm, vcpu: usize, frame: &TrapFrame) {
    logging::print_line(format_args!(
        "  vCPU {vcpu} pc {:#x} SPSR {:#x} SP_EL1 {:#x} SP_EL0 {:#x}",
        frame.elr,
        frame.spsr,
        sysreg::sp_el1(),
        sysreg::sp_el0()
    ));
    logging::dump_gprs(&frame.x, "  ", true);
    let (esr, far, elr) = (sysreg::esr_el1(), sysreg::far_el1(), sysreg::elr_el1());
    if esr == 0 {
        logging::print_line(format_args!("  the guest's last exception: none (ESR_EL1 0, as el2visor starts a vCPU)"));
    } else {
        logging::print_line(format_args!("  the guest's last exception: ESR_EL1 {esr:#010x}: {}", Esr(esr)));
    }
    logging::print_line(format_args!(
        "  FAR_EL1 {far:#x} ELR_EL1 {elr:#x} SPSR_EL1 {:#x} VBAR_EL1 {:#x}",
        sysreg::spsr_el1(),
        sysreg::vbar_el1()
    ));
    let (mair, sctlr, tcr) = crate::trap::report::guest_wrote(vm);
    logging::print_line(format_args!(
        "  SCTLR_EL1 {sctlr:#x} TCR_EL1 {tcr:#x} TTBR0_EL1 {:#x} TTBR1_EL1 {:#x} MAIR_EL1 {mair:#x}",
        sysreg::ttbr0_el1(),
        sysreg::ttbr1_el1()
    ));
    if sctlr & 1 == 0 {
        logging::print_line(format_args!("  the guest's MMU is off: its addresses are guest-physical"));
    }
    for (what, va) in [("FAR_EL1", far), ("ELR_EL1", elr), ("pc", frame.elr)] {
        let s1 = translate::at_s1e1r(va);
        let s12 = translate::at_s12e1(va, false);
        logging::print_line(format_args!(
            "  {what} {va:#x}: stage 1 {}; stage 1+2 {}",
            par::describe(va, s1),
            par::describe(va, par::guest_par(&vm.ram, s12))
        ));
    }
}

/// The last bytes the VM printed on its virtual UART, a line at a time.
fn console_tail(vm: &Vm) {
    let Some(u) = &vm.vuart else {
        logging::print_line(format_args!("  (VM {} has no virtual UART: its output is not kept)", vm.name));
        return;
    };
    let tail = u.tail();
    logging::print_line(format_args!("  the last {} bytes VM {} printed:", tail.len(), vm.name));
    for line in tail.split(|&b| b == b'\n') {
        let shown: alloc::string::String =
            line.iter().map(|&b| if b == b'\t' || (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
        logging::print_line(format_args!("  | {shown}"));
    }
}
