//! Devices assigned to a dom0less domain: the `/passthrough` node of its partial device tree (the
//! `multiboot,device-tree` module), read as Xen reads it. Each child describes one device as the
//! guest will see it (its nodes are copied into the guest DT, `xen,*` properties dropped) plus:
//! - `xen,reg = <phys size guest>…` (in `/passthrough`'s cells): host regions mapped at guest
//!   addresses;
//! - `xen,path = "<host path>"`: the host node, which must carry `xen,passthrough`;
//! - `interrupts`: GIC specifiers (`<0 n flags>` = SPI n, INTID n + 32) routed to the domain;
//! - for a PCI host bridge, `interrupt-map`: the SPIs of its entries whose parent is the
//!   domain's GIC (phandle [`GUEST_PHANDLE_GIC`], no unit address cells) are routed too (INTx);
//! - `xen,force-assign-without-iommu`: the domain is trusted with the device even though no
//!   IOMMU confines its DMA (`super::dma_policy` still wants the domain identity mapped).
//!
//! Pure; the checks against the host DT are done with the host's node list.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::Fdt;

use super::guest_dt::read_cells;
use crate::platform::tree::{MAX_ADDRESS_CELLS, MAX_SIZE_CELLS};

/// The phandle Xen gives the guest's GIC; partial device trees name it as their
/// `interrupt-parent`.
pub const GUEST_PHANDLE_GIC: u32 = 65000;

/// One region of a passthrough device: `size` bytes of host `pa` at guest `ipa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtRegion {
    pub pa: u64,
    pub size: u64,
    pub ipa: u64,
}

/// One device of a domain's `/passthrough` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtDevice {
    /// The node's name under `/passthrough`.
    pub name: String,
    /// `xen,path`: the host node it is.
    pub host_path: String,
    pub regions: Vec<PtRegion>,
    /// The SPIs (INTIDs) routed to the domain.
    pub spis: Vec<u32>,
    /// `xen,force-assign-without-iommu`.
    pub force_assign: bool,
}

/// What the host DT says about a node, for the checks.
pub trait HostNodes {
    /// Whether `path` exists in the host DT and carries `xen,passthrough`: `None` when it does
    /// not exist, `Some(marked)` when it does.
    fn passthrough_mark(&self, path: &str) -> Option<bool>;
    /// The host addresses the node at `path` decodes, as `(start, size)`: its `reg` ranges and,
    /// for a bus such as a PCI host bridge, its `ranges` windows.
    fn mmio(&self, path: &str) -> Vec<(u64, u64)>;
}

/// Whether `[pa, pa + size)` lies inside `ranges` (`(start, size)`, each widened to whole 4 KiB
/// pages, as el2visor can map nothing smaller), adjacent ranges counting as one.
fn within(pa: u64, size: u64, ranges: &[(u64, u64)]) -> bool {
    let mut pages: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|r| r.1 > 0)
        .map(|&(start, len)| (start & !0xfff, start.saturating_add(len).saturating_add(0xfff) & !0xfff))
        .collect();
    pages.sort_unstable();
    let (mut at, end) = (pa, pa.saturating_add(size));
    for (start, stop) in pages {
        if start <= at && at < stop {
            at = stop;
        }
        if at >= end {
            return true;
        }
    }
    at >= end
}

