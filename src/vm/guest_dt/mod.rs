//! The guest's device tree, generated from the host's.
//!
//! Every host node and property is copied verbatim (phandles kept) except:
//! - `/memory*` and any other root child with `device_type = "memory"` (RAM to the platform):
//!   replaced by one `memory@…` node listing the VM's RAM (guest-physical);
//! - `/cpus`: regenerated, one `cpu@…` per vCPU with `reg` = its MPIDR affinity,
//!   `enable-method = "psci"`, the compatible of the host's first CPU, and the phandle and
//!   `next-level-cache` of the host CPU with the same index (so cache nodes and PMU affinities keep
//!   resolving); `cpu-map` is dropped, other `/cpus` children (cache nodes) are kept;
//! - `/psci`: regenerated (`arm,psci-1.0`, `arm,psci-0.2`, method `hvc`), added if the host has none;
//! - `/chosen`: regenerated with the guest's bootargs, `linux,initrd-start/-end` and `stdout-path`;
//!   the `module@…` (multiboot, Xen) children and `xen,*` properties are dropped;
//! - `/reserved-memory` children and `/memreserve/` entries are kept only for memory the VM owns,
//!   moved to guest-physical addresses and clipped to guest RAM; the spec's `reserved` ranges
//!   (RAM el2visor does not map, such as spin tables) are added to `/memreserve/`;
//! - the GIC node's `reg` says what the VM sees: v2 distributor + CPU interface (the hypervisor
//!   GICH/GICV entries are gone), v3 distributor + one redistributor region sized for the vCPUs.
//!   Its `interrupts` (the maintenance PPI) stays: a guest kernel without EL2 never uses it. A
//!   GICv3 ITS under the GIC is set `status = "disabled"` unless the VM gets a virtual ITS there
//!   (`keep_its`, `vm::its`); a
//!   GICv2m frame is copied as it is (a VM that owns the PCI host bridge gets the frame itself,
//!   any other VM has it in `drop_paths`);
//! - `msi-parent`, `msi-map` and `msi-map-mask` that name a dropped or disabled MSI controller are
//!   removed, so the guest's PCI devices use INTx instead of MSIs nothing would deliver;
//! - nodes in `drop_paths` (el2visor-owned devices) are removed with their subtrees, and aliases
//!   pointing at them go too; nodes in `disable_paths` get `status = "disabled"`;
//! - properties named in `drop_props` are left out wherever they are (el2visor owns the SMMU: the
//!   `iommus`, `iommu-map` and `iommu-map-mask` that point at it go, so a guest neither sees an
//!   IOMMU nor waits for one);
//! - overlay bookkeeping (`__symbols__`, `__fixups__`, `__local_fixups__`) is dropped.

#![forbid(unsafe_code)]

mod cells;
pub mod domu;
mod regenerated;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use fdt::node::FdtNode;
use fdt::Fdt;
use vm_fdt::{FdtReserveEntry, FdtWriter};

pub use self::cells::read_cells;
use self::cells::{cpu_to_bus, encode_pairs, host_to_guest, Bus};
use crate::vm::config::RamRegion;

/// Redistributor stride when the spec gives none: RD_base + SGI_base frames, 64 KiB each.
pub const GICV3_REDIST_STRIDE: u64 = 0x2_0000;

/// The stride between the guest's GICv3 redistributors, from the host DT's
/// `redistributor-stride` (GICv4 parts pad each one to 256 KiB): the guest DT says it and the
/// virtual GIC decodes with it. One that is not a multiple of 64 KiB of at least the two frames
/// is not usable; the default then.
pub fn redist_stride(dt: Option<u64>) -> u64 {
    match dt {
        Some(s) if s >= GICV3_REDIST_STRIDE && s.is_multiple_of(0x1_0000) => s,
        _ => GICV3_REDIST_STRIDE,
    }
}

