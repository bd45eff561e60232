//! The guest fault report: when a guest hits something el2visor cannot resolve, say why in one
//! block — VM and vCPU, the decoded ESR, ELR, FAR/HPFAR, SPSR, the guest's x0–x30, its
//! translation registers, and the exit counters so far.

use core::fmt::Write;

use crate::arch::exception::TrapFrame;
use crate::arch::sysreg;
use crate::logging::{self, LineBuf};
use crate::trap::esr::Esr;

fn line(args: core::fmt::Arguments<'_>) {
    let mut l = LineBuf::new();
    let _ = l.write_fmt(args);
    let _ = l.write_str("\n");
    logging::write_raw(l.as_bytes());
}

/// Print the report for `why` on vCPU `vcpu` of VM `vm`.
pub fn guest_fault(vm: &str, vcpu: usize, why: &str, frame: &TrapFrame, esr: u64) {
    line(format_args!("el2visor: GUEST FAULT in VM {vm} vCPU {vcpu}: {why}"));
    line(format_args!("  ESR_EL2 {esr:#010x}: {}", Esr(esr)));
    line(format_args!(
        "  ELR {:#x} SPSR {:#x} FAR {:#x} HPFAR {:#x}",
        frame.elr,
        frame.spsr,
        sysreg::far_el2(),
        sysreg::hpfar_el2()
    ));
    for i in (0..31).step_by(4) {
        let mut l = LineBuf::new();
        let _ = l.write_str("  ");
        for r in i..(i + 4).min(31) {
            let _ = write!(l, "x{:<2}={:#018x} ", r, frame.x[r]);
        }
        let _ = l.write_str("\n");
        logging::write_raw(l.as_bytes());
    }
    line(format_args!(
        "  SCTLR_EL1 {:#x} TCR_EL1 {:#x} TTBR0_EL1 {:#x} TTBR1_EL1 {:#x} MAIR_EL1 {:#x} VBAR_EL1 {:#x}",
        sysreg::sctlr_el1(),
        sysreg::tcr_el1(),
        sysreg::ttbr0_el1(),
        sysreg::ttbr1_el1(),
        sysreg::mair_el1(),
        sysreg::vbar_el1()
    ));
    if let Some(vm) = crate::vm::instance::VM.get() {
        line(format_args!(
            "  MAIR_EL1 as the guest wrote it {:#x}, in effect {:#x} (coherency {})",
            crate::trap::dispatch::guest_mair(vm),
            sysreg::mair_el1(),
            crate::coherency::mode_name(vm.setting.mode)
        ));
    }
    line(format_args!("  exits so far: {}", crate::trap::dispatch::totals()));
}
