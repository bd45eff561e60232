//! The lean paths for the exits a running guest makes most that need Rust: its loads and stores
//! of the virtual GIC distributor, and (GICv3) its IPIs, writes of ICC_SGI1R_EL1 (issue 15).
//! The lean synchronous exit (`vcpu::lean`, with only the caller-saved registers saved) calls
//! them first, and the run loop's slow entry again for what that exit could not take (a register
//! it does not save), before the general dispatcher (`trap::dispatch`). They decide from ESR_EL2
//! and the fault address alone (`trap::fastmmio`), hand the access straight to the VM's
//! distributor model, and leave everything else, and every access the model refuses, to the
//! general path, which then reports it and injects the abort as always. What they skip is
//! generic: the abort-class checks, the search of the VM's device and MMIO region lists, the
//! device trait object and its error conversions.

use crate::arch::exception::TrapFrame;
use crate::arch::frame::{stepped_pc, stepped_spsr, LeanRegs};
use crate::arch::{cpu, sysreg};
use crate::percpu::stats::ExitReason;
use crate::trap::dispatch::Exit;
use crate::trap::endian;
use crate::trap::esr::{hpfar_to_ipa, hpfar_valid};
use crate::trap::fastmmio;
use crate::vm::instance::Vm;

/// The guest's registers as the lean paths see them: the full frame of the slow entry, or the
/// caller-saved registers of the lean entry (`vcpu::lean`), which lack x19..x29.
pub trait GuestRegs {
    /// Register `n` as an operand (31 = XZR); `None` if this save does not hold it.
    fn operand(&self, n: u8) -> Option<u64>;
    /// Set register `n` (one [`operand`](Self::operand) has a value for).
    fn set_operand(&mut self, n: u8, v: u64);
    /// Step over the trapped instruction (ESR_EL2 `esr`), ending a software step in progress.
    fn step(&mut self, esr: u64);
    /// The guest's PSTATE at the trap (SPSR_EL2).
    fn spsr(&self) -> u64;
}

impl GuestRegs for TrapFrame {
    #[inline(always)]
    fn operand(&self, n: u8) -> Option<u64> {
        Some(self.reg(n as usize))
    }
    #[inline(always)]
    fn set_operand(&mut self, n: u8, v: u64) {
        self.set_reg(n as usize, v);
    }
    fn step(&mut self, esr: u64) {
        self.skip_instruction(esr);
    }
    #[inline(always)]
    fn spsr(&self) -> u64 {
        self.spsr
    }
}

impl GuestRegs for LeanRegs {
    #[inline(always)]
    fn operand(&self, n: u8) -> Option<u64> {
        self.reg(n)
    }
    #[inline(always)]
    fn set_operand(&mut self, n: u8, v: u64) {
        self.set_reg(n, v);
    }
    /// As [`TrapFrame::skip_instruction`], on ELR_EL2 and SPSR_EL2 themselves.
    #[inline(always)]
    fn step(&mut self, esr: u64) {
        let spsr = sysreg::spsr_el2();
        sysreg::set_elr_el2(stepped_pc(sysreg::elr_el2(), esr, spsr));
        let next = stepped_spsr(spsr);
        if next != spsr {
            sysreg::set_spsr_el2(next);
        }
    }
    /// SPSR_EL2 itself: the lean entry leaves it in its register.
    #[inline(always)]
    fn spsr(&self) -> u64 {
        sysreg::spsr_el2()
    }
}

/// A guest access (syndrome `esr`) to vCPU `vcpu`'s distributor, emulated; `None` for anything
/// else, or an access whose register `regs` does not hold (nothing done).
#[inline(always)]
pub fn gic_dist(vm: &Vm, vcpu: usize, esr: u64, regs: &mut impl GuestRegs) -> Option<Exit> {
    gic_dist_access(vm, vcpu, esr, regs).map(|_| Exit::Resume)
}

/// Offset of GICD_SGIR in a GICv2 distributor.
const GICD_SGIR: u64 = 0xf00;

