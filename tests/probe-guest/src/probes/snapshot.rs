//! The snapshot probes (with `snapshot` in the bootargs; el2visor needs `snapshot_mem=`): three
//! rounds, one per restore kind (eager, lazy, dirty-only). Each round fills a 16-page buffer
//! with a pattern, sets known values in x19-x28, d8-d15, TPIDR_EL0, TPIDRRO_EL0 and
//! CONTEXTIDR_EL1, and the state outside the general registers (`Outer`: TPIDR_EL1, the virtual
//! timer's CNTV_CVAL_EL0 and CNTV_CTL_EL0 (enabled, masked), and the virtual GIC's priority of
//! SGI 5), and takes a snapshot (`SNAPSHOT_TAKE`, which returns 0). It then overwrites three
//! pages of the buffer, CONTEXTIDR_EL1 and all of `Outer` and asks for the restore: the snapshot
//! call returns again, with x0 = 1 and x1 = the restores so far, and every register and every
//! word of the buffer must be as they were at the snapshot.
//!
//! RAM is Normal-NC at stage 1 here, so in `coherency=off` mode the buffer is read uncached: a
//! restored page el2visor did not clean to the PoC reads the overwritten values.
//!
//! The memory (report counters included) goes back to the snapshot with each restore, so each
//! round reports once, after its restore (a round whose snapshot registers were wrong reports
//! at once and restores nothing). The lazy round also checks, right after the restore, that
//! userfault is on and the RAM zapped (no block, few pages mapped, most pages missing), then
//! reads every page of RAM and checks that userfault went off and the blocks came back. Before
//! all that, first thing after the lazy restore, it hands el2visor a text on a page it has not
//! touched since (`LOG_LINE`, `snapshot_lazy_log_line`): the call must succeed, and el2visor must
//! print the snapshot's text, not the one written over it after the snapshot (the test checks the
//! line).
//!
//! Where the CPU has SME, two more rounds snapshot streaming mode and ZA (`snapshot_sme`), at
//! the longest streaming length and at 32 bytes. Where the VM has el2visor's virtual ITS, two
//! more restore it, eagerly and lazily (`snapshot_its`).
//!
//! With a second vCPU, last, `snapshot_keeps_cpu_on`: a snapshot taken right after a CPU_ON
//! that succeeded must not lose the vCPU it starts (`cpu::on_then`).

use core::arch::asm;

use crate::probes::gic::GuestGic;
use crate::{hvc, report, sysreg};
use probe_guest::abi::{self, snapshot_info as info, CoherencyMode};
use probe_guest::dt::Platform;
use probe_guest::msg::Msg;

const PAGES: usize = 16;
const WORDS: usize = PAGES * 512;

#[repr(C, align(4096))]
struct Buf([u64; WORDS]);

static mut BUF: Buf = Buf([0; WORDS]);

fn buf() -> *mut u64 {
    // SAFETY: only the address of the static is taken; every access is volatile through it.
    unsafe { core::ptr::addr_of_mut!(BUF.0) }.cast()
}

/// A page of its own for the `LOG_LINE` text of the lazy round.
#[repr(C, align(4096))]
struct TextPage([u8; 4096]);

static mut TEXT: TextPage = TextPage([0; 4096]);

/// The lazy round's text, as the snapshot has it; after the snapshot the page holds `OVER`.
const SNAP_TEXT: &[u8] = b"EL2VISOR-LAZY-LOG the snapshot's text";
const OVER_TEXT: &[u8] = b"written after the snapshot, must not be";

fn set_text(t: &[u8]) {
    for i in 0..64 {
        let b = t.get(i).copied().unwrap_or(b' ');
        // SAFETY: inside TEXT; only this vCPU writes it, volatile.
        unsafe { core::ptr::addr_of_mut!(TEXT.0).cast::<u8>().add(i).write_volatile(b) };
    }
}

/// `LOG_LINE` of the text page's first 64 bytes, without touching the page (its address only).
fn log_text() -> Result<(), Msg> {
    // SAFETY: only the address of the static is taken (identity mapped: VA = IPA).
    let at = unsafe { core::ptr::addr_of!(TEXT.0) } as u64;
    match hvc::psci(abi::VENDOR_LOG_LINE, at, 64, 0) {
        0 => Ok(()),
        r => Err(probe_guest::msg!("LOG_LINE of an untouched page right after the lazy restore returned {r}")),
    }
}

