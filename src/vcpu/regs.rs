//! The EL2 register values that configure a VM's vCPUs, computed from the CPU's ID registers
//! and the VM's coherency mode. Pure: the runtime reads the ID registers and writes the results.
//! The fields come from aarch64-cpu, and from [`ext`] where it has none.

use crate::coherency::Mode;
use aarch64_cpu::registers::{HCR_EL2, MDCR_EL2, SCTLR_EL1};
use ext::{CPTR_EL2_EXT, HCRX_EL2, SCTLR_EL1_EXT, SMCR_EL2, ZCR_EL2};

/// `arch::sysreg_ext`: the registers and fields aarch64-cpu lacks. `arch` is built for the
/// bare-metal target only, so the host (tests) mounts the same file here.
#[cfg(target_os = "none")]
pub use crate::arch::sysreg_ext as ext;
/// `arch::sysreg_ext`: the registers and fields aarch64-cpu lacks. `arch` is built for the
/// bare-metal target only, so the host (tests) mounts the same file here.
#[cfg(not(target_os = "none"))]
#[path = "../arch/sysreg_ext.rs"]
pub mod sysreg_ext;
#[cfg(not(target_os = "none"))]
pub use sysreg_ext as ext;

/// `arch::cpu_features`, mounted the same way on the host.
#[cfg(target_os = "none")]
pub use crate::arch::cpu_features::CpuFeatures;
#[cfg(not(target_os = "none"))]
#[path = "../arch/cpu_features.rs"]
mod cpu_features;
#[cfg(not(target_os = "none"))]
pub use cpu_features::CpuFeatures;

/// HCR_EL2 for a VM: Stage 2 on; physical interrupts, FIQs and SErrors to EL2; set/way
/// invalidation upgraded to clean+invalidate (SWIO; with VM = 1 the architecture does that
/// anyway); broadcast TLB/barriers inner shareable (FB, BSU); SMC trapped (PSCI goes to
/// el2visor); ACTLR and implementation-defined registers trapped; AArch64 EL1. WFE is not trapped
/// and WFI only with `trap_wfi` (GICv2 hosts, as a vCPU starts; from then on TWI is set only while
/// a list register holds a physical interrupt: `gic::lrs::set_wfi_trap`): each pCPU runs one
/// vCPU, so a guest's WFI may idle the real CPU, and interrupts wake it. FWB in fwb mode; in mair-trap
/// mode TVM, and DC as a vCPU starts (its MMU is off): from then on DC follows the guest's
/// SCTLR_EL1.M (`coherency::hcr_dc`, `trap::tvm`), so this value is for `vcpu::el2::configure`
/// only: once a guest runs, change HCR_EL2 by read-modify-write, or DC set by this value would
/// switch off a running guest's MMU. Set/way maintenance is not trapped (TSW): docs/coherency.md
/// says why it is not needed.
pub fn hcr_el2(mode: Mode, f: &CpuFeatures, trap_wfi: bool) -> u64 {
    use HCR_EL2::*;
    let mut v = VM::Enable
        + SWIO::SET
        + PTW::SET
        + FMO::EnableVirtualFIQ
        + IMO::EnableVirtualIRQ
        + AMO::SET
        + FB::SET
        + BSU::InnerShareable
        + TSC::EnableTrapEl1SmcToEl2
        + TIDCP::SET
        + TACR::SET
        + RW::EL1IsAarch64;
    if trap_wfi {
        v += TWI::SET;
    }
    match mode {
        Mode::MairTrap => v += TVM::EnableTrapTVM + DC::SET,
        Mode::Fwb => v += FWB::Enabled,
        Mode::Off => {}
    }
    if f.pauth {
        v += API::DisableTrapPointerAuthInstToEl2 + APK::DisableTrapPointerAuthKeyRegsToEl2;
    }
    if f.mte {
        v += ATA::SET;
    }
    if f.csv2_2 {
        v += EnSCXT::SET;
    }
    v.value
}

