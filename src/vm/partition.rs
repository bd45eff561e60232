//! Static partitioning of the machine among dom0less domains and the dom0-like VM: which
//! physical CPUs each VM's vCPUs are pinned to, whether the RAM they ask for exists, and whether
//! their boot modules are sane. Pure; a configuration that cannot work is refused with one line
//! naming the VM.
//!
//! CPUs: the dom0-like VM (the `multiboot,kernel` directly under `/chosen`), when there is one,
//! gets pCPUs 0.. (every CPU no domain takes, at least one); the domains follow in device-tree
//! order, each on the next `cpus` pCPUs. vCPU n of a VM runs on its n-th pCPU and nowhere else.
//! Memory: a domain's RAM comes from el2visor's free frames (not identity mapped); the dom0-like
//! VM keeps the identity-mapped RAM that is left.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::mm::addr::PaRange;
use crate::platform::{Domain, Module, ModuleKind};

/// One domain's share of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPlan {
    pub name: String,
    /// The pCPU of each vCPU.
    pub pcpus: Vec<usize>,
    /// RAM in bytes (a multiple of 2 MiB).
    pub memory: u64,
    pub vpl011: bool,
    pub kernel: PaRange,
    pub bootargs: String,
    pub initrd: Option<PaRange>,
    /// The partial device tree (`/passthrough`).
    pub dtb: Option<PaRange>,
}

/// The whole machine's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The dom0-like VM's pCPUs (empty when there is none).
    pub dom0_pcpus: Vec<usize>,
    pub domains: Vec<DomainPlan>,
}

/// Domain RAM is handed out in 2 MiB blocks (Stage-2 block mappings).
const RAM_GRANULE: u64 = 2 << 20;

fn one(modules: &[Module], kind: ModuleKind) -> Option<&Module> {
    modules.iter().find(|m| m.kind == kind)
}

/// What the loader left where, before el2visor copies anything: the boot modules, no two
/// overlapping, whatever the configuration. Each module is then copied into a slot of its own,
/// so an overlap the loader made (one image overwriting the other) is invisible to every later
/// check. With dom0less domains, also [`check_modules`] in full and the domains' RAM out of
/// `total` bytes, `reserve` of them kept back ([`check_memory`]); without, a module outside RAM
/// stays where it is and the VM plan names it.
pub fn check_boot(domains: &[Domain], dom0_modules: &[Module], ram: &[PaRange], total: u64, reserve: u64) -> Result<(), String> {
    if domains.is_empty() {
        return modules_sane(domains, dom0_modules, None);
    }
    check_modules(domains, dom0_modules, ram)?;
    check_memory(domains, total, reserve)
}

/// The boot modules of `domains` and of the dom0-like VM (`dom0_modules`) as the loader described
/// them: each inside `ram`, no two overlapping (one would have overwritten the other's image).
/// Checked before el2visor copies anything.
pub fn check_modules(domains: &[Domain], dom0_modules: &[Module], ram: &[PaRange]) -> Result<(), String> {
    modules_sane(domains, dom0_modules, Some(ram))
}

/// [`check_modules`], whether each is inside RAM checked only when `ram` is given.
fn modules_sane(domains: &[Domain], dom0_modules: &[Module], ram: Option<&[PaRange]>) -> Result<(), String> {
    // Modules: inside RAM, and no two overlapping (one would overwrite the other's image).
    // Who a module is for, in words: `VM <domain>` or `the dom0-like VM`.
    let all: Vec<(String, &Module)> = dom0_modules
        .iter()
        .map(|m| (String::from("the dom0-like VM"), m))
        .chain(domains.iter().flat_map(|d| d.modules.iter().map(move |m| (format!("VM {}", d.name), m))))
        .collect();
    for (i, (owner, m)) in all.iter().enumerate() {
        let in_ram = |ram: &[PaRange]| ram.iter().any(|r| m.range.start.raw() >= r.start.raw() && m.range.end() <= r.end());
        if !ram.is_none_or(in_ram) {
            return Err(format!("{owner}: module {} ({:#x}+{:#x}) is not in RAM", m.path, m.range.start.raw(), m.range.size));
        }
        for (other_owner, o) in &all[i + 1..] {
            if m.range.start.raw() < o.range.end() && o.range.start.raw() < m.range.end() {
                let of = if other_owner == owner { String::new() } else { format!(" of {other_owner}") };
                return Err(format!("{owner}: module {} overlaps module {}{of}", m.path, o.path));
            }
        }
    }
    Ok(())
}

