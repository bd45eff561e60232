//! Host tests of the guest-DT builder: host trees shaped like QEMU virt (GICv2 and GICv3) and the
//! Raspberry Pi 4 are written with vm-fdt here, turned into guest DTs, and read back with `fdt`.

use super::*;
use crate::mm::addr::{Ipa, Pa};
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;
use std::process::Command;

mod hosts;
mod memory_nodes;
use hosts::{dt_props, pi_host, virt_host, Host};

type Props = Vec<(String, Vec<u8>)>;

/// Every node's path and properties, in order.
fn nodes(dtb: &[u8]) -> BTreeMap<String, Props> {
    fn walk(n: FdtNode<'_, '_>, path: &str, out: &mut BTreeMap<String, Props>) {
        out.insert(
            path.to_string(),
            n.properties()
                .map(|p| (p.name.to_string(), p.value.to_vec()))
                .collect(),
        );
        for c in n.children() {
            walk(c, &join(path, c.name), out);
        }
    }
    let fdt = Fdt::new(dtb).unwrap();
    let mut out = BTreeMap::new();
    walk(fdt.find_node("/").unwrap(), "/", &mut out);
    out
}

fn prop<'a>(t: &'a BTreeMap<String, Props>, path: &str, name: &str) -> Option<&'a [u8]> {
    t.get(path)?
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fn be32s(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn cells(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|c| c.to_be_bytes()).collect()
}

fn virt_spec(gic: GuestGic) -> GuestDtSpec {
    GuestDtSpec {
        ram: vec![RamRegion {
            ipa: Ipa(0x4100_0000),
            pa: Pa(0x4100_0000),
            size: 0x3f00_0000,
        }],
        reserved: vec![],
        vcpu_mpidrs: vec![0, 1],
        bootargs: "console=ttyAMA0".into(),
        extra_bootargs: Some("clk_ignore_unused".into()),
        initrd: Some((0x4c00_0000, 0x4c10_0000)),
        stdout_path: None,
        gic: Some(gic),
        drop_paths: vec![],
        disable_paths: vec!["/pl061@9030000".into()],
        drop_props: vec![],
        dt_props: None,
        pvpanic: None,
        keep_its: false,
    }
}

const V2: GuestGic = GuestGic::V2 {
    dist: (0x800_0000, 0x1_0000),
    cpu: (0x801_0000, 0x1_0000),
};
const V3: GuestGic = GuestGic::V3 {
    dist: (0x800_0000, 0x1_0000),
    redist: 0x80a_0000,
    redist_stride: None,
};

