//! The snapshot probe's SME round (`snapshot_restore_sme`, where the CPU has FEAT_SME): a vCPU
//! in streaming SVE mode with ZA on is snapshotted and restored, and must come back in streaming
//! mode with its streaming Z and P registers and every row of ZA as they were.
//!
//! The round enables SME at EL1 (CPACR_EL1.SMEN; SMCR_EL1 with FA64 and EZT0 where the CPU has
//! FEAT_SME_FA64 and SME2), enters streaming mode with ZA on (`SMSTART`), loads ZA row by row
//! from a pattern (and ZT0 with SME2), sets Z16, P7, FPSR (and FFR with FA64), and takes the
//! snapshot. After the call it reads SVCR, then Z16, P7, FPSR (and FFR) where SVCR.SM is set, then
//! ZT0 and ZA's rows where SVCR.ZA is set, and leaves streaming mode (`SMSTOP`) before any compiled
//! code runs again: nothing here runs an Advanced SIMD instruction in streaming mode, so the round
//! works without FEAT_SME_FA64 too. It runs twice: at the longest streaming length
//! (`snapshot_restore_sme`, SMCR_EL1.LEN = 15) and at 32 bytes (`snapshot_restore_sme_short`,
//! LEN = 1), shorter than el2visor's own at EL2, which it saves at.
//!
//! Between the take and the restore the vCPU is out of streaming mode with ZA on and other rows
//! in it: a restore that left SVCR, Z or ZA alone would show that state, not the snapshot's.

use core::arch::asm;

use crate::hvc;
use probe_guest::abi;
use probe_guest::msg::Msg;

/// The largest streaming vector length (bytes) the architecture allows: 2048 bits.
const SVL_MAX: usize = 256;

/// A buffer of ZA's rows at the largest SVL (SVL rows of SVL bytes).
#[repr(C, align(16))]
struct Rows([u8; SVL_MAX * SVL_MAX]);

/// What the snapshot loads into ZA, then what the scramble loads.
static mut ZA_IN: Rows = Rows([0; SVL_MAX * SVL_MAX]);

/// What the snapshot call left: x0, x1, SVCR, and (where SVCR says so) FPSR, Z16, P7, FFR, ZT0
/// and ZA's rows. `take`'s asm writes them at fixed offsets: fpsr 24, z16 32, p7 288, ffr 320,
/// zt0 352, za 416.
#[repr(C, align(16))]
struct Out {
    x0: u64,
    x1: u64,
    svcr: u64,
    fpsr: u64,
    z16: [u64; SVL_MAX / 8],
    p7: [u8; SVL_MAX / 8],
    ffr: [u8; SVL_MAX / 8],
    zt0: [u8; 64],
    za: Rows,
}

static mut OUT: Out = Out {
    x0: 0,
    x1: 0,
    svcr: 0,
    fpsr: 0,
    z16: [0; SVL_MAX / 8],
    p7: [0; SVL_MAX / 8],
    ffr: [0; SVL_MAX / 8],
    zt0: [0; 64],
    za: Rows([0; SVL_MAX * SVL_MAX]),
};

const _: () = assert!(core::mem::offset_of!(Out, ffr) == 320 && core::mem::offset_of!(Out, zt0) == 352 && core::mem::offset_of!(Out, za) == 416);

/// The FPSR the round sets in streaming mode (IXC): entering or leaving streaming mode resets
/// FPSR to 0x0800009f, so a restore that enters it must load the guest's FPSR afterwards.
const FPSR: u64 = 0x10;

/// What `sme_on` found: the longest streaming vector length (bytes), whether ZT0 is there
/// (SME2) and whether FFR is usable in streaming mode (FEAT_SME_FA64), both enabled at EL1.
#[derive(Clone, Copy)]
pub struct Sme {
    pub svl: usize,
    pub zt0: bool,
    pub fa64: bool,
}

/// SMCR_EL1.FA64 (bit 31) and EZT0 (bit 30).
const SMCR_FA64: u64 = 1 << 31;
const SMCR_EZT0: u64 = 1 << 30;

/// FFR's pattern (PTRUE .S: 0x11 in each byte), set only with FA64.
const FFR: u8 = 0x11;

