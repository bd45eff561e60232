//! Interrupts: the GIC node (v2 or v3 frames, maintenance interrupt), the architected timer's
//! PPIs, and device `interrupts` / `interrupts-extended` turned into GIC INTIDs.

#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use fdt::Fdt;

use super::error::DtErrorKind;
use super::tree::{self, bad_prop, Node};
use super::{Gic, GicKind, Irq, Timer};
use crate::mm::addr::PaRange;

/// `compatible` strings of the GICs el2visor drives, with their version.
pub const GIC_COMPATIBLES: [(&str, u8); 4] = [
    ("arm,gic-v3", 3),
    ("arm,cortex-a15-gic", 2),
    ("arm,gic-400", 2),
    ("arm,cortex-a7-gic", 2),
];

/// The GIC version of a node, if it is one el2visor knows.
pub fn gic_version(n: Node<'_, '_>) -> Option<u8> {
    GIC_COMPATIBLES
        .iter()
        .find(|(c, _)| tree::is_compatible(n, c))
        .map(|&(_, v)| v)
}

/// INTID of a GIC interrupt specifier's first two cells: SPI n is 32 + n, PPI n is 16 + n, and
/// (GICv3) extended SPI n is 4096 + n, extended PPI n is 1056 + n. `None` if out of range.
pub fn gic_intid(kind: u32, num: u32) -> Option<u32> {
    match kind {
        0 if num < 988 => Some(32 + num),
        1 if num < 16 => Some(16 + num),
        2 if num < 1024 => Some(4096 + num),
        3 if num < 64 => Some(1056 + num),
        _ => None,
    }
}

/// What the platform knows of an interrupt controller, by phandle.
#[derive(Clone, Copy, Debug)]
pub struct Controller {
    pub cells: Option<u32>,
    /// Its `#address-cells` (0 if absent): the parent unit address cells of an `interrupt-map`.
    pub addr_cells: u32,
    pub is_gic: bool,
}