fn pattern(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0x0101_0101_0101_0101)
}

/// What the snapshot call left in the registers (either return).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Regs {
    x0: u64,
    x1: u64,
    x: [u64; 10],
    d: [u64; 8],
    tpidr0: u64,
    tpidrro: u64,
    /// Z16 and P7 (where the CPU has SVE), at the vector length the call returned with.
    z16: [u64; 32],
    p7: [u8; 32],
}

/// `SNAPSHOT_TAKE(flags)` with x19-x28 = seed + 1..10, d8-d15 = seed + 101..108, TPIDR_EL0 =
/// seed + 201, TPIDRRO_EL0 = seed + 202, and with `sve` Z16's doublewords = seed + 0, 1, ...
/// and P7 = PTRUE .H (0x55 bytes); what those read after the call (each return).
fn take(flags: u64, seed: u64, sve: bool) -> Regs {
    let mut out = Regs::default();
    let p: *mut Regs = &mut out;
    // SAFETY: x19-x28 and d8-d15 (callee-saved) are saved on the stack first and reloaded at the
    // end; the output pointer is kept on the stack across the call (after a restore the stack
    // is the snapshot's, which holds it too). `p` points at `out`, 464 bytes: Z16 (at most 256
    // bytes) at 176, P7 (at most 32) at 432. The SVE instructions run only with `sve` (x5,
    // preserved by the call), where the CPU has SVE and `sve_on` let EL1 use it; Z16 and P7
    // are caller-saved. The HVC is an
    // SMCCC call that preserves x4-x30 and SP; x0-x17 are clobbered as the C ABI allows.
    unsafe {
        asm!(
            "stp x19, x20, [sp, #-96]!",
            "stp x21, x22, [sp, #16]",
            "stp x23, x24, [sp, #32]",
            "stp x25, x26, [sp, #48]",
            "stp x27, x28, [sp, #64]",
            "str x4, [sp, #80]",
            "stp d8, d9, [sp, #-64]!",
            "stp d10, d11, [sp, #16]",
            "stp d12, d13, [sp, #32]",
            "stp d14, d15, [sp, #48]",
            "add x19, x2, #1",
            "add x20, x2, #2",
            "add x21, x2, #3",
            "add x22, x2, #4",
            "add x23, x2, #5",
            "add x24, x2, #6",
            "add x25, x2, #7",
            "add x26, x2, #8",
            "add x27, x2, #9",
            "add x28, x2, #10",
            "add x9, x2, #101",
            "fmov d8, x9",
            "add x9, x2, #102",
            "fmov d9, x9",
            "add x9, x2, #103",
            "fmov d10, x9",
            "add x9, x2, #104",
            "fmov d11, x9",
            "add x9, x2, #105",
            "fmov d12, x9",
            "add x9, x2, #106",
            "fmov d13, x9",
            "add x9, x2, #107",
            "fmov d14, x9",
            "add x9, x2, #108",
            "fmov d15, x9",
            "add x9, x2, #201",
            "msr tpidr_el0, x9",
            "add x9, x2, #202",
            "msr tpidrro_el0, x9",
            ".arch_extension sve",
            "cbz x5, 1f",
            "index z16.d, x2, #1",
            "ptrue p7.h",
            "1:",
            "mov x1, x3",
            "movz x0, #0x0010",
            "movk x0, #0xc600, lsl #16",
            "hvc #0",
            "ldr x9, [sp, #144]",
            "stp x0, x1, [x9]",
            "stp x19, x20, [x9, #16]",
            "stp x21, x22, [x9, #32]",
            "stp x23, x24, [x9, #48]",
            "stp x25, x26, [x9, #64]",
            "stp x27, x28, [x9, #80]",
            "stp d8, d9, [x9, #96]",
            "stp d10, d11, [x9, #112]",
            "stp d12, d13, [x9, #128]",
            "stp d14, d15, [x9, #144]",
            "mrs x10, tpidr_el0",
            "mrs x11, tpidrro_el0",
            "stp x10, x11, [x9, #160]",
            "cbz x5, 2f",
            "add x10, x9, #176",
            "str z16, [x10]",
            "add x10, x9, #432",
            "str p7, [x10]",
            "2:",
            "ldp d10, d11, [sp, #16]",
            "ldp d12, d13, [sp, #32]",
            "ldp d14, d15, [sp, #48]",
            "ldp d8, d9, [sp], #64",
            "ldp x21, x22, [sp, #16]",
            "ldp x23, x24, [sp, #32]",
            "ldp x25, x26, [sp, #48]",
            "ldp x27, x28, [sp, #64]",
            "ldp x19, x20, [sp], #96",
            in("x2") seed,
            in("x3") flags,
            in("x4") p,
            in("x5") sve as u64,
            clobber_abi("C"),
        );
    }
    out
}

