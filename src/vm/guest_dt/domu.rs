//! The device tree of a dom0less domain, written from scratch: it shows only what the domain
//! owns. The layout is Xen's for domUs (so a kernel configured for a Xen domU finds things where
//! it expects them): RAM at [`RAM_BASE`], the GIC distributor at 0x0300_1000 (GICv2 CPU
//! interface at 0x0300_2000, GICv3 redistributors at 0x0302_0000), the vpl011 at 0x2200_0000
//! with SPI 0, and the GIC's phandle 65000, which partial device trees use as their
//! `interrupt-parent`. The `/passthrough` node of the domain's partial device tree is copied in,
//! without its `xen,*` properties.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::Fdt;
use vm_fdt::FdtWriter;

use super::{GuestDtError, GuestGic, GICV3_REDIST_STRIDE};
use crate::vm::passthrough::GUEST_PHANDLE_GIC;
use crate::vm::vpl011;

/// Where a domain's RAM starts (Xen's GUEST_RAM0_BASE).
pub const RAM_BASE: u64 = 0x4000_0000;
/// Xen's guest GIC layout.
pub const GICD_BASE: u64 = 0x0300_1000;
pub const GICV2_GICC_BASE: u64 = 0x0300_2000;
pub const GICV2_GICC_SIZE: u64 = 0x2000;
pub const GICV3_GICD_SIZE: u64 = 0x1_0000;
pub const GICV3_GICR_BASE: u64 = 0x0302_0000;

/// The guest GIC for a domain, at Xen's addresses.
pub fn guest_gic(v3: bool, redist_stride: Option<u64>) -> GuestGic {
    if v3 {
        GuestGic::V3 { dist: (GICD_BASE, GICV3_GICD_SIZE), redist: GICV3_GICR_BASE, redist_stride }
    } else {
        GuestGic::V2 { dist: (GICD_BASE, 0x1000), cpu: (GICV2_GICC_BASE, GICV2_GICC_SIZE) }
    }
}

/// What a domain's device tree says.
#[derive(Clone, Debug, Default)]
pub struct DomuDtSpec {
    /// The domain's name (the DT's `model`).
    pub name: String,
    /// RAM size; it starts at [`RAM_BASE`].
    pub ram_size: u64,
    /// MPIDR affinity per vCPU.
    pub vcpu_mpidrs: Vec<u64>,
    /// The CPUs' `compatible` (the host's first CPU's).
    pub cpu_compatible: Vec<u8>,
    pub bootargs: String,
    /// Guest-physical [start, end) of the initrd.
    pub initrd: Option<(u64, u64)>,
    pub gic: Option<GuestGic>,
    /// The domain has a vpl011 (its console, `stdout-path`).
    pub vpl011: bool,
    /// The domain's partial device tree, whose `/passthrough` node is copied in.
    pub partial_dtb: Option<Vec<u8>>,
    /// Where the domain's emulated pvpanic device is (`qemu,pvpanic-mmio`).
    pub pvpanic: Option<u64>,
    /// Names of `/passthrough` children left out: devices the DMA policy withheld.
    pub withheld: Vec<String>,
}

fn gic_node(w: &mut FdtWriter, gic: &GuestGic, vcpus: usize) -> Result<(), GuestDtError> {
    let (name, compatible, reg): (String, &str, Vec<u64>) = match *gic {
        GuestGic::V2 { dist, cpu } => (format!("interrupt-controller@{:x}", dist.0), "arm,cortex-a15-gic", alloc::vec![dist.0, dist.1, cpu.0, cpu.1]),
        GuestGic::V3 { dist, redist, redist_stride } => {
            let stride = super::redist_stride(redist_stride);
            (format!("interrupt-controller@{:x}", dist.0), "arm,gic-v3", alloc::vec![dist.0, dist.1, redist, stride * vcpus as u64])
        }
    };
    let n = w.begin_node(&name)?;
    w.property_string("compatible", compatible)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_u32("#address-cells", 0)?;
    w.property_null("interrupt-controller")?;
    w.property_array_u64("reg", &reg)?;
    if let GuestGic::V3 { redist_stride, .. } = *gic {
        w.property_u32("#redistributor-regions", 1)?;
        let stride = super::redist_stride(redist_stride);
        if stride != GICV3_REDIST_STRIDE {
            w.property_u64("redistributor-stride", stride)?;
        }
    }
    w.property_u32("phandle", GUEST_PHANDLE_GIC)?;
    w.end_node(n)?;
    Ok(())
}

