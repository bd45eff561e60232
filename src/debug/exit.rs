//! The debug exits the run loop hands over (`trap::dispatch::Exit::Debug`): a breakpoint,
//! watchpoint or step of the debugger's stops the VM for GDB; a BRK that is the guest's own goes
//! back to the guest; a trapped debug register access is answered from the guest's own values.

use crate::arch::exception::TrapFrame;
use crate::debug::stub::StopWhy;
use crate::debug::target::{self, Parked};
use crate::trap::dispatch::DebugEvent;
use crate::trap::esr::Esr;
use crate::vm::instance::Vm;

/// Act on debug exit `event` (syndrome `esr`) of vCPU `v` of `vm`.
pub fn on_event(vm: &Vm, v: usize, frame: &mut TrapFrame, event: DebugEvent, esr: u64) -> Parked {
    let attached = target::attached();
    match event {
        DebugEvent::RegAccess => {
            if let Some(acc) = Esr(esr).sysreg() {
                let r = acc.reg;
                let rt = acc.rt as usize;
                let write = (!acc.read).then(|| frame.reg(rt));
                let value = target::guest_debug_reg(r.op1, r.crn, r.crm, r.op2, write);
                if acc.read {
                    frame.set_reg(rt, value);
                }
            }
            frame.skip_instruction(esr);
            Parked::Resume
        }
        DebugEvent::Brk if target::is_own_brk(vm, frame.elr) => target::park(vm, v, frame, StopWhy::Breakpoint),
        DebugEvent::Brk => {
            if let Err(e) = crate::trap::inject_hw::brk(frame, Esr(esr)) {
                log::warn!("VM {} vCPU {v}: BRK at {:#x}: {e}", vm.name, frame.elr);
            }
            Parked::Resume
        }
        DebugEvent::Breakpoint if attached => target::park(vm, v, frame, StopWhy::Breakpoint),
        DebugEvent::Step if attached => target::park(vm, v, frame, StopWhy::Step),
        DebugEvent::Watchpoint { far, write } if attached => {
            let (addr, kind) = target::watch_hit(vm.slot, far, write);
            target::park(vm, v, frame, StopWhy::Watch { addr, kind })
        }
        // Left over from a session that has ended: the registers are the guest's again at its
        // next stop-free entry; nothing to report.
        _ => Parked::Resume,
    }
}
