//! The PCI facts the `dma` mode needs, pure: the ECAM host bridge and its 32-bit memory window
//! from the DT (`pci-host-ecam-generic` under the root, as on QEMU virt, or a domain's `/passthrough`), config-space
//! offsets, BAR sizing, and QEMU's `edu` device (vendor 0x1234, device 0x11e8): its registers and
//! DMA commands (hw/misc/edu.c: a 4 KiB buffer at device address 0x40000; src 0x80, dst 0x88,
//! count 0x90, cmd 0x98 with bit 0 = start (cleared when done) and bit 1 = to RAM).

use fdt::Fdt;

pub const EDU_VENDOR: u16 = 0x1234;
pub const EDU_DEVICE: u16 = 0x11e8;
/// BAR0 registers.
pub const EDU_IDENT: u64 = 0x00;
pub const EDU_LIVENESS: u64 = 0x04;
pub const EDU_DMA_SRC: u64 = 0x80;
pub const EDU_DMA_DST: u64 = 0x88;
pub const EDU_DMA_COUNT: u64 = 0x90;
pub const EDU_DMA_CMD: u64 = 0x98;
/// Where the device's DMA buffer is in its own address space, and its size.
pub const EDU_BUF: u64 = 0x40000;
pub const EDU_BUF_SIZE: u64 = 0x1000;
/// Config space: command register and its memory-space and bus-master bits; BAR0.
pub const CFG_ID: u64 = 0x00;
pub const CFG_COMMAND: u64 = 0x04;
pub const CMD_MEMORY: u16 = 1 << 1;
pub const CMD_MASTER: u16 = 1 << 2;
pub const CFG_BAR0: u64 = 0x10;

/// A DMA command for edu: start, from RAM into its buffer (`to_ram` false) or the other way.
pub const fn edu_dma_cmd(to_ram: bool) -> u64 {
    1 | if to_ram { 2 } else { 0 }
}

/// The ECAM host bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    pub base: u64,
    pub size: u64,
    /// First bus number (`bus-range`).
    pub bus: u8,
    /// The 32-bit non-prefetchable memory window: PCI address, CPU address, size.
    pub mem: Option<(u64, u64, u64)>,
}

impl Ecam {
    /// Config-space offset of (bus, device, function) register `reg` from the ECAM base.
    pub const fn cfg(&self, bus: u8, dev: u8, func: u8, reg: u64) -> u64 {
        (((bus - self.bus) as u64) << 20) | ((dev as u64) << 15) | ((func as u64) << 12) | reg
    }
}

/// The requester ID (and so, on QEMU virt, the SMMU stream ID) of a function.
pub const fn rid(bus: u8, dev: u8, func: u8) -> u16 {
    ((bus as u16) << 8) | ((dev as u16) << 3) | func as u16
}

/// The size a 32-bit memory BAR asks for, from what it reads after all ones were written.
pub const fn bar_size(readback: u32) -> Option<u64> {
    let mask = readback & !0xf;
    if readback & 1 != 0 || mask == 0 {
        None
    } else {
        Some((!mask as u64 + 1) & 0xffff_ffff)
    }
}

fn cell(v: &[u8], i: usize) -> Option<u32> {
    v.get(4 * i..4 * i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The first `pci-host-ecam-generic` node: a child of the root (QEMU virt) or of a dom0less
/// domain's `/passthrough` bus (identity `ranges`); its parent has 2 address and 2 size cells,
/// the bridge 3 and 2.
pub fn ecam(fdt: &Fdt<'_>) -> Option<Ecam> {
    let n = fdt.all_nodes().find(|n| {
        n.compatible().is_some_and(|c| c.all().any(|s| s == "pci-host-ecam-generic"))
    })?;
    let reg = n.property("reg")?.value;
    let base = (u64::from(cell(reg, 0)?) << 32) | u64::from(cell(reg, 1)?);
    let size = (u64::from(cell(reg, 2)?) << 32) | u64::from(cell(reg, 3)?);
    let bus = n.property("bus-range").and_then(|p| cell(p.value, 0)).unwrap_or(0) as u8;
    let mut mem = None;
    if let Some(r) = n.property("ranges") {
        // <phys.hi phys.mid phys.lo  cpu.hi cpu.lo  size.hi size.lo>
        for e in r.value.chunks_exact(28) {
            let w = |i| u64::from(cell(e, i).unwrap_or(0));
            let space = (w(0) >> 24) & 3;
            let pci = (w(1) << 32) | w(2);
            if space == 2 && mem.is_none() && pci + ((w(5) << 32) | w(6)) <= 1 << 32 {
                mem = Some((pci, (w(3) << 32) | w(4), (w(5) << 32) | w(6)));
            }
        }
    }
    Some(Ecam { base, size, bus, mem })
}

/// A `name=0x…` (or decimal) word of the bootargs.
pub fn arg_u64(bootargs: Option<&str>, name: &str) -> Option<u64> {
    let v = bootargs?.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn qemu_virts_bridge() {
        let out = std::env::temp_dir().join(std::format!("probe-pci-{}.dtb", std::process::id()));
        let ok = std::process::Command::new("qemu-system-aarch64")
            .args(["-M", &std::format!("virt,dumpdtb={}", out.display()), "-cpu", "max", "-m", "512M", "-display", "none"])
            .status()
            .expect("qemu-system-aarch64")
            .success();
        assert!(ok);
        let blob = std::fs::read(&out).unwrap();
        let e = ecam(&Fdt::new(&blob).unwrap()).unwrap();
        assert_eq!((e.base, e.size, e.bus), (0x40_1000_0000, 0x1000_0000, 0));
        assert_eq!(e.mem, Some((0x1000_0000, 0x1000_0000, 0x2eff_0000)));
        assert_eq!(e.cfg(0, 2, 0, CFG_BAR0), 0x1_0010);
        std::fs::remove_file(out).ok();
    }

    #[test]
    fn encodings() {
        assert_eq!(rid(0, 2, 0), 0x10);
        assert_eq!(rid(1, 0, 3), 0x103);
        assert_eq!(bar_size(0xfff0_0000), Some(0x10_0000));
        assert_eq!(bar_size(0xffff_fff1), None, "an I/O BAR");
        assert_eq!(bar_size(0), None, "no BAR");
        assert_eq!(edu_dma_cmd(false), 1);
        assert_eq!(edu_dma_cmd(true), 3);
        assert_eq!(arg_u64(Some("dma dma_target=0x7fb23000"), "dma_target"), Some(0x7fb2_3000));
        assert_eq!(arg_u64(Some("dma_target=12"), "dma_target"), Some(12));
        assert_eq!(arg_u64(Some("dma"), "dma_target"), None);
    }
}
