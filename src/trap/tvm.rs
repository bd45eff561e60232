//! The TVM registers at run time: the slow path's writes (with the rewrite of
//! [`tvm_write_value`]) and reads, and SCTLR_EL1 with the HCR_EL2.DC bit that follows the guest's
//! MMU in mair-trap mode (`crate::coherency::hcr_dc`; docs/coherency.md).

use core::sync::atomic::Ordering;

use crate::arch::{cpu, sysreg, translate};
use crate::coherency::{hcr_dc, Mode};
use crate::trap::sysreg::{tvm_write_value, TvmReg};

/// Serve a guest's write of `guest` to `reg` in `mode`: keep the value the guest wrote where the
/// register is rewritten (for the fault report), write el2visor's value, count the write.
pub fn write(mode: Mode, reg: TvmReg, guest: u64) {
    let me = cpu::this();
    match reg {
        TvmReg::Mair => me.guest_mair.store(guest, Ordering::Relaxed),
        TvmReg::Sctlr => me.guest_sctlr.store(guest, Ordering::Relaxed),
        TvmReg::Tcr => me.guest_tcr.store(guest, Ordering::Relaxed),
        _ => {}
    }
    let v = tvm_write_value(mode, reg, guest);
    match reg {
        TvmReg::Sctlr => set_sctlr_el1(v),
        TvmReg::Ttbr0 => sysreg::set_ttbr0_el1(v),
        TvmReg::Ttbr1 => sysreg::set_ttbr1_el1(v),
        TvmReg::Tcr => sysreg::set_tcr_el1(v),
        TvmReg::Esr => sysreg::set_esr_el1(v),
        TvmReg::Far => sysreg::set_far_el1(v),
        TvmReg::Afsr0 => sysreg::set_afsr0_el1(v),
        TvmReg::Afsr1 => sysreg::set_afsr1_el1(v),
        TvmReg::Mair => sysreg::set_mair_el1(v),
        TvmReg::Amair => sysreg::set_amair_el1(v),
        TvmReg::Contextidr => sysreg::set_contextidr_el1(v),
        TvmReg::Tcr2 => sysreg::set_tcr2_el1(v),
        TvmReg::Sctlr2 => sysreg::set_sctlr2_el1(v),
        TvmReg::Mair2 => sysreg::set_mair2_el1(v),
        TvmReg::Amair2 => sysreg::set_amair2_el1(v),
        TvmReg::Pir => sysreg::set_pir_el1(v),
        TvmReg::Pire0 => sysreg::set_pire0_el1(v),
        TvmReg::Por1 => sysreg::set_por_el1(v),
        TvmReg::Por0 => sysreg::set_por_el0(v),
        TvmReg::S2por => sysreg::set_s2por_el1(v),
    }
    me.tvm_slow.fetch_add(1, Ordering::Relaxed);
}

/// Serve a trapped read of `reg`: what the register holds. TVM traps only writes, but EL0 reads
/// of POR_EL0 trap with it; on CPUs with FEAT_FGT `vcpu::fgt` sets the negative controls
/// (nPIR_EL1 …) so that reads of the feature registers do not trap, and one that does anyway is
/// served too: either way the guest reads the register itself.
pub fn read(reg: TvmReg) -> u64 {
    match reg {
        TvmReg::Sctlr => sysreg::sctlr_el1(),
        TvmReg::Ttbr0 => sysreg::ttbr0_el1(),
        TvmReg::Ttbr1 => sysreg::ttbr1_el1(),
        TvmReg::Tcr => sysreg::tcr_el1(),
        TvmReg::Esr => sysreg::esr_el1(),
        TvmReg::Far => sysreg::far_el1(),
        TvmReg::Afsr0 => sysreg::afsr0_el1(),
        TvmReg::Afsr1 => sysreg::afsr1_el1(),
        TvmReg::Mair => sysreg::mair_el1(),
        TvmReg::Amair => sysreg::amair_el1(),
        TvmReg::Contextidr => sysreg::contextidr_el1(),
        TvmReg::Tcr2 => sysreg::tcr2_el1(),
        TvmReg::Sctlr2 => sysreg::sctlr2_el1(),
        TvmReg::Mair2 => sysreg::mair2_el1(),
        TvmReg::Amair2 => sysreg::amair2_el1(),
        TvmReg::Pir => sysreg::pir_el1(),
        TvmReg::Pire0 => sysreg::pire0_el1(),
        TvmReg::Por1 => sysreg::por_el1(),
        TvmReg::Por0 => sysreg::por_el0(),
        TvmReg::S2por => sysreg::s2por_el1(),
    }
}

/// Put `v` in SCTLR_EL1 (the value el2visor chose, after any rewrite) and make HCR_EL2.DC
/// follow it: set while the guest's MMU is off in mair-trap mode, clear otherwise. DC may be
/// cached in TLB entries, so a change of it drops this CPU's entries of the VMID. Both registers
/// take effect for the guest at the ERET that resumes it (or at the ISB here).
pub fn set_sctlr_el1(v: u64) {
    sysreg::set_sctlr_el1(v);
    let hcr = sysreg::hcr_el2();
    let new = hcr_dc(hcr, v);
    if new != hcr {
        sysreg::set_hcr_el2(new);
        sysreg::isb();
        translate::tlbi_vmalls12e1();
    }
}

/// The vCPU's SCTLR_EL1 out of reset (el2visor's own write, `vcpu::el2::reset_el1`): written
/// as it is (the MMU is off, so there is nothing to rewrite), with DC following it.
pub fn reset_sctlr_el1(v: u64) {
    cpu::this().guest_sctlr.store(v, Ordering::Relaxed);
    set_sctlr_el1(v);
}
