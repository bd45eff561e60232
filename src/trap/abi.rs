//! The guest-visible call ABI of el2visor: PSCI 1.1, SMCCC 1.1 and el2visor's vendor hypervisor
//! service, as plain constants.
//!
//! This file depends on nothing (not even `core` items beyond integers) so the probe guest and
//! any other bare-metal guest can copy it verbatim. Calls are made with `hvc #0` (or `smc #0`
//! where the VM's device tree says so): function ID in w0, arguments in x1..x3, results in x0
//! (x0..x3 for the calls marked "4 words"). A function ID whose bit 30 is clear is an SMC32/HVC32
//! call and only the low 32 bits of each argument are used.
//!
//! # el2visor vendor hypervisor service (SMCCC owner 6, fast calls)
//!
//! | ID | name | arguments | result in x0 |
//! |---|---|---|---|
//! | `0xc600_0001` | `AT_S12E1R` | x1 = guest VA | PAR_EL1 after `AT S12E1R` on that VA (bit 0 = F: fault) |
//! | `0xc600_0002` | `AT_S12E1W` | x1 = guest VA | PAR_EL1 after `AT S12E1W` on that VA |
//! | `0xc600_0003` | `TRAP_COUNTERS` | x1 = which: 0 fast-path TVM writes, 1 slow-path TVM writes | that count for the calling vCPU, or −3 for another `which` |
//! | `0xc600_0004` | `COHERENCY_MODE` | none | 0 off, 1 fwb, 2 mair-trap, 3 mair-trap with the fast path disabled |
//! | `0xc600_0005` | `LOG_LINE` | x1 = guest-physical address, x2 = length (at most 256 bytes) of a text in the caller's RAM | 0, and el2visor prints `el2visor: VM <name> vCPU <n> log: <text>` (rate limited; bytes that are not printable ASCII become `.`); −3 when the length is 0 or over 256 or the range is not the VM's RAM |
//! | `0xc600_0010` | `SNAPSHOT_TAKE` | x1 = flags: bit 0 log-dirty from now on (for a dirty-only restore) | 0: taken. After a restore the same call returns again with x0 = 1, x1 = the number of restores so far; −1 when the VM has no snapshot area (`snapshot_mem=`) |
//! | `0xc600_0011` | `SNAPSHOT_RESTORE` | x1 = kind: 0 eager, 1 lazy, 2 dirty-only | does not return: the VM resumes at its snapshot; −1 with no snapshot taken, −3 for another kind |
//! | `0xc600_0012` | `SNAPSHOT_INFO` | x1 = which: 0 Stage-2 blocks mapping the VM's RAM, 1 pages mapping it, 2 pages missing (lazy restore), 3 dirty pages, 4 cache lines cleaned to the PoC since the last restore began, 5 region flags (bit 0 userfault, 1 log-dirty, 2 held to pages), 6 restores so far | that value; −1 without a snapshot area, −3 for another `which` |
//! | `0x8600_ff00` | call count | none | number of vendor functions (8) |
//! | `0x8600_ff01` | UID | none | 4 words: el2visor's UUID `6c466164-f44c-40c7-914f-9d11e61e1907` |
//! | `0x8600_ff03` | revision | none | x0 = major, x1 = minor |
//!
//! SMCCC defines the general queries (`0xff00`, `0xff01`, `0xff03`) as SMC32 calls; Linux uses
//! those. el2visor answers the same queries under the SMC64 IDs `0xc600_ff0x` too. The `PAR_EL1`
//! attribute byte (bits 63:56) is the combined stage-1 + stage-2 memory type: 0xff Normal
//! write-back, 0x44 Normal non-cacheable, 0x00/0x04 Device.

/// PSCI function IDs (PSCI 1.1, DEN0022). `_32` = SMC32 convention, `_64` = SMC64.
pub mod psci {
    pub const VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON_32: u32 = 0x8400_0003;
    pub const CPU_ON_64: u32 = 0xc400_0003;
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    pub const MIGRATE_32: u32 = 0x8400_0005;
    pub const MIGRATE_64: u32 = 0xc400_0005;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const MIGRATE_INFO_UP_CPU_32: u32 = 0x8400_0007;
    pub const MIGRATE_INFO_UP_CPU_64: u32 = 0xc400_0007;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const FEATURES: u32 = 0x8400_000a;
    pub const SYSTEM_SUSPEND_32: u32 = 0x8400_000e;
    pub const SYSTEM_SUSPEND_64: u32 = 0xc400_000e;
    pub const SYSTEM_RESET2_32: u32 = 0x8400_0012;
    pub const SYSTEM_RESET2_64: u32 = 0xc400_0012;

    /// What VERSION returns: major 1 in bits 31:16, minor 1 in bits 15:0.
    pub const VERSION_1_1: i64 = 0x0001_0001;
    /// MIGRATE_INFO_TYPE result: no Trusted OS that needs migrating.
    pub const MIGRATE_INFO_TYPE_NO_TOS: i64 = 2;

