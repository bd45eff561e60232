//! The guest's ITS control frame (the first 64 KiB of an ITS, GITS_CTLR .. GITS_BASER<n>) and
//! the command queue it describes. The translation frame (GITS_TRANSLATER, the second 64 KiB) is
//! the physical one: devices write it themselves.
//!
//! The guest's queue is guest memory: [`ItsFrame::next`] reads one command through a
//! [`GuestMem`] (which must refuse anything outside the VM's RAM), decodes and validates it in the
//! VM's [`ItsModel`], and returns what the runtime must do; CREADR passes it when the runtime
//! [`ItsFrame::commit`]s it, once that is done. A command the model refuses is
//! skipped and reported (GITS_TYPER.SEIS = 0: the architecture lets an ITS ignore a command in
//! error); a queue el2visor cannot read (CBASER or CWRITER pointing outside the VM's RAM or the
//! queue) stalls it: GITS_CREADR.Stalled is set until the guest writes CWRITER with Retry.

use alloc::vec::Vec;

use super::cmd::{decode, from_bytes, CmdError, Command, CMD_SIZE};
use super::model::{Effect, ItsModel, LpiAlloc};

/// Size of each ITS frame (control, translation).
pub const ITS_FRAME_SIZE: u64 = 0x1_0000;
/// Offset of GITS_TRANSLATER in the ITS (the translation frame's first register).
pub const TRANSLATER: u64 = 0x1_0040;

const CTLR: u64 = 0x0000;
const IIDR: u64 = 0x0004;
const TYPER: u64 = 0x0008;
const CBASER: u64 = 0x0080;
const CWRITER: u64 = 0x0088;
const CREADR: u64 = 0x0090;
const BASER0: u64 = 0x0100;
const BASER_END: u64 = 0x0140;

const CTLR_ENABLED: u32 = 1;
const CTLR_QUIESCENT: u32 = 1 << 31;
const VALID: u64 = 1 << 63;
/// GITS_CREADR.Stalled / GITS_CWRITER.Retry.
const STALLED: u64 = 1;
/// The Offset field of CWRITER and CREADR (bits 19:5).
const OFFSET_MASK: u64 = 0x000f_ffe0;
/// CBASER's writable fields: Valid, InnerCache, OuterCache, PA 51:12, Shareability, Size.
const CBASER_MASK: u64 = VALID | 0x7 << 59 | 0x7 << 53 | 0x000f_ffff_ffff_f000 | 0x3 << 10 | 0xff;
/// BASER's writable fields: Valid, Indirect, InnerCache, OuterCache, PA 47:12, Shareability,
/// Page_Size, Size (Type and Entry_Size are read-only).
const BASER_MASK: u64 = VALID | 1 << 62 | 0x7 << 59 | 0x7 << 53 | 0x0000_ffff_ffff_f000 | 0xfff;
/// BASER Type: devices, collections.
const BASER_TYPE_DEVICES: u64 = 1;
const BASER_TYPE_COLLECTIONS: u64 = 4;
/// Entry size the guest's tables are sized with (8 bytes; el2visor never reads them).
const ENTRY_SIZE: u64 = 8;
/// GITS_IIDR: implementer Arm (0x43b).
const IIDR_VALUE: u32 = 0x43b;

/// A guest address range that is not wholly the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRam;

/// Reads guest memory for the ITS: [`NotRam`] for anything outside the VM's RAM.
pub trait GuestMem {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), NotRam>;
}

/// An access the frame refuses: the guest gets an abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccess {
    pub offset: u64,
    pub size: u8,
}

/// What happened to one command (for the log and the runtime).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; carry out these effects.
    Done(Command, Vec<Effect>),
    /// Skipped: the command was in error.
    Error { offset: u64, error: CmdError },
    /// The queue stalled: the command at `offset` could not be read (guest address `ipa`).
    Stalled { offset: u64, ipa: u64 },
}

/// Where CREADR goes once a command's effects are carried out ([`ItsFrame::commit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    gen: u64,
    at: u64,
    next: u64,
}

impl Commit {
    /// Nothing to commit (the queue stalled).
    const NONE: Commit = Commit { gen: u64::MAX, at: 0, next: 0 };
}

