//! DT discovery on real DTBs made at test time: QEMU's `virt` (dumpdtb) and a dtc-compiled tree
//! with nested `ranges`, an aliased stdout-path with options and an SMC conduit.

extern crate std;
use super::*;
use std::path::PathBuf;
use std::process::Command;
use std::string::String;
use std::vec::Vec;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("probe-guest-dt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir.join(name)
}

fn qemu_virt_dtb(extra: &[&str]) -> Vec<u8> {
    // One file per argument list: tests run in parallel.
    let name: String = extra.concat().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let out = scratch(&format!("virt-{name}.dtb"));
    let mut args: Vec<String> = ["-M"].iter().map(|s| String::from(*s)).collect();
    args.push(format!("virt,dumpdtb={}", out.display()));
    for a in [
        "-cpu",
        "max",
        "-m",
        "512M",
        "-nographic",
        "-display",
        "none",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| String::from(*s)));
    let status = Command::new("qemu-system-aarch64")
        .args(&args)
        .status()
        .expect("qemu-system-aarch64 is needed to dump the virt DTB (run tests/setup.sh)");
    assert!(status.success(), "QEMU dumpdtb failed");
    std::fs::read(&out).expect("read the dumped DTB")
}

/// Compile `source`; `name` keeps parallel tests apart.
fn dtc(name: &str, source: &str) -> Vec<u8> {
    let src = scratch(&format!("{name}.dts"));
    let out = scratch(&format!("{name}.dtb"));
    std::fs::write(&src, source).expect("write the DTS");
    let status = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-q", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("dtc (device-tree-compiler) is needed for this test");
    assert!(status.success(), "dtc failed");
    std::fs::read(&out).expect("read the DTB")
}

#[test]
fn qemu_virt() {
    let blob = qemu_virt_dtb(&[]);
    let fdt = Fdt::new(&blob).expect("valid DTB");
    let p = discover(&fdt).expect("discover");
    assert_eq!(
        p.ram(),
        &[Region {
            base: 0x4000_0000,
            size: 0x2000_0000
        }]
    );
    assert_eq!(p.uart, Some(0x0900_0000));
    assert_eq!(p.conduit, Conduit::Hvc);
    let pt = p.passthrough.expect("virt has virtio-mmio nodes");
    assert_eq!(pt.compatible, "virtio,mmio");
    assert!(
        (0x0a00_0000..0x0a00_4000).contains(&pt.region.base),
        "{:#x}",
        pt.region.base
    );
    assert_eq!(pt.region.size, 0x200);
    assert!(!p.bench);
    assert_eq!(p.fw_cfg, Some(FwCfg { base: 0x0902_0000, in_dt: true }));
}

#[test]
fn fw_cfg_withheld_or_absent() {
    let virt = r#"/dts-v1/; / { compatible = "linux,dummy-virt"; #address-cells = <2>; #size-cells = <2>;
        memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x8000000>; }; };"#;
    let fdt_blob = dtc("fwcfg-virt", virt);
    let f = fw_cfg(&Fdt::new(&fdt_blob).unwrap()).unwrap();
    assert_eq!(f, Some(FwCfg { base: QEMU_VIRT_FW_CFG, in_dt: false }), "withheld: aimed at QEMU virt's address");
    let other = virt.replace("linux,dummy-virt", "raspberrypi,4-model-b");
    let blob = dtc("fwcfg-pi", &other);
    assert_eq!(fw_cfg(&Fdt::new(&blob).unwrap()).unwrap(), None, "not QEMU virt: nothing to aim at");
}

#[test]
fn qemu_virt_bench_bootargs() {
    // -append needs -kernel; any existing file does for dumpdtb.
    let kernel = scratch("dummy-kernel");
    std::fs::write(&kernel, [0u8; 64]).expect("write a dummy kernel");
    let k = kernel.display().to_string();
    let blob = qemu_virt_dtb(&["-kernel", &k, "-append", "quiet bench"]);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    assert!(p.bench);
}

const NESTED: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    aliases { serial0 = "/soc/serial@7e201000"; };
    chosen { stdout-path = "serial0:115200n8"; bootargs = "benchmark=no"; };
    psci { compatible = "arm,psci-1.0"; method = "smc"; };
    memory@0 { device_type = "memory"; reg = <0x0 0x0 0x0 0x3b400000>, <0x0 0x40000000 0x0 0x40000000>; };
    soc {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges = <0x7e000000 0x0 0xfe000000 0x1800000>;
        serial@7e201000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x7e201000 0x200>; };
        serial@7e215040 { compatible = "brcm,bcm2835-aux-uart"; reg = <0x7e215040 0x40>; };
        inner {
            compatible = "simple-bus";
            #address-cells = <1>;
            #size-cells = <1>;
            ranges;
            virtio@7e300000 { compatible = "virtio,mmio"; reg = <0x7e300000 0x200>; };
        };
    };
};
"#;

