//! The lean synchronous exit (issue 15): a guest's access to the virtual GIC distributor (a data
//! abort) or a trapped GICv3 CPU-interface register (its IPIs, ICC_SGI1R_EL1, and the IAR that
//! `gic::lrs::icc_trap` armed), served with only the caller-saved registers saved
//! (`lower_sync_lean` in boot/vectors.S, [`LeanRegs`]) and none of the run loop's generic work.
//!
//! What the run loop does on every exit (`run::on_exit`) and what this path does instead:
//! - the fatal flag, a GDB stop request, a VM held (for a debugger or after a crash), paused for
//!   a snapshot, resetting or ended, and a `trace=` class that wants these exits' lines
//!   (mmio, sysreg, s2fault): checked first, before anything is done; if any is set the exit
//!   goes to the slow path untouched, which handles it as always. A request that arrives while
//!   this path runs comes with a kick (a physical SGI), taken as soon as the guest resumes;
//! - the exit's decision from ESR_EL2 alone (`trap::dispatch_fast`, `trap::fastmmio`); an exit it
//!   does not serve, or whose register is one of x19..x29 (not saved here), goes to the slow
//!   path with nothing done;
//! - the exit counts (`STATS`) and the "same abort again" history: as the slow path;
//! - before the guest resumes: the list registers (`lrs::before_entry`, one atomic when nothing
//!   is queued; not after a distributor read, which queues nothing) and the GICv2 interface
//!   refresh (`hw::refresh`), as the slow path;
//! - not done: collecting an SError the guest left pending and checking for el2visor's own
//!   (`arch::serror`). The path touches no memory of the guest's and no device but the GIC's own
//!   registers; a guest's SError still pending is taken at EL2 the moment the guest resumes
//!   (HCR_EL2.AMO routes it there whatever the guest's mask) and handled as the guest's by the
//!   slow path's SError entry.

use crate::arch::frame::LeanRegs;
use crate::arch::{cpu, sysreg};
use crate::cmdline::TraceClass::{Mmio, S2fault, Sysreg};
use crate::cmdline::TraceSet;
use crate::gic::{hw, lrs};
use crate::trap::dispatch::Exit;
use crate::trap::dispatch_fast;
use crate::vm::instance::RUNNING;

/// ESR_EL2.EC of the exits this path takes: a data abort from a lower EL, a trapped MSR/MRS.
const EC_DABT_LOWER: u64 = 0x24;
const EC_SYSREG: u64 = 0x18;
/// ESR_EL2.ISS.WnR of a data abort: a write.
const ESR_WNR: u64 = 1 << 6;

/// Called by `lower_sync_lean` with the registers it saved: 0 when the exit is served (the guest
/// resumes with them), anything else to send it to the slow path (nothing has been done).
#[no_mangle]
extern "C" fn lean_sync_exit(regs: &mut LeanRegs) -> u64 {
    if serve(regs) {
        0
    } else {
        1
    }
}

fn serve(regs: &mut LeanRegs) -> bool {
    let traced = TraceSet(Mmio.bit() | Sysreg.bit() | S2fault.bit());
    if crate::fatal::failed() || crate::debug::target::stop_pending() || crate::trace::any(traced) {
        return false;
    }
    let Some((slot, v)) = cpu::this().assignment() else { return false };
    let Some(vm) = crate::vm::table::get(slot) else { return false };
    if vm.state() != RUNNING || vm.crash.hold.is_held() {
        return false;
    }
    let esr = sysreg::esr_el2();
    let ec = esr >> 26 & 0x3f;
    let served = match ec {
        EC_DABT_LOWER => dispatch_fast::gic_dist(vm, v, esr, regs),
        EC_SYSREG => dispatch_fast::sgi1r(vm, v, esr, regs),
        _ => None,
    };
    if !matches!(served, Some(Exit::Resume)) {
        return false;
    }
    // A distributor read changes no interrupt state, so it leaves nothing for this vCPU's list
    // registers (what another CPU queues for it meanwhile comes with a kick, taken on entry).
    let read = ec == EC_DABT_LOWER && esr & ESR_WNR == 0;
    if !read {
        if let Some(me) = vm.irqs.get(v) {
            lrs::before_entry(me);
        }
    }
    hw::refresh();
    true
}
