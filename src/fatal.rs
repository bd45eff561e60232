//! Fatal errors in el2visor itself: a panic or an exception taken at EL2. The first CPU to fail
//! prints the CPU id, the message, ESR/ELR/FAR and SPSR, and every CPU parks: a hypervisor that
//! has broken an invariant must not keep running guests.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::exception::{Kind, TrapFrame};
use crate::arch::{cpu, sysreg};
use crate::logging;

static FAILING: AtomicBool = AtomicBool::new(false);
static FAILED_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Make [`hypervisor_fault`] the report for el2visor's own exceptions (first thing at boot).
pub fn install() {
    crate::arch::exception::set_fault_handler(hypervisor_fault);
}

/// Whether some CPU has already failed (others park when they see it).
pub fn failed() -> bool {
    FAILING.load(Ordering::Relaxed)
}

/// Whether this CPU reports: only the first CPU to fail does, and only once. The report is
/// printed before the other CPUs are stopped, so nothing that stopping them does can hide it.
fn begin() -> bool {
    let me = cpu::current();
    // Set while this CPU is failing: a second fault here (in the report itself) parks at once.
    if cpu::this().in_fatal.swap(true, Ordering::AcqRel) {
        cpu::park();
    }
    let first = !FAILING.swap(true, Ordering::AcqRel);
    if first {
        FAILED_CPU.store(me, Ordering::Relaxed);
    }
    first
}

/// After the report: stop everyone, then this CPU.
fn finish() -> ! {
    if FAILED_CPU.load(Ordering::Relaxed) == cpu::current() {
        park_others();
    }
    cpu::park()
}

/// Make every other CPU stop: those running a guest take the kick SGI and park when they see
/// `failed()`; those waiting at EL2 wake from WFE and see it too.
fn park_others() {
    let me = cpu::current();
    for other in crate::percpu::online().filter(|c| c.index != me) {
        crate::gic::hw::kick_pcpu(other.index);
    }
    cpu::send_event();
}

/// An exception el2visor took at EL2 (or from a guest with no runtime to handle it).
pub fn hypervisor_fault(frame: &TrapFrame, kind: Kind, esr: u64, far: u64) -> ! {
    if begin() {
        logging::print_line_unlocked(format_args!(
            "el2visor: FATAL {:?} exception on cpu {}: ESR_EL2={:#010x} ({}) ELR_EL2={:#x} FAR_EL2={:#x} SPSR_EL2={:#x}",
            kind,
            cpu::current(),
            esr,
            crate::trap::esr::Esr(esr),
            frame.elr,
            far,
            frame.spsr
        ));
        logging::dump_gprs(&frame.x, "", false);
        logging::print_line_unlocked(format_args!("el2visor: all CPUs parked"));
    }
    finish()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if begin() {
        logging::print_line_unlocked(format_args!("el2visor: PANIC on cpu {}: {}", cpu::current(), info));
        logging::print_line_unlocked(format_args!(
            "el2visor: ESR_EL2={:#x} ELR_EL2={:#x} FAR_EL2={:#x}; all CPUs parked",
            sysreg::esr_el2(),
            sysreg::elr_el2(),
            sysreg::far_el2()
        ));
    }
    finish()
}