/// HCRX_EL2 where FEAT_HCX exists: enable what the guest's ID registers advertise (MOPS,
/// TCR2_EL1, SCTLR2_EL1, GCS); `None` without FEAT_HCX.
pub fn hcrx_el2(f: &CpuFeatures) -> Option<u64> {
    if !f.hcx {
        return None;
    }
    let mut v = 0;
    if f.mops {
        // MOPS instructions run (MSCEn), and their exceptions stay at EL1 (MCE2 clear): each
        // vCPU keeps its pCPU, so a sequence never resumes on a CPU of another option behind
        // the guest's back, and a MOPS exception is the guest's own, for its EL1 handler (KVM
        // sets MCE2 because its vCPUs migrate, and restarts the sequence at EL2).
        v |= HCRX_EL2::MSCEn::SET.value;
    }
    if f.tcr2 {
        v |= HCRX_EL2::TCR2En::SET.value;
    }
    if f.sctlr2 {
        v |= HCRX_EL2::SCTLR2En::SET.value;
    }
    if f.gcs {
        // The guest's GCS works as the ID register says (its traps are off: `vcpu::fgt`).
        v |= HCRX_EL2::GCSEn::SET.value;
    }
    Some(v)
}

/// CPTR_EL2 (E2H = 0): nothing trapped (FP/SIMD, SVE, SME, trace), RES1 bits set; TSM is RES1
/// where SME is not implemented.
pub fn cptr_el2(f: &CpuFeatures) -> u64 {
    /// Bits 7:0, 9 and 13: RES1 with E2H = 0, not fields.
    const RES1: u64 = 0xff | (1 << 9) | (1 << 13);
    // TCPAC, TAM, TTA, TFP clear: nothing traps. TSM and TZ are RES1 without SME and SVE.
    let mut v = RES1;
    if !f.sme {
        v |= CPTR_EL2_EXT::TSM::SET.value;
    }
    if !f.sve {
        v |= CPTR_EL2_EXT::TZ::SET.value;
    }
    v
}

/// CNTHCTL_EL2 (E2H = 0): EL1 may read the physical counter and use the physical timer.
pub const CNTHCTL_EL2: u64 = aarch64_cpu::registers::CNTHCTL_EL2::EL1PCTEN::SET.value
    | aarch64_cpu::registers::CNTHCTL_EL2::EL1PCEN::SET.value;

/// MDCR_EL2: every PMU event counter goes to the guest (HPMN = N, both 5 bits wide), nothing
/// trapped, and the guest's counters do not count while el2visor runs: HPMD (event counters
/// prohibited at EL2, FEAT_PMUv3p1) and HCCD (the cycle counter too, FEAT_PMUv3p5), where the
/// CPU has them (they are RES0 before).
pub fn mdcr_el2(f: &CpuFeatures) -> u64 {
    let mut v = MDCR_EL2::HPMN.val(f.pmu_counters as u64);
    if f.pmuv3p1() {
        v += MDCR_EL2::HPMD::SET;
    }
    if f.pmuv3p5() {
        v += MDCR_EL2::HCCD::SET;
    }
    v.value
}

/// SCTLR_EL1 a vCPU starts with: MMU and caches off, little-endian (boot protocol), and the
/// bits that are RES1 on CPUs without their features set.
pub const SCTLR_EL1_RESET: u64 = SCTLR_EL1::M::Disable.value
    | SCTLR_EL1::C::NonCacheable.value
    | SCTLR_EL1::I::NonCacheable.value
    | SCTLR_EL1::EE::LittleEndian.value
    | SCTLR_EL1::E0E::LittleEndian.value
    | SCTLR_EL1_EXT::LSMAOE::SET.value
    | SCTLR_EL1_EXT::nTLSMD::SET.value
    | SCTLR_EL1_EXT::SPAN::SET.value
    | SCTLR_EL1_EXT::EIS::SET.value
    | SCTLR_EL1_EXT::TSCXT::SET.value
    | SCTLR_EL1_EXT::EOS::SET.value;

/// [`SCTLR_EL1_RESET`] for a vCPU that starts big-endian (SCTLR_EL1.EE: PSCI CPU_ON starts
/// the target with its caller's endianness) or not.
pub const fn sctlr_el1_reset(big_endian: bool) -> u64 {
    if big_endian {
        SCTLR_EL1_RESET | SCTLR_EL1::EE::BigEndian.value
    } else {
        SCTLR_EL1_RESET
    }
}

