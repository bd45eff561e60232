//! The nodes the guest-DT builder writes itself rather than copying: `/memory`, `/cpus`, `/psci`,
//! `/chosen`, and the filtered `/reserved-memory` and `/aliases`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use fdt::node::FdtNode;

use super::cells::{self, encode_pairs, host_to_guest, merged_ram, push_cells, read_pairs, Bus};
use super::{base_name, join, within, Builder, GuestDtError};

impl Builder<'_, '_> {
    pub(super) fn memory(&mut self, root: &Bus) -> Result<(), GuestDtError> {
        let ram = merged_ram(&self.spec.ram);
        let node = self.w.begin_node(&format!("memory@{:x}", ram[0].0))?;
        self.w.property_string("device_type", "memory")?;
        let reg = encode_pairs(&ram, root.addr_cells, root.size_cells, "guest RAM")?;
        self.w.property("reg", &reg)?;
        self.w.end_node(node)?;
        Ok(())
    }

    pub(super) fn cpus(&mut self, host: Option<FdtNode<'_, '_>>) -> Result<(), GuestDtError> {
        let host_ac = host
            .and_then(|h| h.property("#address-cells"))
            .and_then(|p| p.as_usize())
            .unwrap_or(1);
        // Host CPUs in MPIDR order: vCPU i inherits the phandle of the i-th.
        let mut host_cpus: Vec<(u64, FdtNode<'_, '_>)> = host
            .map(|h| {
                h.children()
                    .filter(|c| base_name(c.name) == "cpu")
                    .map(|c| {
                        let reg = c
                            .property("reg")
                            .and_then(|p| cells::read_cells(p.value, host_ac as u32));
                        (reg.unwrap_or(u64::MAX), c)
                    })
                    .collect()
            })
            .unwrap_or_default();
        host_cpus.sort_by_key(|&(reg, _)| reg);
        let host_cpus: Vec<FdtNode<'_, '_>> = host_cpus.into_iter().map(|(_, c)| c).collect();
        let compatible = host_cpus
            .iter()
            .find_map(|c| c.property("compatible"))
            .map_or(&b"arm,armv8\0"[..], |p| p.value);
        let max = self.spec.vcpu_mpidrs.iter().copied().max().unwrap_or(0);
        let ac: u32 = if max > u64::from(u32::MAX) {
            2
        } else {
            host_ac.clamp(1, 2) as u32
        };

        let node = self.w.begin_node("cpus")?;
        self.w.property_u32("#address-cells", ac)?;
        self.w.property_u32("#size-cells", 0)?;
        for (i, &mpidr) in self.spec.vcpu_mpidrs.iter().enumerate() {
            let cpu = self.w.begin_node(&format!("cpu@{mpidr:x}"))?;
            self.w.property_string("device_type", "cpu")?;
            self.w.property("compatible", compatible)?;
            let mut reg = Vec::new();
            push_cells(&mut reg, mpidr, ac, "vCPU MPIDR")?;
            self.w.property("reg", &reg)?;
            self.w.property_string("enable-method", "psci")?;
            let twin = host_cpus.get(i);
            if let Some(p) = twin
                .or(host_cpus.first())
                .and_then(|c| c.property("next-level-cache"))
            {
                self.w.property(p.name, p.value)?;
            }
            if let Some(p) = twin.and_then(|c| c.property("phandle")) {
                self.w.property(p.name, p.value)?;
            }
            self.w.end_node(cpu)?;
        }
        if let Some(h) = host {
            let mut buses = alloc::vec![Bus::of(h, "/cpus", 2)?];
            for child in h.children() {
                if !matches!(base_name(child.name), "cpu" | "cpu-map") {
                    self.copy(child, &join("/cpus", child.name), &mut buses, false)?;
                }
            }
        }
        self.w.end_node(node)?;
        Ok(())
    }

    pub(super) fn psci(&mut self, host: Option<FdtNode<'_, '_>>) -> Result<(), GuestDtError> {
        let node = self.w.begin_node(host.map_or("psci", |h| h.name))?;
        self.w
            .property("compatible", b"arm,psci-1.0\0arm,psci-0.2\0")?;
        self.w.property_string("method", "hvc")?;
        if let Some(p) = host.and_then(|h| h.property("phandle")) {
            self.w.property(p.name, p.value)?;
        }
        self.w.end_node(node)?;
        Ok(())
    }