/// The rules every guest DT generated from `virt_host` must follow.
fn check_common(host: &[u8], guest: &[u8]) -> BTreeMap<String, Props> {
    let g = nodes(guest);
    let h = nodes(host);
    // Memory: one node, the VM's RAM.
    let mem: Vec<&String> = g.keys().filter(|k| k.starts_with("/memory")).collect();
    assert_eq!(mem, vec!["/memory@41000000"]);
    assert_eq!(
        prop(&g, "/memory@41000000", "reg").unwrap(),
        cells(&[0, 0x4100_0000, 0, 0x3f00_0000])
    );
    // CPUs: regenerated.
    assert!(!g.contains_key("/cpus/cpu-map"));
    for (i, path) in ["/cpus/cpu@0", "/cpus/cpu@1"].iter().enumerate() {
        assert_eq!(be32s(prop(&g, path, "reg").unwrap()), vec![i as u32]);
        assert_eq!(prop(&g, path, "enable-method").unwrap(), b"psci\0");
        assert_eq!(prop(&g, path, "compatible").unwrap(), b"arm,cortex-a57\0");
        assert_eq!(prop(&g, path, "device_type").unwrap(), b"cpu\0");
        assert_eq!(
            be32s(prop(&g, path, "phandle").unwrap()),
            vec![0x8003 + i as u32]
        );
    }
    assert_eq!(g["/cpus/l2-cache0"], h["/cpus/l2-cache0"]);
    // PSCI over HVC.
    assert_eq!(
        prop(&g, "/psci", "compatible").unwrap(),
        b"arm,psci-1.0\0arm,psci-0.2\0"
    );
    assert_eq!(prop(&g, "/psci", "method").unwrap(), b"hvc\0");
    assert!(prop(&g, "/psci", "cpu_on").is_none());
    // Chosen.
    assert_eq!(
        prop(&g, "/chosen", "bootargs").unwrap(),
        b"console=ttyAMA0 clk_ignore_unused\0"
    );
    assert_eq!(
        prop(&g, "/chosen", "linux,initrd-start").unwrap(),
        0x4c00_0000u64.to_be_bytes()
    );
    assert_eq!(
        prop(&g, "/chosen", "linux,initrd-end").unwrap(),
        0x4c10_0000u64.to_be_bytes()
    );
    assert_eq!(
        prop(&g, "/chosen", "rng-seed"),
        prop(&h, "/chosen", "rng-seed")
    );
    assert!(prop(&g, "/chosen", "xen,xen-bootargs").is_none());
    assert!(!g.keys().any(|k| k.starts_with("/chosen/module")));
    // Reserved memory: only what the VM owns, clipped to it.
    assert!(!g.contains_key("/reserved-memory/el2visor@40000000"));
    assert_eq!(
        g["/reserved-memory/shared@50000000"],
        h["/reserved-memory/shared@50000000"]
    );
    assert_eq!(
        prop(&g, "/reserved-memory/straddle@40ff0000", "reg").unwrap(),
        cells(&[0, 0x4100_0000, 0, 0x1_0000])
    );
    assert_eq!(
        g["/reserved-memory/linux,cma"],
        h["/reserved-memory/linux,cma"]
    );
    let fdt = Fdt::new(guest).unwrap();
    let rsv: Vec<(usize, usize)> = fdt
        .memory_reservations()
        .map(|r| (r.address() as usize, r.size()))
        .collect();
    assert_eq!(rsv, vec![(0x5001_0000, 0x1000)]);
    // Disabled node.
    assert_eq!(prop(&g, "/pl061@9030000", "status").unwrap(), b"disabled\0");
    assert_eq!(
        g["/pl061@9030000"]
            .iter()
            .filter(|(n, _)| n == "status")
            .count(),
        1
    );
    // Everything else verbatim.
    for (path, props) in &h {
        let special = [
            "/cpus",
            "/psci",
            "/chosen",
            "/memory",
            "/reserved-memory",
            "/intc",
            "/pl061",
        ];
        if path != "/" && special.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        assert_eq!(g.get(path), Some(props), "{path} not copied verbatim");
    }
    g
}

#[test]
fn virt_gicv2_guest() {
    let host = virt_host(Host::VirtV2);
    let guest = generate(&host, &virt_spec(V2)).unwrap();
    let g = check_common(&host, &guest);
    let intc = "/intc@8000000";
    assert_eq!(
        prop(&g, intc, "reg").unwrap(),
        cells(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x801_0000, 0, 0x1_0000])
    );
    assert_eq!(be32s(prop(&g, intc, "interrupts").unwrap()), vec![1, 9, 4]);
    assert_eq!(be32s(prop(&g, intc, "phandle").unwrap()), vec![0x8001]);
    // The GICv2m frame is the VM's (it owns the PCI bridge): kept, and the bridge's msi-map too.
    assert!(prop(&g, "/intc@8000000/v2m@8020000", "status").is_none());
    assert_eq!(be32s(prop(&g, "/pcie@10000000", "msi-map").unwrap()), vec![0, 0x8002, 0, 0x1_0000]);
    // INTx: the bridge's interrupt-map still names the guest's GIC node, which kept its phandle.
    let map = be32s(prop(&g, "/pcie@10000000", "interrupt-map").unwrap());
    assert_eq!(map, vec![0, 0, 0, 1, 0x8001, 0, 0, 0, 3, 4]);
    assert_eq!(be32s(prop(&g, intc, "phandle").unwrap()), vec![map[4]]);
    assert_eq!(
        prop(&g, "/chosen", "stdout-path").unwrap(),
        b"/pl011@9000000\0"
    );
}

