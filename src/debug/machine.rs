//! The [`Target`] the GDB stub drives (`debug::stub`): every VM in the table, through the stop
//! slots of `debug::target`: the threads, the stopped vCPUs' registers, guest memory through the
//! guest's stage 1 and its RAM at Stage 2, and the stop and resume handshake.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::arch::{cache, cpu};
use crate::debug::regs::Regs;
use crate::debug::stub::{Points, StopWhy, Target, Tid};
use crate::debug::target::{counts, request_stop, Slot, ATTACHED, GO_CONTINUE, GO_STEP, KILLED, POINTS, REPORTER, SLOTS, STOPS};
use crate::debug::mem::{access_pa, va_to_ipa, va_to_pa, write_ram};
use crate::debug::walk::pieces;
use crate::vm::instance::{Vm, RUNNING};
use crate::vm::power::VcpuPower;
use crate::vm::table;

/// The [`Target`] the stub drives: every VM in the table.
pub struct Machine;

fn live(vm: &Vm) -> bool {
    vm.state() == RUNNING && !KILLED[vm.slot].load(Ordering::Acquire)
}

fn slot_of(t: Tid) -> Option<&'static Slot> {
    let vm = table::get(t.0)?;
    let s = &SLOTS[vm.vcpus.get(t.1)?.pcpu];
    s.stopped.load(Ordering::Acquire).then_some(s)
}

impl Target for Machine {
    fn threads(&self) -> Vec<Tid> {
        let mut out = Vec::new();
        for vm in table::all().filter(|vm| live(vm)) {
            let power = vm.power.lock();
            out.extend(power.states.iter().enumerate().filter(|(_, s)| **s == VcpuPower::On).map(|(v, _)| (vm.slot, v)));
        }
        out
    }

    fn vm_name(&self, slot: usize) -> String {
        table::get(slot).map_or_else(String::new, |vm| vm.name.clone())
    }

    fn stop_all(&mut self) {
        request_stop();
    }

    fn all_stopped(&self) -> bool {
        self.threads().into_iter().all(|t| slot_of(t).is_some())
    }

    fn reporter(&self) -> Option<(Tid, StopWhy)> {
        *REPORTER.lock()
    }

    fn regs(&self, t: Tid) -> Option<Regs> {
        let c = *slot_of(t)?.ctx.lock();
        let mut r = Regs { x: c.frame.x, pc: c.frame.elr, cpsr: c.frame.spsr as u32, ..Default::default() };
        // SPSR.M: EL1h uses SP_EL1; EL1t and EL0 use SP_EL0.
        r.sp = if c.frame.spsr & 0xf == 0b0101 { c.sp_el1 } else { c.sp_el0 };
        r.v = c.fp.v.map(|q| [q as u64, (q >> 64) as u64]);
        r.fpsr = c.fp.fpsr as u32;
        r.fpcr = c.fp.fpcr as u32;
        Some(r)
    }

    fn set_regs(&mut self, t: Tid, r: &Regs) -> bool {
        let Some(s) = slot_of(t) else { return false };
        let mut c = s.ctx.lock();
        if !crate::debug::regs::cpsr_allowed(c.frame.spsr, u64::from(r.cpsr)) {
            return false;
        }
        let v = r.v.map(|[lo, hi]| u128::from(hi) << 64 | u128::from(lo));
        let fp_changed = c.fp.v != v || c.fp.fpsr != u64::from(r.fpsr) || c.fp.fpcr != u64::from(r.fpcr);
        c.frame.x = r.x;
        c.frame.elr = r.pc;
        c.frame.spsr = (c.frame.spsr & !0xffff_ffff) | u64::from(r.cpsr);
        if c.frame.spsr & 0xf == 0b0101 {
            c.sp_el1 = r.sp;
        } else {
            c.sp_el0 = r.sp;
        }
        c.fp.v = v;
        c.fp.fpsr = u64::from(r.fpsr);
        c.fp.fpcr = u64::from(r.fpcr);
        c.dirty = true;
        c.fp_dirty |= fp_changed;
        true
    }