    /// AFFINITY_INFO results.
    pub const AFFINITY_ON: i64 = 0;
    pub const AFFINITY_OFF: i64 = 1;
    pub const AFFINITY_ON_PENDING: i64 = 2;

    /// PSCI return codes.
    pub const SUCCESS: i64 = 0;
    pub const NOT_SUPPORTED: i64 = -1;
    pub const INVALID_PARAMETERS: i64 = -2;
    pub const DENIED: i64 = -3;
    pub const ALREADY_ON: i64 = -4;
    pub const ON_PENDING: i64 = -5;
    pub const INTERNAL_FAILURE: i64 = -6;
    pub const NOT_PRESENT: i64 = -7;
    pub const DISABLED: i64 = -8;
    pub const INVALID_ADDRESS: i64 = -9;
}

/// SMCCC Arm architecture service calls (owner 0) and return codes (DEN0028).
pub mod smccc {
    pub const VERSION: u32 = 0x8000_0000;
    pub const ARCH_FEATURES: u32 = 0x8000_0001;
    pub const ARCH_SOC_ID: u32 = 0x8000_0002;
    pub const ARCH_WORKAROUND_1: u32 = 0x8000_8000;
    pub const ARCH_WORKAROUND_2: u32 = 0x8000_7fff;
    pub const ARCH_WORKAROUND_3: u32 = 0x8000_3fff;

    /// What VERSION returns: SMCCC 1.1.
    pub const VERSION_1_1: i64 = 0x0001_0001;

    pub const SUCCESS: i64 = 0;
    pub const NOT_SUPPORTED: i64 = -1;
    pub const NOT_REQUIRED: i64 = -2;
    pub const INVALID_PARAMETER: i64 = -3;

    /// Function ID bit 31: fast call (1) or yielding call (0).
    pub const FAST_CALL: u32 = 1 << 31;
    /// Function ID bit 30: SMC64/HVC64 calling convention.
    pub const SMC64: u32 = 1 << 30;
    /// Owner numbers (function ID bits 29:24).
    pub const OWNER_ARCH: u8 = 0;
    pub const OWNER_STANDARD: u8 = 4;
    pub const OWNER_VENDOR_HYP: u8 = 6;
}

/// el2visor's vendor hypervisor service (SMCCC owner 6); see the table in the module docs.
pub mod vendor {
    pub const AT_S12E1R: u32 = 0xc600_0001;
    pub const AT_S12E1W: u32 = 0xc600_0002;
    pub const TRAP_COUNTERS: u32 = 0xc600_0003;
    pub const COHERENCY_MODE: u32 = 0xc600_0004;
    pub const LOG_LINE: u32 = 0xc600_0005;

    /// The longest text `LOG_LINE` prints.
    pub const LOG_LINE_MAX: u64 = 256;

    /// The snapshot calls start at 0x10 (0x06..0x0f are free).
    pub const SNAPSHOT_TAKE: u32 = 0xc600_0010;
    pub const SNAPSHOT_RESTORE: u32 = 0xc600_0011;
    pub const SNAPSHOT_INFO: u32 = 0xc600_0012;
    /// `SNAPSHOT_TAKE` flags.
    pub const SNAPSHOT_LOG_DIRTY: u64 = 1;

    pub const CALL_COUNT: u32 = 0x8600_ff00;
    pub const UID: u32 = 0x8600_ff01;
    pub const REVISION: u32 = 0x8600_ff03;
    pub const CALL_COUNT_64: u32 = 0xc600_ff00;
    pub const UID_64: u32 = 0xc600_ff01;
    pub const REVISION_64: u32 = 0xc600_ff03;

    /// `TRAP_COUNTERS` selectors.
    pub const COUNTER_FAST_TVM_WRITES: u64 = 0;
    pub const COUNTER_SLOW_TVM_WRITES: u64 = 1;

    /// `COHERENCY_MODE` results.
    pub const COHERENCY_OFF: u64 = 0;
    pub const COHERENCY_FWB: u64 = 1;
    pub const COHERENCY_MAIR_TRAP: u64 = 2;
    pub const COHERENCY_MAIR_TRAP_SLOW_ONLY: u64 = 3;

    /// Number of functions the service implements (`CALL_COUNT`).
    pub const FUNCTION_COUNT: u64 = 8;
    /// Service revision (`REVISION`): major, minor.
    pub const REVISION_MAJOR: u64 = 1;
    pub const REVISION_MINOR: u64 = 0;
    /// UUID 6c466164-f44c-40c7-914f-9d11e61e1907 as SMCCC returns it: four 32-bit words, UUID
    /// bytes 0..3 in word 0 with byte 0 in bits 7:0, and so on.
    pub const UID_WORDS: [u32; 4] = [0x6461_466c, 0xc740_4cf4, 0x119d_4f91, 0x0719_1ee6];
}
