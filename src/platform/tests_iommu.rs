//! Host tests of the IOMMU facts: QEMU virt's SMMUv3 and PCI `iommu-map` (dumped by
//! `tests/fixtures/make-dtbs.sh`), and a board whose platform devices use `iommus`.

#![forbid(unsafe_code)]

use super::iommu::{self, SidRange};
use super::tests_dts::dtc;
use super::tests_real::load;
use super::*;

#[test]
fn qemu_virt_smmuv3_and_the_pci_bridges_streams() {
    for gic in [2, 3] {
        let p = Platform::from_dtb(&load(&std::format!("virt-smmu-gic{gic}.dtb"))).unwrap();
        assert_eq!(p.iommus.smmus.len(), 1);
        let s = &p.iommus.smmus[0];
        assert_eq!(s.path, "/smmuv3@9050000");
        assert_eq!(s.regs, PaRange::new(0x905_0000, 0x2_0000));
        assert!(s.enabled);
        // SPI 0x4a (INTID 106) and 0x4d (109), edge-triggered.
        assert_eq!(s.eventq_irq, Some((32 + 0x4a, true)));
        assert_eq!(s.gerror_irq, Some((32 + 0x4d, true)));
        let ph = s.phandle.unwrap();
        assert_eq!(p.iommus.smmu(ph).map(|s| &s.path), Some(&s.path));
        let owners: std::vec::Vec<_> = p.iommus.owners_of(ph).collect();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].path, "/pcie@10000000");
        assert_eq!(owners[0].sids, [SidRange { base: 0, count: 0x1_0000 }]);
        assert_eq!(p.iommus.highest_sid(ph), Some(0xffff));
        // Stream ID = requester ID: edu at 00:02.0 is stream 0x10.
        assert_eq!((owners[0].sid_of(0x10), owners[0].rid_of(0x10)), (Some(0x10), Some(0x10)));
        assert_eq!(iommu::bdf(0x10), "00:02.0");
        // The SMMU is a device like any other in the device list (the guest build drops it).
        assert!(p.device("/smmuv3@9050000").is_some());
    }
    // Without iommu=smmuv3: nothing.
    let p = Platform::from_dtb(&load("virt-gic3-max-smp2-2G.dtb")).unwrap();
    assert_eq!(p.iommus, Default::default());
}

const IOMMUS: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    interrupt-parent = <&gic>;
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    gic: interrupt-controller@8000000 {
        compatible = "arm,gic-v3"; interrupt-controller; #interrupt-cells = <3>;
        reg = <0 0x8000000 0 0x10000>, <0 0x80a0000 0 0xf60000>;
    };
    smmu: iommu@2b400000 {
        compatible = "arm,smmu-v3";
        reg = <0 0x2b400000 0 0x20000>;
        interrupts = <0 74 4>, <0 77 4>;
        interrupt-names = "eventq", "gerror";
        #iommu-cells = <1>;
    };
    off: iommu@2b500000 {
        compatible = "arm,smmu-v3";
        reg = <0 0x2b500000 0 0x20000>;
        status = "disabled";
        #iommu-cells = <1>;
    };
    dma@1000 { reg = <0 0x1000 0 0x100>; iommus = <&smmu 0x20>, <&smmu 0x21>; };
    eth@2000 { reg = <0 0x2000 0 0x100>; iommus = <&off 7>; };
    pcie@30000000 {
        device_type = "pci"; #address-cells = <3>; #size-cells = <2>;
        reg = <0 0x30000000 0 0x1000000>;
        ranges = <0x2000000 0 0x40000000 0 0x40000000 0 0x1000000>;
        iommu-map = <0x0 &smmu 0x10000 0x100>, <0x100 &smmu 0x20000 0x100>;
        iommu-map-mask = <0xff00>;
    };
};
"#;

#[test]
fn iommus_and_iommu_map_on_a_board() {
    let p = Platform::from_dtb(&dtc(IOMMUS)).unwrap();
    assert_eq!(p.iommus.smmus.len(), 2);
    let on = &p.iommus.smmus[0];
    assert_eq!((on.eventq_irq, on.gerror_irq), (Some((106, false)), Some((109, false))));
    let ph = on.phandle.unwrap();
    let off = p.iommus.smmus[1].phandle.unwrap();
    assert!(p.iommus.smmu(off).is_none(), "a disabled SMMU is not used");
    let dma = p.iommus.owners.iter().find(|o| o.path == "/dma@1000").unwrap();
    assert_eq!((dma.iommu, &dma.sids[..]), (ph, &[SidRange { base: 0x20, count: 1 }, SidRange { base: 0x21, count: 1 }][..]));
    let pci = p.iommus.owners.iter().find(|o| o.path == "/pcie@30000000").unwrap();
    assert_eq!(pci.sids, [SidRange { base: 0x1_0000, count: 0x100 }, SidRange { base: 0x2_0000, count: 0x100 }]);
    assert_eq!(pci.rid_mask, Some(0xff00));
    // Masked to the bus: every function of bus 0 is stream 0x10000, of bus 1 0x20000.
    assert_eq!(pci.sid_of(0x0010), Some(0x1_0000));
    assert_eq!(pci.sid_of(0x0108), Some(0x2_0000));
    assert_eq!(pci.sid_of(0x0208), None, "bus 2 is not in the map");
    assert_eq!(pci.rid_of(0x2_0001), Some(0x101));
    assert_eq!(dma.sid_of(0), None, "iommus is not a requester-ID map");
    assert_eq!(dma.rid_of(0x20), None);
    assert_eq!(iommu::bdf(0x1_0a), "01:01.2");
    assert_eq!(p.iommus.highest_sid(ph), Some(0x2_00ff));
    assert_eq!(p.iommus.owners_of(off).count(), 1);
    assert!(SidRange { base: 0x20, count: 2 }.contains(0x21) && !SidRange { base: 0x20, count: 2 }.contains(0x22));
}

#[test]
fn a_malformed_iommu_map_is_an_error() {
    let bad = IOMMUS.replace("<0x100 &smmu 0x20000 0x100>", "<0x100 &smmu 0x20000>");
    let e = Platform::from_dtb(&dtc(&bad)).unwrap_err();
    assert!(std::format!("{e}").contains("iommu-map"), "{e}");
    let bad = IOMMUS.replace("0x20000 0x100>", "0xffffff00 0x200>");
    assert!(Platform::from_dtb(&dtc(&bad)).is_err());
}
