//! SMCCC calls from the probe: el2visor's vendor calls (see `abi`) and PSCI SYSTEM_OFF.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use probe_guest::abi::{self, CoherencyMode};
use probe_guest::dt::Conduit;
use probe_guest::msg::Msg;

extern "C" {
    // entry.S: `hvc #0; ret` / `smc #0; ret`. An UNDEF of the HVC (no EL2) returns -1.
    fn probe_hvc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64;
    fn probe_smc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64;
}

/// A vendor call that did not give an answer.
#[derive(Clone, Copy, Debug)]
pub struct Unsupported {
    pub fid: u64,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vendor call unsupported ({:#x} returned NOT_SUPPORTED: not under el2visor?)",
            self.fid
        )
    }
}

impl From<Unsupported> for Msg {
    fn from(u: Unsupported) -> Msg {
        probe_guest::msg!("{u}")
    }
}

/// Make an SMCCC fast call with HVC (el2visor's conduit).
pub fn hvc(fid: u64, arg: u64) -> u64 {
    // SAFETY: probe_hvc follows the C ABI; an SMCCC callee preserves x18-x30 and the stack, and
    // the only exception it can raise (UNDEF without EL2) is fixed up in vectors.S.
    unsafe { probe_hvc(fid, arg, 0, 0) }
}

/// Call an el2visor vendor service.
pub fn vendor(fid: u64, arg: u64) -> Result<u64, Unsupported> {
    let r = hvc(fid, arg);
    if abi::is_not_supported(r) {
        Err(Unsupported { fid })
    } else {
        Ok(r)
    }
}

/// el2visor's coherency mode for this VM.
pub fn coherency_mode() -> Result<CoherencyMode, Msg> {
    let raw = vendor(abi::VENDOR_COHERENCY_MODE, 0)?;
    CoherencyMode::from_raw(raw).ok_or_else(|| {
        probe_guest::msg!("COHERENCY_MODE returned {raw:#x}, which the ABI does not define")
    })
}

/// (fast, slow) TVM write counters of this vCPU.
pub fn trap_counters() -> Result<(u64, u64), Unsupported> {
    Ok((
        vendor(abi::VENDOR_TRAP_COUNTERS, abi::TRAP_COUNTER_FAST)?,
        vendor(abi::VENDOR_TRAP_COUNTERS, abi::TRAP_COUNTER_SLOW)?,
    ))
}

/// PAR_EL1 after el2visor ran `AT S12E1R` (or `W`) on `va`.
pub fn at_s12e1(va: u64, write: bool) -> Result<u64, Unsupported> {
    vendor(
        if write {
            abi::VENDOR_AT_S12E1W
        } else {
            abi::VENDOR_AT_S12E1R
        },
        va,
    )
}

/// true once the DT said PSCI goes through SMC.
static PSCI_SMC: AtomicBool = AtomicBool::new(false);

/// Use the DT's PSCI conduit for SYSTEM_OFF.
pub fn set_psci_conduit(c: Conduit) {
    PSCI_SMC.store(c == Conduit::Smc, Ordering::Relaxed);
}

/// PSCI SYSTEM_OFF; returns only if the call failed (with its result).
pub fn system_off() -> u64 {
    if PSCI_SMC.load(Ordering::Relaxed) {
        // SAFETY: an SMCCC call through the C-ABI stub; SYSTEM_OFF does not return on success.
        unsafe { probe_smc(abi::PSCI_SYSTEM_OFF, 0, 0, 0) }
    } else {
        hvc(abi::PSCI_SYSTEM_OFF, 0)
    }
}

/// A PSCI or SMCCC call through the DT's conduit, x0 as a signed value (sign-extended from w0).
pub fn psci(fid: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let x0 = if PSCI_SMC.load(Ordering::Relaxed) {
        // SAFETY: an SMCCC call through the C-ABI stub; the callee preserves what the ABI says.
        unsafe { probe_smc(fid, a1, a2, a3) }
    } else {
        // SAFETY: as above, with HVC (an UNDEF without EL2 is fixed up to -1 in vectors.S).
        unsafe { probe_hvc(fid, a1, a2, a3) }
    };
    x0 as i32 as i64
}

/// PSCI SYSTEM_RESET; returns only if the call failed (with its result).
pub fn system_reset() -> u64 {
    if PSCI_SMC.load(Ordering::Relaxed) {
        // SAFETY: an SMCCC call through the C-ABI stub; SYSTEM_RESET does not return on success.
        unsafe { probe_smc(abi::PSCI_SYSTEM_RESET, 0, 0, 0) }
    } else {
        hvc(abi::PSCI_SYSTEM_RESET, 0)
    }
}