    /// The node a `stdout-path` value names (a path or an alias, before any `:options`).
    fn stdout_target(&self, value: &str) -> Option<String> {
        let target = value.split(':').next()?;
        if target.starts_with('/') {
            Some(String::from(target))
        } else {
            self.fdt.aliases()?.resolve(target).map(String::from)
        }
    }

    pub(super) fn chosen(&mut self, host: Option<FdtNode<'_, '_>>) -> Result<(), GuestDtError> {
        let node = self.w.begin_node("chosen")?;
        let mut bootargs = String::from(self.spec.bootargs.trim());
        if let Some(extra) = self
            .spec
            .extra_bootargs
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if !bootargs.is_empty() {
                bootargs.push(' ');
            }
            bootargs.push_str(extra);
        }
        self.w.property_string("bootargs", &bootargs)?;
        if let Some((start, end)) = self.spec.initrd {
            self.w.property_u64("linux,initrd-start", start)?;
            self.w.property_u64("linux,initrd-end", end)?;
        }
        match &self.spec.stdout_path {
            Some(p) => self.w.property_string("stdout-path", p)?,
            None => {
                let host_stdout = host
                    .and_then(|h| h.property("stdout-path"))
                    .and_then(|p| p.as_str());
                if let Some(v) = host_stdout {
                    let gone = self
                        .stdout_target(v)
                        .is_some_and(|t| self.spec.drop_paths.iter().any(|d| within(&t, d)));
                    if !gone {
                        self.w.property_string("stdout-path", v)?;
                    }
                }
            }
        }
        if let Some(h) = host {
            for p in h.properties() {
                let regenerated = matches!(
                    p.name,
                    "bootargs"
                        | "linux,initrd-start"
                        | "linux,initrd-end"
                        | "stdout-path"
                        | "linux,stdout-path"
                );
                if !regenerated && !p.name.starts_with("xen,") {
                    self.w.property(p.name, p.value)?;
                }
            }
            let mut buses = alloc::vec![Bus::of(h, "/chosen", 2)?];
            for child in h.children() {
                let boot_module = base_name(child.name) == "module"
                    || child.compatible().is_some_and(|c| {
                        c.all()
                            .any(|s| s.starts_with("multiboot,") || s.starts_with("xen,"))
                    });
                if !boot_module {
                    self.copy(child, &join("/chosen", child.name), &mut buses, false)?;
                }
            }
        }
        self.w.end_node(node)?;
        Ok(())
    }

    pub(super) fn reserved_memory(
        &mut self,
        node: FdtNode<'_, '_>,
        path: &str,
        root: &Bus,
    ) -> Result<(), GuestDtError> {
        let handle = self.w.begin_node(node.name)?;
        for p in node.properties() {
            self.w.property(p.name, p.value)?;
        }
        let bus = Bus::of(node, path, root.addr_cells)?;
        let mut buses = alloc::vec![root.clone(), bus.clone()];
        for child in node.children() {
            let child_path = join(path, child.name);
            let Some(reg) = child.property("reg") else {
                // A dynamic pool (`size`, `alloc-ranges`): the guest allocates it from its own RAM.
                self.copy(child, &child_path, &mut buses, false)?;
                continue;
            };
            if self.is_dropped(&child_path) {
                continue;
            }
            let pairs = read_pairs(reg.value, bus.addr_cells, bus.size_cells).ok_or(
                GuestDtError::BadProperty {
                    path: child_path.clone(),
                    prop: "reg",
                },
            )?;
            let owned: Vec<(u64, u64)> = pairs
                .iter()
                .flat_map(|&(a, s)| host_to_guest(&self.spec.ram, a, s))
                .collect();
            if owned.is_empty() {
                continue;
            }
            let h = self.w.begin_node(child.name)?;
            for p in child.properties() {
                if p.name != "reg" {
                    self.w.property(p.name, p.value)?;
                }
            }
            let reg = encode_pairs(
                &owned,
                bus.addr_cells,
                bus.size_cells,
                "reserved-memory reg",
            )?;
            self.w.property("reg", &reg)?;
            self.w.end_node(h)?;
        }
        self.w.end_node(handle)?;
        Ok(())
    }

    pub(super) fn aliases(&mut self, node: FdtNode<'_, '_>) -> Result<(), GuestDtError> {
        let handle = self.w.begin_node(node.name)?;
        for p in node.properties() {
            let target = p.as_str().unwrap_or("");
            if !self.spec.drop_paths.iter().any(|d| within(target, d)) {
                self.w.property(p.name, p.value)?;
            }
        }
        self.w.end_node(handle)?;
        Ok(())
    }
}
