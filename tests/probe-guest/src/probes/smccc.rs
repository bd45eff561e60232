//! SMCCC from a guest:
//!
//! - `smccc_arch`: SMCCC_VERSION is 1.1 or later, and each ARCH_WORKAROUND_1/2/3 call behaves as
//!   SMCCC_ARCH_FEATURES says: NOT_SUPPORTED when it is, an answer when it is 0 (to be called). The probe prints
//!   the three answers (`probe: smccc workarounds A B C`), which the QEMU tests compare with what
//!   el2visor found in the host firmware.
//! - `hvc_imm`: `hvc #1` is not an SMCCC call (DEN0028 reserves every immediate but 0): x0 comes
//!   back NOT_SUPPORTED even for PSCI_VERSION, and x1..x3 unchanged.
//! - `log_line`: the vendor call `LOG_LINE` (below).

use crate::hvc;
use core::arch::asm;
use probe_guest::abi;
use probe_guest::msg;
use probe_guest::msg::Msg;

pub fn smccc_arch() -> Result<(), Msg> {
    let answers = abi::SMCCC_ARCH_WORKAROUNDS.map(|w| hvc::psci(abi::SMCCC_ARCH_FEATURES, w, 0, 0));
    println!("probe: smccc workarounds {} {} {}", answers[0], answers[1], answers[2]);
    let v = hvc::psci(abi::SMCCC_VERSION, 0, 0, 0);
    if v < 0x1_0001 {
        return Err(msg!("SMCCC_VERSION returned {v:#x}, expected 1.1 or later"));
    }
    for (w, a) in abi::SMCCC_ARCH_WORKAROUNDS.iter().zip(answers) {
        // WORKAROUND_2's argument 1 asks for the mitigation on, the state a guest normally wants.
        let r = hvc::psci(*w, 1, 0, 0);
        if a == -1 && r != -1 {
            return Err(msg!("{w:#x}: ARCH_FEATURES says NOT_SUPPORTED, but the call returned {r}"));
        }
        // 0: the guest is to make the call. Other answers (1, NOT_REQUIRED) say it need not.
        if a == 0 && r == -1 {
            return Err(msg!("{w:#x}: ARCH_FEATURES answered 0, but the call returned NOT_SUPPORTED"));
        }
    }
    Ok(())
}

pub fn hvc_imm() -> Result<(), Msg> {
    let (mut x0, mut x1, mut x2, mut x3) = (abi::PSCI_VERSION, 0x1111u64, 0x2222u64, 0x3333u64);
    // SAFETY: an HVC under el2visor returns to the next instruction with at most x0..x3 changed
    // (declared); it raises no exception there.
    unsafe {
        asm!("hvc #1", inout("x0") x0, inout("x1") x1, inout("x2") x2, inout("x3") x3, options(nostack));
    }
    if x0 as i32 != -1 {
        return Err(msg!("hvc #1 with PSCI_VERSION returned x0={x0:#x}: treated as an SMCCC call"));
    }
    if (x1, x2, x3) != (0x1111, 0x2222, 0x3333) {
        return Err(msg!("hvc #1 changed x1..x3 to {x1:#x} {x2:#x} {x3:#x}"));
    }
    Ok(())
}

/// The text `log_line` hands el2visor (the QEMU tests look for it in el2visor's log).
pub const LOG_TEXT: &[u8] = b"PROBE-LOG hello from the probe guest through LOG_LINE";

/// `log_line`: the vendor call `LOG_LINE` prints a text from the guest's RAM (identity mapped at
/// stage 1, so the VA is the guest-physical address) and refuses a length of 0 or over 256 and
/// a range that is not the VM's RAM (the unowned address; one running off the end of RAM).
pub fn log_line(ctx: &super::Context) -> Result<(), Msg> {
    let r = hvc::psci(abi::VENDOR_LOG_LINE, LOG_TEXT.as_ptr() as u64, LOG_TEXT.len() as u64, 0);
    if r != 0 {
        return Err(msg!("LOG_LINE of {} bytes in RAM returned {r}", LOG_TEXT.len()));
    }
    let bad = [(LOG_TEXT.as_ptr() as u64, 0), (LOG_TEXT.as_ptr() as u64, abi::LOG_LINE_MAX + 1)];
    let mut more = [(0u64, 0u64); 2];
    if let Some(u) = ctx.platform.unowned {
        more[0] = (u, 16);
    }
    if let Some(last) = ctx.platform.ram().last() {
        more[1] = (last.base + last.size - 8, 16);
    }
    for m in more.iter().filter(|m| m.1 != 0) {
        let r = hvc::psci(abi::VENDOR_LOG_LINE, m.0, m.1, 0);
        if r != abi::SMCCC_INVALID_PARAMETER {
            return Err(msg!("LOG_LINE({:#x}, {}) outside RAM returned {r}, expected -3", m.0, m.1));
        }
    }
    for (a, l) in bad {
        let r = hvc::psci(abi::VENDOR_LOG_LINE, a, l, 0);
        if r != abi::SMCCC_INVALID_PARAMETER {
            return Err(msg!("LOG_LINE({a:#x}, {l}) returned {r}, expected -3"));
        }
    }
    Ok(())
}
