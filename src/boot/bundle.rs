//! A several-VMs guest bundle (version 2, docs/guest-bundle.md) passed as the initrd: its VMs
//! become dom0less domains, as if the device tree had a `xen,domain` node for each, and are booted
//! as such (no dom0-like VM). Their modules point into the bundle where the loader put it; the
//! bundle stays out of every allocator (it is the initrd), the pristine images a VM reset reloads.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::mm::addr::PaRange;
use crate::platform::{Domain, Module, ModuleKind, Platform};
use crate::vm::bundle::{self, vms::VmsBundle};

/// The domains of bundle `b`, loaded at physical `base`: each module at `base` + its offset.
fn to_domains(base: u64, b: &VmsBundle<'_>) -> Vec<Domain> {
    b.vms
        .iter()
        .map(|vm| {
            let module = |kind, what: &str, s: bundle::vms::Span, bootargs: Option<String>| Module {
                path: format!("guest bundle VM {} {what}", vm.name),
                kind,
                compatible: Vec::new(),
                range: PaRange::new(base + s.offset, s.length),
                bootargs,
            };
            let mut modules = alloc::vec![module(ModuleKind::Kernel, "kernel", vm.kernel, vm.cmdline.map(str::to_string))];
            modules.extend(vm.initrd.map(|s| module(ModuleKind::Ramdisk, "initrd", s, None)));
            modules.extend(vm.partial_dt.map(|s| module(ModuleKind::DeviceTree, "partial device tree", s, None)));
            Domain { name: vm.name.to_string(), memory: vm.memory, cpus: vm.cpus, vpl011: vm.vpl011, modules }
        })
        .collect()
}

/// When the initrd is a several-VMs bundle and the device tree configures no VM itself (no
/// multiboot kernel, no `xen,domain`), make its VMs the platform's domains. A bundle that does
/// not parse is an error naming what is wrong.
pub fn adopt(mut p: Platform) -> Result<Platform, String> {
    let Some(r) = p.chosen.initrd else { return Ok(p) };
    // SAFETY: the loader put the initrd there (the DT says so); it is identity-mapped RAM that
    // el2visor keeps out of its allocators for its whole life.
    let head = unsafe { core::slice::from_raw_parts(r.start.raw() as *const u8, r.size.min(16) as usize) };
    if bundle::version(head) != Some(bundle::VERSION_VMS) {
        return Ok(p);
    }
    if p.chosen.modules.iter().any(|m| m.kind == ModuleKind::Kernel) || !p.chosen.domains.is_empty() {
        log::warn!("the device tree configures the VMs itself: ignoring the several-VMs guest bundle in the initrd");
        return Ok(p);
    }
    // SAFETY: as above, for the whole initrd.
    let bytes = unsafe { core::slice::from_raw_parts(r.start.raw() as *const u8, r.size as usize) };
    let b = VmsBundle::parse(bytes).map_err(|e| format!("{e}"))?;
    p.chosen.domains = to_domains(r.start.raw(), &b);
    log::info!(
        "guest bundle at {:#x}: {} VMs ({})",
        r.start.raw(),
        b.vms.len(),
        b.vms.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
    );
    Ok(p)
}