fn check_regs(r: &Regs, seed: u64) -> Result<(), Msg> {
    for (i, &v) in r.x.iter().enumerate() {
        if v != seed + 1 + i as u64 {
            return Err(probe_guest::msg!("x{} = {v:#x}, expected {:#x}", 19 + i, seed + 1 + i as u64));
        }
    }
    for (i, &v) in r.d.iter().enumerate() {
        if v != seed + 101 + i as u64 {
            return Err(probe_guest::msg!("d{} = {v:#x}, expected {:#x}", 8 + i, seed + 101 + i as u64));
        }
    }
    if (r.tpidr0, r.tpidrro) != (seed + 201, seed + 202) {
        return Err(probe_guest::msg!("TPIDR_EL0 {:#x}, TPIDRRO_EL0 {:#x}", r.tpidr0, r.tpidrro));
    }
    Ok(())
}

/// The CPU has SVE (ID_AA64PFR0_EL1.SVE): let EL1 use it (CPACR_EL1.ZEN) at the longest vector
/// length (ZCR_EL1.LEN = 15); the vector length in bytes.
fn sve_on() -> Option<usize> {
    let pfr0: u64;
    // SAFETY: an ID register read.
    unsafe { asm!("mrs {v}, id_aa64pfr0_el1", v = out(reg) pfr0, options(nomem, nostack)) };
    if (pfr0 >> 32) & 0xf == 0 {
        return None;
    }
    let vl: u64;
    // SAFETY: FP/SIMD stay enabled (FPEN kept) and SVE is enabled at EL1 too before RDVL;
    // ZCR_EL1 only sets the vector length, which nothing else of the probe depends on.
    unsafe {
        asm!(
            ".arch_extension sve",
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 16)",
            "msr cpacr_el1, {t}",
            "isb",
            "mov {t}, #15",
            "msr s3_0_c1_c2_0, {t}",
            "isb",
            "rdvl {vl}, #1",
            t = out(reg) _,
            vl = out(reg) vl,
            options(nomem, nostack),
        )
    };
    Some(vl as usize)
}

/// Overwrite what a restore must bring back: Z16 and P7 zeroed, ZCR_EL1 at 128 bits.
fn sve_scramble() {
    // SAFETY: Z16 and P7 are caller-saved, and nothing holds a value in them here; ZCR_EL1 only
    // sets the vector length. SVE is on (`sve_on`).
    unsafe { asm!(".arch_extension sve", "mov z16.d, #0", "pfalse p7.b", "msr s3_0_c1_c2_0, xzr", "isb", out("v16") _, options(nomem, nostack)) };
}

/// Z16, P7 and ZCR_EL1 (in Regs, read at `vl` bytes) as `take` set them.
fn check_sve(r: &Regs, seed: u64, vl: usize) -> Result<(), Msg> {
    for (i, &v) in r.z16.iter().take(vl / 8).enumerate() {
        if v != seed + i as u64 {
            return Err(probe_guest::msg!("Z16 doubleword {i} = {v:#x}, expected {:#x} (VL {vl} bytes)", seed + i as u64));
        }
    }
    if let Some((i, b)) = r.p7.iter().take(vl / 8).enumerate().find(|&(_, &b)| b != 0x55) {
        return Err(probe_guest::msg!("P7 byte {i} = {b:#x}, expected 0x55"));
    }
    let zcr: u64;
    // SAFETY: a read of ZCR_EL1 (SVE present).
    unsafe { asm!("mrs {v}, s3_0_c1_c2_0", v = out(reg) zcr, options(nomem, nostack)) };
    if zcr & 0xf != 0xf {
        return Err(probe_guest::msg!("ZCR_EL1 {zcr:#x}, expected LEN 15"));
    }
    Ok(())
}

