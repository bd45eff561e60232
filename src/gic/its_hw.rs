//! el2visor's driver for the physical GICv3 ITS: its own device, collection and interrupt
//! translation tables and command queue (memory from the frame pool), the LPI property and
//! pending tables of every redistributor, and one collection per pCPU (ICID = pCPU index). A VM's
//! virtual ITS (`gic::vits`) mirrors the guest's validated commands here: each mapped event gets
//! a physical LPI of [`LpiPool`], raised on the pCPU of the vCPU it targets.
//!
//! Physical LPIs are all enabled at priority [`DEFAULT_PRIORITY`] in el2visor's property table;
//! a guest's enable and priority are applied when el2visor delivers the virtual LPI.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};

use spin::{Mutex, Once};

use super::hw::host;
use super::its::cmd::{encode, Command};
use super::its::lpi::FIRST_LPI;
use super::its::model::Effect;
use super::its::pool::LpiPool;
use super::v3::DEFAULT_PRIORITY;
use crate::arch::cache::clean_inval_range;
use crate::mm::addr::Pa;
use crate::mm::frames::global as frames;
use crate::percpu;

const GITS_CTLR: usize = 0x0;
const GITS_TYPER: usize = 0x8;
const GITS_CBASER: usize = 0x80;
const GITS_CWRITER: usize = 0x88;
const GITS_CREADR: usize = 0x90;
const GITS_BASER: usize = 0x100;
const GICR_CTLR: usize = 0x0;
const GICR_TYPER: usize = 0x8;
const GICR_PROPBASER: usize = 0x70;
const GICR_PENDBASER: usize = 0x78;

/// INTID bits el2visor's LPI tables cover: LPIs 8192..16384.
const LPI_ID_BITS: u32 = 14;
const PAGE: u64 = 4096;
/// Inner-shareable, write-back read/write-allocate (InnerCache 7 at 61:59 for CBASER/BASER,
/// 9:7 for PROPBASER/PENDBASER; Shareability 1 at 11:10).
const BASER_ATTRS: u64 = 7 << 59 | 1 << 10;
const RDBASER_ATTRS: u64 = 7 << 7 | 1 << 10;
/// Command queue: 4 KiB, 128 commands.
const QUEUE_BYTES: u64 = PAGE;

/// Why the physical ITS cannot be used.
#[derive(Debug)]
pub enum ItsHwError {
    NoGicv3,
    NoLpis,
    NoMemory,
    /// A table the ITS wants that el2visor cannot size (indirect-only, too large).
    Table(u64),
    /// A command did not complete (CREADR stuck or stalled).
    Stuck { creadr: u64, cwriter: u64 },
}

impl core::fmt::Display for ItsHwError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoGicv3 => f.write_str("the host GIC is not a GICv3"),
            Self::NoLpis => f.write_str("the GICv3 distributor has no LPIs (GICD_TYPER.LPIS clear)"),
            Self::NoMemory => f.write_str("no memory for its tables"),
            Self::Table(v) => write!(f, "cannot set up GITS_BASER value {v:#x}"),
            Self::Stuck { creadr, cwriter } => {
                write!(f, "command queue stuck (CREADR {creadr:#x}, CWRITER {cwriter:#x})")
            }
        }
    }
}

/// The physical ITS.
pub struct PhysIts {
    base: usize,
    typer: u64,
    queue: Pa,
    /// The next free slot of the queue (GITS_CWRITER), under the lock commands are sent with.
    cwriter: Mutex<u64>,
    /// Per pCPU: the RDbase field of its collection's MAPC (per GITS_TYPER.PTA).
    rdbase: Vec<u64>,
    /// Physical LPIs for guests' events.
    pub pool: Mutex<LpiPool>,
    /// Each mapped device's ITT: (address, pages).
    itts: Mutex<BTreeMap<u32, (Pa, usize)>>,
}

static ITS: Once<Result<PhysIts, ()>> = Once::new();

fn read64(addr: usize) -> u64 {
    // SAFETY: `addr` is a register of the ITS or a redistributor from the host DT; every non-RAM
    // address is identity mapped as Device memory at EL2 and only el2visor drives these.
    unsafe { read_volatile(addr as *const u64) }
}

fn write64(addr: usize, v: u64) {
    // SAFETY: as in `read64`.
    unsafe { write_volatile(addr as *mut u64, v) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as in `read64`.
    unsafe { read_volatile(addr as *const u32) }
}

fn write32(addr: usize, v: u32) {
    // SAFETY: as in `read64`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

/// `pages` zeroed frames aligned to `align`, cleaned to the point of coherency (the ITS may not
/// snoop the caches).
fn zeroed(pages: usize, align: u64) -> Result<Pa, ItsHwError> {
    let pa = frames::alloc_aligned(pages, align).ok_or(ItsHwError::NoMemory)?;
    // SAFETY: the frames were just allocated to el2visor; EL2 maps all RAM identity, read-write.
    unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, pages * PAGE as usize) };
    clean_inval_range(pa.raw(), pages * PAGE as usize);
    Ok(pa)
}

