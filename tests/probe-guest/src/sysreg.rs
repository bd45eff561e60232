//! The thin register layer of the probe: the eleven TVM registers by [`TvmReg`], the
//! feature-gated ones by [`FeatReg`] (named by encoding, which every assembler accepts), barriers,
//! TLB and cache maintenance, and a few ID/counter reads (through `aarch64-cpu`).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CurrentEL, Readable, CNTFRQ_EL0, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1};
use core::arch::asm;
use probe_guest::tvm::{FeatReg, TvmReg};

macro_rules! rw {
    ($read:ident, $write:ident, $name:literal) => {
        #[doc = concat!("Read ", $name, ".")]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading an EL1 system register has no side effect.
            unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        #[doc = concat!("Write ", $name, " (no ISB).")]
        ///
        /// # Safety
        /// The value must keep the probe's own execution valid (translation, memory types).
        pub unsafe fn $write(v: u64) {
            // SAFETY: the caller guarantees the value is safe to hold while running.
            unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

rw!(sctlr, set_sctlr, "sctlr_el1");
rw!(ttbr0, set_ttbr0, "ttbr0_el1");
rw!(ttbr1, set_ttbr1, "ttbr1_el1");
rw!(tcr, set_tcr, "tcr_el1");
rw!(esr, set_esr, "esr_el1");
rw!(far, set_far, "far_el1");
rw!(afsr0, set_afsr0, "afsr0_el1");
rw!(afsr1, set_afsr1, "afsr1_el1");
rw!(mair, set_mair, "mair_el1");
rw!(amair, set_amair, "amair_el1");
rw!(contextidr, set_contextidr, "contextidr_el1");
rw!(tpidr1, set_tpidr1, "tpidr_el1");
rw!(cntv_cval, set_cntv_cval, "cntv_cval_el0");
rw!(cntv_ctl, set_cntv_ctl, "cntv_ctl_el0");
// TPIDR2_EL0 (FEAT_SME only), by encoding.
rw!(tpidr2, set_tpidr2, "s3_3_c13_c0_5");

rw!(tcr2, set_tcr2, "s3_0_c2_c0_3");
rw!(sctlr2, set_sctlr2, "s3_0_c1_c0_3");
rw!(mair2, set_mair2, "s3_0_c10_c2_1");
rw!(amair2, set_amair2, "s3_0_c10_c3_1");
rw!(pire0, set_pire0, "s3_0_c10_c2_2");
rw!(pir, set_pir, "s3_0_c10_c2_3");
rw!(por1, set_por1, "s3_0_c10_c2_4");
rw!(por0, set_por0, "s3_3_c10_c2_4");
rw!(s2por, set_s2por, "s3_0_c10_c2_5");

/// Read one of the feature-gated TVM registers (UNDEFINED where the CPU lacks the feature).
pub fn read_feat(reg: FeatReg) -> u64 {
    match reg {
        FeatReg::Tcr2 => tcr2(),
        FeatReg::Sctlr2 => sctlr2(),
        FeatReg::Mair2 => mair2(),
        FeatReg::Amair2 => amair2(),
        FeatReg::Pir => pir(),
        FeatReg::Pire0 => pire0(),
        FeatReg::Por1 => por1(),
        FeatReg::Por0 => por0(),
        FeatReg::S2por => s2por(),
    }
}

/// Write one of the feature-gated TVM registers, then ISB.
///
/// # Safety
/// As for the individual setters: the value must be safe to run with.
pub unsafe fn write_feat(reg: FeatReg, v: u64) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match reg {
            FeatReg::Tcr2 => set_tcr2(v),
            FeatReg::Sctlr2 => set_sctlr2(v),
            FeatReg::Mair2 => set_mair2(v),
            FeatReg::Amair2 => set_amair2(v),
            FeatReg::Pir => set_pir(v),
            FeatReg::Pire0 => set_pire0(v),
            FeatReg::Por1 => set_por1(v),
            FeatReg::Por0 => set_por0(v),
            FeatReg::S2por => set_s2por(v),
        }
    }
    isb();
}

/// ID_AA64MMFR3_EL1 (reads as 0 on CPUs older than the register: it is in the ID space).
pub fn id_aa64mmfr3() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, s3_0_c0_c7_3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// ID_AA64PFR0_EL1.
pub fn id_aa64pfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// ID_AA64PFR1_EL1.
pub fn id_aa64pfr1() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, id_aa64pfr1_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// ID_AA64ISAR2_EL1 (reads as 0 on CPUs older than the register, like ID_AA64MMFR3_EL1).
pub fn id_aa64isar2() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, s3_0_c0_c6_2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Read one of the eleven TVM registers.
pub fn read_tvm(reg: TvmReg) -> u64 {
    match reg {
        TvmReg::Sctlr => sctlr(),
        TvmReg::Ttbr0 => ttbr0(),
        TvmReg::Ttbr1 => ttbr1(),
        TvmReg::Tcr => tcr(),
        TvmReg::Esr => esr(),
        TvmReg::Far => far(),
        TvmReg::Afsr0 => afsr0(),
        TvmReg::Afsr1 => afsr1(),
        TvmReg::Mair => mair(),
        TvmReg::Amair => amair(),
        TvmReg::Contextidr => contextidr(),
    }
}

/// Write one of the eleven TVM registers, then ISB.
///
/// # Safety
/// As for the individual setters: the value must be safe to run with.
pub unsafe fn write_tvm(reg: TvmReg, v: u64) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match reg {
            TvmReg::Sctlr => set_sctlr(v),
            TvmReg::Ttbr0 => set_ttbr0(v),
            TvmReg::Ttbr1 => set_ttbr1(v),
            TvmReg::Tcr => set_tcr(v),
            TvmReg::Esr => set_esr(v),
            TvmReg::Far => set_far(v),
            TvmReg::Afsr0 => set_afsr0(v),
            TvmReg::Afsr1 => set_afsr1(v),
            TvmReg::Mair => set_mair(v),
            TvmReg::Amair => set_amair(v),
            TvmReg::Contextidr => set_contextidr(v),
        }
    }
    isb();
}

/// ISB.
pub fn isb() {
    barrier::isb(barrier::SY);
}

/// DSB SY.
pub fn dsb() {
    barrier::dsb(barrier::SY);
}

/// Invalidate all EL1 stage-1 TLB entries of this CPU (with the DSBs and ISB around it).
pub fn tlbi_vmalle1() {
    dsb();
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    dsb();
    isb();
}

/// Invalidate (to PoC) the data cache lines of `[start, end)`. Under a hypervisor with stage 2
/// this is a clean+invalidate, which is what the callers want too.
///
/// # Safety
/// Data written through a cacheable mapping of the range and not yet cleaned is lost: call it only
/// while everything in the range was written with the MMU off.
pub unsafe fn dcache_invalidate(start: u64, end: u64) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 (cache type) has no side effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: the caller guarantees no wanted data of the range is only in the cache.
        unsafe { asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb();
}

/// The exception level the probe runs at.
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// ID_AA64MMFR0_EL1.PARange.
pub fn pa_range() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// ID_AA64MMFR1_EL1.VMIDBits (0: 8-bit VMIDs, 2: 16-bit).
pub fn vmid_bits() -> u64 {
    ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::VMIDBits)
}

/// CNTFRQ_EL0.
pub fn cntfrq() -> u64 {
    CNTFRQ_EL0.get()
}
