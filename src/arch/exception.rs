//! The Rust side of the EL2 vector table (boot/vectors.S): the trap frame, the hypervisor's own
//! fault report, and the hand-off of guest exceptions to the trap dispatcher.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{cpu, sysreg};

pub use super::frame::{TrapFrame, SPSR_EL1H_DAIF_MASKED};

/// What kind of vector entry was taken (matches KIND_* in vectors.S).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    Sync = 0,
    Irq = 1,
    Fiq = 2,
    SError = 3,
}

impl Kind {
    fn from_raw(v: u64) -> Self {
        match v {
            0 => Kind::Sync,
            1 => Kind::Irq,
            2 => Kind::Fiq,
            _ => Kind::SError,
        }
    }
}

/// Handler for exceptions from the guests, installed by the run loop (`vcpu`): it returns when
/// the guest may resume with the frame as it left it.
pub type LowerHandler = fn(&mut TrapFrame, Kind);
/// Handler for exceptions el2visor takes itself (`fatal`): it never returns.
pub type FaultHandler = fn(&TrapFrame, Kind, u64, u64) -> !;

static LOWER_HANDLER: spin::Once<LowerHandler> = spin::Once::new();
static FAULT_HANDLER: spin::Once<FaultHandler> = spin::Once::new();

/// Install the handler for exceptions taken from EL1/EL0 (once, before any guest runs).
pub fn set_lower_handler(h: LowerHandler) {
    LOWER_HANDLER.call_once(|| h);
}

/// Install the report for el2visor's own faults (once, first thing at boot). The handlers are
/// registered rather than called by name so that this layer depends on nothing above it.
pub fn set_fault_handler(h: FaultHandler) {
    FAULT_HANDLER.call_once(|| h);
}

/// When set, a synchronous external abort taken by el2visor itself skips the faulting
/// instruction instead of being fatal (used only to probe fallback console addresses when
/// the device tree is unusable).
pub static PROBING: AtomicBool = AtomicBool::new(false);

fn fault(frame: &TrapFrame, kind: Kind, esr: u64, far: u64) -> ! {
    match FAULT_HANDLER.get() {
        Some(h) => h(frame, kind, esr, far),
        None => cpu::park(),
    }
}

#[no_mangle]
extern "C" fn el2_exception(frame: &mut TrapFrame, kind: u64) {
    let kind = Kind::from_raw(kind);
    let esr = sysreg::esr_el2();
    if PROBING.load(Ordering::Relaxed) && kind == Kind::Sync && (esr >> 26) == 0x25 {
        frame.elr += 4;
        return;
    }
    // A guest's SError collected right after its exit (see `serror`): not el2visor's fault.
    if kind == Kind::SError && super::serror::record_in_window(esr) {
        return;
    }
    fault(frame, kind, esr, sysreg::far_el2());
}

#[no_mangle]
extern "C" fn lower_exception(frame: &mut TrapFrame, kind: u64) {
    let kind = Kind::from_raw(kind);
    match LOWER_HANDLER.get() {
        Some(h) => h(frame, kind),
        None => fault(frame, kind, sysreg::esr_el2(), sysreg::far_el2()),
    }
}

#[no_mangle]
extern "C" fn lower_exception_aarch32(frame: &mut TrapFrame, kind: u64) {
    fault(frame, Kind::from_raw(kind), sysreg::esr_el2(), sysreg::far_el2());
}
