//! Host device trees for the guest-DT tests, written with vm-fdt: QEMU virt shaped (GICv2 and
//! GICv3, with guest-loader modules, reserved memory and aliases) and Raspberry Pi 4 shaped.

use alloc::format;
use alloc::vec::Vec;
use vm_fdt::{FdtReserveEntry, FdtWriter};

#[derive(Clone, Copy, PartialEq)]
pub enum Host {
    VirtV2,
    VirtV3,
}

/// A tree shaped like QEMU's `virt,virtualization=on` one, booted with two guest-loader modules.
pub fn virt_host(kind: Host) -> Vec<u8> {
    let rsv = [
        FdtReserveEntry::new(0x4000_0000, 0x1000).unwrap(),
        FdtReserveEntry::new(0x5001_0000, 0x1000).unwrap(),
    ];
    let mut w = FdtWriter::new_with_mem_reserv(&rsv).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string("compatible", "linux,dummy-virt").unwrap();
    w.property_u32("interrupt-parent", 0x8001).unwrap();

    let n = w.begin_node("psci").unwrap();
    w.property("compatible", b"arm,psci-1.0\0arm,psci-0.2\0arm,psci\0")
        .unwrap();
    w.property_string("method", "smc").unwrap();
    w.property_u32("cpu_on", 0xc400_0003).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000])
        .unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("pl011@9000000").unwrap();
    w.property("compatible", b"arm,pl011\0arm,primecell\0")
        .unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("pcie@10000000").unwrap();
    w.property_string("device_type", "pci").unwrap();
    w.property_array_u64("reg", &[0x40_1000_0000, 0x1000_0000]).unwrap();
    w.property_array_u32("msi-map", &[0, 0x8002, 0, 0x1_0000]).unwrap();
    w.property_array_u32("msi-map-mask", &[0xffff]).unwrap();
    // INTA of slot 0 to SPI 3, level-high; the GIC (phandle 0x8001) has #address-cells = 2.
    w.property_u32("#interrupt-cells", 1).unwrap();
    w.property_array_u32("interrupt-map-mask", &[0x1800, 0, 0, 7]).unwrap();
    w.property_array_u32("interrupt-map", &[0, 0, 0, 1, 0x8001, 0, 0, 0, 3, 4]).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("pl061@9030000").unwrap();
    w.property_string("status", "okay").unwrap();
    w.property_array_u64("reg", &[0x903_0000, 0x1000]).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("intc@8000000").unwrap();
    w.property_u32("phandle", 0x8001).unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let msi = if kind == Host::VirtV2 {
        w.property_string("compatible", "arm,cortex-a15-gic")
            .unwrap();
        w.property_array_u64(
            "reg",
            &[
                0x800_0000, 0x1_0000, 0x801_0000, 0x1_0000, 0x803_0000, 0x1_0000, 0x804_0000,
                0x1_0000,
            ],
        )
        .unwrap();
        ("v2m@8020000", "arm,gic-v2m-frame", 0x802_0000u64)
    } else {
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x80a_0000, 0xf6_0000])
            .unwrap();
        w.property_u32("#redistributor-regions", 1).unwrap();
        ("its@8080000", "arm,gic-v3-its", 0x808_0000)
    };
    let m = w.begin_node(msi.0).unwrap();
    w.property_string("compatible", msi.1).unwrap();
    w.property_null("msi-controller").unwrap();
    w.property_array_u64("reg", &[msi.2, 0x2_0000]).unwrap();
    w.property_u32("phandle", 0x8002).unwrap();
    w.end_node(m).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    let map = w.begin_node("cpu-map").unwrap();
    let cl = w.begin_node("cluster0").unwrap();
    let core = w.begin_node("core0").unwrap();
    w.property_u32("cpu", 0x8003).unwrap();
    w.end_node(core).unwrap();
    w.end_node(cl).unwrap();
    w.end_node(map).unwrap();
    // Listed highest MPIDR first: phandles follow the MPIDR, not the order.
    for i in [1u32, 0] {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_u32("phandle", 0x8003 + i).unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "psci").unwrap();
        w.property_string("compatible", "arm,cortex-a57").unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("next-level-cache", 0x8010).unwrap();
        w.end_node(c).unwrap();
    }
    let l2 = w.begin_node("l2-cache0").unwrap();
    w.property_string("compatible", "cache").unwrap();
    w.property_u32("phandle", 0x8010).unwrap();
    w.end_node(l2).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("timer").unwrap();
    w.property_string("compatible", "arm,armv8-timer").unwrap();
    w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
        .unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let r = w.begin_node("el2visor@40000000").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x10_0000])
        .unwrap();
    w.property_null("no-map").unwrap();
    w.end_node(r).unwrap();
    let r = w.begin_node("shared@50000000").unwrap();
    w.property_array_u64("reg", &[0x5000_0000, 0x1_0000])
        .unwrap();
    w.end_node(r).unwrap();
    let r = w.begin_node("straddle@40ff0000").unwrap();
    w.property_array_u64("reg", &[0x40ff_0000, 0x2_0000])
        .unwrap();
    w.end_node(r).unwrap();
    let r = w.begin_node("linux,cma").unwrap();
    w.property_string("compatible", "shared-dma-pool").unwrap();
    w.property_u64("size", 0x400_0000).unwrap();
    w.property_null("reusable").unwrap();
    w.end_node(r).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "dom0_mem=1G").unwrap();
    w.property_string("xen,xen-bootargs", "console=dtuart")
        .unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.property_array_u32("rng-seed", &[1, 2, 3, 4]).unwrap();
    for (addr, compat) in [
        (0x4800_0000u64, "multiboot,kernel"),
        (0x4c00_0000, "multiboot,ramdisk"),
    ] {
        let m = w.begin_node(&format!("module@{addr:x}")).unwrap();
        w.property(
            "compatible",
            format!("{compat}\0multiboot,module\0").as_bytes(),
        )
        .unwrap();
        w.property_array_u64("reg", &[addr, 0x10_0000]).unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.end_node(m).unwrap();
    }
    w.end_node(n).unwrap();

    let n = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/pl011@9000000").unwrap();
    w.property_string("gpio0", "/pl061@9030000").unwrap();
    w.end_node(n).unwrap();

    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A Raspberry Pi 4 shaped tree: root 2/1 cells, the GIC behind `/soc` `ranges`.
