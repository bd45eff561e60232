//! The host firmware's SMCCC architecture workarounds: asked on every CPU at boot through the
//! host DT's PSCI conduit ([`init`] on the boot CPU, [`join`] on each secondary before it
//! reports in), the worst answer kept once all are up ([`publish`]), and the calls a guest makes
//! forwarded to it ([`forward`]). The decisions are [`super::smccc`]'s.

use crate::arch::psci::{self, Conduit};
use crate::trap::abi::smccc as abi;
use crate::trap::smccc::{discover, guest_answers, FirmwareArch, FIRMWARE};

/// The worst answers over the CPUs asked so far, and how many.
static MERGED: spin::Mutex<Option<(FirmwareArch, usize)>> = spin::Mutex::new(None);

/// The conduit el2visor can reach firmware through from EL2: SMC. (An HVC conduit means the
/// firmware runs at EL2, which el2visor then is not at, and there is none to ask.)
fn conduit() -> Option<Conduit> {
    match psci::HOST_CONDUIT.get() {
        Some(Some(Conduit::Smc)) => Some(Conduit::Smc),
        _ => None,
    }
}

/// Ask the firmware what it provides on this CPU, turn a dynamic SSB mitigation on here (and
/// leave it on: guests never switch it, `smccc`), and merge the answers with the other CPUs'.
fn ask_this_cpu() {
    let fw = match conduit() {
        Some(c) => discover(|fid, x1| psci::call(c, fid, x1, 0, 0)),
        None => FirmwareArch::NONE,
    };
    if let (true, Some(c)) = (fw.wa2_dynamic(), conduit()) {
        psci::call(c, abi::ARCH_WORKAROUND_2, 1, 0, 0);
    }
    let mut m = MERGED.lock();
    *m = Some(match *m {
        Some((merged, n)) => (merged.merge(fw), n + 1),
        None => (fw, 1),
    });
}

/// The boot CPU's part (after `HOST_CONDUIT` is set, before the secondaries start).
pub fn init() {
    ask_this_cpu();
}

/// A secondary's part, before it reports in (so before [`publish`], unless it came up late).
pub fn join() {
    ask_this_cpu();
    // Came up after the answers were published: say so if it is worse off than they claim.
    if let (Some(published), Some((merged, _))) = (FIRMWARE.get(), *MERGED.lock()) {
        if published.merge(merged) != *published {
            log::warn!(
                "host firmware: a CPU that came up late answers ARCH_WORKAROUND_1/2/3 {:?}, worse than the {:?} guests were told",
                merged.workarounds,
                published.workarounds
            );
        }
    }
}

/// Keep the worst answers over every CPU that came up (boot CPU, once the secondaries have
/// reported in, before any guest runs) and give the HVC fast path what guests are told
/// (`arch::hvc_fast`). Returns them and the number of CPUs asked, for the log.
pub fn publish() -> (FirmwareArch, usize) {
    let (merged, n) = MERGED.lock().unwrap_or((FirmwareArch::NONE, 0));
    let fw = *FIRMWARE.call_once(|| merged);
    crate::arch::hvc_fast::publish_workarounds(guest_answers(&fw));
    (fw, n)
}

/// Make workaround call `fid` with `args` to the firmware; its x0.
pub fn forward(fid: u32, args: [u64; 3]) -> u64 {
    match conduit() {
        Some(c) => psci::call(c, fid, args[0], args[1], args[2]) as u64,
        // Not reached: nothing is forwarded without a firmware that answered at boot.
        None => crate::trap::abi::smccc::NOT_SUPPORTED as u64,
    }
}
