//! Which ITS DeviceIDs a VM owns: those its PCI host bridges send to the ITS, by the host DT's
//! `msi-map` (`<rid-base its-phandle deviceid-base length>` entries) or, with `msi-parent` naming
//! the ITS, the requester IDs of the bridge's `bus-range` (default 0..=255) as DeviceIDs.

#![forbid(unsafe_code)]

use alloc::vec::Vec;
use fdt::node::FdtNode;
use fdt::Fdt;

fn cells(n: &FdtNode<'_, '_>, name: &str) -> Vec<u32> {
    n.property(name)
        .map(|p| p.value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
        .unwrap_or_default()
}

/// The DeviceID ranges (`[start, end)`) that the bridges at `bridges` (full paths) map to the ITS
/// at `its_path`, in the host DT `dtb`. Empty when the DT is unreadable or nothing maps there.
pub fn device_ids(dtb: &[u8], its_path: &str, bridges: &[&str]) -> Vec<(u32, u32)> {
    let Ok(fdt) = Fdt::new(dtb) else { return Vec::new() };
    let Some(its) = fdt.find_node(its_path) else { return Vec::new() };
    let Some(&ph) = cells(&its, "phandle").first().or(cells(&its, "linux,phandle").first()) else { return Vec::new() };
    let mut out = Vec::new();
    for path in bridges {
        let Some(b) = fdt.find_node(path) else { continue };
        let map = cells(&b, "msi-map");
        if !map.is_empty() {
            for e in map.chunks_exact(4).filter(|e| e[1] == ph && e[3] > 0) {
                out.push((e[2], e[2].saturating_add(e[3])));
            }
        } else if cells(&b, "msi-parent").first() == Some(&ph) {
            let range = cells(&b, "bus-range");
            let (first, last) = match range[..] {
                [f, l] if f <= l && l <= 255 => (f, l),
                _ => (0, 255),
            };
            out.push((first << 8, (last + 1) << 8));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn host() -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let intc = w.begin_node("intc@8000000").unwrap();
        let its = w.begin_node("its@8080000").unwrap();
        w.property_u32("phandle", 0x8002).unwrap();
        w.end_node(its).unwrap();
        let v2m = w.begin_node("v2m@8020000").unwrap();
        w.property_u32("phandle", 0x8003).unwrap();
        w.end_node(v2m).unwrap();
        w.end_node(intc).unwrap();
        let a = w.begin_node("pcie@10000000").unwrap();
        w.property_array_u32("msi-map", &[0, 0x8002, 0, 0x1_0000]).unwrap();
        w.end_node(a).unwrap();
        let b = w.begin_node("pcie@20000000").unwrap();
        w.property_array_u32("msi-parent", &[0x8002]).unwrap();
        w.property_array_u32("bus-range", &[0x10, 0x1f]).unwrap();
        w.end_node(b).unwrap();
        let c = w.begin_node("pcie@30000000").unwrap();
        w.property_array_u32("msi-map", &[0, 0x8003, 0, 0x100, 0x100, 0x8002, 0x2_0000, 0x100]).unwrap();
        w.end_node(c).unwrap();
        let d = w.begin_node("pcie@40000000").unwrap();
        w.property_array_u32("msi-parent", &[0x8003]).unwrap();
        w.end_node(d).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn from_msi_map_and_msi_parent() {
        let dtb = host();
        let its = "/intc@8000000/its@8080000";
        assert_eq!(device_ids(&dtb, its, &["/pcie@10000000"]), [(0, 0x1_0000)]);
        assert_eq!(device_ids(&dtb, its, &["/pcie@20000000"]), [(0x1000, 0x2000)]);
        assert_eq!(device_ids(&dtb, its, &["/pcie@30000000"]), [(0x2_0000, 0x2_0100)], "only the ITS's entries");
        assert!(device_ids(&dtb, its, &["/pcie@40000000"]).is_empty(), "MSIs to another controller");
        assert!(device_ids(&dtb, its, &[]).is_empty(), "no bridge, no DeviceIDs");
        assert!(device_ids(&dtb, "/nope", &["/pcie@10000000"]).is_empty());
        assert!(device_ids(b"garbage", its, &["/pcie@10000000"]).is_empty());
    }
}