/// The largest vector length field for ZCR_EL2/SMCR_EL2 (LEN): the guest may use what the CPU
/// has, since a LEN above the implemented maximum selects the maximum.
pub const VL_MAX_FIELD: u64 = ZCR_EL2::LEN.mask;

/// SMCR_EL2 on a CPU with FEAT_SME whose ID_AA64SMFR0_EL1 is `smfr0`: the largest streaming
/// vector length, and nothing the CPU has trapped: the full A64 set in streaming mode where
/// FEAT_SME_FA64 is (bit 63), ZT0 where FEAT_SME2 is (SMEver, bits 59:56, 1 or more); both bits
/// are RES0 otherwise.
pub const fn smcr_el2(smfr0: u64) -> u64 {
    let mut v = VL_MAX_FIELD;
    if smfr0 >> 63 != 0 {
        v |= SMCR_EL2::FA64::SET.value;
    }
    if (smfr0 >> 56) & 0xf != 0 {
        v |= SMCR_EL2::EZT0::SET.value;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smcr_el2_untraps_what_the_cpu_has() {
        assert_eq!(smcr_el2(0), 0xf, "SME alone: the length only (FA64 and EZT0 are RES0)");
        assert_eq!(smcr_el2(1 << 63), 0x8000_000f);
        // SME2 (SMEver 1) and SME2.1 (2): ZT0 untrapped.
        assert_eq!(smcr_el2(1 << 56), 0x4000_000f);
        assert_eq!(smcr_el2(1 << 63 | 2 << 56), 0xc000_000f);
    }

    #[test]
    fn hcr_follows_mode_and_features() {
        let plain = CpuFeatures::default();
        let h = hcr_el2(Mode::Off, &plain, false);
        assert!(!HCR_EL2::TVM.is_set(h) && !HCR_EL2::FWB.is_set(h));
        assert!(HCR_EL2::VM.is_set(h));
        assert!(HCR_EL2::TSC.is_set(h), "SMC must trap: PSCI is el2visor's");
        assert!(!HCR_EL2::TWI.is_set(h), "WFI idles the vCPU's own pCPU");
        assert!(HCR_EL2::TVM.is_set(hcr_el2(Mode::MairTrap, &plain, false)));
        // A vCPU starts with its MMU off: DC in mair-trap mode, where it then follows SCTLR.M.
        assert!(HCR_EL2::DC.is_set(hcr_el2(Mode::MairTrap, &plain, false)));
        assert_eq!(
            hcr_el2(Mode::MairTrap, &plain, false),
            crate::coherency::hcr_dc(hcr_el2(Mode::MairTrap, &plain, false), SCTLR_EL1_RESET)
        );
        for mode in [Mode::Off, Mode::Fwb] {
            assert!(!HCR_EL2::DC.is_set(hcr_el2(mode, &plain, false)), "{mode:?}");
            assert!(!HCR_EL2::TSW.is_set(hcr_el2(mode, &plain, false)), "{mode:?}");
        }
        assert!(HCR_EL2::TWI.is_set(hcr_el2(Mode::Off, &plain, true)), "GICv2 hosts trap WFI");
        assert!(HCR_EL2::FWB.is_set(hcr_el2(Mode::Fwb, &plain, false)));
        let rich = CpuFeatures { pauth: true, mte: true, csv2_2: true, ..plain };
        let h = hcr_el2(Mode::Fwb, &rich, false);
        for field in [HCR_EL2::API, HCR_EL2::APK, HCR_EL2::ATA, HCR_EL2::EnSCXT] {
            assert!(field.is_set(h));
        }
    }

    #[test]
    fn features_from_id_registers() {
        // QEMU -cpu max style: SVE (PFR0 35:32 = 1), CSV2 = 2, SME (PFR1 27:24), MTE 3, PAuth API.
        let pfr0 = (1u64 << 32) | (2u64 << 56);
        let pfr1 = (1u64 << 24) | (3u64 << 8);
        let isar1 = 1u64 << 8;
        let isar2 = 1u64 << 16;
        let mmfr1 = 1u64 << 40;
        let f = CpuFeatures::from_id_regs(pfr0, pfr1, isar1, isar2, mmfr1, 1, 6 << 11);
        assert!(f.sve && f.sme && f.mte && f.pauth && f.csv2_2 && f.hcx && f.mops && f.tcr2 && !f.sctlr2);
        assert_eq!(f.pmu_counters, 6);
        assert_eq!(hcrx_el2(&f), Some((1 << 11) | (1 << 14)));
        assert_eq!(cptr_el2(&f) & ((1 << 12) | (1 << 8)), 0, "SVE and SME must not trap");
        // Cortex-A72: none of them.
        let a72 = CpuFeatures::from_id_regs(0x1100_0000_0000_2222, 0, 0, 0, 0, 0, 6 << 11);
        assert!(!a72.sve && !a72.sme && !a72.pauth && !a72.hcx);
        assert_eq!(hcrx_el2(&a72), None);
        assert_eq!(cptr_el2(&a72), 0x33ff);
    }

    /// The exact values the register builders produced before their fields came from
    /// aarch64-cpu: the field definitions may move, the bits may not.
    #[test]
    fn exact_values() {
        let plain = CpuFeatures::default();
        assert_eq!(hcr_el2(Mode::Off, &plain, false), 0x8038_063f);
        assert_eq!(hcr_el2(Mode::MairTrap, &plain, false), 0x8438_163f);
        assert_eq!(hcr_el2(Mode::Fwb, &plain, false), 0x4000_8038_063f);
        assert_eq!(hcr_el2(Mode::Off, &plain, true), 0x8038_263f);
        let rich = CpuFeatures { pauth: true, mte: true, csv2_2: true, ..plain };
        assert_eq!(hcr_el2(Mode::Fwb, &rich, false), 0x0120_4300_8038_063f);
        assert_eq!(hcr_el2(Mode::MairTrap, &rich, true), 0x0120_0300_8438_363f);
        assert_eq!(hcr_el2(Mode::Off, &CpuFeatures { pauth: true, ..plain }, false), 0x0300_8038_063f);
        assert_eq!(hcr_el2(Mode::Off, &CpuFeatures { mte: true, ..plain }, false), 0x0100_0000_8038_063f);
        assert_eq!(hcr_el2(Mode::Off, &CpuFeatures { csv2_2: true, ..plain }, false), 0x0020_0000_8038_063f);

        let hcx = CpuFeatures { hcx: true, ..plain };
        assert_eq!(hcrx_el2(&plain), None);
        assert_eq!(hcrx_el2(&CpuFeatures { mops: true, tcr2: true, sctlr2: true, ..plain }), None);
        assert_eq!(hcrx_el2(&hcx), Some(0));
        assert_eq!(hcrx_el2(&CpuFeatures { mops: true, ..hcx }), Some(0x0800), "MSCEn, not MCE2");
        assert_eq!(hcrx_el2(&CpuFeatures { tcr2: true, ..hcx }), Some(0x4000));
        assert_eq!(hcrx_el2(&CpuFeatures { sctlr2: true, ..hcx }), Some(0x8000));
        assert_eq!(hcrx_el2(&CpuFeatures { gcs: true, ..hcx }), Some(1 << 22));
        assert!(CpuFeatures::from_id_regs(0, 1 << 44, 0, 0, 0, 0, 0).gcs);
        assert_eq!(hcrx_el2(&CpuFeatures { mops: true, tcr2: true, sctlr2: true, ..hcx }), Some(0xc800));

        assert_eq!(cptr_el2(&plain), 0x33ff);
        assert_eq!(cptr_el2(&CpuFeatures { sve: true, ..plain }), 0x32ff);
        assert_eq!(cptr_el2(&CpuFeatures { sme: true, ..plain }), 0x23ff);
        assert_eq!(cptr_el2(&CpuFeatures { sve: true, sme: true, ..plain }), 0x22ff);

        assert_eq!(mdcr_el2(&plain), 0);
        assert_eq!(mdcr_el2(&CpuFeatures { pmu_counters: 6, ..plain }), 6);
        assert_eq!(mdcr_el2(&CpuFeatures { pmu_counters: 31, ..plain }), 31);

        assert_eq!(CNTHCTL_EL2, 0b11);
        assert_eq!(SCTLR_EL1_RESET, 0x30d0_0800);
        assert_eq!(sctlr_el1_reset(false), SCTLR_EL1_RESET);
        assert_eq!(sctlr_el1_reset(true), 0x30d0_0800 | 1 << 25, "EE, not E0E");
        assert_eq!(VL_MAX_FIELD, 0xf);
    }

    /// Each ID-register field, at its own bits only, at the threshold that turns it on.
    #[test]
    fn each_id_field_at_its_bits() {
        let none = CpuFeatures::default();
        let f = |pfr0, pfr1, isar1, isar2, mmfr1, mmfr3, pmcr| {
            CpuFeatures::from_id_regs(pfr0, pfr1, isar1, isar2, mmfr1, mmfr3, pmcr)
        };
        assert_eq!(f(0, 0, 0, 0, 0, 0, 0), none);
        // SVE: PFR0 35:32.
        assert_eq!(f(1 << 32, 0, 0, 0, 0, 0, 0), CpuFeatures { sve: true, ..none });
        assert_eq!(f(1 << 35, 0, 0, 0, 0, 0, 0), CpuFeatures { sve: true, ..none });
        assert_eq!(f((1 << 31) | (1 << 36), 0, 0, 0, 0, 0, 0), none);
        // CSV2: PFR0 59:56, 2 or more.
        assert_eq!(f(1 << 56, 0, 0, 0, 0, 0, 0), none);
        assert_eq!(f(2 << 56, 0, 0, 0, 0, 0, 0), CpuFeatures { csv2_2: true, ..none });
        assert_eq!(f(0xf << 56, 0, 0, 0, 0, 0, 0), CpuFeatures { csv2_2: true, ..none });
        assert_eq!(f((1 << 60) | (1 << 55), 0, 0, 0, 0, 0, 0), none);
        // SME: PFR1 27:24; MTE: PFR1 11:8, 2 or more.
        assert_eq!(f(0, 1 << 24, 0, 0, 0, 0, 0), CpuFeatures { sme: true, ..none });
        assert_eq!(f(0, 1 << 27, 0, 0, 0, 0, 0), CpuFeatures { sme: true, ..none });
        assert_eq!(f(0, (1 << 23) | (1 << 28), 0, 0, 0, 0, 0), none);
        assert_eq!(f(0, 1 << 8, 0, 0, 0, 0, 0), none);
        assert_eq!(f(0, 2 << 8, 0, 0, 0, 0, 0), CpuFeatures { mte: true, ..none });
        assert_eq!(f(0, 0xf << 8, 0, 0, 0, 0, 0), CpuFeatures { mte: true, ..none });
        assert_eq!(f(0, (1 << 12) | (0x3 << 6), 0, 0, 0, 0, 0), none);
        // PAuth: ISAR1 APA 7:4, API 11:8, GPA 27:24, GPI 31:28; ISAR2 APA3 15:12, GPA3 11:8.
        let pauth = CpuFeatures { pauth: true, ..none };
        for shift in [4, 8, 24, 28] {
            assert_eq!(f(0, 0, 1 << shift, 0, 0, 0, 0), pauth, "ISAR1 bit {shift}");
            assert_eq!(f(0, 0, 8 << shift, 0, 0, 0, 0), pauth, "ISAR1 bit {}", shift + 3);
        }
        assert_eq!(f(0, 0, 0xf | (0xff << 12) | (1 << 32), 0, 0, 0, 0), none);
        for shift in [8, 12] {
            assert_eq!(f(0, 0, 0, 1 << shift, 0, 0, 0), pauth, "ISAR2 bit {shift}");
            assert_eq!(f(0, 0, 0, 8 << shift, 0, 0, 0), pauth, "ISAR2 bit {}", shift + 3);
        }
        assert_eq!(f(0, 0, 0, 0xff, 0, 0, 0), none);
        // MOPS: ISAR2 19:16.
        assert_eq!(f(0, 0, 0, 1 << 16, 0, 0, 0), CpuFeatures { mops: true, ..none });
        assert_eq!(f(0, 0, 0, 8 << 16, 0, 0, 0), CpuFeatures { mops: true, ..none });
        assert_eq!(f(0, 0, 0, 1 << 20, 0, 0, 0), none);
        // HCX: MMFR1 43:40.
        assert_eq!(f(0, 0, 0, 0, 1 << 40, 0, 0), CpuFeatures { hcx: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 8 << 40, 0, 0), CpuFeatures { hcx: true, ..none });
        assert_eq!(f(0, 0, 0, 0, (1 << 39) | (1 << 44), 0, 0), none);
        // TCRX: MMFR3 3:0; SCTLRX: MMFR3 7:4.
        assert_eq!(f(0, 0, 0, 0, 0, 1, 0), CpuFeatures { tcr2: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 8, 0), CpuFeatures { tcr2: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 1 << 4, 0), CpuFeatures { sctlr2: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 8 << 4, 0), CpuFeatures { sctlr2: true, ..none });
        // S1PIE 11:8, S1POE 19:16, S2POE 23:20, AIE 27:24 (the EL1 registers `feature_regs`
        // saves); 15:12 is none of them.
        assert_eq!(f(0, 0, 0, 0, 0, 1 << 8, 0), CpuFeatures { s1pie: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 1 << 16, 0), CpuFeatures { s1poe: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 1 << 20, 0), CpuFeatures { s2poe: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 1 << 24, 0), CpuFeatures { aie: true, ..none });
        assert_eq!(f(0, 0, 0, 0, 0, 0xf << 12, 0), none);
        // PMCR_EL0.N: 15:11.
        assert_eq!(f(0, 0, 0, 0, 0, 0, 0x1f << 11).pmu_counters, 31);
        assert_eq!(f(0, 0, 0, 0, 0, 0, (1 << 16) | 0x7ff).pmu_counters, 0);
        // Everything.
        let all = f(u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(
            all,
            CpuFeatures {
                sve: true,
                sme: true,
                mte: true,
                pauth: true,
                csv2_2: true,
                hcx: true,
                mops: true,
                tcr2: true,
                sctlr2: true,
                s1pie: true,
                s1poe: true,
                s2poe: true,
                aie: true,
                gcs: true,
                pmu_counters: 31,
                pmu_ver: 0,
            }
        );
    }

    /// MDCR_EL2.HPMD (bit 17) from PMUv3p1 and HCCD (bit 23) from PMUv3p5, read from
    /// ID_AA64DFR0_EL1.PMUVer (bits 11:8); an IMPLEMENTATION DEFINED PMU (0xf) gets neither.
    #[test]
    fn mdcr_keeps_guest_counters_out_of_el2() {
        let base = CpuFeatures { pmu_counters: 6, ..CpuFeatures::default() };
        let mdcr = |pmuver: u64| mdcr_el2(&base.with_dfr0((pmuver << 8) | 0xf0f0_f00f));
        const HPMD: u64 = 1 << 17;
        const HCCD: u64 = 1 << 23;
        for (pmuver, want) in [
            (0, 0),                // no PMU
            (1, 0),                // PMUv3
            (4, HPMD),             // PMUv3p1
            (5, HPMD),             // PMUv3p4
            (6, HPMD | HCCD),      // PMUv3p5
            (7, HPMD | HCCD),      // PMUv3p7
            (8, HPMD | HCCD),      // PMUv3p8
            (9, HPMD | HCCD),      // PMUv3p9
            (0xf, 0),              // IMPLEMENTATION DEFINED
        ] {
            assert_eq!(mdcr(pmuver), 6 | want, "PMUVer {pmuver:#x}");
        }
        // Only bits 11:8 count.
        assert_eq!(base.with_dfr0(!0xf00u64).pmu_ver, 0);
        assert_eq!(base.with_dfr0(0x600).pmu_ver, 6);
    }
}
