//! IOMMUs in the host DT: every SMMUv3 (`arm,smmu-v3`) with its registers and event-queue and
//! global-error interrupts (`interrupt-names` "eventq", "gerror"), and which stream IDs each
//! device masters DMA with: a PCI host bridge's `iommu-map = <rid-base &smmu sid-base length>…`
//! (the stream ID of requester ID `rid-base + i` is `sid-base + i`; `iommu-map-mask` is kept) and a
//! platform device's `iommus = <&smmu sid>…` (the SMMUv3 binding has `#iommu-cells = <1>`).

#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::error::DtErrorKind;
use super::tree::{self, bad_prop, Node};
use super::Irq;
use crate::mm::addr::PaRange;

/// An SMMUv3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smmu {
    pub path: String,
    pub phandle: Option<u32>,
    /// Its register frame (page 0 and page 1, 128 KiB).
    pub regs: PaRange,
    pub enabled: bool,
    /// GIC INTIDs of the event-queue and global-error interrupts, and whether each is
    /// edge-triggered (specifier flags 1 or 2).
    pub eventq_irq: Option<(u32, bool)>,
    pub gerror_irq: Option<(u32, bool)>,
}

/// A run of stream IDs: `count` IDs from `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SidRange {
    pub base: u32,
    pub count: u32,
}

impl SidRange {
    /// The last stream ID of the run.
    pub fn last(&self) -> u32 {
        self.base.saturating_add(self.count.max(1) - 1)
    }

    pub fn contains(&self, sid: u32) -> bool {
        sid >= self.base && sid - self.base < self.count
    }
}

/// A DMA master behind an IOMMU: the device node's path, the IOMMU's phandle, its stream IDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOwner {
    pub path: String,
    pub iommu: u32,
    pub sids: Vec<SidRange>,
    /// For a PCI host bridge (`iommu-map`): the first requester ID of each entry of `sids`.
    pub rid_bases: Vec<u32>,
    /// From `iommu-map`: requester IDs are masked with `iommu-map-mask` before the lookup.
    pub rid_mask: Option<u32>,
}

impl StreamOwner {
    /// The stream ID of PCI requester ID `rid` (bus << 8 | device << 3 | function), per
    /// `iommu-map` and `iommu-map-mask`; `None` when no entry maps it.
    pub fn sid_of(&self, rid: u32) -> Option<u32> {
        let rid = rid & self.rid_mask.unwrap_or(u32::MAX);
        self.rid_bases.iter().zip(&self.sids).find_map(|(&base, r)| {
            let i = rid.checked_sub(base).filter(|&i| i < r.count)?;
            Some(r.base + i)
        })
    }

    /// The requester ID that stream `sid` stands for (the first one, with a mask), if this is a
    /// PCI bridge whose `iommu-map` covers it.
    pub fn rid_of(&self, sid: u32) -> Option<u32> {
        self.rid_bases.iter().zip(&self.sids).find_map(|(&base, r)| r.contains(sid).then(|| base + (sid - r.base)))
    }
}

/// `bb:dd.f` of a PCI requester ID.
pub fn bdf(rid: u32) -> alloc::string::String {
    alloc::format!("{:02x}:{:02x}.{}", (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7)
}

/// Everything the DT says about IOMMUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iommus {
    pub smmus: Vec<Smmu>,
    pub owners: Vec<StreamOwner>,
}

impl Iommus {
    /// The enabled SMMUv3 with this phandle.
    pub fn smmu(&self, phandle: u32) -> Option<&Smmu> {
        self.smmus.iter().find(|s| s.enabled && s.phandle == Some(phandle))
    }

    /// The stream owners behind SMMU `phandle`.
    pub fn owners_of(&self, phandle: u32) -> impl Iterator<Item = &StreamOwner> {
        self.owners.iter().filter(move |o| o.iommu == phandle)
    }

    /// The highest stream ID any device uses behind SMMU `phandle`.
    pub fn highest_sid(&self, phandle: u32) -> Option<u32> {
        self.owners_of(phandle).flat_map(|o| o.sids.iter().map(|r| r.last())).max()
    }
}

fn words(v: &[u8]) -> impl Iterator<Item = u32> + '_ {
    v.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// Collect what node `n` says: an SMMUv3 (with its translated `regs` and decoded `irqs`), an
/// `iommu-map`, an `iommus`.
pub(super) fn visit(
    n: Node<'_, '_>,
    path: &str,
    regs: &[PaRange],
    irqs: &[Irq],
    out: &mut Iommus,
) -> Result<(), DtErrorKind> {
    if tree::is_compatible(n, "arm,smmu-v3") {
        let reg = *regs.first().ok_or(bad_prop(path, "reg", "an SMMUv3 needs its register frame"))?;
        let names: Vec<&str> = tree::strings(tree::prop(n, "interrupt-names").unwrap_or(&[])).collect();
        let irq = |name: &str| {
            let i = names.iter().position(|x| *x == name)?;
            match irqs.get(i)? {
                Irq::Gic { intid, flags } => Some((*intid, flags & 3 != 0)),
                Irq::Other { .. } => None,
            }
        };
        out.smmus.push(Smmu {
            path: path.to_string(),
            phandle: tree::prop_u32(n, path, "phandle")?.or(tree::prop_u32(n, path, "linux,phandle")?),
            regs: reg,
            enabled: tree::status(n).is_enabled(),
            eventq_irq: irq("eventq"),
            gerror_irq: irq("gerror"),
        });
    }
    if let Some(v) = tree::prop(n, "iommu-map") {
        let w: Vec<u32> = words(v).collect();
        if v.len() % 16 != 0 {
            return Err(bad_prop(path, "iommu-map", "expected <rid-base iommu sid-base length> entries of one cell each"));
        }
        let rid_mask = tree::prop_u32(n, path, "iommu-map-mask")?;
        for e in w.chunks_exact(4) {
            let (rid, iommu, base, count) = (e[0], e[1], e[2], e[3]);
            if count == 0 || base.checked_add(count - 1).is_none() || rid.checked_add(count - 1).is_none() {
                return Err(bad_prop(path, "iommu-map", "an entry's IDs overflow 32 bits or are empty"));
            }
            push(out, path, iommu, SidRange { base, count }, Some(rid), rid_mask);
        }
    }
    if let Some(v) = tree::prop(n, "iommus") {
        if v.len() % 8 != 0 {
            return Err(bad_prop(path, "iommus", "expected <iommu sid> pairs (#iommu-cells = <1>)"));
        }
        let w: Vec<u32> = words(v).collect();
        for e in w.chunks_exact(2) {
            push(out, path, e[0], SidRange { base: e[1], count: 1 }, None, None);
        }
    }
    Ok(())
}

fn push(out: &mut Iommus, path: &str, iommu: u32, r: SidRange, rid: Option<u32>, rid_mask: Option<u32>) {
    let o = match out.owners.iter_mut().position(|o| o.path == path && o.iommu == iommu) {
        Some(i) => &mut out.owners[i],
        None => {
            out.owners.push(StreamOwner { path: path.to_string(), iommu, sids: Vec::new(), rid_bases: Vec::new(), rid_mask });
            out.owners.last_mut().expect("just pushed")
        }
    };
    o.sids.push(r);
    o.rid_bases.extend(rid);
}
