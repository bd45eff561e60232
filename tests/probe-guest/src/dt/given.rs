//! The address ranges a device tree gives the guest: every `reg` entry of every node (translated
//! to CPU addresses through each parent's `ranges`; nodes under a bus without `ranges`, like
//! `/cpus`, claim nothing) and every non-identity `ranges` window. The hostile probe treats a
//! completed access anywhere else as a leak.

use super::{read_cells, translate, walk, Chain, DtError, Region, MAX_DEPTH};
use fdt::Fdt;

/// Most ranges recorded; more make [`Given::overflow`] true.
pub const MAX_GIVEN: usize = 96;

/// What a given range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `device_type = "memory"` node.
    Ram,
    /// Anything else: a device, the GIC, a bus window.
    Device,
}

/// The ranges a DT gives the guest.
#[derive(Clone, Copy, Debug)]
pub struct Given {
    regions: [(Region, Kind); MAX_GIVEN],
    count: usize,
    /// More than [`MAX_GIVEN`] ranges: the list is incomplete.
    pub overflow: bool,
}

impl Given {
    /// The ranges found, in DT order.
    pub fn regions(&self) -> &[(Region, Kind)] {
        &self.regions[..self.count]
    }

    /// What `addr` falls in, RAM first when ranges overlap.
    pub fn kind_of(&self, addr: u64) -> Option<Kind> {
        let hit = |k: Kind| {
            self.regions()
                .iter()
                .any(|&(r, kind)| kind == k && addr >= r.base && addr - r.base < r.size)
        };
        if hit(Kind::Ram) {
            Some(Kind::Ram)
        } else if hit(Kind::Device) {
            Some(Kind::Device)
        } else {
            None
        }
    }

    fn push(&mut self, base: u64, size: u64, kind: Kind) {
        if size == 0 {
            return;
        }
        if self.count == MAX_GIVEN {
            self.overflow = true;
            return;
        }
        self.regions[self.count] = (Region { base, size }, kind);
        self.count += 1;
    }
}

/// `addr` in the children's space of the chain's node `bus_index`, translated to CPU addresses.
fn to_cpu(c: &Chain<'_, '_>, bus_index: usize, addr: u64) -> Option<u64> {
    let mut a = addr;
    for i in (1..=bus_index).rev() {
        a = translate(a, c.get(i), c.get(i - 1))?;
    }
    Some(a)
}

fn collect(c: &Chain<'_, '_>, out: &mut Given) {
    let last = c.len - 1;
    if last == 0 {
        return;
    }
    let node = c.get(last);
    let parent = c.get(last - 1).cell_sizes();
    let memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
    let kind = if memory { Kind::Ram } else { Kind::Device };
    if let Some(reg) = node.property("reg") {
        let entry = parent.address_cells + parent.size_cells;
        for i in 0..reg.value.len().checked_div(entry * 4).unwrap_or(0) {
            let at = i * entry;
            let (Some(addr), Some(size)) = (
                read_cells(reg.value, at, parent.address_cells),
                read_cells(reg.value, at + parent.address_cells, parent.size_cells),
            ) else {
                continue;
            };
            if let Some(base) = to_cpu(c, last - 1, addr) {
                out.push(base, size, kind);
            }
        }
    }
    if let Some(ranges) = node.property("ranges").filter(|r| !r.value.is_empty()) {
        let own = node.cell_sizes();
        let (ca, cs, pa) = (own.address_cells, own.size_cells, parent.address_cells);
        let entry = ca + pa + cs;
        for i in 0..ranges.value.len().checked_div(entry * 4).unwrap_or(0) {
            let at = i * entry;
            let (Some(p), Some(size)) = (
                read_cells(ranges.value, at + ca, pa),
                read_cells(ranges.value, at + ca + pa, cs),
            ) else {
                continue;
            };
            if let Some(base) = to_cpu(c, last - 1, p) {
                out.push(base, size, Kind::Device);
            }
        }
    }
}

