//! The names of the SMCCC calls a guest makes, for `trace=psci` lines.

#![forbid(unsafe_code)]

/// The PSCI/SMCCC/vendor function name for a trace line.
pub fn call_name(fid: u32) -> &'static str {
    use super::abi::{psci, smccc, vendor};
    match fid {
        psci::VERSION => "PSCI_VERSION",
        psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => "CPU_SUSPEND",
        psci::CPU_OFF => "CPU_OFF",
        psci::CPU_ON_32 | psci::CPU_ON_64 => "CPU_ON",
        psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => "AFFINITY_INFO",
        psci::MIGRATE_INFO_TYPE => "MIGRATE_INFO_TYPE",
        psci::SYSTEM_OFF => "SYSTEM_OFF",
        psci::SYSTEM_RESET => "SYSTEM_RESET",
        psci::SYSTEM_RESET2_32 | psci::SYSTEM_RESET2_64 => "SYSTEM_RESET2",
        psci::SYSTEM_SUSPEND_32 | psci::SYSTEM_SUSPEND_64 => "SYSTEM_SUSPEND",
        psci::FEATURES => "PSCI_FEATURES",
        smccc::VERSION => "SMCCC_VERSION",
        smccc::ARCH_FEATURES => "SMCCC_ARCH_FEATURES",
        smccc::ARCH_SOC_ID => "SMCCC_ARCH_SOC_ID",
        smccc::ARCH_WORKAROUND_1 => "SMCCC_ARCH_WORKAROUND_1",
        smccc::ARCH_WORKAROUND_2 => "SMCCC_ARCH_WORKAROUND_2",
        smccc::ARCH_WORKAROUND_3 => "SMCCC_ARCH_WORKAROUND_3",
        vendor::AT_S12E1R => "el2visor AT_S12E1R",
        vendor::AT_S12E1W => "el2visor AT_S12E1W",
        vendor::TRAP_COUNTERS => "el2visor TRAP_COUNTERS",
        vendor::COHERENCY_MODE => "el2visor COHERENCY_MODE",
        vendor::LOG_LINE => "el2visor LOG_LINE",
        vendor::CALL_COUNT | vendor::CALL_COUNT_64 => "vendor CALL_COUNT",
        vendor::UID | vendor::UID_64 => "vendor UID",
        vendor::REVISION | vendor::REVISION_64 => "vendor REVISION",
        // Standard calls el2visor does not implement, named for the trace.
        0x8400_0050 => "TRNG_VERSION",
        0x8400_0051 => "TRNG_FEATURES",
        0x8400_0052 => "TRNG_GET_UUID",
        0x8400_0053 | 0xc400_0053 => "TRNG_RND",
        0xc500_0020 => "PV_TIME_FEATURES",
        0xc500_0021 => "PV_TIME_ST",
        _ => "unknown call",
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(call_name(0xc400_0003), "CPU_ON");
        assert_eq!(call_name(0x8400_0009), "SYSTEM_RESET");
        assert_eq!(call_name(0xc600_0005), "el2visor LOG_LINE");
        assert_eq!(call_name(0x1234), "unknown call");
    }
}
