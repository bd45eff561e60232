//! The machine side of the GDB stub: each pCPU's stop slot (the stopped vCPU's registers, its
//! EL1 translation registers and FP/SIMD state, copied on its own pCPU when it stops and put
//! back when it resumes), the stop and resume handshake, and the debug registers: while a
//! debugger is attached el2visor owns them (MDCR_EL2.TDE routes debug exceptions to EL2,
//! TDA/TDOSA/TDRA trap the guest's own accesses, which then see a shadow copy) and the guest
//! gets its own values back at detach (a vCPU that is off then, when it next starts). The stub's [`Target`](crate::debug::stub::Target) over
//! these slots (registers, guest memory) is `debug::machine`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use crate::arch::debugreg::{self as dr, Bank};
use crate::arch::vcpu_state::FpState;
use crate::arch::exception::TrapFrame;
use crate::arch::{cpu, sysreg};
use crate::debug::packet::BpKind;
use crate::debug::step::{self, Step, IF};
use crate::debug::mem::{va_to_ipa, va_to_pa};
use crate::debug::stub::{HwPoint, Points, StopWhy, Tid};
use crate::debug::walk::Stage1;
use crate::percpu::MAX_CPUS;
use crate::vm::instance::{Vm, RUNNING};
use crate::vm::table;

/// MDCR_EL2 bits: route debug exceptions to EL2 (TDE), trap debug register (TDA), OS lock
/// (TDOSA) and ROM address (TDRA) accesses.
const MDCR_TDE: u64 = 1 << 8;
const MDCR_TDA: u64 = 1 << 9;
const MDCR_TDOSA: u64 = 1 << 10;
const MDCR_TDRA: u64 = 1 << 11;
const MDCR_DEBUG: u64 = MDCR_TDE | MDCR_TDA | MDCR_TDOSA | MDCR_TDRA;
/// MDSCR_EL1: software step enable, monitor debug events enable.
const MDSCR_SS: u64 = 1;
const MDSCR_MDE: u64 = 1 << 15;
/// SPSR: software step (PSTATE.SS).
const SPSR_SS: u64 = 1 << 21;

/// What a stopped vCPU is told to do.
const GO_NONE: u8 = 0;
pub(super) const GO_CONTINUE: u8 = 1;
pub(super) const GO_STEP: u8 = 2;

/// What the guest itself had in the debug registers when the debugger took them.
#[derive(Clone, Copy, Default)]
struct GuestDebug {
    bvr: [u64; 16],
    bcr: [u64; 16],
    wvr: [u64; 16],
    wcr: [u64; 16],
    mdscr: u64,
    oslk: bool,
}

#[derive(Clone, Copy, Default)]
pub(super) struct Ctx {
    vm: usize,
    vcpu: usize,
    pub(super) frame: TrapFrame,
    pub(super) sp_el0: u64,
    pub(super) sp_el1: u64,
    pub(super) fp: FpState,
    /// GDB changed the general registers (`dirty`) or the FP/SIMD ones (`fp_dirty`; loading
    /// them would clear the upper bits of SVE Z registers, so only then).
    pub(super) dirty: bool,
    pub(super) fp_dirty: bool,
    pub(super) s1: Stage1,
    /// The debug registers are el2visor's; `guest` holds the guest's own.
    owned: bool,
    guest: GuestDebug,
    /// A step in progress: the I/F masks it masked, and what it steps (`debug::step`).
    step: Option<Step>,
}

pub(super) struct Slot {
    pub(super) stopped: AtomicBool,
    pub(super) go: AtomicU8,
    pub(super) ctx: spin::Mutex<Ctx>,
}

pub(super) static SLOTS: [Slot; MAX_CPUS] =
    [const { Slot { stopped: AtomicBool::new(false), go: AtomicU8::new(GO_NONE), ctx: spin::Mutex::new(ZERO) } }; MAX_CPUS];

const ZERO: Ctx = Ctx {
    vm: 0,
    vcpu: 0,
    frame: TrapFrame::zeroed(),
    sp_el0: 0,
    sp_el1: 0,
    fp: FpState { v: [0; 32], fpcr: 0, fpsr: 0 },
    dirty: false,
    fp_dirty: false,
    s1: Stage1 { sctlr: 0, tcr: 0, ttbr0: 0, ttbr1: 0 },
    owned: false,
    guest: GuestDebug { bvr: [0; 16], bcr: [0; 16], wvr: [0; 16], wcr: [0; 16], mdscr: 0, oslk: false },
    step: None,
};

