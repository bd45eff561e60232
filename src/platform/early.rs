//! The early probe: what boot needs from the device tree before the heap exists, read without
//! allocating. The console's PL011 (address translated through every parent `ranges`) so that
//! errors can be printed, and the first RAM ranges so that a heap can be placed.

#![forbid(unsafe_code)]

use fdt::Fdt;

use super::error::{DtError, DtErrorKind};
use super::header::validate;
use super::tree::{self, Status};
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
