//! The host firmware's SMCCC architecture workarounds: asked once at boot through the host DT's
//! PSCI conduit ([`init`]), and the calls a guest makes forwarded to it ([`forward`]). The
//! decisions are [`super::smccc`]'s.

use crate::arch::psci::{self, Conduit};
use crate::trap::smccc::{discover, FirmwareArch, FIRMWARE};

/// The conduit el2visor can reach firmware through from EL2: SMC. (An HVC conduit means the
/// firmware runs at EL2, which el2visor then is not at, and there is none to ask.)
fn conduit() -> Option<Conduit> {
    match psci::HOST_CONDUIT.get() {
        Some(Some(Conduit::Smc)) => Some(Conduit::Smc),
        _ => None,
    }
}

/// Ask the firmware what it provides (boot CPU, after `HOST_CONDUIT` is set) and keep it.
/// The answers also go to the HVC fast path (`arch::hvc_fast`), which gives them to guests.
pub fn init() -> FirmwareArch {
    let fw = *FIRMWARE.call_once(|| match conduit() {
        Some(c) => discover(|fid, x1| psci::call(c, fid, x1, 0, 0)),
        None => FirmwareArch::NONE,
    });
    crate::arch::hvc_fast::publish_workarounds(fw.workarounds);
    fw
}

/// Make workaround call `fid` with `args` to the firmware; its x0.
pub fn forward(fid: u32, args: [u64; 3]) -> u64 {
    match conduit() {
        Some(c) => psci::call(c, fid, args[0], args[1], args[2]) as u64,
        // Not reached: nothing is forwarded without a firmware that answered at boot.
        None => crate::trap::abi::smccc::NOT_SUPPORTED as u64,
    }
}
