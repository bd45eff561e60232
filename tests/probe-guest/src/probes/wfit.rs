//! `wfit`: WFIT (FEAT_WFxT) returns once the virtual counter reaches its deadline, even with no
//! interrupt to wake it. On GICv2 hosts el2visor traps WFI and WFIT (HCR_EL2.TWI); it must honour
//! the deadline in Rt instead of idling until some interrupt comes. With interrupts masked and
//! no timer armed, a WFIT 10 ms ahead must be back well within a second. A CPU without FEAT_WFxT
//! has nothing to check.

use crate::sysreg;
use core::arch::asm;
use probe_guest::msg;
use probe_guest::msg::Msg;

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn has_wfxt() -> bool {
    // ID_AA64ISAR2_EL1.WFxT, bits 3:0: 2 is FEAT_WFxT.
    sysreg::id_aa64isar2() & 0xf >= 2
}

pub fn wfit() -> Result<(), Msg> {
    if !has_wfxt() {
        println!("probe: wfit: no FEAT_WFxT on this CPU, nothing to check");
        return Ok(());
    }
    let freq = sysreg::cntfrq();
    let start = cntvct();
    let deadline = start + freq / 100;
    // SAFETY: WFIT x0 (encoded: the assembler may not know FEAT_WFxT) only waits; interrupts are
    // masked (DAIF), so it ends at the deadline or earlier, never in an exception.
    unsafe { asm!(".inst 0xd5031020", in("x0") deadline, options(nomem, nostack)) };
    let back = cntvct();
    let late = back.saturating_sub(deadline);
    let isr: u64;
    // SAFETY: reading ISR_EL1 has no side effect.
    unsafe { asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack, preserves_flags)) };
    println!(
        "probe: wfit: back after {} us, {} us after its 10 ms deadline (ISR_EL1 {isr:#x})",
        (back - start) * 1_000_000 / freq,
        late * 1_000_000 / freq
    );
    if late > freq {
        return Err(msg!("WFIT came back {} ms after its deadline", late * 1000 / freq));
    }
    Ok(())
}
