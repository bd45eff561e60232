//! What the GDB stub needs of a pCPU beyond the usual system registers: the self-hosted debug
//! registers (breakpoint and watchpoint value/control pairs, MDSCR_EL1, the OS lock, MDCR_EL2),
//! the guest's SP_EL0/SP_EL1, and its FP/SIMD registers. el2visor is built soft-float and never
//! touches v0..v31, FPSR or FPCR, so at EL2 they hold the guest's values: [`fp_save`] copies them
//! to memory and [`fp_restore`] puts them back, in assembly that names the registers explicitly
//! (no compiler-generated code can use them in between).

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

/// The guest's FP/SIMD registers as they were at a stop.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct FpState {
    pub v: [[u64; 2]; 32],
    pub fpsr: u64,
    pub fpcr: u64,
}

/// Copy v0..v31, FPSR and FPCR (the guest's: el2visor never uses them) into `s`.
pub fn fp_save(s: &mut FpState) {
    let p = s as *mut FpState;
    // SAFETY: `p` is a valid, 16-byte aligned FpState (528 bytes) written only here; the
    // instructions are enabled at EL2 (CPTR_EL2 does not trap FP/SIMD) and change no register
    // but the scratch one.
    unsafe {
        asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{p}, #0]", "stp q2, q3, [{p}, #32]", "stp q4, q5, [{p}, #64]",
            "stp q6, q7, [{p}, #96]", "stp q8, q9, [{p}, #128]", "stp q10, q11, [{p}, #160]",
            "stp q12, q13, [{p}, #192]", "stp q14, q15, [{p}, #224]", "stp q16, q17, [{p}, #256]",
            "stp q18, q19, [{p}, #288]", "stp q20, q21, [{p}, #320]", "stp q22, q23, [{p}, #352]",
            "stp q24, q25, [{p}, #384]", "stp q26, q27, [{p}, #416]", "stp q28, q29, [{p}, #448]",
            "stp q30, q31, [{p}, #480]",
            "mrs {t}, fpsr", "str {t}, [{p}, #512]",
            "mrs {t}, fpcr", "str {t}, [{p}, #520]",
            p = in(reg) p,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Load v0..v31, FPSR and FPCR from `s` (the guest's, changed by the debugger).
pub fn fp_restore(s: &FpState) {
    let p = s as *const FpState;
    // SAFETY: as in `fp_save`; the registers loaded belong to the guest, and el2visor's own
    // code never reads them.
    unsafe {
        asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{p}, #0]", "ldp q2, q3, [{p}, #32]", "ldp q4, q5, [{p}, #64]",
            "ldp q6, q7, [{p}, #96]", "ldp q8, q9, [{p}, #128]", "ldp q10, q11, [{p}, #160]",
            "ldp q12, q13, [{p}, #192]", "ldp q14, q15, [{p}, #224]", "ldp q16, q17, [{p}, #256]",
            "ldp q18, q19, [{p}, #288]", "ldp q20, q21, [{p}, #320]", "ldp q22, q23, [{p}, #352]",
            "ldp q24, q25, [{p}, #384]", "ldp q26, q27, [{p}, #416]", "ldp q28, q29, [{p}, #448]",
            "ldp q30, q31, [{p}, #480]",
            "ldr {t}, [{p}, #512]", "msr fpsr, {t}",
            "ldr {t}, [{p}, #520]", "msr fpcr, {t}",
            p = in(reg) p,
            t = out(reg) _,
            options(nostack),
        );
    }
}
