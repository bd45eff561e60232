//! `/chosen` (command line, initrd, Xen multiboot modules), `/reserved-memory`, `/memreserve/`,
//! and the console.

#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::Fdt;

use super::error::DtErrorKind;
use super::gic::{self, Controller};
use super::header::{self, Header};
use super::ranges::Level;
use super::tree::{self, bad_prop, ConsoleVia, Node, Status};
use super::{Chosen, Console, ConsoleChoice, Irq, Reserved, ReservedSource};
use crate::mm::addr::PaRange;

fn owned_strings(v: Option<&[u8]>) -> Vec<String> {
    tree::strings(v.unwrap_or(&[])).map(String::from).collect()
}

/// `/chosen`. Module `reg` uses `/chosen`'s cells untranslated: `/chosen` is not a bus, and its
/// modules are where the loader put them (as Xen reads them). Where `/chosen` does not give
/// `#address-cells`/`#size-cells`, they are inherited from the root (`root_cells`), as Xen does:
/// QEMU's guest-loader writes module `reg` in the root's cells without setting them on `/chosen`.
pub fn chosen(n: Node<'_, '_>, root_cells: super::ranges::Cells) -> Result<Chosen, DtErrorKind> {
    let path = "/chosen";
    let start = tree::prop_u64(n, path, "linux,initrd-start")?;
    let end = tree::prop_u64(n, path, "linux,initrd-end")?;
    let initrd = match (start, end) {
        (Some(s), Some(e)) if e >= s => Some(PaRange::new(s, e - s)),
        (Some(_), Some(_)) => {
            return Err(bad_prop(
                path,
                "linux,initrd-end",
                "before linux,initrd-start",
            ))
        }
        (None, None) => None,
        _ => {
            return Err(bad_prop(
                path,
                "linux,initrd-start",
                "initrd start and end must come together",
            ))
        }
    };
    let own = tree::cells_of(n, path)?;
    let cells = super::ranges::Cells {
        addr: if tree::prop(n, "#address-cells").is_some() { own.addr } else { root_cells.addr },
        size: if tree::prop(n, "#size-cells").is_some() { own.size } else { root_cells.size },
    };
    let chain = [Level {
        cells,
        ranges: None,
    }];
    let mut modules = Vec::new();
    let mut domains = Vec::new();
    for m in n.children() {
        let compatible = owned_strings(tree::prop(m, "compatible"));
        if compatible.iter().any(|c| c == "xen,domain") {
            domains.push(super::domains::domain(m)?);
            continue;
        }
        if let Some(module) = super::modules::module(m, "/chosen", &chain)? {
            modules.push(module);
        }
    }
    Ok(Chosen {
        // Xen's own command line property stands in when `bootargs` is absent, so that the DT
        // that boots Xen dom0less boots el2visor the same way.
        bootargs: tree::prop_str(n, "bootargs").or_else(|| tree::prop_str(n, "xen,xen-bootargs")).map(String::from),
        stdout_path: tree::prop_str(n, "stdout-path").map(String::from),
        initrd,
        modules,
        domains,
    })
}


/// `/memreserve/` entries and the enabled `/reserved-memory` children that have a `reg`
/// (children with only `size` are allocated later by an OS and reserve nothing now).
pub fn reserved(
    blob: &[u8],
    h: &Header,
    node: Option<(Node<'_, '_>, &[Level<'_>])>,
) -> Result<Vec<Reserved>, DtErrorKind> {
    let mut out: Vec<Reserved> = header::memreserve(blob, h)
        .map(|range| Reserved {
            range,
            source: ReservedSource::MemReserve,
        })
        .collect();
    let Some((rm, root_chain)) = node else {
        return Ok(out);
    };
    let mut chain: Vec<Level<'_>> = root_chain.to_vec();
    chain.push(tree::level_of(rm, "/reserved-memory")?);
    for c in rm.children() {
        if tree::status(c) != Status::Okay {
            continue;
        }
        let path = format!("/reserved-memory/{}", c.name);
        let no_map = tree::prop(c, "no-map").is_some();
        for r in tree::translated_regs(c, &chain, &path) {
            let range = r?;
            if range.size != 0 {
                out.push(Reserved {
                    range,
                    source: ReservedSource::Node {
                        path: path.clone(),
                        no_map,
                    },
                });
            }
        }
    }
    Ok(out)
}

/// The console PL011, with its INTID when its interrupt is on the GIC.
pub fn console(
    fdt: &Fdt<'_>,
    ctls: &BTreeMap<u32, Controller>,
) -> Result<Option<Console>, DtErrorKind> {
    let Some(c) = tree::find_console(fdt)? else {
        return Ok(None);
    };
    let reg =
        c.at.regs(c.path)
            .next()
            .ok_or(bad_prop(c.path, "reg", "missing on the console"))??;
    let parent = inherited_irq_parent(fdt, c.path);
    let intid = gic::irqs(c.at.node, c.path, parent, ctls)?
        .into_iter()
        .find_map(|i| match i {
            Irq::Gic { intid, .. } => Some(intid),
            Irq::Other { .. } => None,
        });
    let choice = match c.via {
        ConsoleVia::StdoutPath => ConsoleChoice::StdoutPath,
        ConsoleVia::Alias { alias, stdout } => ConsoleChoice::Alias {
            alias: alias.to_string(),
            stdout: stdout.map(String::from),
        },
    };
    Ok(Some(Console {
        path: c.path.to_string(),
        base: reg.start,
        size: reg.size,
        intid,
        options: c.options.map(String::from),
        choice,
    }))
}

/// The `interrupt-parent` in effect at `path`: the nearest one on the node or its ancestors.
fn inherited_irq_parent(fdt: &Fdt<'_>, path: &str) -> Option<u32> {
    let mut node = fdt.find_node("/")?;
    let mut found = tree::prop_u32(node, "/", "interrupt-parent").ok().flatten();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        node = tree::child(node, comp)?;
        found = tree::prop_u32(node, path, "interrupt-parent")
            .ok()
            .flatten()
            .or(found);
    }
    found
}