/// What interrupt controller the guest sees; addresses are guest-physical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestGic {
    /// Distributor and CPU interface (the guest's GICC address, where GICV is mapped), (base, size).
    V2 { dist: (u64, u64), cpu: (u64, u64) },
    /// Distributor (base, size), base of one redistributor region holding a frame set per vCPU,
    /// and the stride between frame sets if not the default 128 KiB.
    V3 {
        dist: (u64, u64),
        redist: u64,
        redist_stride: Option<u64>,
    },
}

/// Everything about the guest the generated DT must say.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GuestDtSpec {
    pub ram: Vec<RamRegion>,
    /// Guest-physical (start, size) ranges of `ram` the guest must not use: written as
    /// `/memreserve/` entries unless a host entry already covers them.
    pub reserved: Vec<(u64, u64)>,
    /// MPIDR affinity per vCPU, vCPU 0 first.
    pub vcpu_mpidrs: Vec<u64>,
    pub bootargs: String,
    /// Appended to `bootargs` after a space (board quirks such as `clk_ignore_unused`).
    pub extra_bootargs: Option<String>,
    /// Guest-physical [start, end) of the initrd.
    pub initrd: Option<(u64, u64)>,
    /// `None` keeps the host's `stdout-path` unless it points at a dropped node.
    pub stdout_path: Option<String>,
    pub gic: Option<GuestGic>,
    /// Full paths (`/pl011@9000000`) of nodes to remove with their subtrees.
    pub drop_paths: Vec<String>,
    /// Full paths of nodes to mark `status = "disabled"`.
    pub disable_paths: Vec<String>,
    /// Property names left out of every node copied from the host.
    pub drop_props: Vec<&'static str>,
    /// A DTB (a guest bundle's device-tree-properties entry) whose properties are set on the nodes at
    /// the same paths, added or replacing the host's. Only the root and nodes copied from the host
    /// take them; a path that is absent, or regenerated (`/cpus`, `/memory`, `/psci`, `/chosen`),
    /// is an error. Properties the builder itself sets on a node (`status` of a disabled node, the
    /// GIC's `reg`) win.
    pub dt_props: Option<Vec<u8>>,
    /// Where the VM's emulated pvpanic device is (guest-physical): a `pvpanic@…` node
    /// (`qemu,pvpanic-mmio`) under the root.
    pub pvpanic: Option<u64>,
    /// The VM has a virtual ITS at the host ITS's address (`vm::its`): the ITS node under the GIC
    /// stays, and the `msi-map`/`msi-parent` that name it with it.
    pub keep_its: bool,
}

/// Why no guest DT could be made.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestDtError {
    /// The host DTB's header is unusable: says how.
    HostDtb(&'static str),
    /// The device-tree-properties blob is not a DTB.
    BadDtProps(&'static str),
    /// A dom0less domain's partial device tree is not a sound DTB: says how.
    PartialDt(String),
    Writer(vm_fdt::Error),
    NoRam,
    NoVcpus,
    NoGicSpec,
    NoGic {
        version: &'static str,
    },
    PathNotFound {
        path: String,
        purpose: &'static str,
    },
    CellsTooSmall {
        what: String,
        value: u64,
        cells: u32,
    },
    Untranslatable {
        node: String,
        addr: u64,
    },
    BadProperty {
        path: String,
        prop: &'static str,
    },
}

impl From<vm_fdt::Error> for GuestDtError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Writer(e)
    }
}