#[test]
fn a_pvpanic_node_under_the_root() {
    let host = virt_host(Host::VirtV3);
    let mut spec = virt_spec(V3);
    spec.pvpanic = Some(0x090c_0000);
    let guest = generate(&host, &spec).unwrap();
    let g = nodes(&guest);
    assert_eq!(prop(&g, "/pvpanic@90c0000", "compatible").unwrap(), b"qemu,pvpanic-mmio\0");
    assert_eq!(prop(&g, "/pvpanic@90c0000", "reg").unwrap(), cells(&[0, 0x90c_0000, 0, 0x1000]));
    assert!(prop(&nodes(&generate(&host, &virt_spec(V3)).unwrap()), "/pvpanic@90c0000", "reg").is_none());
}

#[test]
fn msi_references_to_a_dropped_v2m_frame_go() {
    let host = virt_host(Host::VirtV2);
    let mut spec = virt_spec(V2);
    spec.drop_paths = vec!["/intc@8000000/v2m@8020000".into()];
    let g = nodes(&generate(&host, &spec).unwrap());
    assert!(!g.contains_key("/intc@8000000/v2m@8020000"));
    assert!(prop(&g, "/pcie@10000000", "msi-map").is_none());
    assert!(prop(&g, "/pcie@10000000", "msi-map-mask").is_none());
    assert!(prop(&g, "/pcie@10000000", "reg").is_some(), "the bridge itself stays");
}

#[test]
fn virt_gicv3_guest_with_the_uart_taken_away() {
    let host = virt_host(Host::VirtV3);
    let mut spec = virt_spec(V3);
    spec.drop_paths = vec!["/pl011@9000000".into()];
    let guest = generate(&host, &spec).unwrap();
    let g = nodes(&guest);
    let intc = "/intc@8000000";
    assert_eq!(
        prop(&g, intc, "reg").unwrap(),
        cells(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 0x4_0000])
    );
    assert_eq!(
        be32s(prop(&g, intc, "#redistributor-regions").unwrap()),
        vec![1]
    );
    assert!(prop(&g, intc, "redistributor-stride").is_none());
    assert_eq!(
        prop(&g, "/intc@8000000/its@8080000", "status").unwrap(),
        b"disabled\0"
    );
    // No virtual ITS: the bridge advertises no MSIs, so Linux uses INTx.
    assert!(prop(&g, "/pcie@10000000", "msi-map").is_none());
    assert!(prop(&g, "/pcie@10000000", "msi-map-mask").is_none());
    assert!(!g.contains_key("/pl011@9000000"));
    assert!(prop(&g, "/aliases", "serial0").is_none());
    assert_eq!(prop(&g, "/aliases", "gpio0").unwrap(), b"/pl061@9030000\0");
    assert!(
        prop(&g, "/chosen", "stdout-path").is_none(),
        "stdout pointed at the dropped UART"
    );

    spec.stdout_path = Some("serial1:115200n8".into());
    spec.vcpu_mpidrs = (0..18).map(crate::vm::config::vcpu_mpidr).collect();
    if let Some(GuestGic::V3 { redist_stride, .. }) = &mut spec.gic {
        *redist_stride = Some(0x4_0000);
    }
    let g = nodes(&generate(&host, &spec).unwrap());
    assert_eq!(
        prop(&g, "/chosen", "stdout-path").unwrap(),
        b"serial1:115200n8\0"
    );
    assert_eq!(
        be32s(prop(&g, "/cpus/cpu@101", "reg").unwrap()),
        vec![0x101]
    );
    assert!(prop(&g, "/cpus/cpu@101", "phandle").is_none());
    assert_eq!(
        prop(&g, "/cpus/cpu@101", "next-level-cache").unwrap(),
        cells(&[0x8010])
    );
    assert_eq!(
        prop(&g, intc, "reg").unwrap(),
        cells(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 18 * 0x4_0000])
    );
    assert_eq!(
        prop(&g, intc, "redistributor-stride").unwrap(),
        0x4_0000u64.to_be_bytes()
    );
}

