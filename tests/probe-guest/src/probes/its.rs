//! `its_garbage` (a VM with el2visor's virtual ITS): a guest that programs the ITS badly gets
//! the architecture's answers and el2visor stays intact.
//! - `GITS_CBASER` pointing just past the VM's RAM (on QEMU virt el2visor's own memory, which
//!   it keeps at the top of RAM): el2visor must not read there; the queue stalls
//!   (`GITS_CREADR.Stalled`).
//! - A queue in the VM's own RAM with a MAPD of a DeviceID past the ITS's 16 bits and a MAPC onto
//!   a processor the VM does not have (first, so el2visor's log names them before it stops
//!   logging), then pseudo-random commands: every command is consumed
//!   (`CREADR` reaches `CWRITER`, not stalled); el2visor skips the bad ones with command errors.
//!
//! The probe leaves the ITS disabled. el2visor's log lines and its `STATS` and power-off after it
//! are for the test to check.

use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};

use super::Context;
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::rng::XorShift64;

pub(super) const GITS_CTLR: u64 = 0x0;
pub(super) const GITS_CBASER: u64 = 0x80;
pub(super) const GITS_CWRITER: u64 = 0x88;
pub(super) const GITS_CREADR: u64 = 0x90;
const GITS_PIDR2: u64 = 0xffe8;
/// CBASER.Valid (and the valid bits of the commands' third doubleword).
pub(super) const VALID: u64 = 1 << 63;
/// Commands in the garbage queue: the two named above, then 64 random ones.
const RANDOM: u64 = 64;
const COMMANDS: u64 = RANDOM + 2;

#[repr(C, align(4096))]
struct Queue(UnsafeCell<[u64; 512]>);
// SAFETY: the probe runs on one CPU; only `its_garbage` touches the queue.
unsafe impl Sync for Queue {}
static QUEUE: Queue = Queue(UnsafeCell::new([0; 512]));

/// A 32-bit register of the ITS's frames or a redistributor's (`snapshot_its` too).
pub(super) fn rd32(a: u64) -> u32 {
    // SAFETY: `a` is in the ITS's frames or a redistributor, which mmu.rs maps Device-nGnRE.
    unsafe { read_volatile(a as *const u32) }
}

pub(super) fn wr32(a: u64, v: u32) {
    // SAFETY: as for rd32.
    unsafe { write_volatile(a as *mut u32, v) }
}

/// A 64-bit register there (CBASER, CWRITER, CREADR; GICR_PROPBASER, PENDBASER).
pub(super) fn rd64(a: u64) -> u64 {
    // SAFETY: as for rd32; these registers take 64-bit accesses.
    unsafe { read_volatile(a as *const u64) }
}

pub(super) fn wr64(a: u64, v: u64) {
    // SAFETY: as for rd32.
    unsafe { write_volatile(a as *mut u64, v) }
}

pub fn its_garbage(ctx: &Context) -> Result<(), Msg> {
    let its = ctx.platform.its.ok_or_else(|| msg!("no ITS in the DT"))?;
    let rev = rd32(its + GITS_PIDR2) >> 4 & 0xf;
    if rev != 3 && rev != 4 {
        return Err(msg!("GITS_PIDR2.ArchRev is {rev}, not a GICv3/v4 ITS"));
    }

    // A queue just past the VM's RAM.
    let outside = ctx.platform.ram().iter().map(|r| r.base + r.size).max().ok_or_else(|| msg!("no RAM in the DT"))?;
    wr32(its + GITS_CTLR, 0);
    wr64(its + GITS_CBASER, VALID | outside);
    wr32(its + GITS_CTLR, 1);
    wr64(its + GITS_CWRITER, 2 * 32);
    let r = rd64(its + GITS_CREADR);
    if r & 1 == 0 {
        return Err(msg!("a queue at {outside:#x}, outside RAM, did not stall (CREADR {r:#x})"));
    }

    // Garbage in the VM's own RAM (Normal-NC at stage 1: it is in memory when the ITS reads it).
    let q = QUEUE.0.get() as *mut u64;
    let mut rng = XorShift64::new(0x175_6a7b_a9e0);
    // MAPD of DeviceID 0x12345678 (past 16 bits), valid; MAPC ICID 1 onto processor 4000.
    let named: [[u64; 4]; 2] = [[0x1234_5678_0000_0008, 4, VALID, 0], [0x9, 0, VALID | 4000 << 16 | 1, 0]];
    for (c, cmd) in named.iter().enumerate() {
        for (w, v) in cmd.iter().enumerate() {
            // SAFETY: words 0..8 of the queue's 512.
            unsafe { write_volatile(q.add(c * 4 + w), *v) };
        }
    }
    for i in 8..COMMANDS * 4 {
        // SAFETY: `i` < 264 of the queue's 512 words.
        unsafe { write_volatile(q.add(i as usize), rng.next_u64()) };
    }
    wr32(its + GITS_CTLR, 0);
    wr64(its + GITS_CBASER, VALID | q as u64);
    wr32(its + GITS_CTLR, 1);
    wr64(its + GITS_CWRITER, COMMANDS * 32);
    let r = rd64(its + GITS_CREADR);
    wr32(its + GITS_CTLR, 0);
    if r != COMMANDS * 32 {
        return Err(msg!("after {COMMANDS} garbage commands CREADR is {r:#x}, not {:#x}", COMMANDS * 32));
    }
    println!("probe: its_garbage: queue outside RAM stalled, {COMMANDS} garbage commands consumed");
    Ok(())
}