/// The SGI whose priority the snapshot must keep.
const SGI: u32 = 5;

/// State kept by the snapshot outside the registers `take` checks: an EL1 register, the virtual
/// timer, and the virtual GIC.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Outer {
    tpidr1: u64,
    cval: u64,
    ctl: u64,
    prio: Option<u8>,
}

impl Outer {
    fn for_round(n: u64, seed: u64) -> Self {
        // CVAL far in the future; CTL = ENABLE | IMASK, so the timer never interrupts.
        Outer { tpidr1: seed + 400, cval: (seed + 500) << 40, ctl: 3, prio: Some(0x80 + 0x10 * n as u8) }
    }

    fn scrambled() -> Self {
        Outer { tpidr1: 0xdead, cval: 1, ctl: 0, prio: Some(0x20) }
    }

    fn read(g: Option<&GuestGic>) -> Self {
        // ISTATUS (bit 2) follows the counter, not the guest's writes.
        Outer { tpidr1: sysreg::tpidr1(), cval: sysreg::cntv_cval(), ctl: sysreg::cntv_ctl() & 3, prio: g.map(|g| g.priority(SGI)) }
    }

    fn write(&self, g: Option<&GuestGic>) {
        // SAFETY: TPIDR_EL1 is a software thread ID the probe does not use; the timer stays masked
        // (IMASK) or off, so it never interrupts.
        unsafe {
            sysreg::set_tpidr1(self.tpidr1);
            sysreg::set_cntv_cval(self.cval);
            sysreg::set_cntv_ctl(self.ctl);
        }
        if let (Some(g), Some(p)) = (g, self.prio) {
            g.set_priority(SGI, p);
        }
        sysreg::isb();
    }

    /// Equal to `want`, where the GIC's priority may have fewer bits than a byte (the upper
    /// ones are compared).
    fn check(&self, want: &Outer) -> Result<(), Msg> {
        let prio_ok = match (self.prio, want.prio) {
            (Some(a), Some(b)) => a & 0xf0 == b & 0xf0,
            (a, b) => a == b,
        };
        if self.tpidr1 != want.tpidr1 || self.cval != want.cval || self.ctl != want.ctl || !prio_ok {
            return Err(probe_guest::msg!("{self:x?} after the restore, the snapshot had {want:x?}"));
        }
        Ok(())
    }
}

fn snapshot_info(which: u64) -> Result<u64, Msg> {
    Ok(hvc::vendor(abi::VENDOR_SNAPSHOT_INFO, which)?)
}

