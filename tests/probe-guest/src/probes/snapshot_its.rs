//! The snapshot rounds for a VM with el2visor's virtual ITS (snapshot mode, gic3, the probe
//! loaded as a multiboot kernel so that it owns the PCI bridge): `snapshot_restore_its` (an
//! eager restore) and `snapshot_restore_its_lazy`.
//!
//! Set up once: LPIs on this CPU's redistributor (GICR_PROPBASER with LPIs 8192..16383, 8200 and
//! 8201 enabled at priority 0xa0, GICR_PENDBASER, EnableLPIs), a one-page command queue, and
//! through it collection 0 on this CPU, DeviceID 0 with event 0 → LPI 8200. Each check fires the
//! event twice: with an `INT` command (the virtual ITS's model alone) and as an MSI, the event's
//! ID written to `GITS_TRANSLATER` (the physical ITS's translation frame, passed through; QEMU's
//! ITS takes a CPU's write as DeviceID 0, which the PCI bridge's `msi-map` gives the VM): the
//! physical ITS raises the physical LPI el2visor mapped the event to, and el2visor's route turns
//! it into the virtual one. Both must deliver 8200 before each snapshot.
//!
//! After each snapshot the probe changes the ITS: event 0 discarded and mapped again to 8201
//! (both ways now deliver 8201), DeviceID 9 mapped with an event; in the lazy round LPI 8200's
//! configuration byte is also cleared (disabled) and the event invalidated. Then it restores.
//! After the restore the ITS must be the snapshot's:
//! - `GITS_CREADR` where the snapshot's queue stood (the probe's write offset is in RAM, which
//!   the restore brought back; an ITS left ahead of it would run stale commands or none);
//! - DeviceID 0's event 0 delivers 8200 again, by `INT` and as an MSI (the physical mapping and
//!   the route made anew by the restore);
//! - an `INT` of DeviceID 9 delivers nothing (el2visor logs a command error: not mapped then).
//!
//! In the lazy round the property table's page is not touched after the restore before that
//! `INT`: el2visor must read LPI 8200's byte as the snapshot has it (enabled), not the cleared
//! one still in RAM until the page comes back.

use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};

use super::gic::{delay, GuestGic};
use super::its::{rd32, rd64, wr32, wr64, GITS_CBASER, GITS_CREADR, GITS_CTLR, GITS_CWRITER, VALID};
use crate::hvc;
use probe_guest::abi;
use probe_guest::dt::Platform;
use probe_guest::msg;
use probe_guest::msg::Msg;

const GICR_CTLR: u64 = 0x0;
const GICR_PROPBASER: u64 = 0x70;
const GICR_PENDBASER: u64 = 0x78;
/// GITS_TRANSLATER, in the translation frame (the ITS's second 64 KiB).
const GITS_TRANSLATER: u64 = 0x1_0040;

/// The DeviceID of a CPU's write to GITS_TRANSLATER on QEMU.
const DEV: u64 = 0;
const OTHER_DEV: u64 = 9;
const LPI: u32 = 8200;
const LPI_AFTER: u32 = 8201;
/// LPI configuration byte: priority 0xa0, enabled.
const ENABLED: u8 = 0xa1;

/// A page of RAM of the probe's own, 4 KiB aligned (`N` pages).
#[repr(C, align(4096))]
struct Pages<const N: usize>(UnsafeCell<[u8; N]>);
// SAFETY: the probe runs these rounds on one CPU; the ITS and el2visor only read them.
unsafe impl<const N: usize> Sync for Pages<N> {}

/// The command queue (one page: 128 commands).
static QUEUE: Pages<4096> = Pages(UnsafeCell::new([0; 4096]));
/// The LPI property table: one byte per LPI from 8192, for 8192 LPIs (IDbits 13).
static PROP: Pages<8192> = Pages(UnsafeCell::new([0; 8192]));
/// The ITT named in MAPD (el2visor keeps its own; the address must still be valid).
static ITT: Pages<4096> = Pages(UnsafeCell::new([0; 4096]));

/// The LPI pending table: 64 KiB aligned.
#[repr(C, align(65536))]
struct PendTable(UnsafeCell<[u8; 4096]>);
// SAFETY: as for Pages.
unsafe impl Sync for PendTable {}
static PEND: PendTable = PendTable(UnsafeCell::new([0; 4096]));

