//! What the guest is given, read independently of el2visor from the host device tree QEMU
//! dumps for the same machine: device `reg` entries and bus windows in CPU addresses, and which
//! of them the guest sees (el2visor's guest DT keeps every enabled host node but QEMU's fw_cfg,
//! which the DMA policy gives no VM; it shows the GIC as what the vGIC emulates, passes a GICv2m
//! frame through to the VM that owns the PCI bridge, which on QEMU virt is the only VM, and gives
//! that VM a virtual ITS: a GICv3 ITS's control frame is emulated, its translation frame passed
//! through).

use fdt::node::FdtNode;
use fdt::Fdt;

/// A CPU-address range, `[start, end)`.
pub type Span = (u64, u64);

/// The host's regions, sorted into what el2visor must do with them at Stage 2.
#[derive(Debug, Default)]
pub struct Regions {
    /// Enabled device `reg`s and `simple-bus`/PCI `ranges` windows the guest sees: premapped,
    /// identity, Device.
    pub passthrough: Vec<(String, Span)>,
    /// GICv2 with virtualization: the CPU interface the guest uses (GICC) and the virtual CPU
    /// interface (GICV) el2visor maps there.
    pub gicv2: Option<(Span, Span)>,
    /// What the guest must never reach directly: the GIC's own frames, a GICv3 ITS's control
    /// frame, and fw_cfg.
    pub hidden: Vec<(String, Span)>,
}

