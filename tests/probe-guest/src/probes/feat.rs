//! Features whose registers or exceptions belong to the guest's EL1, where the CPU has them:
//! - `sme_tpidr2`: TPIDR2_EL0 (FEAT_SME) can be written and read back. On a CPU with FEAT_FGT,
//!   HFGRTR_EL2/HFGWTR_EL2.nTPIDR2_EL0 = 0 traps it to EL2, and el2visor must set the bit (an
//!   SME-aware Linux saves and restores it on every context switch).
//! - `mops_exception`: a memory set whose main instruction runs in the option the CPU does not
//!   implement raises the MOPS exception (EC 0x27) at EL1, where the guest's own handler
//!   restarts the sequence, as on bare hardware. HCRX_EL2.MCE2 would send it to EL2.
//!
//! A CPU without the feature has nothing to check (QEMU `-cpu max` has both; a Cortex-A72 none).

use super::hostile;
use super::tvm_feat::undefs_in;
use crate::sysreg;
use probe_guest::msg;
use probe_guest::msg::Msg;

/// The 4-bit ID field at `shift`.
fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

pub fn sme_tpidr2() -> Result<(), Msg> {
    // ID_AA64PFR1_EL1.SME, bits 27:24.
    if field(sysreg::id_aa64pfr1(), 24) == 0 {
        println!("probe: sme_tpidr2: no FEAT_SME on this CPU, nothing to check");
        return Ok(());
    }
    const VALUE: u64 = 0x5a5a_0123_4567_89ab;
    let mut old = 0;
    let mut read = 0;
    let undefs = undefs_in(|| {
        old = sysreg::tpidr2();
        // SAFETY: TPIDR2_EL0 holds software's value only, nothing the probe's execution uses.
        unsafe { sysreg::set_tpidr2(VALUE) };
        read = sysreg::tpidr2();
        // SAFETY: as above; the value it held.
        unsafe { sysreg::set_tpidr2(old) };
    });
    if undefs != 0 {
        return Err(msg!("{undefs} of 4 TPIDR2_EL0 accesses UNDEFINED, although ID_AA64PFR1_EL1 advertises SME"));
    }
    if read != VALUE {
        return Err(msg!("TPIDR2_EL0 reads back {read:#x} after {VALUE:#x} was written"));
    }
    Ok(())
}

/// ESR_ELx.EC of a MOPS exception.
const EC_MOPS: u64 = 0x27;
/// Its ISS.WrongOption: the sequence ran in the option this CPU does not implement.
const WRONG_OPTION: u64 = 1 << 17;

/// Two pages and a bit: the set starts 64 bytes before a page boundary, so that a prologue that
/// stops at the boundary (QEMU's) leaves the main instruction most of it.
#[repr(C, align(4096))]
struct SetBuf([u8; 3 * 4096]);
static mut SET_BUF: SetBuf = SetBuf([0; 3 * 4096]);

pub fn mops_exception() -> Result<(), Msg> {
    // ID_AA64ISAR2_EL1.MOPS, bits 19:16.
    if field(sysreg::id_aa64isar2(), 16) == 0 {
        println!("probe: mops_exception: no FEAT_MOPS on this CPU, nothing to check");
        return Ok(());
    }
    // SAFETY: the probe runs on one CPU here and nothing else uses the buffer.
    let whole = unsafe { &mut (*core::ptr::addr_of_mut!(SET_BUF)).0 };
    let buf = &mut whole[4096 - 64..];
    match hostile::setm_in_the_other_option(buf) {
        Err(esr) if esr >> 26 & 0x3f == EC_MOPS && esr & WRONG_OPTION != 0 => Ok(()),
        Err(esr) => Err(msg!(
            "a SETM in the wrong option raised ESR_EL1 {esr:#x} (EC {:#x}) at EL1, not a MOPS exception (EC 0x27) for the wrong option (ISS bit 17)",
            esr >> 26 & 0x3f
        )),
        Ok(0) => {
            println!("probe: mops_exception: the prologue did the whole set, nothing to check");
            Ok(())
        }
        Ok(left) => Err(msg!("a SETM in the wrong option, {left} bytes to set, raised no exception at EL1")),
    }
}
