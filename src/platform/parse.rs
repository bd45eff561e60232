//! The full parse: one walk from the root that keeps the `ranges` chain and the inherited
//! `interrupt-parent`, sorting nodes into the parts of [`Platform`].

#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::Fdt;

use super::error::{DtError, DtErrorKind};
use super::gic::{self, Controller};
use super::header::{validate, MAX_DEPTH};
use super::ranges::{range_entries, translate, Level};
use super::tree::{self, bad_prop, Node};
use super::{chosen, cpus, dma, is_memory_node, pci};
use super::{BusWindow, Chosen, Device, Platform, Untranslated};

struct Walk<'x> {
    ctls: &'x BTreeMap<u32, Controller>,
    p: Platform,
}

pub fn platform(data: &[u8]) -> Result<Platform, DtError> {
    let err = |kind| DtError::new(data, kind);
    let (h, blob) = validate(data)?;
    let fdt = Fdt::new(blob).map_err(|_| err(DtErrorKind::TooShort { len: blob.len() }))?;
    let root = fdt
        .find_node("/")
        .ok_or(err(DtErrorKind::MissingNode { path: "/" }))?;
    let ctls = gic::controllers(&fdt);
    let root_level = tree::level_of(root, "/").map_err(err)?;
    let root_chain = &[root_level][..];

    let cpus_node = fdt
        .find_node("/cpus")
        .ok_or(err(DtErrorKind::MissingNode { path: "/cpus" }))?;
    let rm = root.children().find(|n| n.name == "reserved-memory");
    let chosen_node = root.children().find(|n| n.name == "chosen");
    let mut walk = Walk {
        ctls: &ctls,
        p: Platform {
            model: tree::prop_str(root, "model").unwrap_or("").to_string(),
            compatible: tree::strings(tree::prop(root, "compatible").unwrap_or(&[]))
                .map(String::from)
                .collect(),
            dtb_size: blob.len(),
            boot_cpuid: h.boot_cpuid_phys,
            memory: Vec::new(),
            reserved: chosen::reserved(blob, &h, rm.map(|n| (n, root_chain))).map_err(err)?,
            cpus: cpus::cpus(cpus_node).map_err(err)?,
            psci: None,
            console: chosen::console(&fdt, &ctls).map_err(err)?,
            gic: None,
            timer: None,
            devices: Vec::new(),
            bus_windows: Vec::new(),
            msi_frames: Vec::new(),
            chosen: match chosen_node {
                Some(n) => chosen::chosen(n, tree::cells_of(root, "/").map_err(err)?).map_err(err)?,
                None => Chosen::default(),
            },
            untranslated: Vec::new(),
            iommus: Default::default(),
        },
    };
    let root_irq = tree::prop_u32(root, "/", "interrupt-parent").map_err(err)?;
    let mut found_memory = false;
    for n in root.children() {
        let path = format!("/{}", n.name);
        match n.name {
            "cpus" | "chosen" | "aliases" | "reserved-memory" => continue,
            _ if is_memory_node(n) => {
                found_memory = true;
                walk.memory(n, &path, root_level).map_err(err)?;
            }
            _ => walk
                .node(n, &path, &mut alloc::vec![root_level], root_irq)
                .map_err(err)?,
        }
    }
    if !found_memory {
        return Err(err(DtErrorKind::MissingNode { path: "/memory" }));
    }
    Ok(walk.p)
}