/// Who must stop, in one word so that the exits' check is one load: [`STOP_ALL`] (every vCPU:
/// attach, Ctrl-C, another vCPU's breakpoint) and bit `slot` for a VM that must stop by itself
/// (`on_crash=debug` with no debugger attached holds the crashed VM only, and the others run
/// on). A resume clears it.
pub(super) static STOPS: AtomicU32 = AtomicU32::new(0);
pub(super) const STOP_ALL: u32 = 1 << 31;
const _: () = assert!(crate::vm::table::MAX_VMS <= 31);
/// A debugger owns the debug registers.
pub(super) static ATTACHED: AtomicBool = AtomicBool::new(false);
/// The first vCPU that stopped by itself since the last resume.
pub(super) static REPORTER: spin::Mutex<Option<(Tid, StopWhy)>> = spin::Mutex::new(None);
pub(super) static POINTS: spin::Mutex<Points> = spin::Mutex::new(Points { hw: Vec::new(), sw: Vec::new() });
/// VMs the debugger killed (by slot): their vCPUs end the VM instead of resuming.
pub(super) static KILLED: [AtomicBool; crate::vm::table::MAX_VMS] = [const { AtomicBool::new(false) }; crate::vm::table::MAX_VMS];

/// What serves the debug line while a vCPU waits stopped (`debug::uart` registers it).
static SERVICE: spin::Once<fn()> = spin::Once::new();

/// Have stopped vCPUs call `f` (serve GDB's line) each time they wake.
pub fn set_service(f: fn()) {
    SERVICE.call_once(|| f);
}

/// Whether the vCPUs of VM `slot` must stop: every VM's (GDB's all-stop) or its own (a crash
/// stop with no debugger attached). Checked by the run loop after every exit.
#[inline(always)]
pub fn stop_pending(slot: usize) -> bool {
    let s = STOPS.load(Ordering::Acquire);
    s != 0 && s & (STOP_ALL | 1 << (slot & 31)) != 0
}

/// Whether vCPUs of `vm` must stop (again): a stop is pending and the VM runs. [`park`] lets a
/// vCPU go without being told when its VM stops running (a reset, its end), and the run loop's
/// state checks take over then.
pub fn must_stop(vm: &Vm) -> bool {
    stop_pending(vm.slot) && vm.state() == RUNNING && !KILLED[vm.slot].load(Ordering::Acquire)
}

pub fn attached() -> bool {
    ATTACHED.load(Ordering::Acquire)
}

/// Whether guest VA `pc` of VM `vm`, run by this pCPU, holds one of the debugger's software
/// breakpoints: at that VA, and at its IPA through the guest's stage 1 as it is now (the same VA
/// in another process is not it). A PC that does not translate counts by its VA alone.
pub fn is_own_brk(vm: &Vm, pc: u64) -> bool {
    if !attached() {
        return false;
    }
    let Some(ipa) = POINTS.lock().sw.iter().find(|p| p.slot == vm.slot && p.va == pc).map(|p| p.ipa) else { return false };
    let s1 = Stage1 { sctlr: sysreg::sctlr_el1(), tcr: sysreg::tcr_el1(), ttbr0: sysreg::ttbr0_el1(), ttbr1: sysreg::ttbr1_el1() };
    va_to_ipa(vm, &s1, pc, 4).is_none_or(|at| at == ipa)
}

/// The watchpoint of VM `slot` an access to `far` hit: its address and kind.
pub fn watch_hit(slot: usize, far: u64, write: bool) -> (u64, BpKind) {
    let points = POINTS.lock();
    let hit = points.hw.iter().filter(|p| p.slot == slot && p.kind != BpKind::Hardware).find(|p| {
        let start = p.addr & !7;
        far >= start && far < start + 8 || far <= p.addr && far + 8 > p.addr
    });
    match hit {
        Some(p) => (p.addr, p.kind),
        None => (far, if write { BpKind::WriteWatch } else { BpKind::ReadWatch }),
    }
}

/// Stop every vCPU of every VM: kick each pCPU that runs one.
pub fn request_stop() {
    STOPS.fetch_or(STOP_ALL, Ordering::AcqRel);
    for vm in table::all() {
        kick_others(vm);
    }
}

/// Stop every vCPU of `vm` only.
fn request_stop_vm(vm: &Vm) {
    STOPS.fetch_or(1 << (vm.slot & 31), Ordering::AcqRel);
    kick_others(vm);
}

