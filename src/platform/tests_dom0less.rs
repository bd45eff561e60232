//! Host tests of Xen's dom0less bindings (`xen,domain` nodes under `/chosen`), on device trees
//! compiled with `dtc` at test time, written as ImageBuilder and Xen's docs write them.

#![forbid(unsafe_code)]

use std::string::ToString;
use std::vec::Vec;

use super::tests_dts::dtc;
use super::*;

const DOM0LESS: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x80000000>; };
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    chosen {
        #address-cells = <2>;
        #size-cells = <2>;
        xen,xen-bootargs = "loglevel=debug";
        module@49000000 {
            compatible = "multiboot,kernel", "multiboot,module";
            reg = <0 0x49000000 0 0x1000000>;
            bootargs = "console=ttyAMA0";
        };
        domU1 {
            compatible = "xen,domain";
            #address-cells = <1>;
            #size-cells = <1>;
            memory = <0 0x40000>;
            cpus = <2>;
            vpl011;
            module@50000000 {
                compatible = "multiboot,kernel", "multiboot,module";
                reg = <0x50000000 0x800000>;
                bootargs = "console=ttyAMA0 rdinit=/init";
            };
            module@51000000 {
                compatible = "multiboot,ramdisk", "multiboot,module";
                reg = <0x51000000 0x400000>;
            };
            module@52000000 {
                compatible = "multiboot,device-tree", "multiboot,module";
                reg = <0x52000000 0x1000>;
            };
        };
        domU2 {
            compatible = "xen,domain";
            #address-cells = <2>;
            #size-cells = <1>;
            memory = <0x20000>;
            cpus = <1>;
            module@1_00000000 {
                compatible = "multiboot,kernel", "multiboot,module";
                reg = <0x1 0x0 0x600000>;
            };
        };
    };
};
"#;

#[test]
fn domains_are_read_with_their_own_cells() {
    let p = Platform::from_dtb(&dtc(DOM0LESS)).unwrap();
    let ch = &p.chosen;
    assert_eq!(ch.bootargs.as_deref(), Some("loglevel=debug"), "xen,xen-bootargs stands in for bootargs");
    assert_eq!(ch.modules.len(), 1, "the dom0-like VM keeps the modules directly under /chosen");
    assert_eq!(ch.domains.len(), 2);
    let d1 = &ch.domains[0];
    assert_eq!((d1.name.as_str(), d1.memory, d1.cpus, d1.vpl011), ("domU1", 256 << 20, 2, true));
    let kinds: Vec<_> = d1.modules.iter().map(|m| (m.kind, m.range, m.bootargs.clone())).collect();
    assert_eq!(
        kinds,
        [
            (ModuleKind::Kernel, PaRange::new(0x5000_0000, 0x80_0000), Some("console=ttyAMA0 rdinit=/init".to_string())),
            (ModuleKind::Ramdisk, PaRange::new(0x5100_0000, 0x40_0000), None),
            (ModuleKind::DeviceTree, PaRange::new(0x5200_0000, 0x1000), None),
        ]
    );
    assert_eq!(d1.modules[0].path, "/chosen/domU1/module@50000000");
    let d2 = &ch.domains[1];
    assert_eq!((d2.name.as_str(), d2.memory, d2.cpus, d2.vpl011), ("domU2", 128 << 20, 1, false));
    assert_eq!(d2.modules[0].range, PaRange::new(0x1_0000_0000, 0x60_0000), "two address cells, one size cell");
}

#[test]
fn a_bad_domain_is_one_clear_error_naming_it() {
    for (from, to, says) in [
        ("cpus = <2>;", "", "/chosen/domU1: property cpus"),
        ("memory = <0 0x40000>;", "", "/chosen/domU1: property memory"),
        ("memory = <0 0x40000>;", "memory = <0 0>;", "/chosen/domU1: property memory"),
        ("cpus = <1>;", "cpus = <0>;", "/chosen/domU2: property cpus"),
        ("reg = <0x51000000 0x400000>;", "reg = <0x51000000 0x0>;", "module@51000000: property reg"),
        ("multiboot,ramdisk", "multiboot,kernel", "/chosen/domU1: property compatible"),
    ] {
        let src = DOM0LESS.replacen(from, to, 1);
        let e = Platform::from_dtb(&dtc(&src)).unwrap_err();
        let line = std::format!("{e}");
        assert!(line.contains(says), "{from} -> {to}: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}