impl Walk<'_> {
    fn memory(&mut self, n: Node<'_, '_>, path: &str, root: Level<'_>) -> Result<(), DtErrorKind> {
        if !tree::status(n).is_enabled() {
            return Ok(());
        }
        for r in tree::translated_regs(n, &[root], path) {
            let r = r?;
            if r.size != 0 {
                self.p.memory.push(r);
            }
        }
        Ok(())
    }

    /// Visits a device-side node whose ancestors are `chain` (root first).
    fn node<'a>(
        &mut self,
        n: Node<'_, 'a>,
        path: &str,
        chain: &mut Vec<Level<'a>>,
        inherited_irq: Option<u32>,
    ) -> Result<(), DtErrorKind> {
        let irq_parent = tree::prop_u32(n, path, "interrupt-parent")?.or(inherited_irq);
        let mut irqs = gic::irqs(n, path, irq_parent, self.ctls)?;
        if pci::is_host_bridge(n) {
            irqs.extend(pci::intx(n, path, self.ctls)?.into_iter().filter(|i| !irqs.contains(i)).collect::<Vec<_>>());
        }
        if cpus::is_psci(n) && self.p.psci.is_none() {
            self.p.psci = Some(cpus::psci(n, path)?);
        }
        if tree::is_compatible(n, "arm,armv8-timer") && self.p.timer.is_none() {
            self.p.timer = Some(gic::timer(n, path, &irqs)?);
        }
        if tree::prop(n, "reg").is_some() {
            let regs: Result<Vec<_>, _> = tree::translated_regs(n, chain, path).collect();
            match regs {
                Ok(regs) => {
                    super::iommu::visit(n, path, &regs, &irqs, &mut self.p.iommus)?;
                    if let (Some(v), None) = (gic::gic_version(n), &self.p.gic) {
                        self.p.gic = Some(gic::gic(n, path, &regs, &irqs, v)?);
                    }
                    if let Some(f) = pci::msi_frame(n, path, &regs)? {
                        self.p.msi_frames.push(f);
                    }
                    self.p.devices.push(Device {
                        path: path.to_string(),
                        compatible: tree::strings(tree::prop(n, "compatible").unwrap_or(&[]))
                            .map(String::from)
                            .collect(),
                        status: tree::status(n),
                        regs,
                        irqs,
                        xen_passthrough: tree::prop(n, "xen,passthrough").is_some(),
                        dma: dma::facts(n),
                    });
                }
                Err(e) => self.p.untranslated.push(Untranslated {
                    path: path.to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        // Children are memory-mapped only through `ranges`. A PCI host bridge's `ranges` are its
        // MMIO and I/O windows (where BARs live) and are kept as bus windows; its children's
        // `reg` is config space, so they are not visited.
        let level = tree::level_of(n, path)?;
        if level.ranges.is_none() {
            return Ok(());
        }
        let pci = tree::prop_str(n, "device_type") == Some("pci");
        if pci || tree::is_compatible(n, "simple-bus") {
            self.windows(path, chain, level)?;
        }
        if pci {
            return Ok(());
        }
        if chain.len() + 1 >= MAX_DEPTH {
            return Err(DtErrorKind::TooDeep { max: MAX_DEPTH });
        }
        chain.push(level);
        for c in n.children() {
            let cpath = format!("{path}/{}", c.name);
            self.node(c, &cpath, chain, irq_parent)?;
        }
        chain.pop();
        Ok(())
    }

    /// A `simple-bus`'s or PCI host bridge's `ranges` windows, translated to CPU addresses.
    fn windows(
        &mut self,
        path: &str,
        chain: &[Level<'_>],
        bus: Level<'_>,
    ) -> Result<(), DtErrorKind> {
        let parent = chain.last().copied().unwrap_or(bus);
        let value = bus.ranges.unwrap_or(&[]);
        // A PCI child address is 3 cells whose first (phys.hi: space code, prefetchable, …) is not
        // part of the address: read the window from the last two.
        let pci_hi = usize::from(bus.cells.addr == 3) * 4;
        let mut child_cells = bus.cells;
        child_cells.addr -= (pci_hi / 4) as u32;
        let stride = 4 * (bus.cells.addr + parent.cells.addr + bus.cells.size) as usize;
        let trimmed: Vec<u8> = if pci_hi == 0 || stride == 0 {
            value.to_vec()
        } else {
            value.chunks(stride).flat_map(|e| e.get(pci_hi..).unwrap_or(&[]).iter().copied()).collect()
        };
        // phys.hi of each PCI entry, for its prefetchable bit.
        let phys_hi = |i: usize| -> u32 {
            value
                .get(i * stride..i * stride + 4)
                .filter(|_| pci_hi != 0)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        for (i, e) in range_entries(&trimmed, child_cells, parent.cells).enumerate() {
            let e = e.map_err(|()| bad_prop(path, "ranges", "not a whole number of entries"))?;
            match translate(chain, e.parent) {
                Ok(cpu) => self.p.bus_windows.push(BusWindow {
                    bus: path.to_string(),
                    child_base: e.child,
                    cpu: crate::mm::addr::PaRange::new(cpu, e.size),
                    prefetchable: phys_hi(i) & (1 << 30) != 0,
                }),
                Err(t) => self.p.untranslated.push(Untranslated {
                    path: path.to_string(),
                    reason: format!("ranges window {:#x}: {}", e.parent, t.what()),
                }),
            }
        }
        Ok(())
    }
}
