//! Host tests on small device trees compiled with `dtc` at test time: Xen multiboot modules,
//! multi-level and empty `ranges`, aliases with options, PSCI over HVC, a GICv3 with two
//! redistributor regions, `interrupts-extended`, `/reserved-memory` and `/memreserve/`.

#![forbid(unsafe_code)]

use std::process::Command;
use std::string::String;
use std::vec::Vec;

use super::early::EarlyInfo;
use super::*;

pub(crate) fn dtc(source: &str) -> Vec<u8> {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(std::format!("el2visor-dts-{}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, out) = (dir.join("t.dts"), dir.join("t.dtb"));
    std::fs::write(&src, source).unwrap();
    let res = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("dtc (device-tree-compiler) is needed: run tests/setup.sh");
    assert!(
        res.status.success(),
        "dtc: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let dtb = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    dtb
}

const BOARD: &str = r#"
/dts-v1/;
/memreserve/ 0x80000000 0x10000;
/ {
    model = "el2visor test board";
    compatible = "el2visor,test";
    #address-cells = <2>;
    #size-cells = <2>;
    interrupt-parent = <&gic>;

    aliases { serial0 = "/bus@f0000000/sub@100000/uart@2000"; };

    chosen {
        #address-cells = <2>;
        #size-cells = <2>;
        bootargs = "coherency=fwb guest_cpus=2";
        stdout-path = "serial0:115200n8";
        linux,initrd-start = <0x0 0x48000000>;
        linux,initrd-end = <0x0 0x48100000>;
        module@42000000 {
            compatible = "multiboot,kernel", "multiboot,module";
            reg = <0x0 0x42000000 0x0 0x1000000>;
            bootargs = "console=ttyAMA0 earlycon";
        };
        module@43000000 {
            compatible = "multiboot,ramdisk", "multiboot,module";
            reg = <0x0 0x43000000 0x0 0x200000>;
        };
        module@44000000 {
            compatible = "multiboot,device-tree", "multiboot,module";
            reg = <0x0 0x44000000 0x0 0x10000>;
        };
    };

    psci { compatible = "arm,psci-0.2", "arm,psci"; method = "hvc"; };

    cpus {
        #address-cells = <2>;
        #size-cells = <0>;
        enable-method = "psci";
        cpu@0 { device_type = "cpu"; reg = <0x0 0x0>; };
        cpu@100 { device_type = "cpu"; reg = <0x0 0x100>; };
        cpu@10000 { device_type = "cpu"; reg = <0x1 0x10000>; status = "disabled"; };
    };

    memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x40000000>; };
    memory@100000000 { device_type = "memory"; reg = <0x1 0x0 0x0 0x80000000>; };

    reserved-memory {
        #address-cells = <2>;
        #size-cells = <2>;
        ranges;
        fw@7f000000 { reg = <0x0 0x7f000000 0x0 0x100000>; no-map; };
        off@7e000000 { reg = <0x0 0x7e000000 0x0 0x100000>; status = "disabled"; };
        pool { compatible = "shared-dma-pool"; size = <0x0 0x400000>; reusable; };
    };

    gic: interrupt-controller@8000000 {
        compatible = "arm,gic-v3";
        #interrupt-cells = <3>;
        interrupt-controller;
        #redistributor-regions = <2>;
        reg = <0x0 0x8000000 0x0 0x10000>,
              <0x0 0x80a0000 0x0 0x20000>,
              <0x0 0x90a0000 0x0 0x40000>,
              <0x0 0x8100000 0x0 0x2000>;
        interrupts = <1 9 4>;
    };

    gpio: gpio-controller {
        #interrupt-cells = <2>;
        interrupt-controller;
    };

    timer {
        compatible = "arm,armv8-timer";
        interrupts = <1 13 0xf08>, <1 14 0xf08>, <1 11 0xf08>, <1 10 0xf08>, <1 12 0xf08>;
    };

    bus@f0000000 {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges = <0x0 0x0 0xf0000000 0x1000000>;

        sub@100000 {
            compatible = "simple-bus";
            #address-cells = <1>;
            #size-cells = <1>;
            ranges = <0x2000 0x102000 0x1000>;
            uart@2000 {
                compatible = "arm,pl011", "arm,primecell";
                reg = <0x2000 0x1000>;
                interrupts = <0 5 4>;
            };
            beyond@8000 { reg = <0x8000 0x10>; };
        };
        flat {
            #address-cells = <1>;
            #size-cells = <1>;
            ranges;
            button@300000 {
                reg = <0x300000 0x100>;
                interrupts-extended = <&gpio 7 2>, <&gic 0 6 1>;
            };
        };
        i2c@400000 {
            reg = <0x400000 0x1000>;
            #address-cells = <1>;
            #size-cells = <0>;
            sensor@48 { reg = <0x48>; };
        };
        stray@500000 { reg = <0x500000 0x10>; status = "disabled"; };
    };
};
"#;

#[test]
fn test_board() {
    let d = dtc(BOARD);
    let p = Platform::from_dtb(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.model, "el2visor test board");
    assert_eq!(
        p.memory,
        [
            PaRange::new(0x4000_0000, 0x4000_0000),
            PaRange::new(1 << 32, 0x8000_0000)
        ]
    );
    assert_eq!(
        p.reserved,
        [
            Reserved {
                range: PaRange::new(0x8000_0000, 0x1_0000),
                source: ReservedSource::MemReserve
            },
            Reserved {
                range: PaRange::new(0x7f00_0000, 0x10_0000),
                source: ReservedSource::Node {
                    path: "/reserved-memory/fw@7f000000".into(),
                    no_map: true
                },
            },
        ]
    );
    let cpus: Vec<_> = p.cpus.iter().map(|c| (c.mpidr, c.status)).collect();
    assert_eq!(
        cpus,
        [
            (0, Status::Okay),
            (0x100, Status::Okay),
            (0x1_0001_0000, Status::Disabled)
        ]
    );
    assert_eq!(p.enabled_cpus().count(), 2);
    assert!(
        p.cpus.iter().all(|c| c.enable == EnableMethod::Psci),
        "inherited from /cpus"
    );
    let psci = p.psci.clone().unwrap();
    assert_eq!((psci.conduit, psci.version), (Conduit::Hvc, (0, 2)));

    let g = p.gic.clone().unwrap();
    assert_eq!(g.maintenance_intid, Some(25));
    match g.kind {
        GicKind::V3 {
            dist,
            redists,
            cpu,
            hyp,
            ..
        } => {
            assert_eq!(dist, PaRange::new(0x800_0000, 0x1_0000));
            assert_eq!(
                redists,
                [
                    PaRange::new(0x80a_0000, 0x2_0000),
                    PaRange::new(0x90a_0000, 0x4_0000)
                ]
            );
            assert_eq!(cpu, Some(PaRange::new(0x810_0000, 0x2000)));
            assert_eq!(hyp, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.timer.unwrap().hyp_virt, Some(28));

    // Two levels of ranges: 0x2000 -> 0x102000 in /bus, -> 0xf010_2000 on the CPU.
    let c = p.console.clone().unwrap();
    assert_eq!(
        (c.base.raw(), c.size, c.intid),
        (0xf010_2000, 0x1000, Some(37))
    );
    assert_eq!(c.options.as_deref(), Some("115200n8"));
    assert_eq!(c.choice, ConsoleChoice::StdoutPath);
    assert_eq!(
        EarlyInfo::from_dtb(&d).unwrap().console,
        Some(PaRange::new(0xf010_2000, 0x1000))
    );

    // Empty ranges inside a ranged bus; interrupts-extended across two controllers.
    let b = p.device("/bus@f0000000/flat/button@300000").unwrap();
    assert_eq!(b.regs, [PaRange::new(0xf030_0000, 0x100)]);
    assert_eq!(
        b.irqs[1],
        Irq::Gic {
            intid: 38,
            flags: 1
        }
    );
    assert!(matches!(&b.irqs[0], Irq::Other { specifier, .. } if specifier == &[7, 2]));
    // An I2C device is not memory-mapped; a disabled device is listed with its status.
    assert!(p.device("/bus@f0000000/i2c@400000").is_some());
    assert!(!p.devices.iter().any(|d| d.path.ends_with("sensor@48")));
    assert_eq!(
        p.device("/bus@f0000000/stray@500000").unwrap().status,
        Status::Disabled
    );
    assert!(p.devices_compatible("arm,pl011").count() == 1);
    assert!(p
        .bus_windows
        .iter()
        .any(|w| w.bus == "/bus@f0000000/sub@100000"
            && w.child_base == 0x2000
            && w.cpu == PaRange::new(0xf010_2000, 0x1000)));

    let ch = &p.chosen;
    assert_eq!(ch.bootargs.as_deref(), Some("coherency=fwb guest_cpus=2"));
    assert_eq!(ch.initrd, Some(PaRange::new(0x4800_0000, 0x10_0000)));
    let m: Vec<_> = ch
        .modules
        .iter()
        .map(|m| (m.kind, m.range, m.bootargs.as_deref()))
        .collect();
    assert_eq!(
        m,
        [
            (
                ModuleKind::Kernel,
                PaRange::new(0x4200_0000, 0x100_0000),
                Some("console=ttyAMA0 earlycon")
            ),
            (
                ModuleKind::Ramdisk,
                PaRange::new(0x4300_0000, 0x20_0000),
                None
            ),
            (
                ModuleKind::DeviceTree,
                PaRange::new(0x4400_0000, 0x1_0000),
                None
            ),
        ]
    );
    assert_eq!(ch.modules[0].path, "/chosen/module@42000000");
}

#[test]
fn untranslatable_and_missing() {
    let p = Platform::from_dtb(&dtc(BOARD)).unwrap();
    assert_eq!(p.untranslated.len(), 1, "{:?}", p.untranslated);
    assert_eq!(
        p.untranslated[0].path,
        "/bus@f0000000/sub@100000/beyond@8000"
    );
    assert!(
        p.untranslated[0].reason.contains("outside every window"),
        "{:?}",
        p.untranslated
    );

    // The console must be reachable: an untranslatable one is an error, not a silent default.
    let outside = BOARD.replace("reg = <0x2000 0x1000>;", "reg = <0x9000 0x1000>;");
    let e = Platform::from_dtb(&dtc(&outside)).unwrap_err();
    assert!(
        std::format!("{e}").contains("uart@2000: address 0x9000 cannot be translated"),
        "{e}"
    );
    assert!(EarlyInfo::from_dtb(&dtc(&outside)).is_err());

    let no_mem = BOARD
        .replace(
            "memory@40000000 { device_type = \"memory\"; reg = <0x0 0x40000000 0x0 0x40000000>; };",
            "",
        )
        .replace(
            "memory@100000000 { device_type = \"memory\"; reg = <0x1 0x0 0x0 0x80000000>; };",
            "",
        );
    let e = Platform::from_dtb(&dtc(&no_mem)).unwrap_err();
    assert!(std::format!("{e}").contains("no /memory node"), "{e}");
    assert!(EarlyInfo::from_dtb(&dtc(&no_mem)).is_err());

    let bad_psci = BOARD.replace("method = \"hvc\";", "method = \"svc\";");
    let e = Platform::from_dtb(&dtc(&bad_psci)).unwrap_err();
    assert!(
        std::format!("{e}").contains("/psci: property method"),
        "{e}"
    );

    let no_release = BOARD.replace(
        "enable-method = \"psci\";",
        "enable-method = \"spin-table\";",
    );
    let e = Platform::from_dtb(&dtc(&no_release)).unwrap_err();
    assert!(std::format!("{e}").contains("cpu-release-addr"), "{e}");
}

#[test]
fn pci_windows_keep_their_prefetchable_bit() {
    let src = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    pcie@10000000 {
        compatible = "pci-host-ecam-generic";
        device_type = "pci";
        #address-cells = <3>;
        #size-cells = <2>;
        reg = <0x40 0x10000000 0 0x10000000>;
        ranges = <0x02000000 0 0x10000000 0 0x10000000 0 0x10000000>,
                 <0x43000000 0x80 0 0x80 0 0x10 0>;
    };
};
"#;
    let p = Platform::from_dtb(&dtc(src)).unwrap();
    let w: Vec<_> = p.bus_windows.iter().map(|w| (w.cpu.start.raw(), w.cpu.size, w.child_base, w.prefetchable)).collect();
    assert_eq!(w, vec![(0x1000_0000, 0x1000_0000, 0x1000_0000, false), (0x80_0000_0000, 0x10_0000_0000, 0x80_0000_0000, true)]);
}

/// What the early probe says lives in RAM, before the heap: the test board's `/memreserve/` and
/// `no-map` region (not the disabled one, not the dynamic pool), its initrd and modules; Xen
/// dom0less domains' modules one level further down, in their own cells.
#[test]
fn early_occupancy_without_a_heap() {
    let o = super::early::occupancy(&dtc(BOARD)).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.complete());
    assert_eq!(o.firmware.as_slice(), [PaRange::new(0x8000_0000, 0x1_0000), PaRange::new(0x7f00_0000, 0x10_0000)]);
    assert_eq!(
        o.loaded.as_slice(),
        [
            PaRange::new(0x4800_0000, 0x10_0000),
            PaRange::new(0x4200_0000, 0x100_0000),
            PaRange::new(0x4300_0000, 0x20_0000),
            PaRange::new(0x4400_0000, 0x1_0000),
        ]
    );
    let domu = BOARD.replace(
        "module@44000000 {",
        r#"domU1 {
            compatible = "xen,domain";
            #address-cells = <1>;
            #size-cells = <1>;
            module@50000000 { compatible = "multiboot,kernel", "multiboot,module"; reg = <0x50000000 0x800000>; };
        };
        module@44000000 {"#,
    );
    let o = super::early::occupancy(&dtc(&domu)).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.loaded.as_slice().contains(&PaRange::new(0x5000_0000, 0x80_0000)), "{:x?}", o.loaded.as_slice());
    // More than the early probe keeps: it says so rather than leaving some out silently.
    let many: String = (0..super::early::EARLY_RANGES + 1)
        .map(|i| std::format!("m{i} {{ compatible = \"multiboot,module\"; reg = <0x0 {:#x} 0x0 0x1000>; }};\n", 0x6000_0000 + i * 0x1000))
        .collect();
    let crowded = BOARD.replace("module@44000000 {", &std::format!("{many}module@44000000 {{"));
    assert!(!super::early::occupancy(&dtc(&crowded)).unwrap().complete());
}
