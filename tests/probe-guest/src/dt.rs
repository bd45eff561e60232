//! What the probe needs from the device tree, as a plain [`Platform`] value: RAM, the console
//! PL011, the PSCI conduit, one passthrough device page, an address nobody owns (`unowned`),
//! whether `bench` is on the command line, and the GIC and PL031 the virtual GIC probes use. `reg` values are translated through every parent's
//! `ranges`. Pure logic over `fdt`.

use core::fmt;
use fdt::node::FdtNode;
use fdt::Fdt;

/// Most RAM regions the probe maps.
pub const MAX_RAM: usize = 8;
/// Most CPUs the probe knows the MPIDR of.
pub const MAX_CPUS: usize = 8;
const MAX_DEPTH: usize = 16;

/// A physical address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

/// How PSCI calls are made (`/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

/// The device page the probe maps Normal WB at stage 1 on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passthrough {
    pub region: Region,
    /// The compatible string it was found by.
    pub compatible: &'static str,
}

/// Everything the probe takes from the DT.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub ram: [Region; MAX_RAM],
    pub ram_count: usize,
    pub uart: Option<u64>,
    pub conduit: Conduit,
    pub passthrough: Option<Passthrough>,
    /// The first 1 GiB-aligned address above RAM that no node's `reg` or `ranges` covers
    /// ([`unowned_address`]), if one is below the 48-bit VA limit.
    pub unowned: Option<u64>,
    pub bench: bool,
    /// `reset` in the bootargs: run the SYSTEM_RESET probe instead of the others.
    pub reset: bool,
    /// The interrupt controller, for the virtual GIC probes.
    pub gic: Option<Gic>,
    /// A PL031 RTC, whose level-triggered SPI the virtual GIC probes use.
    pub rtc: Option<Rtc>,
    /// SPIs that some node's `interrupts` names.
    pub used_spis: SpiSet,
    /// `reset_race` in the bootargs: run the CPU_ON-during-SYSTEM_RESET probe instead.
    pub reset_race: bool,
    /// `scan` in the bootargs: run the abort_scan probe instead.
    pub scan: bool,
    /// The MPIDRs (`reg` of each `/cpus/cpu@N`), in DT order.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    /// The interrupt controller is a GICv3 (`arm,gic-v3`): the CPU interface is system registers.
    pub gic_v3: bool,
    /// Otherwise, a GICv2's CPU interface (its node's second `reg` entry), if the DT has one.
    pub gicc: Option<u64>,
    /// `hostile` in the bootargs: attack el2visor's isolation instead (`probes::hostile`).
    pub hostile: bool,
    /// `dma` in the bootargs: DMA with QEMU's edu PCI device instead (`probes::dma`).
    pub dma: bool,
    /// The pvpanic device (`qemu,pvpanic-mmio`), if the DT has one.
    pub pvpanic: Option<u64>,
    /// `panic` in the bootargs: report a panic through pvpanic, then SYSTEM_RESET, as Linux
    /// with `panic=1` and its pvpanic driver does (`probes::panic`).
    pub panic: bool,
    /// QEMU virt's fw_cfg ([`fw_cfg`]): where to aim the `fw_cfg_dma` probe, and whether the DT
    /// gives it to this VM.
    pub fw_cfg: Option<FwCfg>,
    /// An enabled GICv3 ITS (`arm,gic-v3-its`): its control frame's base.
    pub its: Option<u64>,
    /// `snapshot` in the bootargs: run the snapshot probes instead (`probes::snapshot`).
    pub snapshot: bool,
    /// `gdb_gate` in the bootargs: wait for a debugger, then start the other vCPU once
    /// (`probes::gdb_gate`).
    pub gdb_gate: bool,
}

/// QEMU's fw_cfg device, as the `fw_cfg_dma` probe sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwCfg {
    pub base: u64,
    /// The DT has a `qemu,fw-cfg-mmio` node: the VM was given the device.
    pub in_dt: bool,
}

/// Where QEMU virt puts fw_cfg (the same on every QEMU version, `hw/arm/virt.c`).
pub const QEMU_VIRT_FW_CFG: u64 = 0x0902_0000;

/// fw_cfg: its node's `reg` if the DT has one, else QEMU virt's fixed address when the root says
/// `linux,dummy-virt` (a VM el2visor withheld the device from still runs on that machine), else
/// nothing (another machine).
pub fn fw_cfg(fdt: &Fdt<'_>) -> Result<Option<FwCfg>, DtError> {
    if let Some(r) = first_compatible(fdt, "qemu,fw-cfg-mmio")? {
        return Ok(Some(FwCfg { base: r.base, in_dt: true }));
    }
    let virt = fdt.find_node("/").is_some_and(|n| is_compatible(n, "linux,dummy-virt"));
    Ok(virt.then_some(FwCfg { base: QEMU_VIRT_FW_CFG, in_dt: false }))
}