/// [`gic_dist`], saying whether vCPU `vcpu`'s list registers need a look before it resumes
/// (`Some(true)`): not after a read, which changes no interrupt state, nor after a GICD_SGIR
/// write (a GICv2 IPI, `gic::virt::VGic::sgir_write`) that sent nothing to the sender itself.
/// What another CPU queues for it meanwhile comes with a kick, taken as it resumes. A
/// big-endian access has its value byte-swapped to and from the model, as `trap::mmio` does
/// (`trap::endian`).
#[inline(always)]
pub fn gic_dist_access(vm: &Vm, vcpu: usize, esr: u64, regs: &mut impl GuestRegs) -> Option<bool> {
    let a = fastmmio::decode(esr)?;
    let vg = vm.vgic.as_ref()?;
    // The distributor is unmapped (a translation fault); a permission fault is RAM's, whose
    // HPFAR may still hold an earlier abort's address: the general path finds its IPA.
    if !hpfar_valid(esr) {
        return None;
    }
    let ipa = hpfar_to_ipa(sysreg::hpfar_el2(), sysreg::far_el2());
    let offset = ipa.wrapping_sub(vg.dist_ipa.start.raw());
    if offset >= vg.dist_ipa.size {
        return None;
    }
    let rt = regs.operand(a.rt)?;
    // The guest's SCTLR_EL1 is live here.
    let big_endian = endian::is_big_endian(regs.spsr(), sysreg::sctlr_el1());
    let lrs = if a.write {
        let value = endian::convert(a.store_value(rt), a.size, big_endian);
        // GICD_SGIR (a GICv2 IPI) straight to the send; a GICv3 distributor has no register there
        // (`sgir_write` declines, and the general write answers it).
        match (offset, a.size) {
            (GICD_SGIR, 4) => match vg.sgir_write(&vm.irqs, vcpu, value as u32) {
                Some(concerns_me) => concerns_me,
                None => vg.dist_write(&vm.irqs, vcpu, offset, a.size, value).map(|_| true).ok()?,
            },
            _ => vg.dist_write(&vm.irqs, vcpu, offset, a.size, value).map(|_| true).ok()?,
        }
    } else {
        let v = vg.dist_read(&vm.irqs, vcpu, offset, a.size).ok()?;
        regs.set_operand(a.rt, a.load_value(endian::convert(v, a.size, big_endian)));
        false
    };
    let me = cpu::this();
    me.exits.count(ExitReason::Dabt);
    // Progress, as for every emulated access: the "same abort again" history starts afresh.
    me.forget_aborts();
    regs.step(esr);
    Some(lrs)
}

/// A guest's access (syndrome `esr`) to a GICv3 CPU-interface register, as `trap::dispatch`
/// serves it: an ICC_SGI1R_EL1 write (an IPI) through the distributor model; else the trap
/// el2visor may have armed to re-sample a level interrupt (`gic::lrs::icc_trap`: then the
/// instruction runs again; this is the guest's IAR after a timer tick on GICv3). The IPI comes
/// first: that trap (ICH_HCR_EL2.TALL1) is for the group 1 registers that acknowledge or end an
/// interrupt, not for SGI1R (trapped by HCR_EL2.IMO), so an IPI sent while it is armed leaves
/// the re-sample to the acknowledge it is for. `None` for anything else, or a VM without a
/// virtual GIC, or a register `regs` does not hold.
#[inline(always)]
pub fn sgi1r(vm: &Vm, vcpu: usize, esr: u64, regs: &mut impl GuestRegs) -> Option<Exit> {
    if !fastmmio::is_icc_access(esr) {
        return None;
    }
    let me = cpu::this();
    let Some(rt) = fastmmio::sgi1r_write_rt(esr) else {
        if vm.irqs.get(vcpu).is_some_and(crate::gic::lrs::icc_trap) {
            me.exits.count(ExitReason::Sysreg);
            me.forget_aborts();
            return Some(Exit::Resume);
        }
        return None;
    };
    let value = regs.operand(rt)?;
    let vg = vm.vgic.as_ref()?;
    me.exits.count(ExitReason::Sysreg);
    me.forget_aborts();
    if let Err(e) = vg.sgi1r_write(&vm.irqs, vcpu, value, false) {
        log::warn!("VM {} vCPU {vcpu}: ICC_SGI1R_EL1: {e}", vm.name);
    }
    regs.step(esr);
    Some(Exit::Resume)
}