/// Whether the domains' RAM can come out of a machine with `total` bytes of RAM, `reserve` of
/// which el2visor and the dom0-like VM need at least: the first domain that does not fit is named.
pub fn check_memory(domains: &[Domain], total: u64, reserve: u64) -> Result<(), String> {
    let mut left = total.saturating_sub(reserve);
    for d in domains {
        let need = d.memory.next_multiple_of(RAM_GRANULE);
        if need > left {
            return Err(format!("VM {}: asks for {} MiB of RAM but only {} MiB are free", d.name, need >> 20, left >> 20));
        }
        left -= need;
    }
    Ok(())
}

/// Plan `domains` beside an optional dom0-like VM (`dom0_modules`, empty when there is none) on
/// `pcpus` CPUs, with `free_ram` bytes el2visor can give domains, every module inside `ram`.
pub fn partition(
    domains: &[Domain],
    dom0_modules: &[Module],
    pcpus: usize,
    free_ram: u64,
    ram: &[PaRange],
) -> Result<Partition, String> {
    check_modules(domains, dom0_modules, ram)?;
    let mut names: Vec<&str> = Vec::new();
    for d in domains {
        if names.contains(&d.name.as_str()) {
            return Err(format!("VM {}: two domains have this name", d.name));
        }
        names.push(&d.name);
    }

    let wanted: usize = domains.iter().map(|d| d.cpus as usize).sum();
    let has_dom0 = !dom0_modules.is_empty();
    let dom0_cpus = if has_dom0 {
        match pcpus.checked_sub(wanted) {
            Some(n) if n >= 1 => n,
            _ => return Err(format!("the domains ask for {wanted} vCPUs of {pcpus} CPUs: none is left for the dom0-like VM")),
        }
    } else {
        0
    };
    let mut next = dom0_cpus;
    let mut left = free_ram;
    let mut plans = Vec::new();
    for d in domains {
        let cpus = d.cpus as usize;
        if next + cpus > pcpus {
            return Err(format!(
                "VM {}: asks for {cpus} vCPUs but only {} of the {pcpus} CPUs are left",
                d.name,
                pcpus - next.min(pcpus)
            ));
        }
        let kernel = one(&d.modules, ModuleKind::Kernel).ok_or_else(|| format!("VM {}: no multiboot,kernel module", d.name))?;
        let memory = d.memory.next_multiple_of(RAM_GRANULE);
        if memory > left {
            return Err(format!("VM {}: asks for {} MiB of RAM but only {} MiB are free", d.name, memory >> 20, left >> 20));
        }
        left -= memory;
        plans.push(DomainPlan {
            name: d.name.clone(),
            pcpus: (next..next + cpus).collect(),
            memory,
            vpl011: d.vpl011,
            kernel: kernel.range,
            bootargs: kernel.bootargs.clone().unwrap_or_default(),
            initrd: one(&d.modules, ModuleKind::Ramdisk).map(|m| m.range),
            dtb: one(&d.modules, ModuleKind::DeviceTree).map(|m| m.range),
        });
        next += cpus;
    }
    Ok(Partition { dom0_pcpus: (0..dom0_cpus).collect(), domains: plans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn module(path: &str, kind: ModuleKind, start: u64, size: u64) -> Module {
        Module { path: path.to_string(), kind, compatible: Vec::new(), range: PaRange::new(start, size), bootargs: None }
    }

    fn domain(name: &str, cpus: u32, mib: u64, kernel_at: u64) -> Domain {
        Domain {
            name: name.to_string(),
            memory: mib << 20,
            cpus,
            vpl011: true,
            modules: alloc::vec![module(&format!("/chosen/{name}/module@{kernel_at:x}"), ModuleKind::Kernel, kernel_at, 0x80_0000)],
        }
    }

    const RAM: [PaRange; 1] = [PaRange::new(0x4000_0000, 0x1_0000_0000)];

    #[test]
    fn domains_get_consecutive_cpus_after_the_dom0_like_vm() {
        let d = [domain("domU1", 2, 256, 0x5000_0000), domain("domU2", 1, 100, 0x5100_0000)];
        let dom0 = [module("/chosen/module@49000000", ModuleKind::Kernel, 0x4900_0000, 0x100_0000)];
        let p = partition(&d, &dom0, 4, 1 << 30, &RAM).unwrap();
        assert_eq!(p.dom0_pcpus, [0]);
        assert_eq!(p.domains[0].pcpus, [1, 2]);
        assert_eq!(p.domains[1].pcpus, [3]);
        assert_eq!(p.domains[1].memory, 100 << 20, "already 2 MiB aligned");
        let alone = partition(&d, &[], 4, 1 << 30, &RAM).unwrap();
        assert_eq!((alone.dom0_pcpus.len(), alone.domains[0].pcpus.clone()), (0, alloc::vec![0, 1]), "without a dom0-like VM domains start at CPU 0");
    }

    #[test]
    fn memory_is_checked_against_the_machine_first() {
        let d = [domain("a", 1, 512, 0x5000_0000), domain("b", 1, 1024, 0x5100_0000)];
        assert_eq!(check_memory(&d, 2 << 30, 128 << 20), Ok(()));
        let e = check_memory(&d, 1 << 30, 128 << 20).unwrap_err();
        assert_eq!(e, "VM b: asks for 1024 MiB of RAM but only 384 MiB are free");
    }

    #[test]
    fn impossible_configurations_are_one_line_naming_the_vm() {
        let dom0 = [module("/chosen/module@49000000", ModuleKind::Kernel, 0x4900_0000, 0x100_0000)];
        let cases: [(Vec<Domain>, &[Module], u64, &str); 6] = [
            (alloc::vec![domain("big", 5, 64, 0x5000_0000)], &[], 1 << 30, "VM big: asks for 5 vCPUs but only 4 of the 4 CPUs are left"),
            (alloc::vec![domain("a", 4, 64, 0x5000_0000)], &dom0, 1 << 30, "none is left for the dom0-like VM"),
            (alloc::vec![domain("fat", 1, 2048, 0x5000_0000)], &[], 1 << 30, "VM fat: asks for 2048 MiB of RAM but only 1024 MiB are free"),
            (alloc::vec![domain("a", 1, 64, 0x5000_0000), domain("b", 1, 64, 0x5040_0000)], &[], 1 << 30, "overlaps module /chosen/b/module@50400000 of VM b"),
            (alloc::vec![domain("far", 1, 64, 0x2_0000_0000)], &[], 1 << 30, "VM far: module /chosen/far/module@200000000 (0x200000000+0x800000) is not in RAM"),
            (alloc::vec![Domain { modules: Vec::new(), ..domain("bare", 1, 64, 0) }], &[], 1 << 30, "VM bare: no multiboot,kernel module"),
        ];
        for (d, dom0, free, says) in cases {
            let e = partition(&d, dom0, 4, free, &RAM).unwrap_err();
            assert!(e.contains(says), "{e}");
            assert!(!e.contains('\n'));
        }
        let twins = [domain("x", 1, 64, 0x5000_0000), domain("x", 1, 64, 0x5100_0000)];
        assert!(partition(&twins, &[], 4, 1 << 30, &RAM).unwrap_err().contains("VM x: two domains"));
    }

    #[test]
    fn overlapping_modules_are_refused_before_the_copies_without_domains_too() {
        // A kernel and a ramdisk the loader put over each other, no dom0less domain: once copied,
        // each into its own slot, nothing could tell.
        let dom0 = [
            module("/chosen/module@49000000", ModuleKind::Kernel, 0x4900_0000, 0x100_0000),
            module("/chosen/module@49800000", ModuleKind::Ramdisk, 0x4980_0000, 0x100_0000),
        ];
        let e = check_boot(&[], &dom0, &RAM, 4 << 30, 128 << 20).unwrap_err();
        assert_eq!(e, "the dom0-like VM: module /chosen/module@49000000 overlaps module /chosen/module@49800000");
        assert_eq!(check_boot(&[], &dom0[..1], &RAM, 4 << 30, 128 << 20), Ok(()));
        // Without domains a module outside RAM is the VM plan's to name (it is not copied).
        let far = [module("/chosen/module@200000000", ModuleKind::Kernel, 0x2_0000_0000, 0x100_0000)];
        assert_eq!(check_boot(&[], &far, &RAM, 4 << 30, 128 << 20), Ok(()));
        // With domains: every module in RAM, and the domains' RAM, as before.
        let d = [domain("a", 1, 64, 0x5000_0000)];
        assert!(check_boot(&d, &far, &RAM, 4 << 30, 128 << 20).unwrap_err().contains("is not in RAM"));
        assert!(check_boot(&d, &dom0, &RAM, 4 << 30, 128 << 20).unwrap_err().contains("overlaps module /chosen/module@49800000"));
        let fat = [domain("fat", 1, 4096, 0x5000_0000)];
        assert!(check_boot(&fat, &dom0[..1], &RAM, 4 << 30, 128 << 20).unwrap_err().contains("VM fat: asks for 4096 MiB"));
        assert_eq!(check_boot(&d, &dom0[..1], &RAM, 4 << 30, 128 << 20), Ok(()));
    }
}