/// The physical ITS, once [`init`] has set it up.
pub fn get() -> Option<&'static PhysIts> {
    ITS.get().and_then(|r| r.as_ref().ok())
}

/// Take over the ITS at `base` (once; later calls return the first result): LPIs on every
/// online pCPU's redistributor, the ITS's tables and queue, one collection per pCPU.
pub fn init(base: u64) -> Result<&'static PhysIts, ItsHwError> {
    let mut err = None;
    let r = ITS.call_once(|| match PhysIts::new(base as usize) {
        Ok(i) => Ok(i),
        Err(e) => {
            err = Some(e);
            Err(())
        }
    });
    match (r, err) {
        (Ok(i), _) => Ok(i),
        (Err(()), Some(e)) => Err(e),
        (Err(()), None) => Err(ItsHwError::NoMemory),
    }
}

impl PhysIts {
    fn new(base: usize) -> Result<Self, ItsHwError> {
        let h = host().ok_or(ItsHwError::NoGicv3)?;
        let cpus: Vec<usize> = percpu::online().map(|c| c.index).collect();
        let typer = read64(base + GITS_TYPER);
        let pta = typer >> 19 & 1 != 0;

        // LPI tables: one property table for all, a pending table per redistributor.
        let prop_bytes = (1u64 << LPI_ID_BITS) - FIRST_LPI as u64;
        let prop_pages = prop_bytes.div_ceil(PAGE) as usize;
        let prop = frames::alloc_aligned(prop_pages, PAGE).ok_or(ItsHwError::NoMemory)?;
        // SAFETY: just allocated to el2visor, identity mapped read-write.
        unsafe { core::ptr::write_bytes(prop.raw() as *mut u8, DEFAULT_PRIORITY | 1, prop_bytes as usize) };
        clean_inval_range(prop.raw(), prop_bytes as usize);
        let mut rdbase = Vec::new();
        let max_cpu = cpus.iter().copied().max().unwrap_or(0);
        rdbase.resize(max_cpu + 1, 0);
        for &c in &cpus {
            let (rd, gicd_typer) = h.v3_redist(percpu::mpidr_of(c)).ok_or(ItsHwError::NoGicv3)?;
            if gicd_typer >> 17 & 1 == 0 || (gicd_typer >> 19 & 0x1f) + 1 < LPI_ID_BITS {
                return Err(ItsHwError::NoLpis);
            }
            let rd_typer = read64(rd + GICR_TYPER);
            if rd_typer & 1 == 0 {
                return Err(ItsHwError::NoLpis);
            }
            if read32(rd + GICR_CTLR) & 1 == 0 {
                let pend_bytes = (1usize << LPI_ID_BITS) / 8;
                let pend = zeroed(pend_bytes.div_ceil(PAGE as usize).max(16), 0x1_0000)?;
                write64(rd + GICR_PROPBASER, prop.raw() | RDBASER_ATTRS | (LPI_ID_BITS as u64 - 1));
                write64(rd + GICR_PENDBASER, pend.raw() | RDBASER_ATTRS);
                write32(rd + GICR_CTLR, read32(rd + GICR_CTLR) | 1);
            } else {
                log::warn!("ITS: LPIs were already enabled on pCPU {c}'s redistributor; its tables are the firmware's");
            }
            rdbase[c] = if pta { (rd as u64) >> 16 } else { rd_typer >> 8 & 0xffff };
        }

        // The ITS's own tables.
        write32(base + GITS_CTLR, 0);
        for n in 0..8 {
            let reg = base + GITS_BASER + 8 * n;
            let v = read64(reg);
            let kind = v >> 56 & 7;
            if kind == 0 {
                continue;
            }
            let entry = (v >> 48 & 0x1f) + 1;
            let ids: u64 = match kind {
                1 => 1 << ((typer >> 13 & 0x1f) + 1).min(16), // devices: DeviceIDs up to 16 bits
                4 => (max_cpu as u64 + 1).max(64),           // collections: one per pCPU
                _ => continue,                                // vPEs: GICv4, unused
            };
            let pages = (ids * entry).div_ceil(PAGE).clamp(1, 256);
            let pa = zeroed(pages as usize, 0x1_0000)?;
            let want = VALID | BASER_ATTRS | (v & (7 << 56 | 0x1f << 48)) | pa.raw() | (pages - 1);
            write64(reg, want);
            let got = read64(reg);
            if got >> 8 & 3 != 0 {
                // Only 16 or 64 KiB pages: size in those (the table is 64 KiB aligned).
                let ps = if got >> 8 & 3 == 1 { 0x4000 } else { 0x1_0000 };
                let n_pages = (pages * PAGE).div_ceil(ps);
                write64(reg, (want & !0xff) | (n_pages - 1) | (got & 0x300));
            }
            if read64(reg) & VALID == 0 {
                return Err(ItsHwError::Table(want));
            }
        }
        let queue = zeroed(1, PAGE)?;
        write64(base + GITS_CBASER, VALID | BASER_ATTRS | queue.raw() | (QUEUE_BYTES / PAGE - 1));
        write64(base + GITS_CWRITER, 0);
        write32(base + GITS_CTLR, 1);
        let its = PhysIts {
            base,
            typer,
            queue,
            cwriter: Mutex::new(0),
            rdbase,
            pool: Mutex::new(LpiPool::new(FIRST_LPI, (1 << LPI_ID_BITS) - FIRST_LPI)),
            itts: Mutex::new(BTreeMap::new()),
        };
        for &c in &cpus {
            let rd = its.rdbase[c];
            its.send(&[Command::Mapc { icid: c as u16, rdbase: rd, valid: true }, Command::Sync { rdbase: rd }])?;
        }
        log::info!(
            "ITS at {base:#x}: {} pCPU collections, LPIs {}..{}, DeviceID bits {}, EventID bits {}",
            cpus.len(),
            FIRST_LPI,
            1u32 << LPI_ID_BITS,
            its.device_bits(),
            its.event_bits()
        );
        Ok(its)
    }