/// One VM's ITS control frame.
#[derive(Clone, Debug)]
pub struct ItsFrame {
    enabled: bool,
    cbaser: u64,
    cwriter: u64,
    creadr: u64,
    stalled: bool,
    /// Bumped by every CBASER write (which resets CREADR): a command taken by [`Self::next`]
    /// before it is not committed after it.
    queue_gen: u64,
    baser: [u64; 8],
    /// GITS_TYPER as the guest sees it.
    typer: u64,
    /// Collections the VM has (ICIDs `0..collections`), which TYPER's CIDbits cover.
    collections: u16,
    /// Commands in error so far.
    pub errors: u64,
}

impl ItsFrame {
    /// A frame whose GITS_TYPER advertises physical LPIs, 8-byte ITT entries, `event_bits`
    /// EventID bits and `device_bits` DeviceID bits, RDbase as processor numbers (PTA = 0),
    /// no collections held in hardware, and ICIDs of as many bits as `collections` needs (CIL
    /// set, CIDbits: a command naming an ICID past them is an error the guest can foresee).
    pub fn new(event_bits: u8, device_bits: u8, collections: u16) -> Self {
        let cid_bits = (u16::BITS - collections.saturating_sub(1).leading_zeros()).max(1) as u64;
        let typer = 1
            | (ENTRY_SIZE - 1) << 4
            | ((event_bits as u64 - 1) & 0x1f) << 8
            | ((device_bits as u64 - 1) & 0x1f) << 13
            | (cid_bits - 1) << 32
            | 1 << 36;
        let mut baser = [0u64; 8];
        baser[0] = BASER_TYPE_DEVICES << 56 | (ENTRY_SIZE - 1) << 48;
        baser[1] = BASER_TYPE_COLLECTIONS << 56 | (ENTRY_SIZE - 1) << 48;
        Self { enabled: false, cbaser: 0, cwriter: 0, creadr: 0, stalled: false, queue_gen: 0, baser, typer, collections, errors: 0 }
    }

    /// Whether the guest enabled the ITS.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// GITS_TYPER.
    pub fn typer(&self) -> u64 {
        self.typer
    }

    /// The queue's base and size in bytes, when CBASER is valid.
    fn queue(&self) -> Option<(u64, u64)> {
        (self.cbaser & VALID != 0).then(|| (self.cbaser & 0x000f_ffff_ffff_f000, ((self.cbaser & 0xff) + 1) * 4096))
    }

    /// A guest read of the control frame.
    pub fn read(&self, offset: u64, size: u8) -> Result<u64, BadAccess> {
        let bad = BadAccess { offset, size };
        let reg64 = |v: u64| -> Result<u64, BadAccess> {
            match size {
                8 if offset.is_multiple_of(8) => Ok(v),
                4 => Ok((v >> ((offset % 8) * 8)) & 0xffff_ffff),
                _ => Err(bad),
            }
        };
        match offset {
            CTLR | IIDR if size == 4 => Ok(match offset {
                CTLR => (self.enabled as u32 | CTLR_QUIESCENT) as u64,
                _ => IIDR_VALUE as u64,
            }),
            TYPER..0x0010 => reg64(self.typer),
            CBASER..CWRITER => reg64(self.cbaser),
            CWRITER..CREADR => reg64(self.cwriter),
            CREADR..0x0098 => reg64(self.creadr | if self.stalled { STALLED } else { 0 }),
            BASER0..BASER_END => reg64(self.baser[((offset - BASER0) / 8) as usize]),
            0xffd0..=0xfffc if size == 4 => Ok(crate::gic::vgic::id_register(offset - 0xf000, 3) as u64),
            _ if size == 4 || size == 8 => Ok(0),
            _ => Err(bad),
        }
    }