/// Every range the DT gives the guest.
pub fn given_regions(fdt: &Fdt<'_>) -> Result<Given, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    let mut given = Given {
        regions: [(Region::default(), Kind::Device); MAX_GIVEN],
        count: 0,
        overflow: false,
    };
    walk::<()>(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        collect(c, &mut given);
        None
    })?;
    Ok(given)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::process::Command;
    use std::vec::Vec;

    /// A dom0less domain's DT as el2visor writes it (vm/guest_dt/domu.rs), GICv2, with a
    /// passthrough RTC, plus a CPU node whose `reg` is no address.
    const DOMU: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    chosen { stdout-path = "/sbsa-uart@22000000"; bootargs = "hostile"; };
    memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x4000000>; };
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    interrupt-controller@3001000 {
        compatible = "arm,cortex-a15-gic";
        reg = <0x0 0x3001000 0x0 0x1000 0x0 0x3002000 0x0 0x2000>;
    };
    sbsa-uart@22000000 { compatible = "arm,sbsa-uart"; reg = <0x0 0x22000000 0x0 0x1000>; };
    passthrough {
        compatible = "simple-bus";
        ranges;
        #address-cells = <2>;
        #size-cells = <2>;
        rtc@9010000 { compatible = "arm,pl031"; reg = <0x0 0x9010000 0x0 0x1000>; };
    };
    bus@50000000 {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges = <0x0 0x0 0x50000000 0x100000>;
        dev@2000 { reg = <0x2000 0x100>; };
    };
};
"#;

    /// Compile `source`; `name` keeps parallel tests apart.
    fn dtb(name: &str, source: &str) -> Vec<u8> {
        let dir = std::env::temp_dir().join(std::format!("probe-given-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, out) = (
            dir.join(std::format!("{name}.dts")),
            dir.join(std::format!("{name}.dtb")),
        );
        std::fs::write(&src, source).unwrap();
        let ok = Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("dtc (device-tree-compiler) is needed for this test")
            .success();
        assert!(ok, "dtc failed");
        std::fs::read(&out).unwrap()
    }

    #[test]
    fn a_domains_ranges() {
        let blob = dtb("domu", DOMU);
        let fdt = Fdt::new(&blob).unwrap();
        let g = given_regions(&fdt).unwrap();
        let got: Vec<(u64, u64, Kind)> = g
            .regions()
            .iter()
            .map(|&(r, k)| (r.base, r.size, k))
            .collect();
        assert_eq!(
            got,
            [
                (0x4000_0000, 0x400_0000, Kind::Ram),
                (0x0300_1000, 0x1000, Kind::Device),
                (0x0300_2000, 0x2000, Kind::Device),
                (0x2200_0000, 0x1000, Kind::Device),
                (0x0901_0000, 0x1000, Kind::Device),
                (0x5000_0000, 0x10_0000, Kind::Device),
                (0x5000_2000, 0x100, Kind::Device),
            ]
        );
        assert!(!g.overflow);
        assert_eq!(g.kind_of(0x43ff_fffc), Some(Kind::Ram));
        assert_eq!(g.kind_of(0x4400_0000), None, "just past RAM");
        assert_eq!(g.kind_of(0x0300_3ffc), Some(Kind::Device));
        assert_eq!(g.kind_of(0x0300_4000), None);
        assert_eq!(
            g.kind_of(0),
            None,
            "cpu@0's reg is an MPIDR, not an address"
        );
        assert_eq!(g.kind_of(0x0901_0ffc), Some(Kind::Device));
        // The domain's console is its vpl011, an SBSA UART, and `hostile` is on its command line.
        assert_eq!(super::super::console_uart(&fdt), Ok(Some(0x2200_0000)));
        let p = super::super::discover(&fdt).unwrap();
        assert!(p.hostile && !p.bench && !p.reset);
    }

    #[test]
    fn too_many_ranges_are_flagged() {
        let mut s =
            std::string::String::from("/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>;\n");
        for i in 0..MAX_GIVEN + 1 {
            s.push_str(&std::format!(
                "d@{:x} {{ reg = <{:#x} 0x10>; }};\n",
                i * 0x100,
                i * 0x100
            ));
        }
        s.push_str("};\n");
        let blob = dtb("many", &s);
        let g = given_regions(&Fdt::new(&blob).unwrap()).unwrap();
        assert!(g.overflow);
        assert_eq!(g.regions().len(), MAX_GIVEN);
    }
}