impl fmt::Display for GuestDtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostDtb(e) => write!(f, "guest DT: cannot read the host DTB: {e}"),
            Self::BadDtProps(e) => write!(f, "guest DT: the device-tree properties blob is unusable: {e}"),
            Self::PartialDt(e) => write!(f, "guest DT: partial device tree: {e}"),
            Self::Writer(e) => write!(f, "guest DT: writing failed: {e}"),
            Self::NoRam => write!(f, "guest DT: the VM has no RAM"),
            Self::NoVcpus => write!(f, "guest DT: the VM has no vCPUs"),
            Self::NoGicSpec => write!(f, "guest DT: no GIC given for the VM"),
            Self::NoGic { version } => write!(
                f,
                "guest DT: the host DT has no {version} interrupt-controller node to rewrite for the guest"
            ),
            Self::PathNotFound { path, purpose } => {
                write!(f, "guest DT: no node {path} in the host DT (asked to {purpose} it): check the path")
            }
            Self::CellsTooSmall { what, value, cells } => {
                write!(f, "guest DT: {what} {value:#x} does not fit in {cells} cell(s)")
            }
            Self::Untranslatable { node, addr } => write!(
                f,
                "guest DT: CPU address {addr:#x} is not reachable through the `ranges` of {node}"
            ),
            Self::BadProperty { path, prop } => write!(f, "guest DT: malformed `{prop}` in {path}"),
        }
    }
}

const GIC_V2_COMPATIBLES: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,cortex-a5-gic",
    "arm,arm11mp-gic",
    "arm,pl390",
    "arm,tc11mp-gic",
    "arm,eb11mp-gic",
    "arm,arm1176jzf-devchip-gic",
    "brcm,brahma-b15-gic",
    "qcom,msm-qgic2",
];
const GIC_V3_COMPATIBLES: &[&str] = &["arm,gic-v3"];
/// MSI frames the vGIC never emulates: disabled in every guest DT.
const UNEMULATED_MSI_COMPATIBLES: &[&str] = &["arm,gic-v3-its"];

fn has_compatible(node: FdtNode<'_, '_>, list: &[&str]) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| list.contains(&s)))
}

fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `path` is `target` or inside it.
fn within(path: &str, target: &str) -> bool {
    path == target || (path.starts_with(target) && path.as_bytes().get(target.len()) == Some(&b'/'))
}

struct Builder<'s, 'h> {
    spec: &'s GuestDtSpec,
    fdt: &'s Fdt<'h>,
    w: FdtWriter,
    gic_done: bool,
    dropped: Vec<bool>,
    disabled: Vec<bool>,
    /// Remaining `dt_props` properties by node path; taken out as they are applied.
    overlay: PropsByPath,
    /// Phandles of nodes the guest does not get (dropped, disabled): MSI references to them go.
    dead: Vec<u32>,
}