#[test]
fn nested_ranges_alias_and_smc() {
    let blob = dtc("nested", NESTED);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    assert_eq!(
        p.ram(),
        &[
            Region {
                base: 0,
                size: 0x3b40_0000
            },
            Region {
                base: 0x4000_0000,
                size: 0x4000_0000
            }
        ]
    );
    assert_eq!(p.uart, Some(0xfe20_1000));
    assert_eq!(p.conduit, Conduit::Smc);
    assert_eq!(p.passthrough.map(|d| d.region.base), Some(0xfe30_0000));
    assert!(!p.bench, "'benchmark=no' is not the word 'bench'");
}

#[test]
fn missing_memory_is_an_error() {
    let blob = dtc(
        "nomem",
        "/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>; chosen { }; };\n",
    );
    assert_eq!(
        discover(&Fdt::new(&blob).expect("valid DTB")).err(),
        Some(DtError::NoMemory)
    );
}

#[test]
fn bench_word() {
    assert!(wants_bench("console=ttyAMA0 bench"));
    assert!(!wants_bench("benchmark"));
    assert!(!wants_bench(""));
}

#[test]
fn qemu_virt_unowned_is_first_gib_above_ram() {
    let blob = qemu_virt_dtb(&[]);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    // RAM 0x40000000+512M ends at 0x60000000; nothing of virt's sits at 2 GiB (its PCIe MMIO
    // window ends at 0x3eff0000, the high ECAM and window start at 256 GiB and 512 GiB).
    assert_eq!(p.unowned, Some(0x8000_0000));
}

const CLAIMS: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <1>;
    memory@0 { device_type = "memory"; reg = <0x0 0x0 0x10000000>; };
    soc {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        /* a window whose parent side covers 1 GiB, not its child side */
        ranges = <0x7e000000 0x0 0x40000000 0x1000>;
    };
    dev@10 {
        /* the second reg entry covers 2 GiB */
        reg = <0x0 0x10 0x10>, <0x0 0x80000000 0x1000>;
    };
    pcie@1000 {
        device_type = "pci";
        #address-cells = <3>;
        #size-cells = <2>;
        reg = <0x0 0x1000 0x1000>;
        /* 3-cell child address, parent window 3 GiB + 1 GiB */
        ranges = <0x02000000 0x0 0x0  0x0 0xc0000000  0x0 0x40000000>;
    };
    nomap {
        /* no ranges: its children are not memory-mapped and claim nothing */
        #address-cells = <2>;
        #size-cells = <1>;
        thing@100000000 { reg = <0x1 0x0 0x1000>; };
    };
};
"#;

#[test]
fn unowned_skips_reg_entries_and_windows_but_not_unmapped_buses() {
    let blob = dtc("claims", CLAIMS);
    let fdt = Fdt::new(&blob).expect("valid DTB");
    let p = discover(&fdt).expect("discover");
    assert_eq!(p.unowned, Some(0x1_0000_0000));
    // A RAM end on a 1 GiB boundary is itself the first candidate.
    let ram = [Region {
        base: 0,
        size: 0x1_0000_0000,
    }];
    assert_eq!(unowned_address(&fdt, &ram), Ok(Some(0x1_0000_0000)));
    let high = [Region {
        base: 0,
        size: (1 << 48) - GIB,
    }];
    assert_eq!(unowned_address(&fdt, &high), Ok(Some((1 << 48) - GIB)));
    let full = [Region {
        base: 0,
        size: 1 << 48,
    }];
    assert_eq!(unowned_address(&fdt, &full), Ok(None));
}

#[test]
fn qemu_virt_gic_and_rtc() {
    let blob = qemu_virt_dtb(&["-M", "gic-version=3"]);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    let Some(Gic::V3 { dist, redist, stride }) = p.gic else {
        panic!("virt gic-version=3: {:?}", p.gic)
    };
    assert_eq!((dist, redist.base, stride), (0x0800_0000, 0x080a_0000, None));
    assert_eq!(p.gic.unwrap().redist_stride(), 0x2_0000);
    // virt's PL031 is SPI 2, its PL011 SPI 1.
    assert_eq!(p.rtc, Some(Rtc { base: 0x0901_0000, intid: 34 }));
    assert!(p.used_spis.contains(33) && p.used_spis.contains(34) && !p.used_spis.contains(95));
}