/// Where the next command goes in the queue, and whether the ITS is set up: in RAM, so a restore
/// brings back the snapshot's.
struct QueueState(UnsafeCell<(u64, bool)>);
// SAFETY: as for Pages.
unsafe impl Sync for QueueState {}
static STATE: QueueState = QueueState(UnsafeCell::new((0, false)));

fn state() -> (u64, bool) {
    // SAFETY: one CPU; volatile, so a restore's value is read.
    unsafe { read_volatile(STATE.0.get()) }
}

fn set_state(s: (u64, bool)) {
    // SAFETY: as in `state`.
    unsafe { write_volatile(STATE.0.get(), s) }
}

fn set_config(lpi: u32, byte: u8) {
    // SAFETY: inside PROP (LPIs 8192..16383).
    unsafe { write_volatile(PROP.0.get().cast::<u8>().add((lpi - 8192) as usize), byte) };
    // The ITS reads the table from memory (Normal-NC here): nothing to clean.
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Put one command in the queue, let the ITS have it, and wait until it is consumed.
fn send(its: u64, cmd: [u64; 4]) -> Result<(), Msg> {
    let (at, set_up) = state();
    let q = QUEUE.0.get().cast::<u64>();
    for (i, w) in cmd.iter().enumerate() {
        // SAFETY: a 32-byte slot inside the 4 KiB queue (`at` < 4096, a multiple of 32).
        unsafe { write_volatile(q.add(at as usize / 8 + i), *w) };
    }
    // SAFETY: a barrier: the command is in memory before CWRITER moves.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
    let next = (at + 32) % 4096;
    set_state((next, set_up));
    wr64(its + GITS_CWRITER, next);
    for _ in 0..1000 {
        let r = rd64(its + GITS_CREADR);
        if r & 1 != 0 {
            return Err(msg!("the queue stalled at {r:#x}"));
        }
        if r == next {
            return Ok(());
        }
        delay(10);
    }
    Err(msg!("CREADR {:#x} did not reach CWRITER {next:#x}", rd64(its + GITS_CREADR)))
}

fn mapd(dev: u64, valid: bool) -> [u64; 4] {
    // Size 3: 4 EventID bits.
    [dev << 32 | 0x08, 3, if valid { VALID | ITT.0.get() as u64 } else { 0 }, 0]
}

fn mapti(dev: u64, event: u64, lpi: u32) -> [u64; 4] {
    // ICID 0.
    [dev << 32 | 0x0a, (lpi as u64) << 32 | event, 0, 0]
}

fn int(dev: u64, event: u64) -> [u64; 4] {
    [dev << 32 | 0x03, event, 0, 0]
}

fn discard(dev: u64, event: u64) -> [u64; 4] {
    [dev << 32 | 0x0f, event, 0, 0]
}

fn inv(dev: u64, event: u64) -> [u64; 4] {
    [dev << 32 | 0x0c, event, 0, 0]
}

/// The LPI acknowledged within about 10 ms (then completed), if any.
fn wait_lpi(g: &GuestGic) -> Option<u32> {
    for _ in 0..1000 {
        let iar = g.ack();
        let intid = iar & 0xff_ffff;
        if intid != 1023 {
            g.eoi(iar);
            return Some(intid);
        }
        delay(10);
    }
    None
}

/// How an event is fired.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fire {
    /// The `INT` command.
    Int,
    /// A write of the EventID to GITS_TRANSLATER (DeviceID 0).
    Msi,
}

/// Fire `dev`'s event 0 (`Fire::Msi`: `dev` is 0); it must deliver `want` (or nothing, for
/// `None`).
fn expect(its: u64, g: &GuestGic, how: Fire, dev: u64, want: Option<u32>, when: &str) -> Result<(), Msg> {
    let what = match how {
        Fire::Int => {
            send(its, int(dev, 0))?;
            "an INT of"
        }
        Fire::Msi => {
            wr32(its + GITS_TRANSLATER, 0);
            "an MSI (GITS_TRANSLATER) of"
        }
    };
    match (wait_lpi(g), want) {
        (None, None) => Ok(()),
        (Some(got), Some(want)) if got == want => Ok(()),
        (Some(got), Some(want)) => Err(msg!("{when}: {what} DeviceID {dev} event 0 delivered INTID {got}, not LPI {want}")),
        (None, Some(want)) => Err(msg!("{when}: {what} DeviceID {dev} event 0 delivered nothing, not LPI {want}")),
        (Some(got), None) => Err(msg!("{when}: {what} DeviceID {dev} (not mapped then) delivered INTID {got}")),
    }
}

