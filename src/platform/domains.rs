//! Xen's dom0less bindings: every child of `/chosen` with `compatible = "xen,domain"` is a VM.
//! el2visor reads the subset a partitioning hypervisor needs, as Xen documents it
//! (docs/dom0less.md lists it): `memory = <hi lo>` in KiB, `cpus = <n>`, an empty `vpl011`
//! property, and `multiboot,kernel` / `multiboot,ramdisk` / `multiboot,device-tree` module
//! children whose `reg` uses the domain node's own `#address-cells` / `#size-cells`.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::modules::module;
use super::error::DtErrorKind;
use super::ranges::{Cells, Level};
use super::tree::{self, bad_prop, Node};
use super::{Domain, ModuleKind};

/// The domain node `n` (a child of `/chosen`).
pub fn domain(n: Node<'_, '_>) -> Result<Domain, DtErrorKind> {
    let path = format!("/chosen/{}", n.name);
    let kib = tree::prop_u64(n, &path, "memory")?.ok_or(bad_prop(&path, "memory", "missing: how much RAM (in KiB) does the domain get?"))?;
    if kib == 0 {
        return Err(bad_prop(&path, "memory", "zero: the domain needs RAM"));
    }
    let memory = kib.checked_mul(1024).ok_or(bad_prop(&path, "memory", "more RAM than an address can hold"))?;
    let cpus = tree::prop_u32(n, &path, "cpus")?.ok_or(bad_prop(&path, "cpus", "missing: how many vCPUs does the domain get?"))?;
    if cpus == 0 {
        return Err(bad_prop(&path, "cpus", "zero: the domain needs a vCPU"));
    }
    // The modules' `reg` is in the domain node's cells (Xen's binding); a node without them
    // gets the DT defaults.
    let own = tree::cells_of(n, &path)?;
    let cells = Cells {
        addr: if tree::prop(n, "#address-cells").is_some() { own.addr } else { Cells::DEFAULT.addr },
        size: if tree::prop(n, "#size-cells").is_some() { own.size } else { Cells::DEFAULT.size },
    };
    let chain = [Level { cells, ranges: None }];
    let mut modules = Vec::new();
    for m in n.children() {
        if let Some(module) = module(m, &path, &chain)? {
            modules.push(module);
        }
    }
    for kind in [ModuleKind::Kernel, ModuleKind::Ramdisk, ModuleKind::DeviceTree] {
        if modules.iter().filter(|m| m.kind == kind).count() > 1 {
            return Err(bad_prop(&path, "compatible", "more than one module of the same kind"));
        }
    }
    Ok(Domain { name: String::from(n.name), memory, cpus, vpl011: tree::prop(n, "vpl011").is_some(), modules })
}