fn phandle_of(node: FdtNode<'_, '_>) -> Option<u32> {
    node.property("phandle")
        .or_else(|| node.property("linux,phandle"))
        .and_then(|p| p.value.get(..4))
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The phandles of every node the guest will not have working: in (or under) `drop_paths`, in
/// `disable_paths`, or an unemulated MSI frame under a GIC.
fn dead_phandles(fdt: &Fdt<'_>, spec: &GuestDtSpec) -> Vec<u32> {
    fn walk(node: FdtNode<'_, '_>, path: &str, parent_gic: bool, spec: &GuestDtSpec, out: &mut Vec<u32>) {
        let dead = spec.drop_paths.iter().any(|d| within(path, d))
            || spec.disable_paths.iter().any(|d| d == path)
            || (parent_gic && !spec.keep_its && has_compatible(node, UNEMULATED_MSI_COMPATIBLES));
        if let Some(ph) = phandle_of(node).filter(|_| dead) {
            out.push(ph);
        }
        let gic = has_compatible(node, GIC_V2_COMPATIBLES) || has_compatible(node, GIC_V3_COMPATIBLES);
        for c in node.children() {
            walk(c, &join(path, c.name), gic, spec, out);
        }
    }
    let mut out = Vec::new();
    if let Some(root) = fdt.find_node("/") {
        walk(root, "/", false, spec, &mut out);
    }
    out
}

/// Whether `node`'s MSI properties name a controller in `dead`: `msi-parent`'s first cell, or
/// any `msi-map` entry's phandle (entries are `<rid-base phandle msi-base length>`).
fn msi_to_dead(node: FdtNode<'_, '_>, dead: &[u32]) -> bool {
    let cells = |name: &str| -> Vec<u32> {
        node.property(name)
            .map(|p| p.value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
            .unwrap_or_default()
    };
    let parent = cells("msi-parent").first().is_some_and(|ph| dead.contains(ph));
    let map = cells("msi-map").chunks(4).any(|e| e.get(1).is_some_and(|ph| dead.contains(ph)));
    parent || map
}

/// Node path -> (property name, value) list.
type PropsByPath = BTreeMap<String, Vec<(String, Vec<u8>)>>;

fn fdt_error(e: fdt::FdtError) -> &'static str {
    match e {
        fdt::FdtError::BadMagic => "no FDT magic (not a device tree blob)",
        fdt::FdtError::BufferTooSmall => "shorter than its header or its totalsize (truncated)",
        fdt::FdtError::BadPtr => "null pointer",
    }
}

/// Every node of `dtb` that has properties: path -> properties.
fn props_by_path(dtb: &[u8]) -> Result<PropsByPath, GuestDtError> {
    fn walk(n: FdtNode<'_, '_>, path: &str, out: &mut PropsByPath) {
        let props: Vec<(String, Vec<u8>)> = n
            .properties()
            .map(|p| (String::from(p.name), p.value.to_vec()))
            .collect();
        if !props.is_empty() {
            out.insert(String::from(path), props);
        }
        for c in n.children() {
            walk(c, &join(path, c.name), out);
        }
    }
    let fdt = Fdt::new(dtb).map_err(|e| GuestDtError::BadDtProps(fdt_error(e)))?;
    let root = fdt
        .find_node("/")
        .ok_or(GuestDtError::BadDtProps("no root node"))?;
    let mut out = BTreeMap::new();
    walk(root, "/", &mut out);
    Ok(out)
}

/// Generate the guest DT from the host DTB and the VM's spec.
pub fn generate(host_dtb: &[u8], spec: &GuestDtSpec) -> Result<Vec<u8>, GuestDtError> {
    let fdt = Fdt::new(host_dtb).map_err(|e| GuestDtError::HostDtb(fdt_error(e)))?;
    let overlay = match &spec.dt_props {
        Some(blob) => props_by_path(blob)?,
        None => BTreeMap::new(),
    };
    if spec.ram.iter().all(|r| r.size == 0) {
        return Err(GuestDtError::NoRam);
    }
    if spec.vcpu_mpidrs.is_empty() {
        return Err(GuestDtError::NoVcpus);
    }
    if spec.gic.is_none() {
        return Err(GuestDtError::NoGicSpec);
    }

    let mut reserve: Vec<(u64, u64)> = Vec::new();
    for r in fdt.memory_reservations() {
        reserve.extend(host_to_guest(&spec.ram, r.address() as u64, r.size() as u64));
    }
    for &(ipa, size) in &spec.reserved {
        if size != 0 && !reserve.iter().any(|&(a, s)| a <= ipa && ipa + size <= a + s) {
            reserve.push((ipa, size));
        }
    }
    let reserve = reserve.into_iter().map(|(a, s)| FdtReserveEntry::new(a, s)).collect::<Result<Vec<_>, _>>()?;
    let mut w = FdtWriter::new_with_mem_reserv(&reserve)?;
    w.set_boot_cpuid_phys(spec.vcpu_mpidrs[0] as u32);
    let mut b = Builder {
        spec,
        fdt: &fdt,
        w,
        gic_done: false,
        dropped: alloc::vec![false; spec.drop_paths.len()],
        disabled: alloc::vec![false; spec.disable_paths.len()],
        overlay,
        dead: dead_phandles(&fdt, spec),
    };
    b.root()?;
    if !b.gic_done {
        let version = if matches!(spec.gic, Some(GuestGic::V3 { .. })) {
            "GICv3"
        } else {
            "GICv2"
        };
        return Err(GuestDtError::NoGic { version });
    }
    for (path, hit) in spec.drop_paths.iter().zip(&b.dropped) {
        if !hit {
            return Err(GuestDtError::PathNotFound {
                path: path.clone(),
                purpose: "drop",
            });
        }
    }
    for (path, hit) in spec.disable_paths.iter().zip(&b.disabled) {
        if !hit {
            return Err(GuestDtError::PathNotFound {
                path: path.clone(),
                purpose: "disable",
            });
        }
    }
    if let Some(path) = b.overlay.keys().next() {
        return Err(GuestDtError::PathNotFound {
            path: path.clone(),
            purpose: "set device-tree properties on",
        });
    }
    Ok(b.w.finish()?)
}

impl Builder<'_, '_> {
    /// Whether `path` is dropped (and remember that the drop path matched).
    fn is_dropped(&mut self, path: &str) -> bool {
        if base_name(path.rsplit('/').next().unwrap_or("")).starts_with("__") {
            return true;
        }
        match self.spec.drop_paths.iter().position(|d| d == path) {
            Some(i) => {
                self.dropped[i] = true;
                true
            }
            None => false,
        }
    }

    fn is_disabled(&mut self, path: &str) -> bool {
        match self.spec.disable_paths.iter().position(|d| d == path) {
            Some(i) => {
                self.disabled[i] = true;
                true
            }
            None => false,
        }
    }

    fn root(&mut self) -> Result<(), GuestDtError> {
        let root = self.fdt.find_node("/").ok_or(GuestDtError::BadProperty {
            path: "/".into(),
            prop: "root node",
        })?;
        let node = self.w.begin_node("")?;
        self.props("/", root, |_| false)?;
        let root_bus = Bus::of(root, "/", 2)?;
        let (mut memory, mut cpus, mut psci, mut chosen) = (false, false, false, false);
        for child in root.children() {
            let path = join("/", child.name);
            if self.is_dropped(&path) {
                continue;
            }
            match base_name(child.name) {
                // As the platform counts RAM: by `device_type` as well as by name.
                _ if crate::platform::is_memory_node(child) => {
                    if !memory {
                        self.memory(&root_bus)?;
                        memory = true;
                    }
                }
                "cpus" => {
                    self.cpus(Some(child))?;
                    cpus = true;
                }
                "psci" => {
                    self.psci(Some(child))?;
                    psci = true;
                }
                "chosen" => {
                    self.chosen(Some(child))?;
                    chosen = true;
                }
                "reserved-memory" => self.reserved_memory(child, &path, &root_bus)?,
                "aliases" => self.aliases(child)?,
                _ => self.copy(child, &path, &mut alloc::vec![root_bus.clone()], false)?,
            }
        }
        if !memory {
            self.memory(&root_bus)?;
        }
        if !cpus {
            self.cpus(None)?;
        }
        if !psci {
            self.psci(None)?;
        }
        if !chosen {
            self.chosen(None)?;
        }
        if let Some(base) = self.spec.pvpanic {
            let n = self.w.begin_node(&format!("pvpanic@{base:x}"))?;
            self.w.property_string("compatible", crate::vm::pvpanic::COMPATIBLE)?;
            let reg = encode_pairs(&[(base, crate::vm::pvpanic::SIZE)], root_bus.addr_cells, root_bus.size_cells, "pvpanic reg")?;
            self.w.property("reg", &reg)?;
            self.w.end_node(n)?;
        }
        self.w.end_node(node)?;
        Ok(())
    }

    /// Write `node`'s properties, minus those the builder sets itself (`builder_owned`), with the
    /// `dt_props` for `path` added or replacing the host's.
    fn props(
        &mut self,
        path: &str,
        node: FdtNode<'_, '_>,
        builder_owned: impl Fn(&str) -> bool,
    ) -> Result<(), GuestDtError> {
        let extra = self.overlay.remove(path).unwrap_or_default();
        let dropped = |name: &str| self.spec.drop_props.contains(&name);
        let no_msi = msi_to_dead(node, &self.dead);
        for p in node.properties() {
            if no_msi && matches!(p.name, "msi-parent" | "msi-map" | "msi-map-mask") {
                continue;
            }
            if !builder_owned(p.name) && !dropped(p.name) && !extra.iter().any(|(n, _)| n == p.name) {
                self.w.property(p.name, p.value)?;
            }
        }
        for (name, value) in &extra {
            if !builder_owned(name) {
                self.w.property(name, value)?;
            }
        }
        Ok(())
    }

    /// Copy `node` and its subtree verbatim, applying drops, disables and the GIC rewrite.
    fn copy(
        &mut self,
        node: FdtNode<'_, '_>,
        path: &str,
        buses: &mut Vec<Bus>,
        force_disable: bool,
    ) -> Result<(), GuestDtError> {
        if self.is_dropped(path) {
            return Ok(());
        }
        let disable = self.is_disabled(path) || force_disable;
        let gic = match &self.spec.gic {
            Some(g @ GuestGic::V2 { .. })
                if !self.gic_done && has_compatible(node, GIC_V2_COMPATIBLES) =>
            {
                Some(g.clone())
            }
            Some(g @ GuestGic::V3 { .. })
                if !self.gic_done && has_compatible(node, GIC_V3_COMPATIBLES) =>
            {
                Some(g.clone())
            }
            _ => None,
        }
        .filter(|_| node.property("interrupt-controller").is_some());
        let handle = self.w.begin_node(node.name)?;
        let is_gic = gic.is_some();
        self.props(path, node, |name| {
            (disable && name == "status")
                || (is_gic
                    && matches!(
                        name,
                        "reg" | "#redistributor-regions" | "redistributor-stride"
                    ))
        })?;
        if disable {
            self.w.property_string("status", "disabled")?;
        }
        if let Some(g) = &gic {
            self.gic_reg(g, path, buses)?;
            self.gic_done = true;
        }
        let parent_cells = buses.last().map_or(2, |b| b.addr_cells);
        buses.push(Bus::of(node, path, parent_cells)?);
        for child in node.children() {
            let msi = gic.is_some() && !self.spec.keep_its && has_compatible(child, UNEMULATED_MSI_COMPATIBLES);
            self.copy(child, &join(path, child.name), buses, msi)?;
        }
        buses.pop();
        self.w.end_node(handle)?;
        Ok(())
    }

    fn gic_reg(&mut self, gic: &GuestGic, path: &str, buses: &[Bus]) -> Result<(), GuestDtError> {
        let bus = buses.last().ok_or(GuestDtError::BadProperty {
            path: path.into(),
            prop: "reg",
        })?;
        let (ac, sc) = (bus.addr_cells, bus.size_cells);
        let pairs = match *gic {
            GuestGic::V2 { dist, cpu } => alloc::vec![dist, cpu],
            GuestGic::V3 {
                dist,
                redist,
                redist_stride: redist_stride_dt,
            } => {
                let stride = redist_stride(redist_stride_dt);
                alloc::vec![dist, (redist, stride * self.spec.vcpu_mpidrs.len() as u64)]
            }
        };
        let mut bus_pairs = Vec::with_capacity(pairs.len());
        for (a, s) in pairs {
            bus_pairs.push((cpu_to_bus(buses, a, s)?, s));
        }
        let reg = encode_pairs(&bus_pairs, ac, sc, "GIC reg")?;
        self.w.property("reg", &reg)?;
        if let GuestGic::V3 { redist_stride: dt, .. } = *gic {
            self.w.property_u32("#redistributor-regions", 1)?;
            if dt.is_some() {
                self.w.property_u64("redistributor-stride", redist_stride(dt))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