#[test]
fn errors_are_values() {
    let host = virt_host(Host::VirtV2);
    let e = generate(&host, &virt_spec(V3)).unwrap_err();
    assert_eq!(e, GuestDtError::NoGic { version: "GICv3" });
    let mut spec = virt_spec(V2);
    spec.drop_paths = vec!["/uart@1234".into()];
    assert_eq!(
        generate(&host, &spec).unwrap_err().to_string(),
        "guest DT: no node /uart@1234 in the host DT (asked to drop it): check the path"
    );
    spec.drop_paths.clear();
    spec.vcpu_mpidrs.clear();
    assert_eq!(generate(&host, &spec), Err(GuestDtError::NoVcpus));
    assert_eq!(
        generate(&host[..20], &virt_spec(V2)),
        Err(GuestDtError::HostDtb(
            "shorter than its header or its totalsize (truncated)"
        ))
    );
    let mut garbage = host.clone();
    garbage[0] ^= 0xff;
    assert_eq!(
        generate(&garbage, &virt_spec(V2)),
        Err(GuestDtError::HostDtb(
            "no FDT magic (not a device tree blob)"
        ))
    );
    let mut bad_gic = virt_spec(V2);
    bad_gic.gic = Some(GuestGic::V2 {
        dist: (0x800_0000, 0x1_0000),
        cpu: (1 << 33, 0x1000),
    });
    assert!(
        generate(&host, &bad_gic).is_ok(),
        "2 address cells hold a 34-bit address"
    );
}

#[test]
fn pi_gic_reg_is_translated_back_through_soc_ranges() {
    let host = pi_host();
    let spec = GuestDtSpec {
        ram: vec![RamRegion {
            ipa: Ipa(0x20_0000),
            pa: Pa(0x20_0000),
            size: 0x3b20_0000,
        }],
        vcpu_mpidrs: vec![0, 1, 2, 3],
        bootargs: "console=ttyAMA0".into(),
        gic: Some(GuestGic::V2 {
            dist: (0xff84_1000, 0x1000),
            cpu: (0xff84_2000, 0x2000),
        }),
        disable_paths: vec!["/soc/hdmi@7ef00700".into()],
        ..GuestDtSpec::default()
    };
    let guest = generate(&host, &spec).unwrap();
    let g = nodes(&guest);
    let gic = "/soc/interrupt-controller@40041000";
    assert_eq!(
        be32s(prop(&g, gic, "reg").unwrap()),
        vec![0x4004_1000, 0x1000, 0x4004_2000, 0x2000]
    );
    assert_eq!(
        prop(&g, "/soc/hdmi@7ef00700", "status").unwrap(),
        b"disabled\0"
    );
    assert_eq!(
        be32s(prop(&g, "/memory@200000", "reg").unwrap()),
        vec![0, 0x20_0000, 0x3b20_0000]
    );
    assert!(prop(&g, "/cpus/cpu@3", "cpu-release-addr").is_none());
    assert_eq!(prop(&g, "/cpus/cpu@3", "enable-method").unwrap(), b"psci\0");
    assert_eq!(prop(&g, "/psci", "method").unwrap(), b"hvc\0");
    assert_eq!(
        prop(&g, "/chosen", "bootargs").unwrap(),
        b"console=ttyAMA0\0"
    );
    assert_eq!(
        Fdt::new(&guest).unwrap().memory_reservations().count(),
        0,
        "page 0 is not the VM's"
    );

    // RAM from 0, the way el2visor gives it now: page 0 (the host's /memreserve/, the spin table)
    // stays in /memory and reserved; a range the spec adds is reserved once, not twice.
    let mut whole = spec.clone();
    whole.ram = vec![RamRegion { ipa: Ipa(0), pa: Pa(0), size: 0x3b40_0000 }];
    whole.reserved = vec![(0, 0x1000), (0x2000, 0x1000)];
    let guest = generate(&host, &whole).unwrap();
    assert_eq!(be32s(prop(&nodes(&guest), "/memory@0", "reg").unwrap()), vec![0, 0, 0x3b40_0000]);
    let rsv: Vec<(usize, usize)> =
        Fdt::new(&guest).unwrap().memory_reservations().map(|r| (r.address() as usize, r.size())).collect();
    assert_eq!(rsv, vec![(0, 0x1000), (0x2000, 0x1000)]);

    let mut outside = spec.clone();
    outside.gic = Some(GuestGic::V2 {
        dist: (0x1000, 0x1000),
        cpu: (0xff84_2000, 0x2000),
    });
    assert!(matches!(
        generate(&host, &outside),
        Err(GuestDtError::Untranslatable { .. })
    ));
    let mut high = spec;
    high.ram = vec![RamRegion {
        ipa: Ipa(1 << 40),
        pa: Pa(1 << 40),
        size: 1 << 33,
    }];
    assert!(
        matches!(
            generate(&host, &high),
            Err(GuestDtError::CellsTooSmall { .. })
        ),
        "size 8 GiB in one cell"
    );
}