/// Run the three rounds, report, power off. `mode`: the coherency mode el2visor reported.
pub fn run(platform: &Platform, mode: Option<CoherencyMode>) -> ! {
    let gic = match GuestGic::init(platform) {
        Ok(g) => Some(g),
        Err(e) => {
            println!("probe: no GIC for the snapshot probes ({e}); its state is not checked");
            None
        }
    };
    let sve = sve_on();
    if let Some(vl) = sve {
        println!("probe: SVE at {vl} bytes: Z16, P7 and ZCR_EL1 checked too");
    }
    let sme = super::snapshot_sme::sme_on();
    if let Some(m) = sme {
        println!("probe: SME at {} bytes (ZT0: {}, FA64: {}): two more rounds snapshot streaming mode and ZA", m.svl, m.zt0, m.fa64);
    }
    // Restores so far, as the last restore's x1 said (kept in the restored context).
    let mut restores = 0;
    let rounds: [(u64, &str, u64); 3] = [(0, "eager", 0), (1, "lazy", 0), (2, "dirty", abi::SNAPSHOT_LOG_DIRTY)];
    for (n, &(kind, name, flags)) in rounds.iter().enumerate() {
        let seed = 0x1000 * (n as u64 + 1);
        for i in 0..WORDS {
            // SAFETY: inside BUF.
            unsafe { buf().add(i).write_volatile(pattern(seed, i)) };
        }
        // SAFETY: CONTEXTIDR_EL1 only tags translations for debug and trace; nothing here uses it.
        unsafe { sysreg::set_contextidr(seed + 300) };
        set_text(SNAP_TEXT);
        let outer = Outer::for_round(n as u64, seed);
        outer.write(gic.as_ref());
        let r = take(flags, seed, sve.is_some());
        let probe = match name {
            "eager" => "snapshot_restore_eager",
            "lazy" => "snapshot_restore_lazy",
            _ => "snapshot_restore_dirty",
        };
        match r.x0 {
            0 => {
                if let Err(e) = check_regs(&r, seed).and_then(|()| sve.map_or(Ok(()), |vl| check_sve(&r, seed, vl))) {
                    report::fail(probe, probe_guest::msg!("registers after SNAPSHOT_TAKE: {e}"));
                    continue;
                }
                // Written after the snapshot: three pages and CONTEXTIDR.
                for page in [0usize, 5, PAGES - 1] {
                    for w in 0..512 {
                        // SAFETY: inside BUF.
                        unsafe { buf().add(page * 512 + w).write_volatile(!pattern(seed, page * 512 + w)) };
                    }
                }
                set_text(OVER_TEXT);
                // SAFETY: as above.
                unsafe { sysreg::set_contextidr(0x5a5a) };
                Outer::scrambled().write(gic.as_ref());
                if sve.is_some() {
                    sve_scramble();
                }
                println!("probe: snapshot taken; restoring it the {name} way");
                let x = hvc::hvc(abi::VENDOR_SNAPSHOT_RESTORE, kind);
                report::fail(probe, probe_guest::msg!("SNAPSHOT_RESTORE returned {x:#x}"));
            }
            1 => {
                // First: the text page is still missing (untouched since the restore).
                let lazy_log = (kind == 1).then(log_text);
                let lazy_zapped = (kind == 1).then(lazy_state_after_restore);
                let mut result = check_regs(&r, seed).map_err(|e| probe_guest::msg!("registers after the restore: {e}"));
                if let (true, Some(vl)) = (result.is_ok(), sve) {
                    result = check_sve(&r, seed, vl).map_err(|e| probe_guest::msg!("SVE state after the restore: {e}"));
                }
                restores = r.x1;
                if result.is_ok() && r.x1 != n as u64 + 1 {
                    result = Err(probe_guest::msg!("restore count {} in x1, expected {}", r.x1, n + 1));
                }
                if result.is_ok() && sysreg::contextidr() != seed + 300 {
                    result = Err(probe_guest::msg!("CONTEXTIDR_EL1 {:#x}, expected {:#x}", sysreg::contextidr(), seed + 300));
                }
                if result.is_ok() {
                    result = Outer::read(gic.as_ref()).check(&outer);
                }
                if result.is_ok() {
                    result = check_buf(seed);
                }
                if result.is_ok() && kind == 2 {
                    result = cleaned(mode);
                }
                report::outcome(probe, result);
                if let Some(l) = lazy_log {
                    report::outcome("snapshot_lazy_log_line", l);
                }
                if let Some(z) = lazy_zapped {
                    report::outcome("snapshot_lazy_zapped", z);
                    report::outcome("snapshot_lazy_collapse", touch_all_and_check(platform));
                }
            }
            x => report::fail(probe, probe_guest::msg!("SNAPSHOT_TAKE returned {x:#x}")),
        }
    }
    match sme {
        Some(m) => {
            report::outcome("snapshot_restore_sme", super::snapshot_sme::round(m, 15, &mut restores));
            // At 32 bytes (LEN 1), shorter than el2visor's streaming length at EL2.
            if m.svl > 32 {
                report::outcome("snapshot_restore_sme_short", super::snapshot_sme::round(m, 1, &mut restores));
            } else {
                println!("probe: snapshot_restore_sme_short not run: the longest streaming length is {} bytes", m.svl);
            }
        }
        None => println!("probe: snapshot_restore_sme not run: the CPU has no SME"),
    }
    // A VM with el2visor's virtual ITS (the probe as a multiboot kernel on gic3).
    match (&gic, platform.its) {
        (Some(g), Some(_)) if g.is_v3() => {
            report::outcome("snapshot_restore_its", super::snapshot_its::round(platform, g, false));
            report::outcome("snapshot_restore_its_lazy", super::snapshot_its::round(platform, g, true));
        }
        _ => println!("probe: snapshot_restore_its not run: the VM has no ITS"),
    }
    // SAFETY: the virtual timer off.
    unsafe { sysreg::set_cntv_ctl(0) };
    // Last (its snapshot is not restored): a CPU_ON the snapshot's pause overtakes still starts.
    if platform.cpus().len() >= 2 {
        let r = super::cpu::on_then(platform, || hvc::hvc(abi::VENDOR_SNAPSHOT_TAKE, 0));
        report::outcome("snapshot_keeps_cpu_on", r);
    } else {
        println!("probe: snapshot_keeps_cpu_on not run: the VM has one vCPU");
    }
    report::finish()
}