#[test]
fn qemu_virt_gic2() {
    let blob = qemu_virt_dtb(&["-M", "gic-version=2", "-smp", "2"]);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    assert_eq!(p.gic, Some(Gic::V2 { dist: 0x0800_0000, cpu: 0x0801_0000 }));
}

#[test]
fn redistributor_stride_property() {
    let src = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x10000000>; };
    intc@8000000 {
        compatible = "arm,gic-v3";
        interrupt-controller;
        #interrupt-cells = <3>;
        reg = <0x0 0x8000000 0x0 0x10000>, <0x0 0x80a0000 0x0 0x80000>;
        redistributor-stride = <0x0 0x40000>;
    };
    rtc@9010000 { compatible = "arm,pl031", "arm,primecell"; reg = <0x0 0x9010000 0x0 0x1000>; interrupts = <0 2 4>; };
};
"#;
    let blob = dtc("stride", src);
    let p = discover(&Fdt::new(&blob).expect("valid DTB")).expect("discover");
    let g = p.gic.expect("a GICv3");
    assert_eq!(g.redist_stride(), 0x4_0000);
    assert!(matches!(g, Gic::V3 { redist: Region { base: 0x080a_0000, size: 0x8_0000 }, .. }));
}

/// What the secondary-vCPU and scan probes take from the DT: every CPU's MPIDR, the GIC version,
/// the bootargs words, and every `reg`/`ranges` region (RAM, the UART, the PCIe windows).
#[test]
fn cpus_gic_and_claimed_regions() {
    let blob = qemu_virt_dtb(&["-smp", "3", "-M", "gic-version=3"]);
    let fdt = Fdt::new(&blob).expect("valid DTB");
    let p = discover(&fdt).expect("discover");
    assert_eq!(p.cpus(), &[0, 1, 2]);
    assert!(p.gic_v3 && !p.reset && !p.reset_race && !p.scan);
    let mut out = [Region::default(); 256];
    let n = super::claimed_regions(&fdt, &mut out).unwrap().expect("fits");
    let claimed = &out[..n];
    let covers = |a: u64| claimed.iter().any(|r| r.base <= a && a < r.base + r.size);
    assert!(covers(0x4000_0000) && covers(0x5fff_f000), "RAM");
    assert!(covers(0x0900_0000), "the PL011");
    assert!(covers(0x0800_0000), "the GIC distributor");
    assert!(!covers(0x6000_0000), "above RAM is nobody's");
    assert_eq!(p.gicc, None, "a GICv3 has no GICC frame");
    let v2 = discover(&Fdt::new(&qemu_virt_dtb(&["-M", "gic-version=2", "-smp", "2", "-S"])).unwrap()).unwrap();
    assert_eq!((v2.gic_v3, v2.gicc), (false, Some(0x0801_0000)), "virt's GICv2 CPU interface");
    // Too small an array says so.
    assert_eq!(super::claimed_regions(&fdt, &mut out[..2]).unwrap(), None);
}

#[test]
fn bootargs_words() {
    assert!(super::has_word(Some("x reset_race y"), "reset_race"));
    assert!(!super::has_word(Some("reset_race"), "reset"));
    assert!(!super::has_word(None, "scan"));
}

#[test]
fn its_only_when_enabled() {
    let v3 = qemu_virt_dtb(&["-M", "gic-version=3"]);
    let fdt = Fdt::new(&v3).unwrap();
    assert_eq!(its(&fdt).unwrap(), Some(0x808_0000));
    let v2 = qemu_virt_dtb(&[]);
    assert_eq!(its(&Fdt::new(&v2).unwrap()).unwrap(), None);
    let disabled = dtc(
        "its-disabled",
        "/dts-v1/; / { #address-cells = <2>; #size-cells = <2>;
         intc@8000000 { compatible = \"arm,gic-v3\"; interrupt-controller; #address-cells = <2>; #size-cells = <2>; ranges;
           its@8080000 { compatible = \"arm,gic-v3-its\"; msi-controller; reg = <0 0x8080000 0 0x20000>; status = \"disabled\"; }; }; };",
    );
    assert_eq!(its(&Fdt::new(&disabled).unwrap()).unwrap(), None);
}