/// On QEMU's own DTB, when QEMU is installed: the result parses and dtc accepts it.
#[test]
fn qemu_virt_dtbs_when_qemu_is_present() {
    let Ok(out) = Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
    else {
        std::eprintln!("qemu-system-aarch64 not installed: skipping the QEMU DTB check");
        return;
    };
    assert!(out.status.success());
    for (version, gic) in [("2", V2), ("3", V3)] {
        let path = std::env::temp_dir().join(format!(
            "el2visor-vm-test-{}-gic{version}.dtb",
            std::process::id()
        ));
        let st = Command::new("qemu-system-aarch64")
            .args([
                "-M",
                &format!(
                    "virt,virtualization=on,gic-version={version},dumpdtb={}",
                    path.display()
                ),
            ])
            .args(["-cpu", "max", "-smp", "4", "-m", "2G", "-display", "none"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let host = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let h = nodes(&host);
        let uart = h.keys().find(|k| k.starts_with("/pl011@")).unwrap().clone();
        let spec = GuestDtSpec {
            ram: vec![RamRegion {
                ipa: Ipa(0x4100_0000),
                pa: Pa(0x4100_0000),
                size: 0x7f00_0000,
            }],
            vcpu_mpidrs: (0..4).map(crate::vm::config::vcpu_mpidr).collect(),
            bootargs: "console=ttyAMA0".into(),
            stdout_path: Some(uart.clone()),
            gic: Some(gic),
            ..GuestDtSpec::default()
        };
        let guest = generate(&host, &spec).unwrap();
        // `EL2VISOR_DUMP_GUEST_DT=DIR cargo test …` keeps the trees for `dtc -I dtb -O dts`.
        if let Some(dir) = std::env::var_os("EL2VISOR_DUMP_GUEST_DT") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::write(dir.join(format!("virt-gic{version}-host.dtb")), &host).unwrap();
            std::fs::write(dir.join(format!("virt-gic{version}-guest.dtb")), &guest).unwrap();
        }
        let g = nodes(&guest);
        assert_eq!(g.keys().filter(|k| k.starts_with("/cpus/cpu@")).count(), 4);
        assert_eq!(prop(&g, "/psci", "method").unwrap(), b"hvc\0");
        let intc = g.keys().find(|k| k.starts_with("/intc@")).unwrap();
        let reg_len = prop(&g, intc, "reg").unwrap().len();
        assert_eq!(reg_len, 2 * 16, "GICv{version}: two (address, size) pairs");
        if let Ok(dtc) = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write;
            let mut dtc = dtc;
            dtc.stdin.take().unwrap().write_all(&guest).unwrap();
            let res = dtc.wait_with_output().unwrap();
            assert!(
                res.status.success(),
                "dtc rejects the guest DT: {}",
                String::from_utf8_lossy(&res.stderr)
            );
        }
    }
}

#[test]
fn dt_props_are_set_on_copied_nodes() {
    let host = virt_host(Host::VirtV2);
    let mut spec = virt_spec(V2);
    spec.dt_props = Some(dt_props(&[
        ("", "model", b"el2visor guest\0"),
        ("timer", "always-on", b""),
        ("pl011@9000000", "interrupts", &cells(&[0, 5, 4])),
        ("pl061@9030000", "status", b"okay\0"),
    ]));
    let g = nodes(&generate(&host, &spec).unwrap());
    assert_eq!(prop(&g, "/", "model").unwrap(), b"el2visor guest\0");
    assert_eq!(prop(&g, "/timer", "always-on").unwrap(), b"");
    assert_eq!(
        be32s(prop(&g, "/pl011@9000000", "interrupts").unwrap()),
        vec![0, 5, 4]
    );
    assert_eq!(
        g["/pl011@9000000"]
            .iter()
            .filter(|(n, _)| n == "interrupts")
            .count(),
        1
    );
    assert_eq!(
        prop(&g, "/pl061@9030000", "status").unwrap(),
        b"disabled\0",
        "the builder's disable wins"
    );

    spec.dt_props = Some(dt_props(&[("nothere", "x", b"")]));
    assert_eq!(
        generate(&host, &spec).unwrap_err().to_string(),
        "guest DT: no node /nothere in the host DT (asked to set device-tree properties on it): check the path"
    );
    spec.dt_props = Some(dt_props(&[("cpus", "x", b"")]));
    assert!(
        matches!(
            generate(&host, &spec),
            Err(GuestDtError::PathNotFound { .. })
        ),
        "/cpus is regenerated"
    );
    spec.dt_props = Some(vec![0; 64]);
    assert!(matches!(
        generate(&host, &spec),
        Err(GuestDtError::BadDtProps(_))
    ));
}

