//! PCI host bridges and MSI frames: the GIC interrupts a bridge's `interrupt-map` routes its INTx
//! lines to (the VM that owns the bridge owns those SPIs), and the MSI controllers under the GIC
//! (a GICv2m frame with its SPI range, a GICv3 ITS) that bridges name in `msi-parent`/`msi-map`.

#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::error::DtErrorKind;
use super::gic::{one_irq, Controller};
use super::tree::{self, bad_prop, Node};
use super::Irq;
use crate::mm::addr::PaRange;

/// What kind of MSI controller a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiKind {
    /// `arm,gic-v2m-frame`: a device's MSI write to it raises an SPI of its range.
    V2m,
    /// `arm,gic-v3-its`: MSIs become LPIs through the ITS's tables.
    Its,
}

/// An MSI controller frame (a child of the GIC node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsiFrame {
    pub path: String,
    pub kind: MsiKind,
    pub reg: PaRange,
    /// GICv2m: `arm,msi-base-spi` (an INTID) and `arm,msi-num-spis` when the DT overrides the
    /// frame's MSI_TYPER register; `None` means "read MSI_TYPER".
    pub spis: Option<(u32, u32)>,
}

/// Whether `n` is a PCI host bridge (`device_type = "pci"`).
pub fn is_host_bridge(n: Node<'_, '_>) -> bool {
    tree::prop_str(n, "device_type") == Some("pci")
}

fn words(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The interrupts a PCI host bridge's `interrupt-map` routes INTx to, in map order, without
/// repeats. Entries whose parent is not the GIC come back as [`Irq::Other`]. An entry is
/// `<child unit address (#address-cells)> <child INTx (#interrupt-cells)> <parent phandle>
/// <parent unit address (parent's #address-cells, 0 if absent)> <parent specifier>`.
pub fn intx(n: Node<'_, '_>, path: &str, ctls: &BTreeMap<u32, Controller>) -> Result<Vec<Irq>, DtErrorKind> {
    const P: &str = "interrupt-map";
    let Some(v) = tree::prop(n, P) else { return Ok(Vec::new()) };
    if v.len() % 4 != 0 {
        return Err(bad_prop(path, P, "not a whole number of cells"));
    }
    let child_addr = tree::prop_u32(n, path, "#address-cells")?.unwrap_or(3) as usize;
    let child_int = tree::prop_u32(n, path, "#interrupt-cells")?.unwrap_or(1) as usize;
    let w = words(v);
    let mut out: Vec<Irq> = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let ph = *w.get(i + child_addr + child_int).ok_or(bad_prop(path, P, "truncated entry"))?;
        let ctl = *ctls.get(&ph).ok_or(bad_prop(path, P, "names an unknown phandle"))?;
        let cells = ctl.cells.ok_or(bad_prop(path, P, "parent has no #interrupt-cells"))? as usize;
        let spec_at = i + child_addr + child_int + 1 + ctl.addr_cells as usize;
        let spec = w.get(spec_at..spec_at + cells).ok_or(bad_prop(path, P, "truncated entry"))?;
        let irq = one_irq(ctl, ph, spec, path, P)?;
        if !out.contains(&irq) {
            out.push(irq);
        }
        i = spec_at + cells;
    }
    Ok(out)
}

/// The MSI frame `n` is, if it is one (`regs` its translated `reg`).
pub fn msi_frame(n: Node<'_, '_>, path: &str, regs: &[PaRange]) -> Result<Option<MsiFrame>, DtErrorKind> {
    let kind = if tree::is_compatible(n, "arm,gic-v2m-frame") {
        MsiKind::V2m
    } else if tree::is_compatible(n, "arm,gic-v3-its") {
        MsiKind::Its
    } else {
        return Ok(None);
    };
    let Some(&reg) = regs.first() else { return Ok(None) };
    let base = tree::prop_u32(n, path, "arm,msi-base-spi")?;
    let num = tree::prop_u32(n, path, "arm,msi-num-spis")?;
    let spis = match (base, num) {
        (Some(b), Some(c)) if (32..1020).contains(&b) && c > 0 && b.checked_add(c).is_some_and(|end| end <= 1020) => Some((b, c)),
        (None, None) => None,
        _ => return Err(bad_prop(path, "arm,msi-base-spi", "with arm,msi-num-spis must name SPIs 32..1019")),
    };
    Ok(Some(MsiFrame { path: path.to_string(), kind, reg, spis }))
}

