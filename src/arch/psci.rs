//! Calls to the firmware's PSCI (the host's, not the one el2visor emulates for guests).

/// How the firmware takes PSCI calls (the host DT's `/psci` `method`; `boot` converts the
/// platform's value, so this layer depends on nothing above it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

pub const CPU_ON_64: u32 = 0xc400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;
pub const PSCI_VERSION: u32 = 0x8400_0000;

/// One SMCCC call: function ID and three arguments in, x0 out.
pub fn call(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = fid as u64;
    match conduit {
        // SAFETY: an SMCCC call clobbers at most x0-x17 (declared); firmware does not touch our memory
        // except as the call's documented semantics say (CPU_ON starts a CPU at a given entry).
        Conduit::Smc => unsafe {
            core::arch::asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
                out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above, for a firmware that takes HVC (only when el2visor is not at EL2).
        Conduit::Hvc => unsafe {
            core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
                out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
    }
    x0 as i64
}

/// Start CPU `mpidr` at physical address `entry` with `context` in x0.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(conduit, CPU_ON_64, mpidr, entry, context)
}

/// Power the machine off. Returns only if the firmware refused.
pub fn system_off(conduit: Conduit) -> i64 {
    call(conduit, SYSTEM_OFF, 0, 0, 0)
}

/// The host firmware's PSCI conduit, if it has PSCI (set once at boot from the DT).
pub static HOST_CONDUIT: spin::Once<Option<Conduit>> = spin::Once::new();
