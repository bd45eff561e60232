//! What the virtual GIC probes take from the DT: the GIC the guest sees (distributor, GICv2 CPU
//! interface, GICv3 redistributor region and stride), the PL031 RTC with its SPI, and which SPIs
//! some node's `interrupts` names (the probes borrow one nobody uses).

use super::{is_compatible, walk, Chain, DtError, Region, MAX_DEPTH};
use fdt::Fdt;

/// GICv2 distributor compatibles the probe knows.
const V2_COMPATIBLES: [&str; 4] = [
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
];

/// The interrupt controller the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// Distributor and CPU interface (GICC, where the virtual CPU interface is).
    V2 { dist: u64, cpu: u64 },
    /// Distributor, the first redistributor region and the DT's `redistributor-stride`
    /// (`None`: the 128 KiB of RD_base + SGI_base).
    V3 {
        dist: u64,
        redist: Region,
        stride: Option<u64>,
    },
}

impl Gic {
    /// The distributor's base.
    pub fn dist(&self) -> u64 {
        match *self {
            Gic::V2 { dist, .. } | Gic::V3 { dist, .. } => dist,
        }
    }

    /// The distance between GICv3 redistributors (RD_base + SGI_base unless the DT says otherwise).
    pub fn redist_stride(&self) -> u64 {
        match *self {
            Gic::V3 { stride, .. } => stride.unwrap_or(0x2_0000),
            Gic::V2 { .. } => 0,
        }
    }
}

/// The device ranges the virtual GIC probes map Device at stage 1: the distributor (GICv2 4 KiB,
/// GICv3 64 KiB), the
/// GICv2 CPU interface (8 KiB) or the GICv3 redistributor region, and the RTC's page.
pub fn device_ranges(gic: Option<Gic>, rtc: Option<Rtc>) -> [Option<Region>; 3] {
    let frames = gic.map(|g| match g {
        Gic::V2 { dist, cpu } => (Region { base: dist, size: 0x1000 }, Region { base: cpu, size: 0x2000 }),
        Gic::V3 { dist, redist, .. } => (Region { base: dist, size: 0x1_0000 }, redist),
    });
    [
        frames.map(|f| f.0),
        frames.map(|f| f.1),
        rtc.map(|r| Region { base: r.base, size: 0x1000 }),
    ]
}

/// A PL031 real-time clock and the INTID of its interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtc {
    pub base: u64,
    pub intid: u32,
}

/// SPIs (INTIDs 32..1020) some node's `interrupts` names, one bit per INTID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SpiSet(pub [u64; 16]);

impl SpiSet {
    pub fn contains(&self, intid: u32) -> bool {
        intid < 1024 && self.0[(intid / 64) as usize] & (1 << (intid % 64)) != 0
    }

    fn insert(&mut self, intid: u32) {
        if intid < 1024 {
            self.0[(intid / 64) as usize] |= 1 << (intid % 64);
        }
    }
}

/// Entry `i` of the chain's last node's `reg`, translated to the root's address space.
fn reg_entry(c: &Chain<'_, '_>, i: usize) -> Option<Region> {
    if c.len < 2 {
        return None;
    }
    let parent = c.get(c.len - 2);
    let cells = parent.cell_sizes();
    let reg = c.get(c.len - 1).property("reg")?.value;
    let at = i * (cells.address_cells + cells.size_cells);
    let mut addr = super::read_cells(reg, at, cells.address_cells)?;
    let size = super::read_cells(reg, at + cells.address_cells, cells.size_cells)?;
    for j in (1..c.len - 1).rev() {
        addr = super::translate(addr, c.get(j), c.get(j - 1))?;
    }
    Some(Region { base: addr, size })
}

fn new_chain<'b, 'a>() -> Chain<'b, 'a> {
    Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    }
}

/// The first interrupt controller node the probe knows.
pub fn gic(fdt: &Fdt<'_>) -> Result<Option<Gic>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    walk(&mut new_chain(), root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        node.property("interrupt-controller")?;
        if is_compatible(node, "arm,gic-v3") {
            let stride = node.property("redistributor-stride").and_then(|p| match p.value.len() {
                8 => super::read_cells(p.value, 0, 2),
                4 => super::read_cells(p.value, 0, 1),
                _ => None,
            });
            return Some(Gic::V3 {
                dist: reg_entry(c, 0)?.base,
                redist: reg_entry(c, 1)?,
                stride,
            });
        }
        if V2_COMPATIBLES.iter().any(|&k| is_compatible(node, k)) {
            return Some(Gic::V2 {
                dist: reg_entry(c, 0)?.base,
                cpu: reg_entry(c, 1)?.base,
            });
        }
        None
    })
}

/// The first three-cell GIC specifier of `interrupts` as an INTID (SPI 0 is INTID 32, PPI 0 is 16).
fn first_intid(value: &[u8]) -> Option<u32> {
    let kind = super::read_cells(value, 0, 1)?;
    let num = super::read_cells(value, 1, 1)? as u32;
    match kind {
        0 => Some(32 + num),
        1 => Some(16 + num),
        _ => None,
    }
}

/// The first `arm,pl031` node with a `reg` and an SPI.
pub fn rtc(fdt: &Fdt<'_>) -> Result<Option<Rtc>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    walk(&mut new_chain(), root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        if !is_compatible(node, "arm,pl031") {
            return None;
        }
        let intid = first_intid(node.property("interrupts")?.value).filter(|&i| i >= 32)?;
        Some(Rtc {
            base: reg_entry(c, 0)?.base,
            intid,
        })
    })
}

/// Every SPI named by a three-cell `interrupts` entry (GIC specifiers) anywhere in the tree.
pub fn used_spis(fdt: &Fdt<'_>) -> SpiSet {
    let mut set = SpiSet::default();
    for node in fdt.all_nodes() {
        let Some(p) = node.property("interrupts") else {
            continue;
        };
        for entry in p.value.chunks_exact(12) {
            if let (Some(0), Some(n)) = (super::read_cells(entry, 0, 1), super::read_cells(entry, 1, 1)) {
                set.insert(32 + n as u32);
            }
        }
    }
    set
}