/// The SPI range a GICv2m frame's MSI_TYPER register value gives: (first INTID, count), `None`
/// when it names no usable SPI (Linux refuses such a frame too).
pub fn v2m_typer_spis(typer: u32) -> Option<(u32, u32)> {
    let base = (typer >> 16) & 0x3ff;
    let num = typer & 0x3ff;
    (base >= 32 && num > 0 && base + num <= 1020).then_some((base, num))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::tests_dts::dtc;
    use crate::platform::{Irq, Platform};

    /// QEMU virt's (gic-version=2) PCIe node and GIC, as `dumpdtb` writes them.
    const VIRT: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>; #size-cells = <2>;
    interrupt-parent = <0x8002>;
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
    pcie@10000000 {
        interrupt-map-mask = <0x1800 0x00 0x00 0x07>;
        interrupt-map = <0x00 0x00 0x00 0x01 0x8002 0x00 0x00 0x00 0x03 0x04
                         0x00 0x00 0x00 0x02 0x8002 0x00 0x00 0x00 0x04 0x04
                         0x00 0x00 0x00 0x03 0x8002 0x00 0x00 0x00 0x05 0x04
                         0x00 0x00 0x00 0x04 0x8002 0x00 0x00 0x00 0x06 0x04
                         0x800 0x00 0x00 0x01 0x8002 0x00 0x00 0x00 0x04 0x04>;
        #interrupt-cells = <0x01>;
        ranges = <0x1000000 0x00 0x00 0x00 0x3eff0000 0x00 0x10000
                  0x2000000 0x00 0x10000000 0x00 0x10000000 0x00 0x2eff0000
                  0x3000000 0x80 0x00 0x80 0x00 0x80 0x00>;
        reg = <0x40 0x10000000 0x00 0x10000000>;
        msi-map = <0x00 0x8003 0x00 0x10000>;
        dma-coherent;
        #size-cells = <0x02>; #address-cells = <0x03>;
        device_type = "pci";
        compatible = "pci-host-ecam-generic";
    };
    intc@8000000 {
        phandle = <0x8002>;
        reg = <0x00 0x8000000 0x00 0x10000 0x00 0x8010000 0x00 0x10000>;
        compatible = "arm,cortex-a15-gic";
        ranges;
        #size-cells = <0x02>; #address-cells = <0x02>;
        interrupt-controller;
        #interrupt-cells = <0x03>;
        v2m@8020000 {
            phandle = <0x8003>;
            reg = <0x00 0x8020000 0x00 0x1000>;
            msi-controller;
            compatible = "arm,gic-v2m-frame";
            %V2M%
        };
    };
};
"#;

    fn platform(v2m_props: &str) -> Platform {
        Platform::from_dtb(&dtc(&VIRT.replace("%V2M%", v2m_props))).unwrap()
    }

    #[test]
    fn qemu_virt_intx_lines_are_spis_3_to_6() {
        let p = platform("");
        let d = p.device("/pcie@10000000").unwrap();
        let intids: Vec<u32> = d
            .irqs
            .iter()
            .map(|i| match i {
                Irq::Gic { intid, flags } => {
                    assert_eq!(*flags, 4, "level-high");
                    *intid
                }
                Irq::Other { .. } => panic!("{i:?}"),
            })
            .collect();
        assert_eq!(intids, [35, 36, 37, 38]);
        // The 64-bit window above 4 GiB (512 GiB at 512 GiB: a 40-bit IPA space covers it) is a
        // bus window too, premapped as Device like the 32-bit one.
        assert!(p.bus_windows.iter().any(|w| w.cpu == PaRange::new(0x80_0000_0000, 0x80_0000_0000) && !w.prefetchable));
        assert!(p.bus_windows.iter().any(|w| w.cpu == PaRange::new(0x1000_0000, 0x2eff_0000) && !w.prefetchable));
        assert_eq!(
            p.msi_frames,
            [MsiFrame { path: "/intc@8000000/v2m@8020000".into(), kind: MsiKind::V2m, reg: PaRange::new(0x0802_0000, 0x1000), spis: None }]
        );
    }

    #[test]
    fn v2m_spi_range_from_the_dt_or_the_register() {
        let p = platform("arm,msi-base-spi = <80>; arm,msi-num-spis = <64>;");
        assert_eq!(p.msi_frames[0].spis, Some((80, 64)));
        assert!(Platform::from_dtb(&dtc(&VIRT.replace("%V2M%", "arm,msi-base-spi = <80>;"))).is_err());
        assert!(Platform::from_dtb(&dtc(&VIRT.replace("%V2M%", "arm,msi-base-spi = <1000>; arm,msi-num-spis = <64>;"))).is_err());
        // A count that wraps past 2^32 back into range is refused too, not a panic.
        let e = Platform::from_dtb(&dtc(&VIRT.replace("%V2M%", "arm,msi-base-spi = <80>; arm,msi-num-spis = <0xffffffc0>;"))).unwrap_err();
        assert!(std::format!("{e}").contains("arm,msi-base-spi"), "{e}");
        // QEMU's frame: base SPI INTID 80, 64 SPIs.
        assert_eq!(v2m_typer_spis((80 << 16) | 64), Some((80, 64)));
        assert_eq!(v2m_typer_spis((16 << 16) | 64), None);
        assert_eq!(v2m_typer_spis(80 << 16), None);
        assert_eq!(v2m_typer_spis((1000 << 16) | 64), None);
    }

    #[test]
    fn malformed_interrupt_maps_are_errors_naming_the_bridge() {
        let cut = VIRT.replace("0x800 0x00 0x00 0x01 0x8002 0x00 0x00 0x00 0x04 0x04>", "0x800 0x00 0x00 0x01 0x8002 0x00>");
        let e = Platform::from_dtb(&dtc(&cut.replace("%V2M%", ""))).unwrap_err();
        assert!(std::format!("{e}").contains("interrupt-map"), "{e}");
        let unknown = VIRT.replace("0x800 0x00 0x00 0x01 0x8002", "0x800 0x00 0x00 0x01 0x9999");
        let e = Platform::from_dtb(&dtc(&unknown.replace("%V2M%", ""))).unwrap_err();
        assert!(std::format!("{e}").contains("unknown phandle"), "{e}");
    }
}
