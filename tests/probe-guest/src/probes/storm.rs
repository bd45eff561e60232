//! `mair_storm`: 100 000 MAIR_EL1 writes of xorshift-random values with the MMU on.
//!
//! Indices 0..2 (the probe's live Device, Normal-NC and Normal-WB mappings) keep their bytes and
//! bytes 3..7 are random, so every value written is one a running OS could legally write: the
//! storm runs under the guest's own translation, exactly as Linux changes MAIR, and every byte
//! value (reserved encodings included) reaches el2visor's override in the unused indices. A storm
//! with the MMU off would let fully random values through but test nothing a real guest does.
//! Each write is read back and compared with the override rule; then el2visor must still answer,
//! the TVM counters must have grown by exactly the writes made (the storm plus the restore), and
//! RAM must still come out with the mode's attribute.

use super::Context;
use crate::hvc;
use crate::mmu::RAM_TARGET;
use crate::sysreg;
use probe_guest::abi::{self, mair_override, CoherencyMode};
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::pagetable::PROBE_MAIR;
use probe_guest::rng::XorShift64;

/// Random MAIR writes in the storm.
pub const STORM_WRITES: u64 = 100_000;
/// Fixed seed: every run writes the same sequence.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;
/// MAIR bytes the storm keeps (indices 0..2).
const LIVE_MASK: u64 = 0x00ff_ffff;

/// What a MAIR read returns after writing `v` in `mode` (`None`: nothing rewrites it).
fn expected_mair(v: u64, mode: Option<CoherencyMode>) -> u64 {
    match mode {
        Some(m) if m.overrides_mair() => mair_override(v),
        _ => v,
    }
}

/// The first read-back that differed.
struct BadWrite {
    index: u64,
    written: u64,
    read: u64,
    expected: u64,
}

pub fn mair_storm(ctx: &Context) -> Result<(), Msg> {
    let mode = ctx.mode_if_known();
    let before = hvc::trap_counters();

    let mut rng = XorShift64::new(SEED);
    let mut bad = None;
    for index in 0..STORM_WRITES {
        let v = (rng.next_u64() & !LIVE_MASK) | (PROBE_MAIR & LIVE_MASK);
        // SAFETY: indices 0..2, the only ones the probe's mappings use, keep their attributes.
        unsafe { sysreg::set_mair(v) };
        sysreg::isb();
        let read = sysreg::mair();
        let expected = expected_mair(v, mode);
        if read != expected && bad.is_none() {
            bad = Some(BadWrite {
                index,
                written: v,
                read,
                expected,
            });
        }
    }
    // SAFETY: the probe's own MAIR.
    unsafe { sysreg::set_mair(PROBE_MAIR) };
    sysreg::isb();
    let writes = STORM_WRITES + 1;

    let after = hvc::trap_counters();
    let alive = hvc::vendor(abi::VENDOR_UID, 0);

    if let Some(b) = bad {
        return Err(msg!(
            "write {} of {:#x}: MAIR_EL1 read back {:#x}, expected {:#x}",
            b.index,
            b.written,
            b.read,
            b.expected
        ));
    }
    let restored = sysreg::mair();
    if restored != expected_mair(PROBE_MAIR, mode) {
        return Err(msg!(
            "MAIR_EL1 reads {restored:#x} after restoring {PROBE_MAIR:#x}"
        ));
    }
    let mode = ctx.mode()?;
    alive.map_err(|u| msg!("el2visor stopped answering after the storm: {u}"))?;
    let ((fast0, slow0), (fast1, slow1)) = (before?, after?);
    let (fast, slow) = (fast1.wrapping_sub(fast0), slow1.wrapping_sub(slow0));
    let expected = if mode.traps_tvm() { writes } else { 0 };
    if fast + slow != expected {
        return Err(msg!(
            "TVM counters grew by fast={fast} slow={slow} (sum {}), expected {expected} in {} mode",
            fast + slow,
            mode.name()
        ));
    }
    if mode == CoherencyMode::MairTrapSlow && fast != 0 {
        return Err(msg!(
            "fast path served {fast} writes although it is disabled"
        ));
    }
    let va = core::ptr::addr_of!(RAM_TARGET) as u64;
    let par = hvc::at_s12e1(va, false)?;
    let attr = (par >> 56) as u8;
    if par & 1 != 0 || attr != mode.expected_ram_nc_attr() {
        return Err(msg!(
            "after the storm RAM VA {va:#x} translates to PAR_EL1={par:#x}, expected ATTR {:#04x}",
            mode.expected_ram_nc_attr()
        ));
    }
    Ok(())
}