/// The first GICv3 ITS whose node is not `status = "disabled"` (el2visor disables it in a VM
/// that has no virtual ITS).
pub fn its(fdt: &Fdt<'_>) -> Result<Option<u64>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain { nodes: [None; MAX_DEPTH], len: 0 };
    walk(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        let disabled = node.property("status").and_then(|p| p.as_str()).is_some_and(|s| s != "okay" && s != "ok");
        if is_compatible(node, "arm,gic-v3-its") && !disabled {
            c.translated_reg_n(0).map(|r| r.base)
        } else {
            None
        }
    })
}

impl Platform {
    /// The RAM regions found.
    pub fn ram(&self) -> &[Region] {
        &self.ram[..self.ram_count]
    }

    /// The CPUs' MPIDRs found.
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }
}

/// Whether the bootargs hold `word`.
fn has_word(bootargs: Option<&str>, word: &str) -> bool {
    bootargs.is_some_and(|b| b.split_whitespace().any(|w| w == word))
}

/// The MPIDR of every `/cpus` child with `device_type = "cpu"`.
fn cpus(fdt: &Fdt<'_>) -> ([u64; MAX_CPUS], usize) {
    let mut out = [0; MAX_CPUS];
    let mut n = 0;
    let Some(cpus) = fdt.find_node("/cpus") else { return (out, 0) };
    let cells = cpus.cell_sizes().address_cells;
    for c in cpus.children() {
        if c.property("device_type").and_then(|p| p.as_str()) != Some("cpu") || n == MAX_CPUS {
            continue;
        }
        if let Some(mpidr) = c.property("reg").and_then(|r| read_cells(r.value, 0, cells)) {
            out[n] = mpidr;
            n += 1;
        }
    }
    (out, n)
}

