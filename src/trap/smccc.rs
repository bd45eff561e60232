//! SMCCC 1.1 function IDs and the Arm architecture service (owner 0): SMCCC_VERSION and
//! SMCCC_ARCH_FEATURES.
//!
//! el2visor does not run any firmware mitigation on a guest's behalf, so SMCCC_ARCH_FEATURES
//! answers NOT_SUPPORTED for ARCH_WORKAROUND_1/2/3 and ARCH_SOC_ID: claiming a workaround would
//! tell the guest that calling it mitigates something, which it would not. Linux then reports
//! itself as not mitigated by firmware and boots normally.

use super::abi::smccc;

/// An SMCCC function identifier (the value in w0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FunctionId(pub u32);

impl FunctionId {
    /// Bit 31: a fast call (yielding calls are not supported by el2visor).
    pub const fn is_fast(self) -> bool {
        self.0 & smccc::FAST_CALL != 0
    }

    /// Bit 30: the SMC64/HVC64 calling convention (else SMC32/HVC32: 32-bit arguments).
    pub const fn is_64(self) -> bool {
        self.0 & smccc::SMC64 != 0
    }

    /// Bits 29:24: the service owner (0 Arm architecture, 4 standard secure incl. PSCI,
    /// 5 standard hypervisor, 6 vendor hypervisor).
    pub const fn owner(self) -> u8 {
        ((self.0 >> 24) & 0x3f) as u8
    }

    /// Bits 15:0: the function number within the owner's range.
    pub const fn number(self) -> u16 {
        self.0 as u16
    }

    /// The call's arguments as the convention defines them: SMC32/HVC32 uses only the low
    /// 32 bits of each argument register.
    pub fn args(self, raw: [u64; 3]) -> [u64; 3] {
        if self.is_64() {
            raw
        } else {
            raw.map(|a| a & 0xffff_ffff)
        }
    }
}

/// SMCCC_ARCH_FEATURES: 0 for the architecture calls el2visor implements, NOT_SUPPORTED for the
/// rest (see the module docs for the workarounds).
pub const fn arch_features(queried: u32) -> i64 {
    match queried {
        smccc::VERSION | smccc::ARCH_FEATURES => smccc::SUCCESS,
        _ => smccc::NOT_SUPPORTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_function_ids() {
        let cpu_on = FunctionId(0xc400_0003);
        assert!(cpu_on.is_fast() && cpu_on.is_64());
        assert_eq!(
            (cpu_on.owner(), cpu_on.number()),
            (smccc::OWNER_STANDARD, 3)
        );
        let uid = FunctionId(0x8600_ff01);
        assert!(uid.is_fast() && !uid.is_64());
        assert_eq!(
            (uid.owner(), uid.number()),
            (smccc::OWNER_VENDOR_HYP, 0xff01)
        );
        assert!(!FunctionId(0x0400_0003).is_fast());
    }

    #[test]
    fn smc32_truncates_arguments() {
        let raw = [0xdead_beef_0000_0001, u64::MAX, 0x1_0000_0000];
        assert_eq!(FunctionId(0x8400_0003).args(raw), [1, 0xffff_ffff, 0]);
        assert_eq!(FunctionId(0xc400_0003).args(raw), raw);
    }

    #[test]
    fn arch_features_are_honest() {
        assert_eq!(arch_features(smccc::VERSION), 0);
        assert_eq!(arch_features(smccc::ARCH_FEATURES), 0);
        for unsupported in [
            smccc::ARCH_WORKAROUND_1,
            smccc::ARCH_WORKAROUND_2,
            smccc::ARCH_WORKAROUND_3,
            smccc::ARCH_SOC_ID,
            0x8400_0000,
        ] {
            assert_eq!(arch_features(unsupported), -1);
        }
    }
}
