//! SMCCC from a guest:
//!
//! - `smccc_arch`: SMCCC_VERSION is 1.1 or later, and each ARCH_WORKAROUND_1/2/3 call behaves as
//!   SMCCC_ARCH_FEATURES says: NOT_SUPPORTED when it is, an answer otherwise. The probe prints
//!   the three answers (`probe: smccc workarounds A B C`), which the QEMU tests compare with what
//!   el2visor found in the host firmware.
//! - `hvc_imm`: `hvc #1` is not an SMCCC call (DEN0028 reserves every immediate but 0): x0 comes
//!   back NOT_SUPPORTED even for PSCI_VERSION, and x1..x3 unchanged.

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
        if a != -1 && r == -1 {
            return Err(msg!("{w:#x}: ARCH_FEATURES answered {a}, but the call returned NOT_SUPPORTED"));
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