    fn read_mem(&self, t: Tid, va: u64, buf: &mut [u8]) -> usize {
        let Some(s) = slot_of(t) else { return 0 };
        let s1 = s.ctx.lock().s1;
        let mut total = 0;
        for (a, off, n) in pieces(va, buf.len()) {
            let Some(pa) = va_to_pa(t, &s1, a, n as u64, false) else { break };
            for (i, b) in buf[off..off + n].iter_mut().enumerate() {
                // SAFETY: `[pa, pa + n)` is the VM's RAM (checked by `va_to_pa`), identity
                // mapped read-write at EL2.
                *b = unsafe { core::ptr::read_volatile((pa + i as u64) as *const u8) };
            }
            total += n;
        }
        total
    }

    fn write_mem(&mut self, t: Tid, va: u64, data: &[u8]) -> bool {
        let Some(s) = slot_of(t) else { return false };
        let s1 = s.ctx.lock().s1;
        let mut targets = Vec::new();
        let mut covered = 0;
        for (a, off, n) in pieces(va, data.len()) {
            match va_to_pa(t, &s1, a, n as u64, true) {
                Some(pa) => targets.push((pa, off, n)),
                None => return false,
            }
            covered += n;
        }
        // A range past the top of the address space is refused as a whole.
        if covered != data.len() {
            return false;
        }
        for (pa, off, n) in targets {
            write_ram(pa, &data[off..off + n]);
        }
        cache::invalidate_icache_all();
        true
    }

    fn translate(&self, t: Tid, va: u64, len: usize) -> Option<u64> {
        let s1 = slot_of(t)?.ctx.lock().s1;
        va_to_ipa(table::get(t.0)?, &s1, va, len as u64)
    }

    fn read_phys(&self, slot: usize, ipa: u64, buf: &mut [u8]) -> bool {
        let Some(pa) = table::get(slot).and_then(|vm| access_pa(vm, ipa, buf.len() as u64, false)) else { return false };
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `[pa, pa + buf.len())` is the VM's RAM (checked by `access_pa`), identity
            // mapped read-write at EL2.
            *b = unsafe { core::ptr::read_volatile((pa + i as u64) as *const u8) };
        }
        true
    }

    fn write_phys(&mut self, slot: usize, ipa: u64, data: &[u8]) -> bool {
        let Some(pa) = table::get(slot).and_then(|vm| access_pa(vm, ipa, data.len() as u64, true)) else { return false };
        write_ram(pa, data);
        cache::invalidate_icache_all();
        true
    }

    fn log(&mut self, line: &str) {
        crate::println!("{line}");
    }

    fn hw_slots(&self) -> (usize, usize) {
        counts()
    }

    fn set_points(&mut self, p: &Points) {
        *POINTS.lock() = p.clone();
    }

    fn attach(&mut self, on: bool) {
        ATTACHED.store(on, Ordering::Release);
        if on {
            crate::println!("el2visor: GDB attached");
        } else {
            crate::println!("el2visor: GDB detached");
        }
    }

    fn resume(&mut self, plan: &[(Tid, bool)]) {
        STOPS.store(0, Ordering::Release);
        *REPORTER.lock() = None;
        for &(t, step) in plan {
            let Some(vm) = table::get(t.0) else { continue };
            let Some(s) = slot_of(t) else { continue };
            s.stopped.store(false, Ordering::Release);
            s.go.store(if step { GO_STEP } else { GO_CONTINUE }, Ordering::Release);
            if vm.vcpus[t.1].pcpu != cpu::current() {
                vm.kick(t.1);
            }
        }
    }

    fn kill(&mut self, slot: usize) {
        let Some(vm) = table::get(slot) else { return };
        crate::println!("el2visor: GDB killed VM {}", vm.name);
        KILLED[slot].store(true, Ordering::Release);
        for v in 0..vm.vcpus.len() {
            if vm.vcpus[v].pcpu != cpu::current() {
                vm.kick(v);
            }
        }
    }
}