/// Every node with a phandle that could be an interrupt parent.
pub fn controllers(fdt: &Fdt<'_>) -> BTreeMap<u32, Controller> {
    let mut map = BTreeMap::new();
    for n in fdt.all_nodes() {
        let ph = tree::prop(n, "phandle").or_else(|| tree::prop(n, "linux,phandle"));
        let Some(ph) = ph.filter(|v| v.len() == 4) else {
            continue;
        };
        let ph = u32::from_be_bytes([ph[0], ph[1], ph[2], ph[3]]);
        let cells = tree::prop(n, "#interrupt-cells")
            .filter(|v| v.len() == 4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        let addr_cells = tree::prop(n, "#address-cells")
            .filter(|v| v.len() == 4)
            .map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        map.insert(
            ph,
            Controller {
                cells,
                addr_cells,
                is_gic: gic_version(n).is_some(),
            },
        );
    }
    map
}

fn words(v: &[u8]) -> impl Iterator<Item = u32> + '_ {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

pub(super) fn one_irq(
    ctl: Controller,
    phandle: u32,
    spec: &[u32],
    path: &str,
    prop: &'static str,
) -> Result<Irq, DtErrorKind> {
    if !ctl.is_gic {
        return Ok(Irq::Other {
            controller: phandle,
            specifier: spec.to_vec(),
        });
    }
    if spec.len() < 3 {
        return Err(bad_prop(
            path,
            prop,
            "a GIC interrupt needs 3 cells (type, number, flags)",
        ));
    }
    let intid = gic_intid(spec[0], spec[1]).ok_or(bad_prop(
        path,
        prop,
        "GIC interrupt type or number out of range",
    ))?;
    Ok(Irq::Gic {
        intid,
        flags: spec[2] & 0xf,
    })
}

/// A node's interrupts. `parent` is its effective `interrupt-parent` (own or inherited).
pub fn irqs(
    n: Node<'_, '_>,
    path: &str,
    parent: Option<u32>,
    ctls: &BTreeMap<u32, Controller>,
) -> Result<Vec<Irq>, DtErrorKind> {
    let mut out = Vec::new();
    if let Some(v) = tree::prop(n, "interrupts-extended") {
        const P: &str = "interrupts-extended";
        let w: Vec<u32> = words(v).collect();
        let mut i = 0;
        while i < w.len() {
            let ph = w[i];
            let ctl = *ctls
                .get(&ph)
                .ok_or(bad_prop(path, P, "names an unknown phandle"))?;
            let cells = ctl
                .cells
                .ok_or(bad_prop(path, P, "controller has no #interrupt-cells"))?
                as usize;
            let spec =
                w.get(i + 1..i + 1 + cells)
                    .ok_or(bad_prop(path, P, "truncated specifier"))?;
            out.push(one_irq(ctl, ph, spec, path, P)?);
            i += 1 + cells;
        }
        return Ok(out);
    }
    let Some(v) = tree::prop(n, "interrupts") else {
        return Ok(out);
    };
    const P: &str = "interrupts";
    let ph = parent.ok_or(bad_prop(
        path,
        P,
        "no interrupt-parent on the node or its ancestors",
    ))?;
    let ctl = *ctls.get(&ph).ok_or(bad_prop(
        path,
        P,
        "interrupt-parent names an unknown phandle",
    ))?;
    let cells = ctl.cells.ok_or(bad_prop(
        path,
        P,
        "interrupt-parent has no #interrupt-cells",
    ))? as usize;
    if cells == 0 || v.len() % (4 * cells) != 0 {
        return Err(bad_prop(path, P, "not a whole number of specifiers"));
    }
    let w: Vec<u32> = words(v).collect();
    for spec in w.chunks_exact(cells) {
        out.push(one_irq(ctl, ph, spec, path, P)?);
    }
    Ok(out)
}

/// The GIC description from its node, its translated `reg` and its interrupts.
pub fn gic(
    n: Node<'_, '_>,
    path: &str,
    regs: &[PaRange],
    irqs: &[Irq],
    version: u8,
) -> Result<Gic, DtErrorKind> {
    let need = |i: usize, what| regs.get(i).copied().ok_or(bad_prop(path, "reg", what));
    let kind = if version == 2 {
        GicKind::V2 {
            dist: need(
                0,
                "a GICv2 needs at least the distributor and CPU interface frames",
            )?,
            cpu: need(
                1,
                "a GICv2 needs at least the distributor and CPU interface frames",
            )?,
            hyp: regs.get(2).copied(),
            vcpu: regs.get(3).copied(),
        }
    } else {
        let count = tree::prop_u32(n, path, "#redistributor-regions")?.unwrap_or(1) as usize;
        if count == 0 || regs.len() < 1 + count {
            return Err(bad_prop(
                path,
                "reg",
                "fewer entries than 1 + #redistributor-regions",
            ));
        }
        let stride = tree::prop_u64(n, path, "redistributor-stride")?;
        GicKind::V3 {
            dist: regs[0],
            redists: regs[1..1 + count].to_vec(),
            redist_stride: stride,
            cpu: regs.get(1 + count).copied(),
            hyp: regs.get(2 + count).copied(),
            vcpu: regs.get(3 + count).copied(),
        }
    };
    let maintenance_intid = irqs.iter().find_map(|i| match i {
        Irq::Gic { intid, .. } => Some(*intid),
        Irq::Other { .. } => None,
    });
    Ok(Gic {
        path: path.into(),
        phandle: tree::prop_u32(n, path, "phandle")?,
        maintenance_intid,
        kind,
    })
}

/// The architected timer: interrupts in the order secure physical, non-secure physical, virtual,
/// hypervisor physical, hypervisor virtual (the last two optional).
pub fn timer(n: Node<'_, '_>, path: &str, irqs: &[Irq]) -> Result<Timer, DtErrorKind> {
    let mut ids = [None; 5];
    for (slot, irq) in ids.iter_mut().zip(irqs) {
        match irq {
            Irq::Gic { intid, .. } => *slot = Some(*intid),
            Irq::Other { .. } => {
                return Err(bad_prop(
                    path,
                    "interrupts",
                    "timer interrupts must be on the GIC",
                ))
            }
        }
    }
    let need = |i: usize| {
        ids[i].ok_or(bad_prop(
            path,
            "interrupts",
            "fewer than 3 timer interrupts",
        ))
    };
    Ok(Timer {
        sec_phys: need(0)?,
        phys: need(1)?,
        virt: need(2)?,
        hyp_phys: ids[3],
        hyp_virt: ids[4],
        frequency: tree::prop_u32(n, path, "clock-frequency")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intid_conversion() {
        assert_eq!(gic_intid(1, 9), Some(25), "maintenance PPI 9");
        assert_eq!(gic_intid(1, 11), Some(27), "virtual timer");
        assert_eq!(gic_intid(0, 1), Some(33), "virt PL011 SPI 1");
        assert_eq!(gic_intid(0, 121), Some(153), "Pi PL011 SPI 121");
        assert_eq!(gic_intid(1, 16), None);
        assert_eq!(gic_intid(0, 988), None);
        assert_eq!(gic_intid(2, 0), Some(4096));
        assert_eq!(gic_intid(3, 0), Some(1056));
        assert_eq!(gic_intid(4, 0), None);
    }
}