    /// DeviceID bits (GITS_TYPER.Devbits + 1).
    pub fn device_bits(&self) -> u8 {
        ((self.typer >> 13 & 0x1f) + 1) as u8
    }

    /// EventID bits (GITS_TYPER.IDbits + 1).
    pub fn event_bits(&self) -> u8 {
        ((self.typer >> 8 & 0x1f) + 1) as u8
    }

    /// The physical ITS's base (its translation frame is 64 KiB above).
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// Write `cmds` to the queue and wait until the ITS has read them all.
    fn send(&self, cmds: &[Command]) -> Result<(), ItsHwError> {
        let mut w = self.cwriter.lock();
        for &c in cmds {
            let slot = self.queue.raw() + *w;
            for (i, dw) in encode(c).iter().enumerate() {
                // SAFETY: the queue page is el2visor's (allocated in `new`), identity mapped;
                // `slot` is a 32-byte slot inside it.
                unsafe { write_volatile((slot + 8 * i as u64) as *mut u64, *dw) };
            }
            clean_inval_range(slot, 32);
            *w = (*w + 32) % QUEUE_BYTES;
            write64(self.base + GITS_CWRITER, *w);
        }
        for _ in 0..10_000_000 {
            let r = read64(self.base + GITS_CREADR);
            if r & 1 != 0 {
                break;
            }
            if r & 0xf_ffe0 == *w {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(ItsHwError::Stuck { creadr: read64(self.base + GITS_CREADR), cwriter: *w })
    }

    /// Carry out the physical part of a virtual ITS's effect. `pcpu_of` gives the pCPU of the
    /// VM's vCPU.
    pub fn apply(&self, e: &Effect, pcpu_of: &dyn Fn(usize) -> usize) -> Result<(), ItsHwError> {
        match *e {
            Effect::MapDevice { dev, event_bits } => {
                let entry = (self.typer >> 4 & 0xf) + 1;
                let bytes = ((1u64 << event_bits) * entry).max(256);
                let pages = bytes.div_ceil(PAGE) as usize;
                let itt = zeroed(pages, PAGE)?;
                if let Some((old, n)) = self.itts.lock().insert(dev, (itt, pages)) {
                    frames::free(old, n);
                }
                self.send(&[Command::Mapd { dev, size: event_bits - 1, itt: itt.raw(), valid: true }])
            }
            Effect::UnmapDevice { dev } => {
                let r = self.send(&[Command::Mapd { dev, size: 0, itt: 0, valid: false }]);
                if let Some((old, n)) = self.itts.lock().remove(&dev) {
                    frames::free(old, n);
                }
                r
            }
            Effect::MapEvent { dev, event, plpi, vcpu, .. } => {
                let pcpu = pcpu_of(vcpu);
                self.send(&[
                    Command::Mapti { dev, event, intid: plpi, icid: pcpu as u16 },
                    Command::Sync { rdbase: self.rdbase.get(pcpu).copied().unwrap_or(0) },
                ])
            }
            Effect::UnmapEvent { dev, event, .. } => self.send(&[Command::Discard { dev, event }]),
            Effect::MoveEvent { dev, event, vcpu, .. } => {
                self.send(&[Command::Movi { dev, event, icid: pcpu_of(vcpu) as u16 }])
            }
            Effect::ClearPending { dev, event, .. } => self.send(&[Command::Clear { dev, event }]),
            Effect::SetPending { .. } | Effect::Reload { .. } | Effect::ReloadAll { .. } => Ok(()),
        }
    }
}

const VALID: u64 = 1 << 63;