pub fn pi_host() -> Vec<u8> {
    let mut w =
        FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0, 0x1000).unwrap()]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let n = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x3b40_0000]).unwrap();
    w.end_node(n).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32(
        "ranges",
        &[
            0x7e00_0000,
            0,
            0xfe00_0000,
            0x180_0000,
            0x4000_0000,
            0,
            0xff80_0000,
            0x80_0000,
        ],
    )
    .unwrap();
    let gic = w.begin_node("interrupt-controller@40041000").unwrap();
    w.property_string("compatible", "arm,gic-400").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_array_u32(
        "reg",
        &[
            0x4004_1000,
            0x1000,
            0x4004_2000,
            0x2000,
            0x4004_4000,
            0x2000,
            0x4004_6000,
            0x2000,
        ],
    )
    .unwrap();
    w.end_node(gic).unwrap();
    let hdmi = w.begin_node("hdmi@7ef00700").unwrap();
    w.property_string("status", "okay").unwrap();
    w.end_node(hdmi).unwrap();
    w.end_node(soc).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("compatible", "arm,cortex-a72").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_u64("cpu-release-addr", 0xd8 + 8 * u64::from(i))
            .unwrap();
        w.end_node(c).unwrap();
    }
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A properties blob as a guest bundle would carry it.
pub fn dt_props(nodes: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    for &(name, prop, value) in nodes {
        if name.is_empty() {
            w.property(prop, value).unwrap();
        } else {
            let n = w.begin_node(name).unwrap();
            w.property(prop, value).unwrap();
            w.end_node(n).unwrap();
        }
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}