/// DeviceID 0's event 0 fired both ways must deliver `want`.
fn expect_both(its: u64, g: &GuestGic, want: u32, when: &str) -> Result<(), Msg> {
    expect(its, g, Fire::Int, DEV, Some(want), when)?;
    expect(its, g, Fire::Msi, DEV, Some(want), when)
}

/// LPIs on this CPU's redistributor and the queue; collection 0 here, DeviceID 0 event 0 → 8200.
fn set_up(its: u64, rd: u64) -> Result<(), Msg> {
    set_config(LPI, ENABLED);
    set_config(LPI_AFTER, ENABLED);
    // IDbits 13: LPIs up to 16383.
    wr64(rd + GICR_PROPBASER, PROP.0.get() as u64 | 13);
    wr64(rd + GICR_PENDBASER, PEND.0.get() as u64);
    wr32(rd + GICR_CTLR, rd32(rd + GICR_CTLR) | 1);
    wr32(its + GITS_CTLR, 0);
    // One page; writing CBASER puts CREADR at 0.
    wr64(its + GITS_CBASER, VALID | QUEUE.0.get() as u64);
    set_state((0, true));
    wr64(its + GITS_CWRITER, 0);
    wr32(its + GITS_CTLR, 1);
    // MAPC ICID 0 onto processor 0 (GITS_TYPER.PTA = 0), then SYNC.
    send(its, [0x09, 0, VALID, 0])?;
    send(its, mapd(DEV, true))?;
    send(its, mapti(DEV, 0, LPI))?;
    send(its, [0x05, 0, 0, 0])
}

/// One round: snapshot, change the ITS, restore the `lazy` way or eagerly, check.
pub fn round(platform: &Platform, g: &GuestGic, lazy: bool) -> Result<(), Msg> {
    let its = platform.its.ok_or_else(|| msg!("no ITS in the DT"))?;
    let rd = g.rd_base().ok_or_else(|| msg!("not a GICv3"))?;
    if !state().1 {
        set_up(its, rd)?;
    }
    g.drain();
    expect_both(its, g, LPI, "before the snapshot")?;
    let (queue_at, _) = state();
    match hvc::hvc(abi::VENDOR_SNAPSHOT_TAKE, 0) {
        0 => {
            send(its, discard(DEV, 0))?;
            send(its, mapti(DEV, 0, LPI_AFTER))?;
            send(its, mapd(OTHER_DEV, true))?;
            send(its, mapti(OTHER_DEV, 0, LPI))?;
            expect_both(its, g, LPI_AFTER, "after the snapshot")?;
            if lazy {
                set_config(LPI, 0);
                send(its, inv(OTHER_DEV, 0))?;
            }
            println!("probe: ITS changed after the snapshot (queue at {:#x}); restoring {}", state().0, if lazy { "lazily" } else { "eagerly" });
            let x = hvc::hvc(abi::VENDOR_SNAPSHOT_RESTORE, if lazy { 1 } else { 0 });
            Err(msg!("SNAPSHOT_RESTORE returned {x:#x}"))
        }
        1 => {
            // Nothing touches PROP's page before the INT below.
            let r = rd64(its + GITS_CREADR);
            if r != queue_at {
                return Err(msg!("GITS_CREADR {r:#x} after the restore; the snapshot's queue stood at {queue_at:#x}"));
            }
            if rd32(its + GITS_CTLR) & 1 == 0 {
                return Err(msg!("the ITS is disabled after the restore"));
            }
            expect_both(its, g, LPI, "after the restore")?;
            expect(its, g, Fire::Int, OTHER_DEV, None, "after the restore")
        }
        x => Err(msg!("SNAPSHOT_TAKE returned {x:#x}")),
    }
}