/// FEAT_SME (ID_AA64PFR1_EL1.SME, bits 27:24): enable it at EL1 at the longest streaming vector
/// length, with ZT0 where FEAT_SME2 is (ID_AA64SMFR0_EL1.SMEver, bits 59:56) and the full A64 set
/// in streaming mode where FEAT_SME_FA64 is (ID_AA64SMFR0_EL1.FA64, bit 63).
pub fn sme_on() -> Option<Sme> {
    let pfr1: u64;
    // SAFETY: an ID register read.
    unsafe { asm!("mrs {v}, id_aa64pfr1_el1", v = out(reg) pfr1, options(nomem, nostack)) };
    if (pfr1 >> 24) & 0xf == 0 {
        return None;
    }
    let smfr0: u64;
    // SAFETY: an ID register read (ID_AA64SMFR0_EL1).
    unsafe { asm!("mrs {v}, s3_0_c0_c4_5", v = out(reg) smfr0, options(nomem, nostack)) };
    let mut sme = Sme { svl: 0, zt0: (smfr0 >> 56) & 0xf != 0, fa64: smfr0 >> 63 != 0 };
    // SAFETY: CPACR_EL1.SMEN (bits 25:24) lets EL1 use SME; nothing enters streaming mode here.
    unsafe {
        asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 24)",
            "msr cpacr_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nomem, nostack),
        )
    };
    sme.svl = set_len(sme, 15);
    Some(sme)
}

/// Set SMCR_EL1: LEN to `len`, FA64 and EZT0 where the CPU has them (`sme`); the streaming
/// vector length that gives, in bytes.
fn set_len(sme: Sme, len: u64) -> usize {
    let smcr = len | if sme.zt0 { SMCR_EZT0 } else { 0 } | if sme.fa64 { SMCR_FA64 } else { 0 };
    let svl: u64;
    // SAFETY: SMCR_EL1 (s3_0_c1_c2_6) only sets the guest's own streaming vector length and
    // whether ZT0 (with SME2) and the full A64 set in streaming mode (FA64) are usable; RDSVL
    // only reads the length. SME is enabled at EL1 (`sme_on`).
    unsafe {
        asm!(
            ".arch_extension sme",
            "msr s3_0_c1_c2_6, {s}",
            "isb",
            "rdsvl {v}, #1",
            s = in(reg) smcr,
            v = out(reg) svl,
            options(nomem, nostack),
        )
    };
    svl as usize
}

fn za_in() -> *mut u8 {
    // SAFETY: only the address of the static is taken.
    unsafe { core::ptr::addr_of_mut!(ZA_IN.0) }.cast()
}

fn out() -> *mut Out {
    core::ptr::addr_of_mut!(OUT)
}

fn za_byte(seed: u64, i: usize) -> u8 {
    (seed as usize).wrapping_add(i.wrapping_mul(7)).wrapping_add(i / 251) as u8
}

/// Fill the first `svl` rows of ZA_IN with the pattern of `seed`.
fn fill(seed: u64, svl: usize) {
    for i in 0..svl * svl {
        // SAFETY: inside ZA_IN (svl <= SVL_MAX).
        unsafe { za_in().add(i).write_volatile(za_byte(seed, i)) };
    }
}

