//! EL2 state for running a VM's vCPU on this pCPU: the values come from the pure builders in
//! [`super::regs`], the CPU's ID registers and the VM; this module only writes them.

use crate::arch::{cpu, el1, serror, sysreg, translate};
use crate::percpu;
use crate::vcpu::fgt::{brbcr_el2, fine_grained_traps, FgtIds};
use crate::vcpu::regs::{self, CpuFeatures};
use crate::vm::instance::{vmpidr, Vm};

/// The ID registers the fine-grained traps and BRBCR_EL2 depend on, read on this CPU.
fn read_fgt_ids() -> FgtIds {
    FgtIds {
        mmfr0: sysreg::id_aa64mmfr0_el1(),
        mmfr3: sysreg::id_aa64mmfr3_el1(),
        pfr0: sysreg::id_aa64pfr0_el1(),
        pfr1: sysreg::id_aa64pfr1_el1(),
        isar1: sysreg::id_aa64isar1_el1(),
        dfr0: sysreg::id_aa64dfr0_el1(),
    }
}

/// Configure EL2 for running `vm`'s vCPU `v` on this pCPU, and tell the TVM fast path what to
/// do for it.
pub fn configure(vm: &Vm, v: usize) {
    // The features that decide HCR_EL2/HCRX_EL2/CPTR_EL2/MDCR_EL2 for guests.
    let f = CpuFeatures::of_this_cpu();
    sysreg::set_vpidr_el2(sysreg::midr_el1());
    sysreg::set_vmpidr_el2(vmpidr(vm.vcpus[v].mpidr));
    sysreg::set_cptr_el2(regs::cptr_el2(&f));
    sysreg::isb();
    if f.sve {
        sysreg::set_zcr_el2(regs::VL_MAX_FIELD);
    }
    if f.sme {
        sysreg::set_smcr_el2(regs::smcr_el2(sysreg::id_aa64smfr0_el1()));
    }
    if let Some(hcrx) = regs::hcrx_el2(&f) {
        sysreg::set_hcrx_el2(hcrx);
    }
    let ids = read_fgt_ids();
    if let Some(fgt) = fine_grained_traps(&ids) {
        sysreg::set_hfgrtr_el2(fgt.hfgrtr);
        sysreg::set_hfgwtr_el2(fgt.hfgwtr);
        sysreg::set_hfgitr_el2(fgt.hfgitr);
        sysreg::set_hdfgrtr_el2(fgt.hdfgrtr);
        sysreg::set_hdfgwtr_el2(fgt.hdfgwtr);
        if let Some(amu) = fgt.hafgrtr {
            sysreg::set_hafgrtr_el2(amu);
        }
    }
    if let Some(brbcr) = brbcr_el2(ids.dfr0) {
        sysreg::set_brbcr_el2(brbcr);
    }
    sysreg::set_cnthctl_el2(regs::CNTHCTL_EL2);
    sysreg::set_cntvoff_el2(0);
    sysreg::set_mdcr_el2(regs::mdcr_el2(&f));
    sysreg::set_vtcr_el2(vm.vtcr);
    sysreg::set_vttbr_el2(vm.vttbr);
    sysreg::set_hcr_el2(regs::hcr_el2(vm.setting.mode, &f, crate::gic::hw::needs_wfi_trap()));
    sysreg::isb();
    // Nothing cached for this VMID may predate its tables.
    translate::tlbi_vmalls12e1();
    // The fast path in the vector reads this on every guest exception from this CPU.
    let mode = percpu::tvm_mode_for(vm.setting);
    cpu::this().tvm_mode.store(mode, core::sync::atomic::Ordering::Release);
    sysreg::set_vbar_el2(crate::arch::boot::vectors_for_tvm_mode(mode));
    sysreg::isb();
}

/// Put the vCPU's EL1 state as a CPU has it out of reset (the boot protocol's view: MMU and
/// caches off, little-endian unless `big_endian`; see `arch::el1::reset` for every register),
/// its timers stopped (a previous life's timers must not fire into this one), no virtual SError
/// pending, and its virtual CPU interface (VMCR, active priorities, HCR) reset. In mair-trap mode the MMU being off sets
/// HCR_EL2.DC (`trap::tvm::set_sctlr_el1`). The records of what the guest wrote to the TVM
/// registers follow the registers.
pub fn reset_el1(big_endian: bool) {
    let sctlr = regs::sctlr_el1_reset(big_endian);
    el1::reset(sctlr);
    crate::trap::tvm::reset_sctlr_el1(sctlr);
    serror::clear_virtual();
    if let Some(h) = crate::gic::hw::host() {
        h.reset_vif();
    }
    let me = cpu::this();
    me.guest_mair.store(0, core::sync::atomic::Ordering::Relaxed);
    me.guest_tcr.store(0, core::sync::atomic::Ordering::Relaxed);
    sysreg::isb();
}
