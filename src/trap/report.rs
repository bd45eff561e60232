//! The guest fault report: when a guest hits something el2visor cannot resolve, say why in one
//! block — VM and vCPU, the decoded ESR, ELR, FAR/HPFAR, SPSR, the guest's x0–x30, its
//! translation registers, and the exit counters so far.

use crate::arch::exception::TrapFrame;
use crate::arch::sysreg;
use crate::logging;
use crate::trap::esr::Esr;
use crate::vm::instance::Vm;

/// Print the report for `why` on vCPU `vcpu` of `vm`.
pub fn guest_fault(vm: &Vm, vcpu: usize, why: &str, frame: &TrapFrame, esr: u64) {
    logging::print_line(format_args!("el2visor: GUEST FAULT in VM {} vCPU {vcpu}: {why}", vm.name));
    logging::print_line(format_args!("  ESR_EL2 {esr:#010x}: {}", Esr(esr)));
    logging::print_line(format_args!(
        "  ELR {:#x} SPSR {:#x} FAR {:#x} HPFAR {:#x}",
        frame.elr,
        frame.spsr,
        sysreg::far_el2(),
        sysreg::hpfar_el2()
    ));
    logging::dump_gprs(&frame.x, "  ", true);
    logging::print_line(format_args!(
        "  SCTLR_EL1 {:#x} TCR_EL1 {:#x} TTBR0_EL1 {:#x} TTBR1_EL1 {:#x} MAIR_EL1 {:#x} VBAR_EL1 {:#x}",
        sysreg::sctlr_el1(),
        sysreg::tcr_el1(),
        sysreg::ttbr0_el1(),
        sysreg::ttbr1_el1(),
        sysreg::mair_el1(),
        sysreg::vbar_el1()
    ));
    let (mair, sctlr, tcr) = guest_wrote(vm);
    logging::print_line(format_args!(
        "  MAIR_EL1 as the guest wrote it {mair:#x}, in effect {:#x}; SCTLR_EL1 {sctlr:#x}, in effect {:#x}; TCR_EL1 {tcr:#x}, in effect {:#x}; HCR_EL2.DC {} (coherency {})",
        sysreg::mair_el1(),
        sysreg::sctlr_el1(),
        sysreg::tcr_el1(),
        (sysreg::hcr_el2() >> 12) & 1,
        crate::coherency::mode_name(vm.setting.mode)
    ));
    logging::print_line(format_args!("  exits so far: {}", crate::percpu::totals()));
}

/// The MAIR_EL1, SCTLR_EL1 and TCR_EL1 values this CPU's guest wrote last (in mair-trap mode,
/// where el2visor rewrites them), else the registers themselves.
pub fn guest_wrote(vm: &Vm) -> (u64, u64, u64) {
    use core::sync::atomic::Ordering::Relaxed;
    match vm.setting.mode {
        crate::coherency::Mode::MairTrap => {
            let me = crate::arch::cpu::this();
            (me.guest_mair.load(Relaxed), me.guest_sctlr.load(Relaxed), me.guest_tcr.load(Relaxed))
        }
        _ => (sysreg::mair_el1(), sysreg::sctlr_el1(), sysreg::tcr_el1()),
    }
}