/// In streaming mode with ZA on, ZA loaded from ZA_IN (`svl` rows; with SME2, ZT0 from its
/// first 64 bytes), Z16's doublewords = seed + 0, 1, ..., P7 = PTRUE .H, FPSR = [`FPSR`] and with
/// FA64 FFR = [`FFR`]: `SNAPSHOT_TAKE(0)`; OUT holds what each return found.
fn take(seed: u64, svl: usize, sme: Sme) {
    let o = out();
    // SAFETY: streaming mode lasts from SMSTART to SMSTOP, and only SVE/SME instructions and
    // system register accesses legal there run in between (no Advanced SIMD, nothing of the
    // compiler's; WRFFR/RDFFR only with FA64, which `sme_on` enabled). The ZA loads read `svl`
    // rows of `svl` bytes from ZA_IN (ZT0 its first 64, only with SME2, EZT0 set by `sme_on`); the
    // stores write OUT's fields at their offsets (checked at compile time beside `Out`) and at
    // most `svl` rows into OUT.za (SVL as RDSVL reads it after the call, at most 256). x5 and x8
    // (the FA64 and ZT0 flags) are preserved by the call.
    // The output pointer is kept on the stack across the call (after a restore the stack is the
    // snapshot's, which holds it too). The HVC is an SMCCC call that preserves x4-x30 and SP;
    // Z16, P7 and ZA are caller-saved and hold nothing of the compiler's.
    unsafe {
        asm!(
            ".arch_extension sme",
            ".arch_extension sve",
            ".arch_extension sme2",
            "str x4, [sp, #-16]!",
            "smstart",
            "cbz x8, 5f",
            "ldr zt0, [x6]",
            "5:",
            "cbz x5, 7f",
            "ptrue p6.s",
            "wrffr p6.b",
            "7:",
            "mov x10, #0x10",
            "msr fpsr, x10",
            "mov w12, #0",
            "1:",
            "ldr za[w12, 0], [x6]",
            "add x6, x6, x7",
            "add w12, w12, #1",
            "cmp x12, x7",
            "b.ne 1b",
            "index z16.d, x2, #1",
            "ptrue p7.h",
            "mov x1, #0",
            "movz x0, #0x0010",
            "movk x0, #0xc600, lsl #16",
            "hvc #0",
            "ldr x9, [sp]",
            "stp x0, x1, [x9]",
            "mrs x10, svcr",
            "str x10, [x9, #16]",
            "tbz x10, #0, 2f",
            "add x11, x9, #32",
            "str z16, [x11]",
            "add x11, x9, #288",
            "str p7, [x11]",
            "mrs x11, fpsr",
            "str x11, [x9, #24]",
            "cbz x5, 2f",
            "rdffr p6.b",
            "add x11, x9, #320",
            "str p6, [x11]",
            "2:",
            "tbz x10, #1, 4f",
            "cbz x8, 6f",
            "add x11, x9, #352",
            "str zt0, [x11]",
            "6:",
            "rdsvl x13, #1",
            "add x11, x9, #416",
            "mov w12, #0",
            "3:",
            "str za[w12, 0], [x11]",
            "add x11, x11, x13",
            "add w12, w12, #1",
            "cmp x12, x13",
            "b.ne 3b",
            "4:",
            "smstop",
            "add sp, sp, #16",
            in("x2") seed,
            in("x4") o,
            in("x5") sme.fa64 as u64,
            inout("x6") za_in() => _,
            in("x7") svl,
            in("x8") sme.zt0 as u64,
            clobber_abi("C"),
        );
    }
}

/// Out of streaming mode, with ZA on and loaded with other rows (ZA_IN refilled with `seed`'s).
fn scramble(seed: u64, svl: usize) {
    fill(seed, svl);
    // (ZT0 stays as it was: turning ZA on from off zeroes it, which differs from the snapshot's.)
    // SAFETY: SMSTART ZA turns ZA on without streaming mode (ordinary code stays legal); the
    // loads read `svl` rows of `svl` bytes from ZA_IN. ZA holds nothing of the compiler's.
    unsafe {
        asm!(
            ".arch_extension sme",
            "smstart za",
            "mov w12, #0",
            "1:",
            "ldr za[w12, 0], [{p}]",
            "add {p}, {p}, {svl}",
            "add w12, w12, #1",
            "cmp x12, {svl}",
            "b.ne 1b",
            p = inout(reg) za_in() => _,
            svl = in(reg) svl,
            out("x12") _,
            options(nostack),
        );
    }
}

/// ZA off (the probe's later code does not expect it on).
fn za_off() {
    // SAFETY: SMSTOP leaves streaming mode (not entered here) and turns ZA off.
    unsafe { asm!(".arch_extension sme", "smstop", options(nomem, nostack)) };
}

