//! `cpu_on_reset_state`'s second half (cpu.rs has the first): the registers of newer features
//! (where the CPU has them), the PMU's enables, the first breakpoint and watchpoint, and the
//! FP/SIMD and SVE registers. The secondary's first life writes each and
//! records what it reads back (the value held: the check means something), its second life,
//! after CPU_OFF and CPU_ON, records what it finds: 0, the reset value el2visor gives (KVM's),
//! not what the previous life left. Both lives run with the MMU off, so the records go straight
//! to memory and the primary invalidates its copies before it reads them ([`sync`]).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::msg;
use probe_guest::msg::Msg;

/// Which feature a register needs.
#[derive(Clone, Copy)]
enum Needs {
    S1pie,
    S1poe,
    Sme,
    Gcs,
    Scxt,
    Pauth,
    Pmu,
    /// Every AArch64 CPU (the debug registers' first pair).
    Any,
}

fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

macro_rules! mrs {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: an ID register or a register of this vCPU's own EL1/EL0 state; no side effect.
        unsafe { asm!(concat!("mrs {v}, ", $reg), v = out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

fn has(n: Needs) -> bool {
    let (pfr0, pfr1, mmfr3) = (mrs!("id_aa64pfr0_el1"), mrs!("id_aa64pfr1_el1"), mrs!("s3_0_c0_c7_3"));
    match n {
        Needs::S1pie => field(mmfr3, 8) != 0,
        Needs::S1poe => field(mmfr3, 16) != 0,
        Needs::Sme => field(pfr1, 24) != 0,
        Needs::Gcs => field(pfr1, 44) != 0,
        Needs::Scxt => field(pfr0, 56) >= 2,
        // ID_AA64ISAR1_EL1.APA (7:4) or API (11:8); ISAR2.APA3 (15:12).
        Needs::Pauth => mrs!("id_aa64isar1_el1") & 0xff0 != 0 || field(mrs!("s3_0_c0_c6_2"), 12) != 0,
        // ID_AA64DFR0_EL1.PMUVer: PMUv3 (1 to 14).
        Needs::Pmu => matches!(field(mrs!("id_aa64dfr0_el1"), 8), 1..=14),
        Needs::Any => true,
    }
}

macro_rules! regs {
    ($($name:literal, $reg:literal, $needs:ident, $value:expr;)*) => {
        /// Name, feature, value written in the first life.
        const REGS: &[(&str, Needs, u64)] = &[$(($name, Needs::$needs, $value)),*];

        fn read(i: usize) -> u64 {
            let mut n = 0;
            $(
                if n == i {
                    return mrs!($reg);
                }
                n += 1;
            )*
            let _ = n;
            0
        }

        fn write(i: usize, v: u64) {
            let mut n = 0;
            $(
                if n == i {
                    // SAFETY: a register of this secondary vCPU's own EL1/EL0 state (its feature
                    // present, checked by the caller), which the probe's code running with the
                    // MMU off does not use: translation controls take no effect with it off,
                    // the rest hold values only.
                    unsafe { asm!(concat!("msr ", $reg, ", {v}"), v = in(reg) v, options(nomem, nostack, preserves_flags)) };
                    return;
                }
                n += 1;
            )*
            let _ = n;
        }
    };
}

regs! {
    "PIR_EL1", "s3_0_c10_c2_3", S1pie, 0x1234_5678_9abc_def0;
    "PIRE0_EL1", "s3_0_c10_c2_2", S1pie, 0x0fed_cba9_8765_4321;
    "TCR2_EL1.PIE", "s3_0_c2_c0_3", S1pie, 1 << 1;
    "POR_EL1", "s3_0_c10_c2_4", S1poe, 0x7777_7777;
    "POR_EL0", "s3_3_c10_c2_4", S1poe, 0x3333_3333;
    "TPIDR2_EL0", "s3_3_c13_c0_5", Sme, 0x7e57_2222;
    "GCSPR_EL1", "s3_0_c2_c5_1", Gcs, 0x1234_5000;
    "SCXTNUM_EL1", "s3_0_c13_c0_7", Scxt, 0x5c57;
    "APIAKEYLO_EL1", "s3_0_c2_c1_0", Pauth, 0xa11c_e000_0000_0001;
    "PMCNTENSET_EL0", "pmcntenset_el0", Pmu, 1 << 31;
    "PMINTENSET_EL1", "pmintenset_el1", Pmu, 1 << 31;
    "PMUSERENR_EL0", "pmuserenr_el0", Pmu, 1;
    // Written disabled (E clear): values only, nothing is watched.
    "DBGBVR0_EL1", "dbgbvr0_el1", Any, 0x4000_1000;
    "DBGBCR0_EL1", "dbgbcr0_el1", Any, 0xf << 5;
    "DBGWVR0_EL1", "dbgwvr0_el1", Any, 0x4000_2000;
    "DBGWCR0_EL1", "dbgwcr0_el1", Any, 0xff << 5;
}

/// What the first life read back after its writes, and what the second found.
static HELD: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static FOUND: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
const _: () = assert!(REGS.len() <= 16);

/// OSLSR_EL1.OSLK (bit 1) after the first life locked the OS lock (OSLAR_EL1 = 1), and in the
/// second life: unlocked, as KVM resets it (the architecture's cold reset would lock it; a
/// kernel unlocks it early, and one started by CPU_ON must not find its debug exceptions off
/// because the previous one left them so).
static OSLK: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

fn oslk() -> u64 {
    mrs!("oslsr_el1") & 2
}

/// The first life (secondary, MMU off): write each register the CPU has, record what holds.
pub fn dirty() {
    for (i, &(_, needs, value)) in REGS.iter().enumerate() {
        if has(needs) {
            write(i, value);
            // SAFETY: a context synchronisation.
            unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
            HELD[i].store(read(i), Ordering::Relaxed);
        }
    }
    // SAFETY: the OS lock only holds back debug exceptions, which this vCPU does not use.
    unsafe { asm!("msr oslar_el1, {v}", "isb", v = in(reg) 1u64, options(nomem, nostack, preserves_flags)) };
    OSLK[0].store(oslk(), Ordering::Relaxed);
}

/// The second life (secondary, MMU off): record what each holds now.
pub fn record() {
    for (i, &(_, needs, _)) in REGS.iter().enumerate() {
        if has(needs) {
            FOUND[i].store(read(i), Ordering::Relaxed);
        }
    }
    OSLK[1].store(oslk(), Ordering::Relaxed);
}

/// Drop the primary's cached copies of the records (written to memory with the MMU off).
pub fn sync() {
    for (a, n) in [(HELD.as_ptr() as u64, 16), (FOUND.as_ptr() as u64, 16), (OSLK.as_ptr() as u64, 2)] {
        for line in (a & !63..a + 8 * n).step_by(64) {
            // SAFETY: clean+invalidate of lines of this module's own statics only.
            unsafe { asm!("dc civac, {}", in(reg) line, options(nostack, preserves_flags)) };
        }
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// The primary's verdict, after both lives and [`sync`]; the names checked on success.
pub fn verify() -> Result<Msg, Msg> {
    let mut checked = Msg::new();
    for (i, &(name, needs, value)) in REGS.iter().enumerate() {
        if !has(needs) {
            continue;
        }
        let (held, found) = (HELD[i].load(Ordering::Relaxed), FOUND[i].load(Ordering::Relaxed));
        if held & value == 0 {
            return Err(msg!("{name}: {value:#x} written in the first life read back {held:#x}: the register does not hold it"));
        }
        if found != 0 {
            return Err(msg!("{name} is {found:#x} after CPU_ON, expected its reset value 0 (the previous life wrote {value:#x})"));
        }
        checked = msg!("{checked} {name}");
    }
    match (OSLK[0].load(Ordering::Relaxed), OSLK[1].load(Ordering::Relaxed)) {
        (0, _) => Err(msg!("OSLAR_EL1 = 1 in the first life left OSLSR_EL1.OSLK clear: the OS lock does not hold")),
        (_, 0) => Ok(msg!("{checked} OSLSR_EL1.OSLK")),
        _ => Err(msg!("the OS lock is still locked after CPU_ON (OSLSR_EL1.OSLK set); KVM resets it unlocked")),
    }
}

/// The first life: V0-V31 nonzero (0x5a in each byte) and, where the CPU has SVE (entry.S
/// enabled it), every predicate and FFR all true: what the next life must not find.
pub fn dirty_fp() {
    // SAFETY: only this vCPU's own FP/SIMD and SVE registers, every one declared clobbered (the
    // predicates and FFR by the C ABI); SVE instructions run only where ID_AA64PFR0_EL1.SVE says
    // the CPU has it.
    unsafe {
        asm!(
            "movi v0.16b, #0x5a", "movi v1.16b, #0x5a", "movi v2.16b, #0x5a", "movi v3.16b, #0x5a",
            "movi v4.16b, #0x5a", "movi v5.16b, #0x5a", "movi v6.16b, #0x5a", "movi v7.16b, #0x5a",
            "movi v8.16b, #0x5a", "movi v9.16b, #0x5a", "movi v10.16b, #0x5a", "movi v11.16b, #0x5a",
            "movi v12.16b, #0x5a", "movi v13.16b, #0x5a", "movi v14.16b, #0x5a", "movi v15.16b, #0x5a",
            "movi v16.16b, #0x5a", "movi v17.16b, #0x5a", "movi v18.16b, #0x5a", "movi v19.16b, #0x5a",
            "movi v20.16b, #0x5a", "movi v21.16b, #0x5a", "movi v22.16b, #0x5a", "movi v23.16b, #0x5a",
            "movi v24.16b, #0x5a", "movi v25.16b, #0x5a", "movi v26.16b, #0x5a", "movi v27.16b, #0x5a",
            "movi v28.16b, #0x5a", "movi v29.16b, #0x5a", "movi v30.16b, #0x5a", "movi v31.16b, #0x5a",
            "mrs x9, id_aa64pfr0_el1",
            "ubfx x9, x9, #32, #4",
            "cbz x9, 1f",
            ".arch_extension sve",
            "ptrue p0.b", "ptrue p1.b", "ptrue p2.b", "ptrue p3.b", "ptrue p4.b", "ptrue p5.b",
            "ptrue p6.b", "ptrue p7.b", "ptrue p8.b", "ptrue p9.b", "ptrue p10.b", "ptrue p11.b",
            "ptrue p12.b", "ptrue p13.b", "ptrue p14.b", "ptrue p15.b",
            "setffr",
            "1:",
            out("x9") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            clobber_abi("C"),
            options(nostack),
        )
    };
}

/// The second life's FP/SIMD and SVE registers as entry.S summed them up before anything ran:
/// `v` the OR of V0-V31, `p` the OR of the counts of true elements of P0-P15 and FFR (nonzero if
/// any is true). KVM zeroes them all at a vCPU's reset; the previous life left V at 0x5a bytes,
/// every predicate and FFR all true.
pub fn check_fp(v: u64, p: u64) -> Result<(), Msg> {
    if v != 0 {
        return Err(msg!("V0-V31 are not zero after CPU_ON (their OR is {v:#x}): what the previous life left"));
    }
    if p != 0 {
        return Err(msg!("P0-P15 or FFR have true elements after CPU_ON (up to {p} in one): what the previous life left"));
    }
    Ok(())
}