/// Kick the pCPUs of `vm`'s vCPUs but this one.
fn kick_others(vm: &Vm) {
    let me = cpu::current();
    for (v, s) in vm.vcpus.iter().enumerate() {
        if s.pcpu != me {
            vm.kick(v);
        }
    }
}

/// What the vCPU does after a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    Resume,
    /// The debugger killed the VM: the run loop ends it.
    Kill,
}

/// Stop vCPU `v` of `vm` on this pCPU with its saved `frame`, until GDB resumes it. `why` is
/// [`StopWhy::Asked`] for a stop it did not cause itself; any other reason stops every other
/// vCPU too and is what GDB is told. `on_crash=debug` is `park(vm, v, frame, StopWhy::Crash)`
/// from the run loop (when `debug::uart::enabled()`): the VM waits, stopped, for GDB to attach,
/// and until then only that VM stops (GDB's attach stops the rest).
pub fn park(vm: &Vm, v: usize, frame: &mut TrapFrame, why: StopWhy) -> Parked {
    let me = cpu::current();
    let slot = &SLOTS[me];
    {
        let mut c = slot.ctx.lock();
        if let Some(s) = c.step.take() {
            step_done(frame, s);
        }
        c.vm = vm.slot;
        c.vcpu = v;
        c.frame = *frame;
        c.sp_el0 = dr::sp_el0();
        c.sp_el1 = dr::sp_el1();
        c.fp = FpState::save();
        c.dirty = false;
        c.fp_dirty = false;
        c.s1 = Stage1 { sctlr: sysreg::sctlr_el1(), tcr: sysreg::tcr_el1(), ttbr0: sysreg::ttbr0_el1(), ttbr1: sysreg::ttbr1_el1() };
    }
    if why != StopWhy::Asked {
        let mut r = REPORTER.lock();
        if r.is_none() {
            *r = Some(((vm.slot, v), why));
        }
        drop(r);
        if why == StopWhy::Crash && !attached() {
            request_stop_vm(vm);
        } else {
            request_stop();
        }
    }
    slot.stopped.store(true, Ordering::Release);
    let go = loop {
        if let Some(f) = SERVICE.get() {
            f();
        }
        let go = slot.go.swap(GO_NONE, Ordering::AcqRel);
        if go != GO_NONE {
            break go;
        }
        if crate::fatal::failed() {
            cpu::park();
        }
        if vm.state() != RUNNING || KILLED[vm.slot].load(Ordering::Acquire) {
            break GO_NONE;
        }
        if crate::gic::hw::host().is_some() {
            cpu::wait_for_interrupt();
            crate::gic::virt::on_irq(vm.vgic.as_ref(), &vm.irqs, v, vm.is_running(), &vm.name);
        } else {
            core::hint::spin_loop();
        }
    };
    slot.stopped.store(false, Ordering::Release);
    if KILLED[vm.slot].load(Ordering::Acquire) {
        return Parked::Kill;
    }
    let mut c = slot.ctx.lock();
    if c.dirty {
        *frame = c.frame;
        dr::set_sp_el0(c.sp_el0);
        dr::set_sp_el1(c.sp_el1);
    }
    if c.fp_dirty {
        c.fp.restore();
    }
    program(&mut c, vm.slot, frame, go == GO_STEP);
    Parked::Resume
}

/// After a step: the I/F masks are the guest's own again, as the stepped instruction left them
/// (`step::after_step`). If it took an exception (the PC is at an entry of the guest's vector
/// table), the exception masked them itself, and the SPSR_EL1 it saved gets the guest's own
/// bits instead of the step's. An `mrs xN, daif` it executed reads the guest's own too.
fn step_done(frame: &mut TrapFrame, s: Step) {
    let took = step::took_exception(s.pc, frame.elr, sysreg::vbar_el1());
    // Whether the instruction completed (else it wrote nothing): not when the PC is still on it
    // (a breakpoint or watchpoint stopped it first), nor when an exception it raised returns to
    // it (ELR_EL1 its address); one taken after it (an interrupt it unmasked) returns past it.
    let done = s.insn.filter(|_| frame.elr != s.pc && !(took && sysreg::elr_el1() == s.pc));
    frame.spsr = (frame.spsr & !IF) | step::after_step(s.saved, frame.spsr, done, took);
    if took {
        let spsr = sysreg::spsr_el1();
        sysreg::set_spsr_el1((spsr & !IF) | step::after_step(s.saved, spsr, done, false));
    }
    if let Some(rt) = done.and_then(step::mrs_daif) {
        frame.set_reg(rt, (frame.reg(rt) & !IF) | s.saved);
    }
}