/// Properties no domain sees: it has no IOMMU (el2visor's SMMU translates its devices' DMA with
/// the domain's Stage 2), and an `iommus` naming a node its DT lacks would leave Linux waiting.
const IOMMU_PROPS: [&str; 3] = ["iommus", "iommu-map", "iommu-map-mask"];

/// Copy `node` and its subtree, without `xen,*` and IOMMU properties.
fn copy_subtree(w: &mut FdtWriter, node: FdtNode<'_, '_>) -> Result<(), GuestDtError> {
    let n = w.begin_node(node.name)?;
    for p in node.properties().filter(|p| !p.name.starts_with("xen,") && !IOMMU_PROPS.contains(&p.name)) {
        w.property(p.name, p.value)?;
    }
    for c in node.children() {
        copy_subtree(w, c)?;
    }
    w.end_node(n)?;
    Ok(())
}

/// Write the domain's device tree.
pub fn generate(spec: &DomuDtSpec) -> Result<Vec<u8>, GuestDtError> {
    if spec.ram_size == 0 {
        return Err(GuestDtError::NoRam);
    }
    if spec.vcpu_mpidrs.is_empty() {
        return Err(GuestDtError::NoVcpus);
    }
    let gic = spec.gic.as_ref().ok_or(GuestDtError::NoGicSpec)?;
    let partial_dtb = spec.partial_dtb.as_deref().map(crate::vm::passthrough::checked_copy).transpose().map_err(GuestDtError::PartialDt)?;
    let partial = match &partial_dtb {
        Some(b) => Some(Fdt::new(b).map_err(|_| GuestDtError::PartialDt(String::from("not a DTB")))?),
        None => None,
    };
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_string("model", &format!("el2visor VM {}", spec.name))?;
    w.property_string("compatible", "el2visor,vm")?;
    w.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;

    let uart = format!("/sbsa-uart@{:x}", vpl011::GUEST_BASE);
    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", &spec.bootargs)?;
    if let Some((s, e)) = spec.initrd {
        w.property_u64("linux,initrd-start", s)?;
        w.property_u64("linux,initrd-end", e)?;
    }
    if spec.vpl011 {
        w.property_string("stdout-path", &uart)?;
    }
    w.end_node(chosen)?;
    if spec.vpl011 {
        let aliases = w.begin_node("aliases")?;
        w.property_string("serial0", &uart)?;
        w.end_node(aliases)?;
    }

    let mem = w.begin_node(&format!("memory@{RAM_BASE:x}"))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[RAM_BASE, spec.ram_size])?;
    w.end_node(mem)?;

    let wide = spec.vcpu_mpidrs.iter().any(|&m| m > u64::from(u32::MAX));
    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", if wide { 2 } else { 1 })?;
    w.property_u32("#size-cells", 0)?;
    for &mpidr in &spec.vcpu_mpidrs {
        let c = w.begin_node(&format!("cpu@{mpidr:x}"))?;
        w.property_string("device_type", "cpu")?;
        if spec.cpu_compatible.is_empty() {
            w.property_string("compatible", "arm,armv8")?;
        } else {
            w.property("compatible", &spec.cpu_compatible)?;
        }
        if wide {
            w.property_u64("reg", mpidr)?;
        } else {
            w.property_u32("reg", mpidr as u32)?;
        }
        w.property_string("enable-method", "psci")?;
        w.end_node(c)?;
    }
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list("compatible", alloc::vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()])?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    gic_node(&mut w, gic, spec.vcpu_mpidrs.len())?;

    // The EL1 timers: secure and non-secure physical, virtual, hypervisor (level, active low,
    // and on GICv2 the CPU mask of the vCPUs).
    let mask = match gic {
        GuestGic::V2 { .. } => ((1u32 << spec.vcpu_mpidrs.len().min(8)) - 1) << 8,
        GuestGic::V3 { .. } => 0,
    };
    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    w.property_array_u32("interrupts", &[1, 13, mask | 8, 1, 14, mask | 8, 1, 11, mask | 8, 1, 10, mask | 8])?;
    w.property_null("always-on")?;
    w.end_node(timer)?;

    if spec.vpl011 {
        let u = w.begin_node(&uart[1..])?;
        w.property_string("compatible", "arm,sbsa-uart")?;
        w.property_array_u64("reg", &[vpl011::GUEST_BASE, vpl011::GUEST_SIZE])?;
        w.property_array_u32("interrupts", &[0, vpl011::GUEST_INTID - 32, 4])?;
        w.property_u32("current-speed", 115_200)?;
        w.end_node(u)?;
    }

    if let Some(base) = spec.pvpanic {
        let n = w.begin_node(&format!("pvpanic@{base:x}"))?;
        w.property_string("compatible", crate::vm::pvpanic::COMPATIBLE)?;
        w.property_array_u64("reg", &[base, crate::vm::pvpanic::SIZE])?;
        w.end_node(n)?;
    }

    if let Some(pt) = partial.as_ref().and_then(|f| f.find_node("/passthrough")) {
        let n = w.begin_node(pt.name)?;
        for p in pt.properties().filter(|p| !p.name.starts_with("xen,")) {
            w.property(p.name, p.value)?;
        }
        for c in pt.children().filter(|c| !spec.withheld.iter().any(|x| x == c.name)) {
            copy_subtree(&mut w, c)?;
        }
        w.end_node(n)?;
    }

    w.end_node(root)?;
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v3: bool) -> DomuDtSpec {
        DomuDtSpec {
            name: "domU1".into(),
            ram_size: 256 << 20,
            vcpu_mpidrs: alloc::vec![0, 1],
            cpu_compatible: b"arm,cortex-a72\0".to_vec(),
            bootargs: "console=ttyAMA0".into(),
            initrd: Some((0x4800_0000, 0x4810_0000)),
            gic: Some(guest_gic(v3, None)),
            vpl011: true,
            partial_dtb: None,
            pvpanic: None,
            withheld: alloc::vec![],
        }
    }

    #[test]
    fn a_pvpanic_node_where_asked() {
        let dtb = generate(&DomuDtSpec { pvpanic: Some(0x2200_1000), ..spec(true) }).unwrap();
        let f = Fdt::new(&dtb).unwrap();
        let n = f.find_node("/pvpanic@22001000").expect("the pvpanic node");
        assert_eq!(n.compatible().unwrap().first(), "qemu,pvpanic-mmio");
        let r = n.reg().unwrap().next().unwrap();
        assert_eq!((r.starting_address as u64, r.size), (0x2200_1000, Some(0x1000)));
    }

    #[test]
    fn a_domain_sees_only_what_it_owns() {
        let dtb = generate(&spec(true)).unwrap();
        let f = Fdt::new(&dtb).unwrap();
        let names: Vec<&str> = f.find_node("/").unwrap().children().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["chosen", "aliases", "memory@40000000", "cpus", "psci", "interrupt-controller@3001000", "timer", "sbsa-uart@22000000"]
        );
        let mem = f.memory().regions().next().unwrap();
        assert_eq!((mem.starting_address as u64, mem.size), (0x4000_0000, Some(256 << 20)));
        assert_eq!(f.cpus().count(), 2);
        assert_eq!(f.chosen().bootargs(), Some("console=ttyAMA0"));
        assert_eq!(f.chosen().stdout().map(|s| s.name), Some("sbsa-uart@22000000"));
        let gic = f.find_node("/interrupt-controller@3001000").unwrap();
        let reg: Vec<_> = gic.reg().unwrap().map(|r| (r.starting_address as u64, r.size)).collect();
        assert_eq!(reg, [(0x0300_1000, Some(0x1_0000)), (0x0302_0000, Some(2 * 0x2_0000))]);
        assert_eq!(gic.property("phandle").and_then(|p| p.as_usize()), Some(65000));
        let uart = f.find_node("/sbsa-uart@22000000").unwrap();
        assert_eq!(uart.property("interrupts").unwrap().value, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    }

    #[test]
    fn gicv2_and_a_passthrough_device() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let pt = w.begin_node("passthrough").unwrap();
        w.property_null("ranges").unwrap();
        let rtc = w.begin_node("rtc@9010000").unwrap();
        w.property_string("compatible", "arm,pl031").unwrap();
        w.property_array_u32("xen,reg", &[0, 0x0901_0000, 0, 0x1000, 0, 0x0901_0000]).unwrap();
        w.property_string("xen,path", "/pl031@9010000").unwrap();
        w.property_array_u32("iommus", &[0x8004, 0x20]).unwrap();
        w.end_node(rtc).unwrap();
        let virtio = w.begin_node("virtio_mmio@a000000").unwrap();
        w.property_string("compatible", "virtio,mmio").unwrap();
        w.property_string("xen,path", "/virtio_mmio@a000000").unwrap();
        w.end_node(virtio).unwrap();
        w.end_node(pt).unwrap();
        w.end_node(root).unwrap();
        let mut s = spec(false);
        s.vpl011 = false;
        s.partial_dtb = Some(w.finish().unwrap());
        s.withheld = alloc::vec!["virtio_mmio@a000000".into()];
        let dtb = generate(&s).unwrap();
        let f = Fdt::new(&dtb).unwrap();
        assert!(f.find_node("/passthrough/virtio_mmio@a000000").is_none(), "a withheld device stays out");
        let rtc = f.find_node("/passthrough/rtc@9010000").expect("copied");
        assert!(rtc.property("compatible").is_some());
        assert!(rtc.properties().all(|p| !p.name.starts_with("xen,")), "xen,* properties stay out");
        assert!(rtc.property("iommus").is_none(), "a domain sees no IOMMU");
        assert!(f.find_node("/sbsa-uart@22000000").is_none());
        assert!(f.chosen().stdout().is_none());
        let gic = f.find_node("/interrupt-controller@3001000").unwrap();
        assert_eq!(gic.compatible().unwrap().first(), "arm,cortex-a15-gic");
        let timer = f.find_node("/timer").unwrap().property("interrupts").unwrap().value;
        assert_eq!(&timer[8..12], &[0, 0, 3, 8], "GICv2 PPIs name the two vCPUs");
    }

    #[test]
    fn a_malformed_partial_device_tree_is_an_error_not_a_panic() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let pt = w.begin_node("passthrough").unwrap();
        w.property_null("ranges").unwrap();
        w.end_node(pt).unwrap();
        w.end_node(root).unwrap();
        let mut blob = w.finish().unwrap();
        // The strings block past the blob's end: `fdt` would slice out of bounds.
        let total = blob.len() as u32;
        blob[12..16].copy_from_slice(&(total + 0x40).to_be_bytes());
        let e = generate(&DomuDtSpec { partial_dtb: Some(blob), ..spec(true) }).unwrap_err();
        assert!(matches!(&e, GuestDtError::PartialDt(why) if why.contains("strings block at offset")), "{e}");
        assert!(e.to_string().starts_with("guest DT: partial device tree: "), "{e}");
    }

    #[test]
    fn nothing_to_describe_is_an_error() {
        let mut s = spec(true);
        s.ram_size = 0;
        assert_eq!(generate(&s), Err(GuestDtError::NoRam));
        let mut s = spec(true);
        s.vcpu_mpidrs.clear();
        assert_eq!(generate(&s), Err(GuestDtError::NoVcpus));
        let mut s = spec(true);
        s.gic = None;
        assert_eq!(generate(&s), Err(GuestDtError::NoGicSpec));
    }
}