fn cells(bytes: &[u8], at: usize, n: usize) -> Option<u64> {
    if n > 2 {
        return None;
    }
    let mut v = 0u64;
    for i in 0..n {
        let o = (at + i) * 4;
        v = (v << 32) | u64::from(u32::from_be_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    }
    Some(v)
}

/// `addr` in `bus`'s children space, in `bus`'s parent's space; `None` without a window.
fn up(addr: u64, bus: &FdtNode<'_, '_>, parent: &FdtNode<'_, '_>) -> Option<u64> {
    let ranges = bus.property("ranges")?.value;
    if ranges.is_empty() {
        return Some(addr);
    }
    let (ca, cs, pa) = (bus.cell_sizes().address_cells, bus.cell_sizes().size_cells, parent.cell_sizes().address_cells);
    let n = ca + pa + cs;
    for i in 0..ranges.len() / (4 * n) {
        let (c, p, s) = (cells(ranges, i * n, ca)?, cells(ranges, i * n + ca, pa)?, cells(ranges, i * n + ca + pa, cs)?);
        if addr >= c && addr - c < s {
            return Some(p + (addr - c));
        }
    }
    None
}

/// `addr` in the children space of `chain[bus]`, in CPU addresses.
fn to_cpu(chain: &[FdtNode<'_, '_>], bus: usize, addr: u64) -> Option<u64> {
    let mut a = addr;
    for i in (1..=bus).rev() {
        a = up(a, &chain[i], &chain[i - 1])?;
    }
    Some(a)
}

/// Every `reg` entry of `chain`'s last node, in CPU addresses (untranslatable ones left out).
fn regs(chain: &[FdtNode<'_, '_>]) -> Vec<Span> {
    let last = chain.len() - 1;
    let (Some(reg), true) = (chain[last].property("reg"), last > 0) else { return Vec::new() };
    let c = chain[last - 1].cell_sizes();
    let n = c.address_cells + c.size_cells;
    (0..reg.value.len() / (4 * n.max(1)))
        .filter_map(|i| {
            let a = cells(reg.value, i * n, c.address_cells)?;
            let s = cells(reg.value, i * n + c.address_cells, c.size_cells)?;
            let b = to_cpu(chain, last - 1, a)?;
            (s > 0).then_some((b, b + s))
        })
        .collect()
}

/// The parent-side `ranges` windows of `chain`'s last node, in CPU addresses.
fn windows(chain: &[FdtNode<'_, '_>]) -> Vec<Span> {
    let last = chain.len() - 1;
    let node = &chain[last];
    let Some(r) = node.property("ranges").map(|p| p.value).filter(|v| !v.is_empty()) else { return Vec::new() };
    let (ca, cs, pa) = (node.cell_sizes().address_cells, node.cell_sizes().size_cells, chain[last - 1].cell_sizes().address_cells);
    let n = ca + pa + cs;
    (0..r.len() / (4 * n))
        .filter_map(|i| {
            let p = cells(r, i * n + ca, pa)?;
            let s = cells(r, i * n + ca + pa, cs)?;
            let b = to_cpu(chain, last - 1, p)?;
            Some((b, b + s))
        })
        .collect()
}

fn compatible(node: &FdtNode<'_, '_>, any: &[&str]) -> bool {
    node.compatible().is_some_and(|c| c.all().any(|s| any.contains(&s)))
}

fn enabled(node: &FdtNode<'_, '_>) -> bool {
    node.property("status").and_then(|p| p.as_str()).is_none_or(|s| s == "okay" || s == "ok")
}

const GIC: [&str; 5] = ["arm,gic-v3", "arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic", "arm,cortex-a9-gic"];

fn visit<'b, 'a>(chain: &mut Vec<FdtNode<'b, 'a>>, path: &str, out: &mut Regions) {
    let node = chain[chain.len() - 1];
    let is_memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
    let skip_subtree = !enabled(&node) || is_memory || ["/chosen", "/cpus", "/reserved-memory"].contains(&path);
    if chain.len() > 1 && !skip_subtree {
        let gic_parent = chain.len() > 2 && compatible(&chain[chain.len() - 2], &GIC);
        if compatible(&node, &GIC) {
            // v2: GICD, GICC, GICH, GICV; v3: GICD, redistributors, then GICC, GICH, GICV.
            let r = regs(chain);
            let v2 = !compatible(&node, &["arm,gic-v3"]);
            if v2 && r.len() >= 4 {
                out.gicv2 = Some((r[1], r[3]));
            }
            for (i, span) in r.iter().enumerate() {
                if !(v2 && (i == 1 || i == 3)) {
                    out.hidden.push((format!("{path} reg[{i}]"), *span));
                }
            }
        } else if gic_parent && compatible(&node, &["arm,gic-v3-its"]) {
            // The VM that owns the PCI bridge (on QEMU virt the only VM) gets a virtual ITS: the
            // control frame (first 64 KiB) is emulated, the translation frame passed through.
            for (s, e) in regs(chain) {
                out.hidden.push((format!("{path} control frame"), (s, s + 0x1_0000)));
                out.passthrough.push((format!("{path} translation frame"), (s + 0x1_0000, e)));
            }
        } else if (gic_parent && !compatible(&node, &["arm,gic-v2m-frame"])) || compatible(&node, &["qemu,fw-cfg-mmio"]) {
            out.hidden.extend(regs(chain).into_iter().map(|s| (path.to_string(), s)));
        } else {
            out.passthrough.extend(regs(chain).into_iter().map(|s| (path.to_string(), s)));
            let pci = node.property("device_type").and_then(|p| p.as_str()) == Some("pci");
            if pci || compatible(&node, &["simple-bus"]) {
                out.passthrough.extend(windows(chain).into_iter().map(|s| (format!("{path} ranges"), s)));
            }
        }
    }
    // Only buses with `ranges` have memory-mapped children (PCI children's `reg` is config space).
    let mapped_children = chain.len() == 1 || (node.property("ranges").is_some() && node.property("device_type").and_then(|p| p.as_str()) != Some("pci"));
    if skip_subtree && chain.len() > 1 || !mapped_children {
        return;
    }
    for child in node.children() {
        chain.push(child);
        let p = if path == "/" { format!("/{}", child.name) } else { format!("{path}/{}", child.name) };
        visit(chain, &p, out);
        chain.pop();
    }
}

/// Sort the host DTB's regions (see [`Regions`]).
pub fn regions(dtb: &[u8]) -> Regions {
    let fdt = Fdt::new(dtb).expect("QEMU's dumped DTB parses");
    let root = fdt.find_node("/").expect("a root node");
    let mut out = Regions::default();
    visit(&mut vec![root], "/", &mut out);
    out
}