fn check_buf(seed: u64) -> Result<(), Msg> {
    for i in 0..WORDS {
        // SAFETY: inside BUF.
        let v = unsafe { buf().add(i).read_volatile() };
        if v != pattern(seed, i) {
            return Err(probe_guest::msg!("buffer word {i} (page {}) reads {v:#x}, the snapshot had {:#x}", i / 512, pattern(seed, i)));
        }
    }
    Ok(())
}

/// Right after a lazy restore: userfault on, no block mapping RAM, few pages mapped, most missing.
fn lazy_state_after_restore() -> Result<(), Msg> {
    let flags = snapshot_info(info::FLAGS)?;
    let blocks = snapshot_info(info::BLOCKS)?;
    let pages = snapshot_info(info::PAGES)?;
    let missing = snapshot_info(info::MISSING)?;
    println!("probe: after the lazy restore: flags {flags:#x}, {blocks} blocks, {pages} pages mapped, {missing} missing");
    if flags & 1 == 0 {
        return Err(probe_guest::msg!("userfault is off (flags {flags:#x})"));
    }
    if blocks != 0 {
        return Err(probe_guest::msg!("{blocks} blocks map RAM while userfault is on"));
    }
    if pages > 256 || missing < 1024 {
        return Err(probe_guest::msg!("RAM not zapped: {pages} pages mapped, {missing} missing"));
    }
    Ok(())
}

/// Read every page of RAM (each a lazy fault); then userfault must be off and blocks back.
fn touch_all_and_check(platform: &Platform) -> Result<(), Msg> {
    let mut sum = 0u64;
    for r in platform.ram() {
        let mut a = r.base;
        while a < r.base + r.size {
            // SAFETY: RAM, identity mapped at stage 1; a read changes nothing.
            sum = sum.wrapping_add(unsafe { (a as *const u64).read_volatile() });
            a += 4096;
        }
    }
    let flags = snapshot_info(info::FLAGS)?;
    let blocks = snapshot_info(info::BLOCKS)?;
    let missing = snapshot_info(info::MISSING)?;
    println!("probe: every RAM page read (sum {sum:#x}): flags {flags:#x}, {blocks} blocks, {missing} missing");
    if missing != 0 || flags & 1 != 0 {
        return Err(probe_guest::msg!("{missing} pages still missing, flags {flags:#x}"));
    }
    if blocks == 0 {
        return Err(probe_guest::msg!("no block after the collapse"));
    }
    Ok(())
}

/// After the dirty-only restore of the three pages written (and a few more the probe wrote):
/// without FWB every line of each was cleaned to the PoC (QEMU models no caches, so this count
/// is what shows the clean happened there); with FWB none was.
fn cleaned(mode: Option<CoherencyMode>) -> Result<(), Msg> {
    let lines = snapshot_info(info::CMO_LINES)?;
    println!("probe: the dirty-only restore cleaned {lines} cache lines");
    match mode {
        Some(CoherencyMode::Fwb) if lines != 0 => Err(probe_guest::msg!("{lines} lines cleaned under FWB")),
        Some(CoherencyMode::Fwb) => Ok(()),
        // 3 pages of at least 64-byte lines.
        _ if lines < 3 * 64 => Err(probe_guest::msg!("only {lines} lines cleaned to the PoC for 3+ restored pages")),
        _ => Ok(()),
    }
}
