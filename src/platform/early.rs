//! The early probe: what boot needs from the device tree before the heap exists, read without
//! allocating. The console's PL011 (address translated through every parent `ranges`) so that
//! errors can be printed, the first RAM ranges so that the EL2 map can be built, and
//! ([`occupancy`]) what already lives in RAM, so that el2visor can move itself to the top of
//! RAM before anything else runs.

#![forbid(unsafe_code)]

use fdt::Fdt;

use super::error::{DtError, DtErrorKind};
use super::header::{memreserve, validate};
use super::ranges::{Cells, Level};
use super::tree::{self, Node, Status};
use crate::mm::addr::PaRange;

/// How many `/memory` ranges the early probe keeps.
pub const EARLY_MEMORY_RANGES: usize = 8;

/// What the early probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyInfo {
    /// The console PL011's first `reg` range (CPU physical), if the DT names one.
    pub console: Option<PaRange>,
    memory: [PaRange; EARLY_MEMORY_RANGES],
    memory_len: usize,
    /// The DT lists more non-empty RAM ranges than [`EARLY_MEMORY_RANGES`]; the rest are left out.
    pub memory_truncated: bool,
    /// The blob's `totalsize`.
    pub dtb_size: usize,
}

impl EarlyInfo {
    /// Validates the blob and reads the console and RAM ranges.
    pub fn from_dtb(data: &[u8]) -> Result<EarlyInfo, DtError> {
        let (_, blob) = validate(data)?;
        let err = |kind| DtError::new(data, kind);
        let fdt = Fdt::new(blob).map_err(|_| err(DtErrorKind::TooShort { len: blob.len() }))?;
        let mut info = EarlyInfo {
            console: None,
            memory: [PaRange::default(); EARLY_MEMORY_RANGES],
            memory_len: 0,
            memory_truncated: false,
            dtb_size: blob.len(),
        };
        if let Some(c) = tree::find_console(&fdt).map_err(err)? {
            info.console = c.at.regs(c.path).next().transpose().map_err(err)?;
        }
        let root = fdt
            .find_node("/")
            .ok_or(err(DtErrorKind::MissingNode { path: "/" }))?;
        let cells = tree::cells_of(root, "/").map_err(err)?;
        let mut found = false;
        for node in root.children().filter(|n| super::is_memory_node(*n)) {
            found = true;
            if tree::status(node) != Status::Okay {
                continue;
            }
            let chain = [super::ranges::Level {
                cells,
                ranges: None,
            }];
            for r in tree::translated_regs(node, &chain, node.name) {
                let r = r.map_err(err)?;
                if r.size == 0 {
                    continue;
                }
                if info.memory_len == EARLY_MEMORY_RANGES {
                    info.memory_truncated = true;
                    continue;
                }
                info.memory[info.memory_len] = r;
                info.memory_len += 1;
            }
        }
        if !found {
            return Err(err(DtErrorKind::MissingNode { path: "/memory" }));
        }
        Ok(info)
    }

    /// The non-empty RAM ranges found (at most [`EARLY_MEMORY_RANGES`]).
    pub fn memory(&self) -> &[PaRange] {
        &self.memory[..self.memory_len]
    }
}

/// How many ranges of each kind [`occupancy`] keeps.
pub const EARLY_RANGES: usize = 16;

/// A fixed-capacity list of ranges (no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeList {
    ranges: [PaRange; EARLY_RANGES],
    len: usize,
    /// More non-empty ranges than [`EARLY_RANGES`] were found; the rest are left out.
    pub truncated: bool,
}

impl Default for RangeList {
    fn default() -> Self {
        RangeList { ranges: [PaRange::default(); EARLY_RANGES], len: 0, truncated: false }
    }
}

impl RangeList {
    /// Add `r` unless it is empty.
    pub fn push(&mut self, r: PaRange) {
        if r.size == 0 {
            return;
        }
        match self.ranges.get_mut(self.len) {
            Some(slot) => {
                *slot = r;
                self.len += 1;
            }
            None => self.truncated = true,
        }
    }

    pub fn as_slice(&self) -> &[PaRange] {
        &self.ranges[..self.len]
    }
}