/// The instruction at guest VA `pc` of thread `t` (through stage 1 `s1`), where it is RAM.
fn insn_at(t: Tid, s1: &Stage1, pc: u64) -> Option<u32> {
    if pc & 3 != 0 {
        return None;
    }
    let pa = va_to_pa(t, s1, pc, 4, false)?;
    // SAFETY: `[pa, pa + 4)` is the VM's RAM (checked by `va_to_pa`), identity mapped
    // read-write at EL2; `pa` is 4-byte aligned as `pc` is (pages are).
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

pub(super) fn counts() -> (usize, usize) {
    let d = sysreg::id_aa64dfr0_el1();
    ((((d >> 12) & 0xf) + 1) as usize, (((d >> 20) & 0xf) + 1) as usize)
}

/// Load the debug registers for the vCPU about to resume: the debugger's points (and a step)
/// while attached, saving the guest's own first; the guest's own after a detach.
fn program(c: &mut Ctx, vm_slot: usize, frame: &mut TrapFrame, step: bool) {
    let (nb, nw) = counts();
    let base = dr::mdcr_el2() & !MDCR_DEBUG;
    frame.spsr &= !SPSR_SS;
    if attached() {
        if !c.owned {
            for n in 0..nb {
                c.guest.bvr[n] = dr::dbg_read(Bank::Bvr, n);
                c.guest.bcr[n] = dr::dbg_read(Bank::Bcr, n);
            }
            for n in 0..nw {
                c.guest.wvr[n] = dr::dbg_read(Bank::Wvr, n);
                c.guest.wcr[n] = dr::dbg_read(Bank::Wcr, n);
            }
            c.guest.mdscr = dr::mdscr_el1();
            c.guest.oslk = dr::oslsr_el1() & 2 != 0;
            c.owned = true;
        }
        let points = POINTS.lock();
        let mine = |watch: bool| points.hw.iter().filter(move |p| p.slot == vm_slot && (p.kind != BpKind::Hardware) == watch);
        let bps: Vec<&HwPoint> = mine(false).collect();
        let wps: Vec<&HwPoint> = mine(true).collect();
        for n in 0..nb {
            let (v, ctl) = bps.get(n).map_or((0, 0), |p| (p.addr, bcr()));
            dr::dbg_write(Bank::Bcr, n, 0);
            dr::dbg_write(Bank::Bvr, n, v);
            dr::dbg_write(Bank::Bcr, n, ctl);
        }
        for n in 0..nw {
            let (v, ctl) = wps.get(n).map_or((0, 0), |p| (p.addr & !7, wcr(p)));
            dr::dbg_write(Bank::Wcr, n, 0);
            dr::dbg_write(Bank::Wvr, n, v);
            dr::dbg_write(Bank::Wcr, n, ctl);
        }
        drop(points);
        dr::set_oslar_el1(0);
        dr::set_mdscr_el1(MDSCR_MDE | if step { MDSCR_SS } else { 0 });
        if step {
            // Interrupts stay masked for the one instruction, as QEMU's gdbstub holds them back:
            // the step ends after it, not at the guest's IRQ vector. `step_done` gives the guest
            // the masks the instruction made.
            let insn = insn_at((vm_slot, c.vcpu), &c.s1, frame.elr);
            c.step = Some(Step { saved: frame.spsr & IF, pc: frame.elr, insn });
            frame.spsr |= SPSR_SS | IF;
        }
        dr::set_mdcr_el2(base | MDCR_DEBUG);
    } else {
        give_back(c);
    }
    sysreg::isb();
}

/// The debug registers back to the guest, if the debugger has them: its own values, and its
/// debug exceptions and register accesses no longer trapped (the caller synchronizes).
fn give_back(c: &mut Ctx) {
    if !c.owned {
        return;
    }
    load_points(&c.guest);
    dr::set_mdscr_el1(c.guest.mdscr);
    dr::set_oslar_el1(u64::from(c.guest.oslk));
    dr::set_mdcr_el2(dr::mdcr_el2() & !MDCR_DEBUG);
    c.owned = false;
}

/// Write the guest's own breakpoint and watchpoint registers, `g`, into this pCPU's.
fn load_points(g: &GuestDebug) {
    let (nb, nw) = counts();
    for n in 0..nb {
        dr::dbg_write(Bank::Bvr, n, g.bvr[n]);
        dr::dbg_write(Bank::Bcr, n, g.bcr[n]);
    }
    for n in 0..nw {
        dr::dbg_write(Bank::Wvr, n, g.wvr[n]);
        dr::dbg_write(Bank::Wcr, n, g.wcr[n]);
    }
}

/// A vCPU starts on this pCPU (CPU_ON, a VM reset, a snapshot restore), before its first
/// instruction. A detach resumes only the vCPUs that are on, so one that was off then (or went
/// off in a step) still has el2visor's debug state: with no debugger attached now the guest gets
/// its debug registers back and nothing trapped, as the docs promise; a step of its previous
/// run is over and must not change its new PSTATE at its next stop.
///
/// With `fresh` (a start, not a snapshot's resume, which leaves them live as docs/snapshots.md
/// says) the new life's own breakpoints, watchpoints and MDSCR_EL1 start at 0 and its OS lock
/// unlocked, as KVM resets them (`el1::reset` has cleared MDSCR_EL1 already): in the hardware
/// when they are the guest's there, else in the copies kept while the debugger owns them.
pub fn vcpu_starts(fresh: bool) {
    let mut c = SLOTS[cpu::current()].ctx.lock();
    c.step = None;
    if fresh {
        c.guest = GuestDebug::default();
        if !c.owned {
            load_points(&c.guest);
            dr::set_oslar_el1(0);
        }
    }
    if !attached() {
        give_back(&mut c);
    }
    sysreg::isb();
}

/// Right before a vCPU starts or resumes from a saved state, its EL1 state loaded: while a
/// debugger is attached, this pCPU gets the debugger's breakpoints, watchpoints and debug traps
/// now, as a resume from a stop gives them. A vCPU that was off when the debugger attached never
/// stopped, so its pCPU has none yet (a breakpoint would not fire there, and a software one's BRK
/// would go to the guest); and the EL1 state just loaded replaced the MDSCR_EL1 they need, whose
/// value is kept as the guest's own.
pub fn vcpu_enters(vm_slot: usize, frame: &mut TrapFrame) {
    if !attached() {
        return;
    }
    let mut c = SLOTS[cpu::current()].ctx.lock();
    if c.owned {
        c.guest.mdscr = dr::mdscr_el1();
    }
    program(&mut c, vm_slot, frame, false);
}

/// DBGBCR: enabled, every byte of the instruction, EL1 and EL0 (PMC = 0b11), unlinked.
fn bcr() -> u64 {
    1 | (0b11 << 1) | (0xf << 5)
}

/// DBGWCR: enabled, EL1 and EL0, loads and/or stores, the bytes of the doubleword watched.
fn wcr(p: &HwPoint) -> u64 {
    let lsc = match p.kind {
        BpKind::ReadWatch => 1,
        BpKind::WriteWatch => 2,
        _ => 3,
    };
    let bas = ((1u64 << p.len) - 1) << (p.addr & 7);
    1 | (0b11 << 1) | (lsc << 3) | ((bas & 0xff) << 5)
}

/// A guest access to a debug register (op0 = 2) trapped while the debugger owns them: the
/// guest sees its own values (kept aside), and writes change only those. Returns the value
/// for a read.
pub fn guest_debug_reg(op1: u8, crn: u8, crm: u8, op2: u8, write: Option<u64>) -> u64 {
    let mut c = SLOTS[cpu::current()].ctx.lock();
    if !c.owned {
        // The registers are the guest's again (a trap racing a detach): nothing to keep aside.
        return 0;
    }
    let g = &mut c.guest;
    let n = crm as usize & 0xf;
    let reg: Option<&mut u64> = match (op1, crn, op2) {
        (0, 0, 4) => Some(&mut g.bvr[n]),
        (0, 0, 5) => Some(&mut g.bcr[n]),
        (0, 0, 6) => Some(&mut g.wvr[n]),
        (0, 0, 7) => Some(&mut g.wcr[n]),
        (0, 0, 2) if crm == 2 => Some(&mut g.mdscr),
        _ => None,
    };
    if let Some(r) = reg {
        if let Some(v) = write {
            *r = v;
        }
        return *r;
    }
    match (op1, crn, crm, op2) {
        // OSLAR_EL1
        (0, 1, 0, 4) => {
            if let Some(v) = write {
                g.oslk = v & 1 != 0;
            }
            0
        }
        // OSLSR_EL1: the CPU's OSLM with the guest's own lock bit.
        (0, 1, 1, 4) => (dr::oslsr_el1() & !2) | if g.oslk { 2 } else { 0 },
        // Everything else (OSDLR, DBGPRCR, claim tags, the DCC, MDRAR): reads as zero,
        // writes ignored.
        _ => 0,
    }
}