fn u32_of(node: FdtNode<'_, '_>, name: &str) -> Option<u32> {
    node.property(name).and_then(|p| p.value.get(..4)).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The INTIDs of the SPIs a node's `interrupt-map` routes to the domain's GIC, in map order. An
/// entry is `<child unit address (#address-cells, 3 if absent)> <child specifier
/// (#interrupt-cells, 1 if absent)> <65000> <0 n flags>`: the guest GIC has no address cells and
/// three interrupt cells. Any other parent is refused (the domain has no other controller).
fn map_spis(dev: FdtNode<'_, '_>, at: &str) -> Result<Vec<u32>, String> {
    let Some(v) = dev.property("interrupt-map").map(|p| p.value) else { return Ok(Vec::new()) };
    if v.len() % 4 != 0 {
        return Err(format!("{at}: interrupt-map is not a whole number of cells"));
    }
    let w: Vec<u32> = v.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    let child = u32_of(dev, "#address-cells").unwrap_or(3) as usize + u32_of(dev, "#interrupt-cells").unwrap_or(1) as usize;
    let entry = child + 1 + 3;
    if w.is_empty() || !w.len().is_multiple_of(entry) {
        return Err(format!("{at}: interrupt-map is not a list of <child address, child interrupt, {GUEST_PHANDLE_GIC}, 0 n flags>"));
    }
    let mut out = Vec::new();
    for e in w.chunks(entry) {
        if e[child] != GUEST_PHANDLE_GIC {
            return Err(format!("{at}: interrupt-map names parent {:#x}, not the domain's GIC ({GUEST_PHANDLE_GIC})", e[child]));
        }
        if e[child + 1] != 0 {
            return Err(format!("{at}: interrupt-map: only SPIs can be passed through (interrupt type {})", e[child + 1]));
        }
        let intid = e[child + 2].checked_add(32).filter(|&i| i < 1020).ok_or_else(|| format!("{at}: interrupt-map: SPI {} out of range", e[child + 2]))?;
        if !out.contains(&intid) {
            out.push(intid);
        }
    }
    Ok(out)
}

/// The partial device tree `dtb` (a `multiboot,device-tree` module, or a bundle's entry) made
/// fit for `fdt`, which panics on a malformed blob: a copy cut to its `totalsize`, without the
/// `FDT_NOP`s a loader that edited it in place leaves, checked as the host's device tree is
/// (`platform::header`). Refused with one line saying what is wrong with it.
pub fn checked_copy(dtb: &[u8]) -> Result<Vec<u8>, String> {
    use crate::platform::{dtb_size, header, nops, DtErrorKind};
    // The header's own wording speaks of x0, the host's device tree.
    let why = |k: DtErrorKind| match k {
        DtErrorKind::TooShort { len } => format!("not a flattened device tree (only {len} bytes)"),
        DtErrorKind::BadMagic { magic } => format!("not a flattened device tree (magic {magic:#010x}, not 0xd00dfeed)"),
        k => k.to_string(),
    };
    let total = dtb_size(dtb).map_err(|e| why(e.kind))?;
    let mut copy = dtb.get(..total).ok_or_else(|| why(DtErrorKind::Truncated { totalsize: total, available: dtb.len() }))?.to_vec();
    nops::strip_in_place(&mut copy).map_err(|e| why(e.kind))?;
    header::validate(&copy).map_err(|e| why(e.kind))?;
    Ok(copy)
}

/// The first passed-through device whose interrupt an emulated device of the domain drives too
/// (`emulated`: its vpl011's SPI), as an error naming both: the two would be one line.
pub fn check_spis(devs: &[PtDevice], emulated: &[(u32, &str)]) -> Result<(), String> {
    for d in devs {
        if let Some((intid, what)) = emulated.iter().find(|(i, _)| d.spis.contains(i)) {
            return Err(alloc::format!(
                "passthrough device {} ({}) uses INTID {intid}, which the domain's {what} drives: give the device another interrupt or drop {what}",
                d.name, d.host_path
            ));
        }
    }
    Ok(())
}

/// The devices of the partial device tree `dtb` (a domain's `multiboot,device-tree` module),
/// checked against the host's nodes. Errors are one line naming the node.
pub fn devices(dtb: &[u8], host: &impl HostNodes) -> Result<Vec<PtDevice>, String> {
    let dtb = checked_copy(dtb)?;
    let fdt = Fdt::new(&dtb).map_err(|e| format!("not a DTB ({e:?})"))?;
    let Some(pt) = fdt.find_node("/passthrough") else { return Ok(Vec::new()) };
    let ac = u32_of(pt, "#address-cells").unwrap_or(2);
    let sc = u32_of(pt, "#size-cells").unwrap_or(1);
    // The platform's bounds, and at least one address cell: `xen,reg` entries are sized from
    // these (0 and 0 would make them zero bytes long).
    if ac == 0 || ac > MAX_ADDRESS_CELLS || sc > MAX_SIZE_CELLS {
        return Err(format!("/passthrough: #address-cells = <{ac}>, #size-cells = <{sc}>: 1 to {MAX_ADDRESS_CELLS} and at most {MAX_SIZE_CELLS} cells"));
    }
    let mut out = Vec::new();
    for dev in pt.children() {
        let at = format!("/passthrough/{}", dev.name);
        let host_path = dev
            .property("xen,path")
            .and_then(|p| core::str::from_utf8(p.value).ok())
            .map(|s| s.trim_end_matches('\0').to_string());
        let xen_reg = dev.property("xen,reg").map(|p| p.value);
        let host_path = match (host_path, xen_reg) {
            (Some(p), _) => p,
            // A node without `xen,path` is copied into the guest DT as it is (a clock, say).
            (None, None) => continue,
            (None, Some(_)) => return Err(format!("{at}: xen,reg without xen,path")),
        };
        match host.passthrough_mark(&host_path) {
            None => return Err(format!("{at}: xen,path {host_path} does not exist in the host device tree")),
            Some(false) => return Err(format!("{at}: the host node {host_path} does not carry xen,passthrough")),
            Some(true) => {}
        }
        let mut regions = Vec::new();
        if let Some(v) = xen_reg {
            let stride = 4 * (2 * ac + sc) as usize;
            if v.is_empty() || v.len() % stride != 0 {
                return Err(format!("{at}: xen,reg is not a list of <phys size guest> in /passthrough's cells"));
            }
            for t in v.chunks(stride) {
                let a = 4 * ac as usize;
                let s = 4 * sc as usize;
                let (pa, size, ipa) = (read_cells(&t[..a], ac), read_cells(&t[a..a + s], sc), read_cells(&t[a + s..], ac));
                let (Some(pa), Some(size), Some(ipa)) = (pa, size, ipa) else {
                    return Err(format!("{at}: xen,reg has cells too wide"));
                };
                if size == 0 || !pa.is_multiple_of(4096) || !ipa.is_multiple_of(4096) || !size.is_multiple_of(4096) {
                    return Err(format!("{at}: xen,reg region {pa:#x}+{size:#x} at {ipa:#x} is not whole 4 KiB pages"));
                }
                // Only what the host node itself decodes: anything else could be RAM, el2visor's
                // own memory, the GIC or another device (Xen takes the partial DT on trust).
                if !within(pa, size, &host.mmio(&host_path)) {
                    return Err(format!("{at}: xen,reg region {pa:#x}+{size:#x} is not inside what {host_path} decodes (its reg and ranges)"));
                }
                regions.push(PtRegion { pa, size, ipa });
            }
        }
        let mut spis = Vec::new();
        if let Some(v) = dev.property("interrupts").map(|p| p.value) {
            if v.len() % 12 != 0 {
                return Err(format!("{at}: interrupts is not a list of <type number flags> GIC specifiers"));
            }
            for spec in v.chunks(12) {
                let cell = |i: usize| u32::from_be_bytes([spec[4 * i], spec[4 * i + 1], spec[4 * i + 2], spec[4 * i + 3]]);
                if cell(0) != 0 {
                    return Err(format!("{at}: only SPIs can be passed through (interrupt type {})", cell(0)));
                }
                let intid = cell(1).checked_add(32).filter(|&i| i < 1020).ok_or_else(|| format!("{at}: SPI {} out of range", cell(1)))?;
                spis.push(intid);
            }
        }
        for intid in map_spis(dev, &at)? {
            if !spis.contains(&intid) {
                spis.push(intid);
            }
        }
        let force_assign = dev.property("xen,force-assign-without-iommu").is_some();
        out.push(PtDevice { name: dev.name.to_string(), host_path, regions, spis, force_assign });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    struct Host;
    impl HostNodes for Host {
        fn passthrough_mark(&self, path: &str) -> Option<bool> {
            match path {
                "/pl031@9010000" | "/pcie@10000000" => Some(true),
                "/pl061@9030000" => Some(false),
                _ => None,
            }
        }
        fn mmio(&self, path: &str) -> Vec<(u64, u64)> {
            match path {
                "/pl031@9010000" => alloc::vec![(0x0901_0000, 0x1000)],
                "/pl061@9030000" => alloc::vec![(0x0903_0000, 0x1000)],
                // QEMU virt's bridge: its ECAM, then its 32-bit window.
                "/pcie@10000000" => alloc::vec![(0x40_1000_0000, 0x1000_0000), (0x1000_0000, 0x2eff_0000)],
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn xen_reg_stays_inside_what_the_host_node_decodes() {
        // A 0x200-byte register block covers its page; adjacent ranges join; a PCI bridge's
        // ECAM and window both count.
        assert!(within(0x0a00_0000, 0x1000, &[(0x0a00_0000, 0x200)]));
        assert!(within(0x1000, 0x3000, &[(0x3000, 0x1000), (0x1000, 0x2000)]));
        assert!(!within(0x1000, 0x3000, &[(0x1000, 0x1000), (0x3000, 0x1000)]), "a hole at 0x2000");
        assert!(!within(0x0901_0000, 0x2000, &[(0x0901_0000, 0x1000)]), "one page past the end");
        assert!(!within(0x4000_0000, 0x1000, &[]), "a node that decodes nothing");
        assert!(!within(0xffff_ffff_ffff_f000, 0x1000, &[(0xffff_ffff_ffff_f000, 0x800)]), "the last page: no wrap");
        // RAM (or anything else the node does not decode) is refused with the reason.
        let dtb = partial(|w| rtc(w, "/pl031@9010000", &[0, 0x4000_0000, 0, 0x1000, 0, 0x0901_0000], &[0, 2, 4]));
        let e = devices(&dtb, &Host).unwrap_err();
        assert!(e.contains("not inside what /pl031@9010000 decodes"), "{e}");
    }

    fn partial(dev: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let pt = w.begin_node("passthrough").unwrap();
        w.property_string("compatible", "simple-bus").unwrap();
        w.property_null("ranges").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        dev(&mut w);
        w.end_node(pt).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn rtc(w: &mut FdtWriter, path: &str, xen_reg: &[u32], irqs: &[u32]) {
        let n = w.begin_node("rtc@9010000").unwrap();
        w.property_string_list("compatible", alloc::vec!["arm,pl031".into(), "arm,primecell".into()]).unwrap();
        w.property_array_u32("reg", &[0, 0x0901_0000, 0, 0x1000]).unwrap();
        w.property_array_u32("interrupts", irqs).unwrap();
        w.property_u32("interrupt-parent", GUEST_PHANDLE_GIC).unwrap();
        w.property_array_u32("xen,reg", xen_reg).unwrap();
        w.property_string("xen,path", path).unwrap();
        w.end_node(n).unwrap();
    }

    #[test]
    fn a_passthrough_spi_an_emulated_device_drives_is_refused() {
        let dev = |spis: &[u32]| PtDevice { name: "rtc@9010000".into(), host_path: "/pl031@9010000".into(), regions: alloc::vec![], spis: spis.to_vec(), force_assign: false };
        assert_eq!(check_spis(&[dev(&[34]), dev(&[35, 36])], &[(32, "vpl011")]), Ok(()));
        let e = check_spis(&[dev(&[34]), dev(&[33, 32])], &[(32, "vpl011")]).unwrap_err();
        assert!(e.contains("rtc@9010000") && e.contains("/pl031@9010000") && e.contains("INTID 32") && e.contains("vpl011"), "{e}");
        assert_eq!(check_spis(&[dev(&[32])], &[]), Ok(()));
    }

    #[test]
    fn a_pl031_passed_through_as_xen_writes_it() {
        let dtb = partial(|w| rtc(w, "/pl031@9010000", &[0, 0x0901_0000, 0, 0x1000, 0, 0x0901_0000], &[0, 2, 4]));
        let d = devices(&dtb, &Host).unwrap();
        assert_eq!(
            d,
            [PtDevice {
                name: "rtc@9010000".into(),
                host_path: "/pl031@9010000".into(),
                regions: alloc::vec![PtRegion { pa: 0x0901_0000, size: 0x1000, ipa: 0x0901_0000 }],
                spis: alloc::vec![34],
                force_assign: false,
            }]
        );
    }

    fn bridge(w: &mut FdtWriter, map: &[u32]) {
        let n = w.begin_node("pcie@10000000").unwrap();
        w.property_string("device_type", "pci").unwrap();
        w.property_u32("#address-cells", 3).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("#interrupt-cells", 1).unwrap();
        w.property_array_u32("interrupt-map-mask", &[0x1800, 0, 0, 7]).unwrap();
        w.property_array_u32("interrupt-map", map).unwrap();
        w.property_array_u32("xen,reg", &[0x40, 0x1000_0000, 0, 0x1000_0000, 0x40, 0x1000_0000, 0, 0x1000_0000, 0, 0x100_0000, 0, 0x1000_0000]).unwrap();
        w.property_string("xen,path", "/pcie@10000000").unwrap();
        w.end_node(n).unwrap();
    }

    #[test]
    fn a_bridge_s_interrupt_map_routes_its_intx_spis() {
        let g = GUEST_PHANDLE_GIC;
        let map = [0, 0, 0, 1, g, 0, 3, 4, 0, 0, 0, 2, g, 0, 4, 4, 0x800, 0, 0, 1, g, 0, 4, 4, 0x800, 0, 0, 2, g, 0, 5, 4];
        let d = devices(&partial(|w| bridge(w, &map)), &Host).unwrap();
        assert_eq!(d[0].spis, [35, 36, 37]);
        let bad: [(&[u32], &str); 4] = [
            (&[0, 0, 0, 1, 0x8002, 0, 3, 4], "not the domain's GIC"),
            (&[0, 0, 0, 1, g, 1, 3, 4], "only SPIs"),
            (&[0, 0, 0, 1, g, 0, 3], "not a list of"),
            (&[0, 0, 0, 1, g, 0, 0xffff_fff0, 4], "out of range"),
        ];
        for (map, says) in bad {
            let e = devices(&partial(|w| bridge(w, map)), &Host).unwrap_err();
            assert!(e.contains("/passthrough/pcie@10000000") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn bad_assignments_are_refused_naming_the_node() {
        let cases: [(&str, &[u32], &[u32], &str); 5] = [
            ("/nowhere@0", &[0, 0x0901_0000, 0, 0x1000, 0, 0x0901_0000], &[0, 2, 4], "does not exist in the host"),
            ("/pl061@9030000", &[0, 0x0903_0000, 0, 0x1000, 0, 0x0903_0000], &[0, 7, 4], "does not carry xen,passthrough"),
            ("/pl031@9010000", &[0, 0x0901_0000, 0, 0x1000], &[0, 2, 4], "<phys size guest>"),
            ("/pl031@9010000", &[0, 0x0901_0000, 0, 0x800, 0, 0x0901_0000], &[0, 2, 4], "whole 4 KiB pages"),
            ("/pl031@9010000", &[0, 0x0901_0000, 0, 0x1000, 0, 0x0901_0000], &[1, 11, 4], "only SPIs"),
        ];
        for (path, reg, irqs, says) in cases {
            let e = devices(&partial(|w| rtc(w, path, reg, irqs)), &Host).unwrap_err();
            assert!(e.contains("/passthrough/rtc@9010000") && e.contains(says), "{e}");
        }
        assert!(devices(b"not a dtb", &Host).is_err());
        assert_eq!(devices(&partial(|_| {}), &Host).unwrap(), []);
    }

    #[test]
    fn cell_counts_out_of_bounds_are_refused_not_a_panic() {
        // A /passthrough with these cell counts and one device under it.
        let with_cells = |ac: u32, sc: u32| {
            let mut w = FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            let pt = w.begin_node("passthrough").unwrap();
            w.property_u32("#address-cells", ac).unwrap();
            w.property_u32("#size-cells", sc).unwrap();
            rtc(&mut w, "/pl031@9010000", &[0; 6], &[0, 2, 4]);
            w.end_node(pt).unwrap();
            w.end_node(root).unwrap();
            w.finish().unwrap()
        };
        let e = devices(&with_cells(0x8000_0000, 1), &Host).unwrap_err();
        assert!(e.starts_with("/passthrough: #address-cells = <2147483648>"), "{e}");
        // Zero cells: entries of no bytes (a division by zero while sizing them).
        let e = devices(&with_cells(0, 0), &Host).unwrap_err();
        assert!(e.starts_with("/passthrough: #address-cells = <0>"), "{e}");
        let bridge_cells = |w: &mut FdtWriter| {
            let n = w.begin_node("pcie@10000000").unwrap();
            w.property_u32("#address-cells", u32::MAX).unwrap();
            w.property_u32("#interrupt-cells", 1).unwrap();
            w.property_array_u32("interrupt-map", &[0, 0, 0, 1, GUEST_PHANDLE_GIC, 0, 3, 4]).unwrap();
            w.property_string("xen,path", "/pl031@9010000").unwrap();
            w.end_node(n).unwrap();
        };
        let e = devices(&partial(bridge_cells), &Host).unwrap_err();
        assert!(e.contains("interrupt-map is not a list of"), "{e}");
    }

    #[test]
    fn a_malformed_partial_device_tree_is_refused_not_a_panic() {
        let good = partial(|w| rtc(w, "/pl031@9010000", &[0, 0x0901_0000, 0, 0x1000, 0, 0x0901_0000], &[0, 2, 4]));
        // The structure block past the blob's end: `fdt` would slice out of bounds.
        let mut off = good.clone();
        off[8..12].copy_from_slice(&(good.len() as u32 + 0x100).to_be_bytes());
        let e = devices(&off, &Host).unwrap_err();
        assert!(e.contains("structure block at offset"), "{e}");
        let e = devices(&[0x5a; 64], &Host).unwrap_err();
        assert!(e.starts_with("not a flattened device tree (magic 0x5a5a5a5a"), "{e}");
        let e = devices(&good[..good.len() - 8], &Host).unwrap_err();
        assert!(e.starts_with("truncated: header says"), "{e}");
        // NOPs a loader left are taken out of a copy, as the host's are: the tree still reads.
        let nopped = crate::platform::nops::tests::with_nop(&good);
        assert_eq!(devices(&nopped, &Host).unwrap().len(), 1);
        assert_eq!(checked_copy(&nopped).unwrap().len(), nopped.len());
    }
}