/// What already lives in RAM when el2visor starts, as far as the device tree says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// The firmware's: `/memreserve/` entries, the `reg` of every enabled `/reserved-memory`
    /// child, and the 4 KiB page holding each CPU's `cpu-release-addr` (a spin table).
    pub firmware: RangeList,
    /// What the loader put there for el2visor: the initrd (`linux,initrd-start/-end`) and every
    /// `multiboot,*` module anywhere under `/chosen` (Xen's dom0 modules and dom0less domains').
    pub loaded: RangeList,
}

impl Occupancy {
    /// Whether every range fitted ([`EARLY_RANGES`] of each kind).
    pub fn complete(&self) -> bool {
        !self.firmware.truncated && !self.loaded.truncated
    }
}

/// Deepest `/chosen` nesting searched for modules (`/chosen/<domain>/<module>`).
const MODULE_DEPTH: usize = 2;

/// Read the [`Occupancy`] of RAM from `data` without allocating. Stricter than it needs to be is
/// fine: a caller that gets an error just does not move anything, and the full parse reports it.
pub fn occupancy(data: &[u8]) -> Result<Occupancy, DtError> {
    let (h, blob) = validate(data)?;
    let err = |kind| DtError::new(data, kind);
    let fdt = Fdt::new(blob).map_err(|_| err(DtErrorKind::TooShort { len: blob.len() }))?;
    let mut out = Occupancy::default();
    for r in memreserve(blob, &h) {
        out.firmware.push(r);
    }
    let root = fdt.find_node("/").ok_or(err(DtErrorKind::MissingNode { path: "/" }))?;
    let root_level = tree::level_of(root, "/").map_err(err)?;
    if let Some(rm) = tree::child(root, "reserved-memory") {
        let chain = [root_level, tree::level_of(rm, "/reserved-memory").map_err(err)?];
        for c in rm.children().filter(|c| tree::status(*c) == Status::Okay) {
            for r in tree::translated_regs(c, &chain, c.name) {
                out.firmware.push(r.map_err(err)?);
            }
        }
    }
    if let Some(cpus) = tree::child(root, "cpus") {
        for c in cpus.children() {
            if let Some(addr) = tree::prop_u64(c, c.name, "cpu-release-addr").map_err(err)? {
                out.firmware.push(PaRange::new(addr & !0xfff, 0x1000));
            }
        }
    }
    if let Some(chosen) = tree::child(root, "chosen") {
        let start = tree::prop_u64(chosen, "/chosen", "linux,initrd-start").map_err(err)?;
        let end = tree::prop_u64(chosen, "/chosen", "linux,initrd-end").map_err(err)?;
        if let (Some(s), Some(e)) = (start, end) {
            out.loaded.push(PaRange::new(s, e.saturating_sub(s)));
        }
        // Module `reg` is in `/chosen`'s cells, inherited from the root where `/chosen` does not
        // say (as Xen reads QEMU's guest-loader nodes); a domain node gives its modules its own.
        let own = tree::cells_of(chosen, "/chosen").map_err(err)?;
        let cells = Cells {
            addr: if tree::prop(chosen, "#address-cells").is_some() { own.addr } else { root_level.cells.addr },
            size: if tree::prop(chosen, "#size-cells").is_some() { own.size } else { root_level.cells.size },
        };
        modules(chosen, cells, MODULE_DEPTH, &mut out.loaded).map_err(err)?;
    }
    Ok(out)
}

/// Every `multiboot,*` node below `n` (whose children use `cells`), down to `depth` levels.
fn modules(n: Node<'_, '_>, cells: Cells, depth: usize, out: &mut RangeList) -> Result<(), DtErrorKind> {
    for c in n.children() {
        let is_module = tree::prop(c, "compatible").is_some_and(|v| tree::strings(v).any(|s| s.starts_with("multiboot,")));
        if is_module {
            let chain = [Level { cells, ranges: None }];
            for r in tree::translated_regs(c, &chain, c.name) {
                out.push(r?);
            }
        } else if depth > 1 {
            modules(c, tree::cells_of(c, c.name)?, depth - 1, out)?;
        }
    }
    Ok(())
}