#[test]
fn redistributor_stride_from_the_host_dt() {
    assert_eq!(redist_stride(None), GICV3_REDIST_STRIDE);
    assert_eq!(redist_stride(Some(0x4_0000)), 0x4_0000);
    // Not a whole number of 64 KiB frames, or smaller than RD_base + SGI_base: the default.
    assert_eq!(redist_stride(Some(0x4_8000)), GICV3_REDIST_STRIDE);
    assert_eq!(redist_stride(Some(0x1_0000)), GICV3_REDIST_STRIDE);
    let host = virt_host(Host::VirtV3);
    let mut spec = virt_spec(V3);
    if let Some(GuestGic::V3 { redist_stride, .. }) = &mut spec.gic {
        *redist_stride = Some(0x1_0000);
    }
    let g = nodes(&generate(&host, &spec).unwrap());
    assert_eq!(
        prop(&g, "/intc@8000000", "redistributor-stride").unwrap(),
        GICV3_REDIST_STRIDE.to_be_bytes(),
        "the guest is told the stride the virtual GIC decodes with"
    );
}

/// QEMU virt with an SMMUv3 (dumped by tests/fixtures/make-dtbs.sh): with el2visor owning the SMMU
/// the guest sees neither it nor any property pointing at it; the PCI bridge is otherwise intact.
#[test]
fn an_owned_smmu_and_its_iommu_properties_are_gone() {
    let dir = std::env::var_os("EL2VISOR_DTB_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dtbs"), std::path::PathBuf::from);
    let host = std::fs::read(dir.join("virt-smmu-gic3.dtb")).expect("run tests/fixtures/make-dtbs.sh target/dtbs");
    let h = nodes(&host);
    assert!(prop(&h, "/pcie@10000000", "iommu-map").is_some());
    let spec = GuestDtSpec {
        drop_paths: vec!["/smmuv3@9050000".into()],
        drop_props: vec!["iommus", "iommu-map", "iommu-map-mask"],
        disable_paths: vec![],
        ..virt_spec(GuestGic::V3 { dist: (0x800_0000, 0x1_0000), redist: 0x80a_0000, redist_stride: None })
    };
    let g = nodes(&generate(&host, &spec).unwrap());
    assert!(!g.contains_key("/smmuv3@9050000"));
    for (path, props) in &g {
        assert!(!props.iter().any(|(n, _)| n.starts_with("iommu")), "{path} still has an IOMMU property");
    }
    assert_eq!(prop(&g, "/pcie@10000000", "ranges"), prop(&h, "/pcie@10000000", "ranges"));
}

#[test]
fn virt_gicv3_guest_with_a_virtual_its_keeps_the_its_and_msi_map() {
    let host = virt_host(Host::VirtV3);
    let mut spec = virt_spec(V3);
    spec.keep_its = true;
    let guest = generate(&host, &spec).unwrap();
    let g = nodes(&guest);
    assert!(g.contains_key("/intc@8000000/its@8080000"));
    assert!(prop(&g, "/intc@8000000/its@8080000", "status").is_none(), "the ITS is not disabled");
    assert!(prop(&g, "/intc@8000000/its@8080000", "msi-controller").is_some());
    assert_eq!(be32s(prop(&g, "/pcie@10000000", "msi-map").unwrap()), vec![0, 0x8002, 0, 0x1_0000]);
    assert!(prop(&g, "/pcie@10000000", "msi-map-mask").is_some());
}
