//! What the GDB stub needs of a pCPU beyond the usual system registers: the self-hosted debug
//! registers (breakpoint and watchpoint value/control pairs, MDSCR_EL1, the OS lock, MDCR_EL2),
//! the guest's SP_EL0/SP_EL1. Its FP/SIMD registers are `vcpu_state::FpState`'s, as for a
//! snapshot.

use core::arch::asm;

/// One of the four banks of debug registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bank {
    /// DBGBVR<n>_EL1
    Bvr,
    /// DBGBCR<n>_EL1
    Bcr,
    /// DBGWVR<n>_EL1
    Wvr,
    /// DBGWCR<n>_EL1
    Wcr,
}

macro_rules! banked {
    ($n:expr, $op:ident, $($i:literal)*) => {
        match $n {
            $($i => $op!($i),)*
            _ => $op!(none),
        }
    };
}

/// Read debug register `bank`<`n`>_EL1 (`n` < 16; 0 for a number the CPU does not have, which
/// the caller never asks for: ID_AA64DFR0_EL1 gives the counts).
pub fn dbg_read(bank: Bank, n: usize) -> u64 {
    let v: u64;
    macro_rules! rd {
        (none) => {{ v = 0; }};
        ($i:literal) => {{
            // SAFETY: reading a debug register has no side effects.
            unsafe {
                match bank {
                    Bank::Bvr => asm!(concat!("mrs {}, dbgbvr", $i, "_el1"), out(reg) v, options(nomem, nostack)),
                    Bank::Bcr => asm!(concat!("mrs {}, dbgbcr", $i, "_el1"), out(reg) v, options(nomem, nostack)),
                    Bank::Wvr => asm!(concat!("mrs {}, dbgwvr", $i, "_el1"), out(reg) v, options(nomem, nostack)),
                    Bank::Wcr => asm!(concat!("mrs {}, dbgwcr", $i, "_el1"), out(reg) v, options(nomem, nostack)),
                }
            }
        }};
    }
    banked!(n, rd, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    v
}

/// Write debug register `bank`<`n`>_EL1 (`n` < 16; others are ignored).
pub fn dbg_write(bank: Bank, n: usize, v: u64) {
    macro_rules! wr {
        (none) => {{}};
        ($i:literal) => {{
            // SAFETY: the debug registers only decide which guest accesses and instructions
            // raise debug exceptions, which go to EL2 while the debugger owns them.
            unsafe {
                match bank {
                    Bank::Bvr => asm!(concat!("msr dbgbvr", $i, "_el1, {}"), in(reg) v, options(nomem, nostack)),
                    Bank::Bcr => asm!(concat!("msr dbgbcr", $i, "_el1, {}"), in(reg) v, options(nomem, nostack)),
                    Bank::Wvr => asm!(concat!("msr dbgwvr", $i, "_el1, {}"), in(reg) v, options(nomem, nostack)),
                    Bank::Wcr => asm!(concat!("msr dbgwcr", $i, "_el1, {}"), in(reg) v, options(nomem, nostack)),
                }
            }
        }};
    }
    banked!(n, wr, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

macro_rules! plain {
    ($get:ident, $set:ident, $reg:literal) => {
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading the register has no side effects.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        }
        pub fn $set(v: u64) {
            // SAFETY: a guest EL1 register or EL2's debug trap configuration; neither changes
            // how el2visor itself runs.
            unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack)) };
        }
    };
}

plain!(mdscr_el1, set_mdscr_el1, "mdscr_el1");
plain!(mdcr_el2, set_mdcr_el2, "mdcr_el2");
plain!(sp_el0, set_sp_el0, "sp_el0");
plain!(sp_el1, set_sp_el1, "sp_el1");

/// OSLSR_EL1 (read only).
pub fn oslsr_el1() -> u64 {
    let v: u64;
    // SAFETY: reading the OS lock status has no side effects.
    unsafe { asm!("mrs {}, oslsr_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// Lock (1) or unlock (0) the OS lock (OSLAR_EL1.OSLK).
pub fn set_oslar_el1(v: u64) {
    // SAFETY: the OS lock only gates debug exceptions and external debug access.
    unsafe { asm!("msr oslar_el1, {}", "isb", in(reg) v, options(nomem, nostack)) };
}
