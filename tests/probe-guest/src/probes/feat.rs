//! Features whose registers or exceptions belong to the guest's EL1, where the CPU has them:
//! - `sme_tpidr2`: TPIDR2_EL0 (FEAT_SME) can be written and read back. On a CPU with FEAT_FGT,
//!   HFGRTR_EL2/HFGWTR_EL2.nTPIDR2_EL0 = 0 traps it to EL2, and el2visor must set the bit (an
//!   SME-aware Linux saves and restores it on every context switch).
//! - `sme2_zt0`: ZT0 (FEAT_SME2) works once the guest enables it itself (CPACR_EL1.SMEN,
//!   SMCR_EL1.EZT0, PSTATE.ZA): a value loaded into it stores back. SMCR_EL2.EZT0 = 0 traps every
//!   ZT0 access to EL2, and el2visor must set it where SME2 is.
//! - `mops_exception`: a memory set whose main instruction runs in the option the CPU does not
//!   implement raises the MOPS exception (EC 0x27) at EL1, where the guest's own handler
//!   restarts the sequence, as on bare hardware. HCRX_EL2.MCE2 would send it to EL2.
//!
//! A CPU without the feature has nothing to check (QEMU `-cpu max` has them; a Cortex-A72 none).

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

pub fn sme2_zt0() -> Result<(), Msg> {
    let smfr0: u64;
    // SAFETY: reading ID_AA64SMFR0_EL1 (an ID register, zero on a CPU without SME) changes nothing.
    unsafe { core::arch::asm!("mrs {v}, s3_0_c0_c4_5", v = out(reg) smfr0, options(nomem, nostack)) };
    // ID_AA64PFR1_EL1.SME (bits 27:24) and ID_AA64SMFR0_EL1.SMEver (bits 59:56): 1 or more is SME2.
    if field(sysreg::id_aa64pfr1(), 24) == 0 || field(smfr0, 56) == 0 {
        println!("probe: sme2_zt0: no FEAT_SME2 on this CPU, nothing to check");
        return Ok(());
    }
    let src: [u64; 8] = core::array::from_fn(|i| 0x0123_4567_89ab_cdef_u64.rotate_left(8 * i as u32) ^ i as u64);
    let mut dst = [0u64; 8];
    let undefs = undefs_in(|| {
        // SAFETY: SMEN, EZT0 and PSTATE.ZA are turned on for the two ZT0 accesses and back off
        // (CPACR_EL1 and SMCR_EL1 restored); ZA and ZT0 hold nothing else of the probe's. `src`
        // and `dst` are 64 bytes each, ZT0's size. An UNDEF is resumed past (undefs_in).
        unsafe {
            core::arch::asm!(
                ".arch_extension sme2",
                "mrs {cpacr}, cpacr_el1",
                "orr {t}, {cpacr}, #(3 << 24)",
                "msr cpacr_el1, {t}",
                "isb",
                "mrs {smcr}, s3_0_c1_c2_6",
                "orr {t}, {smcr}, #(1 << 30)",
                "msr s3_0_c1_c2_6, {t}",
                "isb",
                "smstart za",
                "ldr zt0, [{src}]",
                "str zt0, [{dst}]",
                "smstop za",
                "msr s3_0_c1_c2_6, {smcr}",
                "msr cpacr_el1, {cpacr}",
                "isb",
                cpacr = out(reg) _,
                smcr = out(reg) _,
                t = out(reg) _,
                src = in(reg) src.as_ptr(),
                dst = in(reg) dst.as_mut_ptr(),
                options(nostack),
            )
        };
    });
    if undefs != 0 {
        return Err(msg!("{undefs} UNDEF(s) turning ZA on and moving ZT0, although ID_AA64SMFR0_EL1 ({smfr0:#x}) advertises SME2"));
    }
    if dst != src {
        return Err(msg!("ZT0 stored {:#x}.. back after {:#x}.. was loaded", dst[0], src[0]));
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
