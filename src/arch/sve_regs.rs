//! The guest's SVE and SME registers, stored and loaded at EL2 for a snapshot
//! (`vm::snapshot::sve` and `sme`): Z0-Z31, P0-P15 and FFR at the vector length EL2 has, and
//! SME's SVCR (PSTATE.SM and PSTATE.ZA), ZA row by row and ZT0.
//!
//! el2visor is soft-float: these registers always hold the guest's values, and overwriting them
//! breaks nothing of el2visor's. CPTR_EL2 traps neither SVE nor SME at EL2
//! (`vcpu::regs::cptr_el2`, set before any vCPU runs), and ZCR_EL2 and SMCR_EL2 give EL2 the
//! longest vector lengths the CPU has (`vcpu::el2`), so a buffer saved here holds every bit any
//! guest vector length reaches.

use core::arch::asm;

use super::sysreg;

/// SVCR.SM: PSTATE.SM, streaming SVE mode.
pub const SVCR_SM: u64 = 1;
/// SVCR.ZA: PSTATE.ZA, ZA (and ZT0) on.
pub const SVCR_ZA: u64 = 2;

/// SVCR: [`SVCR_SM`] and [`SVCR_ZA`]. SME only (callers check `CpuFeatures::sme`).
pub fn svcr() -> u64 {
    let v: u64;
    // SAFETY: an MRS of SVCR (FEAT_SME, callers check); no side effect.
    unsafe { asm!("mrs {v}, s3_3_c4_c2_2", v = out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Write SVCR (SME only, callers check). Turning SM on or off zeroes Z, P and FFR and resets
/// FPSR; turning ZA on zeroes ZA and ZT0: the guest's state, which the caller is about to load or
/// drop.
pub fn set_svcr(v: u64) {
    // SAFETY: FEAT_SME (callers check). SVCR holds only the guest's PSTATE.SM/ZA (el2visor's soft-float code uses neither
    // mode); an ISB makes the change visible to what follows.
    unsafe { asm!("msr s3_3_c4_c2_2, {v}", "isb", v = in(reg) v, options(nomem, nostack, preserves_flags)) };
}

/// SMCR_EL2 as `vcpu::el2` set it (bit 31 FA64, bit 30 EZT0, LEN).
pub fn smcr_el2() -> u64 {
    let v: u64;
    // SAFETY: an MRS of SMCR_EL2 (callers check FEAT_SME); no side effect.
    unsafe { asm!("mrs {v}, s3_4_c1_c2_6", v = out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Set ZCR_EL2.LEN to its maximum (a LEN above the implemented maximum selects the maximum) and
/// read the vector length EL2 then has, in bytes. SVE only.
pub fn max_vl() -> usize {
    sysreg::set_zcr_el2(super::sysreg_ext::ZCR_EL2::LEN.mask);
    sysreg::isb();
    let vl: u64;
    // SAFETY: RDVL only reads the vector length into a general register; SVE is implemented
    // (callers check) and not trapped at EL2.
    unsafe { asm!(".arch_extension sve", "rdvl {v}, #1", v = out(reg) vl, options(nomem, nostack, preserves_flags)) };
    vl as usize
}

/// The streaming vector length EL2 has (SMCR_EL2.LEN, the longest), in bytes. SME only.
pub fn svl() -> usize {
    let vl: u64;
    // SAFETY: RDSVL only reads the streaming vector length; SME is implemented (callers check)
    // and not trapped at EL2. It works in and out of streaming mode.
    unsafe { asm!(".arch_extension sme", "rdsvl {v}, #1", v = out(reg) vl, options(nomem, nostack, preserves_flags)) };
    vl as usize
}

/// `$op` (STR or LDR) of Z0-Z31 at `$z` and P0-P15 at `$p`, at the current vector length VL:
/// Z`n` at `z + n * VL`, P`n` at `p + n * VL / 8`. Used inside an `unsafe` block.
macro_rules! zp_moves {
    ($op:literal, $z:expr, $p:expr) => {
        asm!(
            ".arch_extension sve",
            concat!($op, " z0, [{z}, #0, mul vl]"),
            concat!($op, " z1, [{z}, #1, mul vl]"),
            concat!($op, " z2, [{z}, #2, mul vl]"),
            concat!($op, " z3, [{z}, #3, mul vl]"),
            concat!($op, " z4, [{z}, #4, mul vl]"),
            concat!($op, " z5, [{z}, #5, mul vl]"),
            concat!($op, " z6, [{z}, #6, mul vl]"),
            concat!($op, " z7, [{z}, #7, mul vl]"),
            concat!($op, " z8, [{z}, #8, mul vl]"),
            concat!($op, " z9, [{z}, #9, mul vl]"),
            concat!($op, " z10, [{z}, #10, mul vl]"),
            concat!($op, " z11, [{z}, #11, mul vl]"),
            concat!($op, " z12, [{z}, #12, mul vl]"),
            concat!($op, " z13, [{z}, #13, mul vl]"),
            concat!($op, " z14, [{z}, #14, mul vl]"),
            concat!($op, " z15, [{z}, #15, mul vl]"),
            concat!($op, " z16, [{z}, #16, mul vl]"),
            concat!($op, " z17, [{z}, #17, mul vl]"),
            concat!($op, " z18, [{z}, #18, mul vl]"),
            concat!($op, " z19, [{z}, #19, mul vl]"),
            concat!($op, " z20, [{z}, #20, mul vl]"),
            concat!($op, " z21, [{z}, #21, mul vl]"),
            concat!($op, " z22, [{z}, #22, mul vl]"),
            concat!($op, " z23, [{z}, #23, mul vl]"),
            concat!($op, " z24, [{z}, #24, mul vl]"),
            concat!($op, " z25, [{z}, #25, mul vl]"),
            concat!($op, " z26, [{z}, #26, mul vl]"),
            concat!($op, " z27, [{z}, #27, mul vl]"),
            concat!($op, " z28, [{z}, #28, mul vl]"),
            concat!($op, " z29, [{z}, #29, mul vl]"),
            concat!($op, " z30, [{z}, #30, mul vl]"),
            concat!($op, " z31, [{z}, #31, mul vl]"),
            concat!($op, " p0, [{p}, #0, mul vl]"),
            concat!($op, " p1, [{p}, #1, mul vl]"),
            concat!($op, " p2, [{p}, #2, mul vl]"),
            concat!($op, " p3, [{p}, #3, mul vl]"),
            concat!($op, " p4, [{p}, #4, mul vl]"),
            concat!($op, " p5, [{p}, #5, mul vl]"),
            concat!($op, " p6, [{p}, #6, mul vl]"),
            concat!($op, " p7, [{p}, #7, mul vl]"),
            concat!($op, " p8, [{p}, #8, mul vl]"),
            concat!($op, " p9, [{p}, #9, mul vl]"),
            concat!($op, " p10, [{p}, #10, mul vl]"),
            concat!($op, " p11, [{p}, #11, mul vl]"),
            concat!($op, " p12, [{p}, #12, mul vl]"),
            concat!($op, " p13, [{p}, #13, mul vl]"),
            concat!($op, " p14, [{p}, #14, mul vl]"),
            concat!($op, " p15, [{p}, #15, mul vl]"),
            z = in(reg) $z,
            p = in(reg) $p,
            options(nostack, preserves_flags),
        )
    };
}

/// Store Z0-Z31 at `z` and P0-P15 at `p`, at the current vector length VL (the streaming one in
/// streaming mode): Z`n` at `z + n * VL`, P`n` at `p + n * VL / 8`.
///
/// # Safety
/// SVE is implemented (or SME and the PE is in streaming mode), and `[z, z + 32 * VL)` and
/// `[p, p + 16 * VL / 8)` are writable memory of el2visor's that nothing else uses now.
pub unsafe fn store_zp(z: usize, p: usize) {
    // SAFETY: the caller's promise; stores only, of the guest's registers.
    unsafe { zp_moves!("str", z, p) };
}

/// Load Z0-Z31 from `z` and P0-P15 from `p`, laid out as [`store_zp`] stores them.
///
/// # Safety
/// As for [`store_zp`], with the memory readable and holding a store at the same vector length.
pub unsafe fn load_zp(z: usize, p: usize) {
    // SAFETY: the caller's promise; loads only, into the guest's registers.
    unsafe { zp_moves!("ldr", z, p) };
}

/// Zero P0-P15 and FFR (a vCPU's reset; SVE, out of streaming mode). The Z registers need no
/// more: the zeroing of V0-V31 with Advanced SIMD writes clears every Z register above bit 127.
pub fn zero_predicates() {
    // SAFETY: the guest's predicate registers and FFR only (el2visor's soft-float code uses none);
    // SVE is implemented (callers check) and not trapped at EL2; not in streaming mode (SVCR was
    // cleared first), so FFR is accessible.
    unsafe {
        asm!(
            ".arch_extension sve",
            "pfalse p0.b",
            "wrffr p0.b",
            "pfalse p1.b", "pfalse p2.b", "pfalse p3.b", "pfalse p4.b", "pfalse p5.b",
            "pfalse p6.b", "pfalse p7.b", "pfalse p8.b", "pfalse p9.b", "pfalse p10.b",
            "pfalse p11.b", "pfalse p12.b", "pfalse p13.b", "pfalse p14.b", "pfalse p15.b",
            options(nomem, nostack, preserves_flags),
        )
    };
}

/// Store FFR in slot 16 of [`store_zp`]'s P area at `p` (through P0, which is then loaded
/// again from slot 0).
///
/// # Safety
/// As for [`store_zp`], which has just stored P0 at `p`; the area has room for 17 slots; FFR
/// is accessible (not in streaming mode, or there with FEAT_SME_FA64 on at EL2).
pub unsafe fn store_ffr(p: usize) {
    // SAFETY: the caller's promise: slot 16 is in the area, and slot 0 holds P0.
    unsafe {
        asm!(
            ".arch_extension sve",
            "rdffr p0.b",
            "str p0, [{p}, #16, mul vl]",
            "ldr p0, [{p}, #0, mul vl]",
            p = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
}

/// Load FFR from slot 16 at `p` (through P0): before [`load_zp`], which loads P0 after it.
///
/// # Safety
/// As for [`store_ffr`], with slot 16 holding a stored FFR.
pub unsafe fn load_ffr(p: usize) {
    // SAFETY: the caller's promise; P0 is loaded again by `load_zp` right after.
    unsafe {
        asm!(
            ".arch_extension sve",
            "ldr p0, [{p}, #16, mul vl]",
            "wrffr p0.b",
            p = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
}

/// `$op` (STR or LDR) of ZA's `$svl` rows (each `$svl` bytes) at `$at`, row by row. W12 is
/// the row index (the array-vector forms take W12-W15 only). Used inside an `unsafe` block.
macro_rules! za_rows {
    ($op:literal, $at:expr, $svl:expr) => {
        asm!(
            ".arch_extension sme",
            "mov w12, #0",
            "2:",
            concat!($op, " za[w12, 0], [{a}]"),
            "add {a}, {a}, {n}",
            "add w12, w12, #1",
            "cmp x12, {n}",
            "b.ne 2b",
            a = inout(reg) $at => _,
            n = in(reg) $svl,
            out("x12") _,
            options(nostack),
        )
    };
}

/// Store ZA's `svl` rows (each `svl` bytes, the streaming vector length) at `at`, row by row.
///
/// # Safety
/// SME is implemented, PSTATE.ZA is on, `svl` is the current streaming vector length, and
/// `[at, at + svl * svl)` is writable memory of el2visor's that nothing else uses now.
pub unsafe fn store_za(at: usize, svl: usize) {
    // SAFETY: the caller's promise; `svl` rows of `svl` bytes, stores only.
    unsafe { za_rows!("str", at, svl) };
}

/// Load ZA's `svl` rows from `at`, as [`store_za`] stored them.
///
/// # Safety
/// As for [`store_za`], with the memory readable and holding a store at the same length.
pub unsafe fn load_za(at: usize, svl: usize) {
    // SAFETY: the caller's promise; loads only, into the guest's ZA.
    unsafe { za_rows!("ldr", at, svl) };
}

/// Store ZT0 (FEAT_SME2, 64 bytes) at `at`.
///
/// # Safety
/// SME2 is implemented and ZT0 untrapped at EL2 (SMCR_EL2.EZT0), PSTATE.ZA is on, and
/// `[at, at + 64)` is writable memory of el2visor's that nothing else uses now.
pub unsafe fn store_zt0(at: usize) {
    // SAFETY: the caller's promise; one 64-byte store.
    unsafe { asm!(".arch_extension sme2", "str zt0, [{a}]", a = in(reg) at, options(nostack, preserves_flags)) };
}

/// Load ZT0 from `at`.
///
/// # Safety
/// As for [`store_zt0`], with the memory readable.
pub unsafe fn load_zt0(at: usize) {
    // SAFETY: the caller's promise; one 64-byte load into the guest's ZT0.
    unsafe { asm!(".arch_extension sme2", "ldr zt0, [{a}]", a = in(reg) at, options(nostack, preserves_flags)) };
}
