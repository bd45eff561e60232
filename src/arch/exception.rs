//! The Rust side of the EL2 vector table (boot/vectors.S): the trap frame, the hypervisor's own
//! fault report, and the hand-off of guest exceptions to the trap dispatcher.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{cpu, sysreg};

/// General-purpose context saved by `SAVE_FRAME` in boot/vectors.S (same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    _pad: u64,
    pub elr: u64,
    pub spsr: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 0x110);

impl TrapFrame {
    /// A frame that enters EL1h at `pc` with DAIF masked and `x0 = arg0`.
    pub fn new_el1(pc: u64, arg0: u64) -> Self {
        let mut f = Self { elr: pc, spsr: SPSR_EL1H_DAIF_MASKED, ..Default::default() };
        f.x[0] = arg0;
        f
    }
    /// Register `n` as an instruction operand sees it (31 is XZR).
    pub fn reg(&self, n: usize) -> u64 {
        if n < 31 { self.x[n] } else { 0 }
    }
    /// Step over the trapped instruction: 4 bytes, or 2 where ESR_EL2.IL (bit 25) says it was a
    /// 16-bit one. The one place an emulated instruction's PC step is made.
    pub fn skip_instruction(&mut self, esr: u64) {
        self.elr += if esr & (1 << 25) != 0 { 4 } else { 2 };
    }
    /// Set register `n` (31, XZR, discards the write).
    pub fn set_reg(&mut self, n: usize, v: u64) {
        if n < 31 {
            self.x[n] = v;
        }
    }
}

/// SPSR for EL1h with D, A, I and F masked.
pub const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

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