    /// A guest write of the control frame. Returns whether the queue may have commands to process
    /// (call [`ItsFrame::next`]).
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Result<bool, BadAccess> {
        let bad = BadAccess { offset, size };
        // A 64-bit register written whole or one 32-bit half at a time.
        let merge = |old: u64| -> Result<u64, BadAccess> {
            match size {
                8 if offset.is_multiple_of(8) => Ok(value),
                4 => {
                    let sh = (offset % 8) * 8;
                    Ok(old & !(0xffff_ffff << sh) | (value & 0xffff_ffff) << sh)
                }
                _ => Err(bad),
            }
        };
        match offset {
            CTLR if size == 4 => {
                let was = self.enabled;
                self.enabled = value as u32 & CTLR_ENABLED != 0;
                Ok(self.enabled && !was)
            }
            CBASER..CWRITER => {
                let v = merge(self.cbaser)?;
                if !self.enabled {
                    // Writing CBASER resets CREADR (and the queue is empty).
                    self.cbaser = v & CBASER_MASK;
                    self.queue_gen += 1;
                    self.creadr = 0;
                    self.cwriter = 0;
                    self.stalled = false;
                }
                Ok(false)
            }
            CWRITER..CREADR => {
                let v = merge(self.cwriter)?;
                self.cwriter = v & OFFSET_MASK;
                if v & STALLED != 0 {
                    self.stalled = false;
                }
                Ok(true)
            }
            BASER0..BASER_END => {
                let i = ((offset - BASER0) / 8) as usize;
                let v = merge(self.baser[i])?;
                if !self.enabled && self.baser[i] >> 56 & 7 != 0 {
                    self.baser[i] = self.baser[i] & !BASER_MASK | v & BASER_MASK;
                }
                Ok(false)
            }
            _ if size == 4 || size == 8 => Ok(false),
            _ => Err(bad),
        }
    }

    /// Whether [`Self::next`] has a command to take: the ITS enabled, CBASER valid, the queue
    /// not stalled and CREADR short of CWRITER.
    pub fn has_work(&self) -> bool {
        self.enabled && !self.stalled && self.queue().is_some() && self.creadr != self.cwriter
    }

    /// Take the command at CREADR (when [`Self::has_work`]) and run it on `model`, leaving
    /// CREADR where it is: the caller carries out the outcome's effects, then [`Self::commit`]s
    /// the returned position, so that a guest polling CREADR sees a command done only once its
    /// effects are. A queue that cannot be read stalls (the outcome says where; nothing to
    /// commit). One command at a time: what a queue of any length costs at once is one
    /// command's outcome.
    pub fn next(&mut self, model: &mut ItsModel, mem: &dyn GuestMem, lpis: &mut dyn LpiAlloc) -> Option<(Outcome, Commit)> {
        let (base, len) = self.queue()?;
        if !self.has_work() {
            return None;
        }
        if self.cwriter >= len {
            // CWRITER past the queue: nothing sensible to read up to.
            self.stalled = true;
            return Some((Outcome::Stalled { offset: self.cwriter, ipa: base + self.cwriter }, Commit::NONE));
        }
        let at = self.creadr;
        let mut bytes = [0u8; CMD_SIZE as usize];
        if mem.read(base + at, &mut bytes).is_err() {
            self.stalled = true;
            return Some((Outcome::Stalled { offset: at, ipa: base + at }, Commit::NONE));
        }
        let result = decode(from_bytes(&bytes)).and_then(|c| model.execute(c, lpis).map(|e| (c, e)));
        let outcome = match result {
            Ok((c, effects)) => Outcome::Done(c, effects),
            Err(error) => {
                self.errors += 1;
                Outcome::Error { offset: at, error }
            }
        };
        Some((outcome, Commit { gen: self.queue_gen, at, next: (at + CMD_SIZE) % len }))
    }

    /// CREADR past the command [`Self::next`] took, unless the guest has set up a new queue
    /// since (a CBASER write resets CREADR).
    pub fn commit(&mut self, c: Commit) {
        if c.gen == self.queue_gen && self.creadr == c.at && c.next != c.at {
            self.creadr = c.next;
        }
    }

    /// Run the queue from CREADR to CWRITER, committing each command at once: [`Self::next`]
    /// and [`Self::commit`] in a loop, for the tests.
    #[cfg(test)]
    pub fn process(&mut self, model: &mut ItsModel, mem: &dyn GuestMem, lpis: &mut dyn LpiAlloc) -> Vec<Outcome> {
        let mut out = Vec::new();
        while let Some((o, c)) = self.next(model, mem, lpis) {
            out.push(o);
            self.commit(c);
        }
        out
    }

    /// Back to reset values (a VM reset).
    pub fn reset(&mut self) {
        *self = Self::new(((self.typer >> 8) & 0x1f) as u8 + 1, ((self.typer >> 13) & 0x1f) as u8 + 1, self.collections);
    }
}