/// A DT problem the probe cannot work around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// No `device_type = "memory"` node with a usable `reg`.
    NoMemory,
    /// A node is nested deeper than the probe walks.
    TooDeep,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::NoMemory => write!(f, "no /memory node with a reg property in the DT"),
            DtError::TooDeep => write!(f, "DT nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

/// A node with its ancestors, root first (`chain[len - 1]` is the node itself).
struct Chain<'b, 'a> {
    nodes: [Option<FdtNode<'b, 'a>>; MAX_DEPTH],
    len: usize,
}

impl<'b, 'a> Chain<'b, 'a> {
    fn get(&self, i: usize) -> FdtNode<'b, 'a> {
        self.nodes[i].expect("chain entries below len are set")
    }

    /// First `reg` entry of the chain's last node, translated to the root's address space.
    fn translated_reg(&self) -> Option<Region> {
        self.translated_reg_n(0)
    }

    /// Entry `n` of the node's `reg`, translated to a CPU address.
    fn translated_reg_n(&self, n: usize) -> Option<Region> {
        if self.len < 2 {
            return None;
        }
        let node = self.get(self.len - 1);
        let parent = self.get(self.len - 2);
        let cells = parent.cell_sizes();
        let reg = node.property("reg")?.value;
        let at = n * (cells.address_cells + cells.size_cells);
        let mut addr = read_cells(reg, at, cells.address_cells)?;
        let size = read_cells(reg, at + cells.address_cells, cells.size_cells)?;
        // Translate through each ancestor below the root: its `ranges` maps its children's
        // addresses into its own parent's space.
        for i in (1..self.len - 1).rev() {
            addr = translate(addr, self.get(i), self.get(i - 1))?;
        }
        Some(Region { base: addr, size })
    }
}

/// Read `n` big-endian cells (n <= 2) starting at cell `at`.
fn read_cells(bytes: &[u8], at: usize, n: usize) -> Option<u64> {
    if n > 2 {
        return None;
    }
    let mut v = 0u64;
    for i in 0..n {
        let o = (at + i) * 4;
        let cell = bytes.get(o..o + 4)?;
        v = (v << 32) | u64::from(u32::from_be_bytes([cell[0], cell[1], cell[2], cell[3]]));
    }
    Some(v)
}

/// Translate a child address of `bus` into `bus`'s parent's space through `bus`'s `ranges`.
fn translate(addr: u64, bus: FdtNode<'_, '_>, bus_parent: FdtNode<'_, '_>) -> Option<u64> {
    let ranges = bus.property("ranges")?.value;
    if ranges.is_empty() {
        return Some(addr);
    }
    let child = bus.cell_sizes();
    let (ca, cs, pa) = (
        child.address_cells,
        child.size_cells,
        bus_parent.cell_sizes().address_cells,
    );
    let entry = ca + pa + cs;
    if entry == 0 {
        return None;
    }
    for i in 0..ranges.len() / (entry * 4) {
        let base = i * entry;
        let child_base = read_cells(ranges, base, ca)?;
        let parent_base = read_cells(ranges, base + ca, pa)?;
        let size = read_cells(ranges, base + ca + pa, cs)?;
        if addr >= child_base && addr - child_base < size {
            return Some(parent_base + (addr - child_base));
        }
    }
    None
}

/// Depth-first search from the root; `f` sees each node with its ancestors and stops the walk
/// by returning `Some`.
fn walk<'b, 'a, T>(
    chain: &mut Chain<'b, 'a>,
    node: FdtNode<'b, 'a>,
    f: &mut dyn FnMut(&Chain<'b, 'a>) -> Option<T>,
) -> Result<Option<T>, DtError> {
    if chain.len == MAX_DEPTH {
        return Err(DtError::TooDeep);
    }
    chain.nodes[chain.len] = Some(node);
    chain.len += 1;
    let mut found = f(chain);
    if found.is_none() {
        for child in node.children() {
            found = walk(chain, child, f)?;
            if found.is_some() {
                break;
            }
        }
    }
    chain.len -= 1;
    Ok(found)
}

fn is_compatible(node: FdtNode<'_, '_>, compat: &str) -> bool {
    node.compatible()
        .map(|c| c.all().any(|s| s == compat))
        .unwrap_or(false)
}

/// GICv2 interrupt controllers (QEMU virt's, the Raspberry Pi 4's GIC-400).
pub const GICV2_COMPATIBLES: [&str; 3] = ["arm,cortex-a15-gic", "arm,gic-400", "arm,arm11mp-gic"];

/// Entry `n` of the `reg` of the first node compatible with `compat`, translated.
fn nth_reg_of_compatible(fdt: &Fdt<'_>, compat: &str, n: usize) -> Result<Option<Region>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    walk(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        if is_compatible(node, compat) {
            c.translated_reg_n(n)
        } else {
            None
        }
    })
}

fn first_compatible(fdt: &Fdt<'_>, compat: &str) -> Result<Option<Region>, DtError> {
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    walk(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        if is_compatible(node, compat) {
            c.translated_reg()
        } else {
            None
        }
    })
}

/// The UARTs the probe can drive: a PL011, or the SBSA generic UART (the PL011 subset el2visor's
/// vpl011 and Xen's emulate for a dom0less domain).
pub const UART_COMPATIBLES: [&str; 2] = ["arm,pl011", "arm,sbsa-uart"];

fn is_uart(node: FdtNode<'_, '_>) -> bool {
    UART_COMPATIBLES.iter().any(|c| is_compatible(node, c))
}

/// The node `/chosen/stdout-path` names (options after ':' dropped, aliases resolved), as a
/// translated `reg`, if it is a PL011 or an SBSA UART.
fn stdout_uart(fdt: &Fdt<'_>) -> Result<Option<Region>, DtError> {
    let Some(prop) = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("stdout-path"))
    else {
        return Ok(None);
    };
    let raw = prop.as_str().unwrap_or("");
    let path = raw.split(':').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path
    } else {
        match fdt.aliases().and_then(|a| a.resolve(path)) {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    let mut chain = Chain {
        nodes: [None; MAX_DEPTH],
        len: 0,
    };
    walk(&mut chain, root, &mut |c: &Chain<'_, '_>| {
        let node = c.get(c.len - 1);
        if path_matches(c, path) && is_uart(node) {
            c.translated_reg()
        } else {
            None
        }
    })
}

/// Whether the chain's node has the DT path `path` (unit addresses optional in the path).
fn path_matches(c: &Chain<'_, '_>, path: &str) -> bool {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    for i in 1..c.len {
        let name = c.get(i).name;
        match parts.next() {
            Some(p) if p == name || (!p.contains('@') && name.split('@').next() == Some(p)) => {}
            _ => return false,
        }
    }
    parts.next().is_none() && c.len > 1
}

/// The PSCI conduit from `/psci` `method` (HVC when absent, el2visor's conduit).
pub fn psci_conduit(fdt: &Fdt<'_>) -> Conduit {
    let method = fdt
        .find_node("/psci")
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str());
    match method {
        Some("smc") => Conduit::Smc,
        _ => Conduit::Hvc,
    }
}