/// What OUT must hold after either return: SVCR.SM and .ZA set, FPSR, Z16, P7 (and with FA64
/// FFR, with SME2 ZT0) as `take` set them, ZA's rows the pattern of `seed`.
fn check(seed: u64, svl: usize, sme: Sme) -> Result<(), Msg> {
    let o = out();
    // SAFETY: OUT is written only by `take`, which has returned; each read is a volatile read of
    // one of its fields (an element at a time: the buffer is 64 KiB).
    let read = |i: usize| unsafe { core::ptr::addr_of!((*o).za.0).cast::<u8>().add(i).read_volatile() };
    // SAFETY: as above.
    let svcr = unsafe { core::ptr::addr_of!((*o).svcr).read_volatile() };
    if svcr & 3 != 3 {
        return Err(probe_guest::msg!("SVCR {svcr:#x}: streaming mode (SM) and ZA must both be on"));
    }
    // SAFETY: as above.
    let fpsr = unsafe { core::ptr::addr_of!((*o).fpsr).read_volatile() };
    if fpsr != FPSR {
        return Err(probe_guest::msg!("FPSR {fpsr:#x} in streaming mode, expected {FPSR:#x}"));
    }
    for i in 0..64 {
        // SAFETY: as above, inside zt0.
        let b = unsafe { core::ptr::addr_of!((*o).zt0).cast::<u8>().add(i).read_volatile() };
        if sme.zt0 && b != za_byte(seed, i) {
            return Err(probe_guest::msg!("ZT0 byte {i} = {b:#x}, the snapshot had {:#x}", za_byte(seed, i)));
        }
    }
    for i in 0..svl / 8 {
        // SAFETY: as above, inside z16 (svl <= SVL_MAX).
        let v = unsafe { core::ptr::addr_of!((*o).z16).cast::<u64>().add(i).read_volatile() };
        if v != seed + i as u64 {
            return Err(probe_guest::msg!("streaming Z16 doubleword {i} = {v:#x}, expected {:#x} (SVL {svl} bytes)", seed + i as u64));
        }
    }
    for i in 0..svl / 8 {
        // SAFETY: as above, inside p7 and ffr.
        let (b, f) = unsafe {
            (core::ptr::addr_of!((*o).p7).cast::<u8>().add(i).read_volatile(), core::ptr::addr_of!((*o).ffr).cast::<u8>().add(i).read_volatile())
        };
        if b != 0x55 {
            return Err(probe_guest::msg!("streaming P7 byte {i} = {b:#x}, expected 0x55"));
        }
        if sme.fa64 && f != FFR {
            return Err(probe_guest::msg!("streaming FFR byte {i} = {f:#x}, expected {FFR:#x}"));
        }
    }
    for i in 0..svl * svl {
        let b = read(i);
        if b != za_byte(seed, i) {
            return Err(probe_guest::msg!("ZA row {} byte {} = {b:#x}, the snapshot had {:#x}", i / svl, i % svl, za_byte(seed, i)));
        }
    }
    Ok(())
}

/// The round at SMCR_EL1.LEN = `len`: `restores` is how many restores the earlier rounds made
/// (x1 counts them all), updated after this one's. `Err` from the first return is reported at
/// once (nothing is restored then); otherwise the restore's outcome, after it.
pub fn round(sme: Sme, len: u64, restores: &mut u64) -> Result<(), Msg> {
    let svl = set_len(sme, len);
    let zt0 = sme.zt0;
    if svl == 0 || svl > SVL_MAX || svl % 16 != 0 {
        return Err(probe_guest::msg!("RDSVL read {svl} bytes"));
    }
    let seed = 0x5a00;
    fill(seed, svl);
    take(seed, svl, sme);
    // SAFETY: OUT's first two words, written by `take`, which has returned.
    let (x0, x1) = unsafe { (core::ptr::addr_of!((*out()).x0).read_volatile(), core::ptr::addr_of!((*out()).x1).read_volatile()) };
    match x0 {
        0 => {
            check(seed, svl, sme).map_err(|e| probe_guest::msg!("after SNAPSHOT_TAKE: {e}"))?;
            scramble(seed + 0x33, svl);
            println!("probe: SME snapshot taken at SVL {svl} bytes (ZT0: {zt0}, FFR: {}); restoring it out of streaming mode with other rows in ZA", sme.fa64);
            let x = hvc::hvc(abi::VENDOR_SNAPSHOT_RESTORE, 0);
            za_off();
            Err(probe_guest::msg!("SNAPSHOT_RESTORE returned {x:#x}"))
        }
        1 => {
            let expected = *restores + 1;
            *restores = x1;
            check(seed, svl, sme).map_err(|e| probe_guest::msg!("after the restore: {e}"))?;
            if x1 != expected {
                return Err(probe_guest::msg!("restore count {x1} in x1, expected {expected}"));
            }
            Ok(())
        }
        x => Err(probe_guest::msg!("SNAPSHOT_TAKE returned {x:#x}")),
    }
}