fn ram(fdt: &Fdt<'_>) -> Result<([Region; MAX_RAM], usize), DtError> {
    let mut ram = [Region::default(); MAX_RAM];
    let mut count = 0;
    for node in fdt.all_nodes() {
        let is_memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
        if !is_memory {
            continue;
        }
        let Some(reg) = node.reg() else { continue };
        for r in reg {
            let size = r.size.unwrap_or(0) as u64;
            if size > 0 && count < MAX_RAM {
                ram[count] = Region {
                    base: r.starting_address as u64,
                    size,
                };
                count += 1;
            }
        }
    }
    if count == 0 {
        return Err(DtError::NoMemory);
    }
    Ok((ram, count))
}

/// Whether the kernel command line asks for the benchmark (the word `bench`).
pub fn wants_bench(bootargs: &str) -> bool {
    bootargs.split_whitespace().any(|w| w == "bench")
}

/// The console UART's base: `/chosen/stdout-path` if it names a PL011 or SBSA UART, else the
/// first `arm,pl011` node.
pub fn console_uart(fdt: &Fdt<'_>) -> Result<Option<u64>, DtError> {
    let uart = match stdout_uart(fdt)? {
        Some(r) => Some(r),
        None => first_compatible(fdt, "arm,pl011")?,
    };
    Ok(uart.map(|r| r.base))
}

/// Devices the probe may map Normal WB at stage 1 to see stage 2 make them Device, first match
/// wins: QEMU virt's virtio-mmio and fw-cfg, the Raspberry Pi 4's GPIO block (its page holds no
/// console UART). The probe never accesses the page, it only translates it.
pub const PASSTHROUGH_COMPATIBLES: [&str; 4] = [
    "virtio,mmio",
    "qemu,fw-cfg-mmio",
    "brcm,bcm2711-gpio",
    "brcm,bcm2835-gpio",
];

/// Read everything the probe needs from the DT.
pub fn discover(fdt: &Fdt<'_>) -> Result<Platform, DtError> {
    let (ram, ram_count) = ram(fdt)?;
    let uart = console_uart(fdt)?;
    let mut passthrough = None;
    for compatible in PASSTHROUGH_COMPATIBLES {
        if let Some(region) = first_compatible(fdt, compatible)? {
            passthrough = Some(Passthrough { region, compatible });
            break;
        }
    }
    let bootargs = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("bootargs"))
        .and_then(|p| p.as_str());
    let bench = bootargs.map(wants_bench).unwrap_or(false);
    let reset = has_word(bootargs, "reset");
    let (cpus, cpu_count) = cpus(fdt);
    let gic_v3 = fdt.all_nodes().any(|n| is_compatible(n, "arm,gic-v3"));
    let mut gicc = None;
    for compatible in GICV2_COMPATIBLES {
        if gicc.is_none() {
            gicc = nth_reg_of_compatible(fdt, compatible, 1)?.map(|r| r.base);
        }
    }
    Ok(Platform {
        ram,
        ram_count,
        uart,
        conduit: psci_conduit(fdt),
        passthrough,
        unowned: unowned_address(fdt, &ram[..ram_count])?,
        bench,
        reset,
        gic: gic::gic(fdt)?,
        rtc: gic::rtc(fdt)?,
        used_spis: gic::used_spis(fdt),
        reset_race: has_word(bootargs, "reset_race"),
        scan: has_word(bootargs, "scan"),
        cpus,
        cpu_count,
        gic_v3,
        gicc,
        hostile: has_word(bootargs, "hostile"),
        dma: has_word(bootargs, "dma"),
        pvpanic: first_compatible(fdt, "qemu,pvpanic-mmio")?.map(|r| r.base),
        panic: has_word(bootargs, "panic"),
        fw_cfg: fw_cfg(fdt)?,
        its: its(fdt)?,
        snapshot: has_word(bootargs, "snapshot"),
        gdb_gate: has_word(bootargs, "gdb_gate"),
    })
}

mod gic;
mod given;
mod unowned;
pub use gic::{device_ranges, Gic, Rtc, SpiSet};
pub use given::{given_regions, Given, Kind as GivenKind, MAX_GIVEN};
pub use unowned::{claimed_regions, unowned_address, GIB};

#[cfg(test)]
mod tests;
