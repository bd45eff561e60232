//! Host tests of the VM planner.

use super::*;
use crate::vm::image::{parse_header, test_header};
use alloc::string::ToString;
use alloc::vec;
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn module(kind: ModuleKind, start: u64, size: u64, args: Option<&str>) -> BootModule {
    BootModule {
        kind,
        range: PaRange::new(start, size),
        bootargs: args.map(String::from),
    }
}

/// QEMU virt with -m 1G and el2visor's memory at `reserved`.
fn virt_host<'a>(ram: &'a [PaRange], reserved: &'a [PaRange]) -> HostFacts<'a> {
    HostFacts {
        ram,
        hyp_reserved: reserved,
        firmware: &[],
        cpus: 4,
        max_vcpus: None,
        devices: &[],
        coherency: CoherencyMode::Auto,
    }
}

const RAM: [PaRange; 1] = [PaRange::new(0x4000_0000, GIB)];
const HYP: [PaRange; 2] = [
    PaRange::new(0x4000_0000, 0x100_0000),
    PaRange::new(0x7ff0_0000, 0x10_0000),
];

#[test]
fn multiboot_kernel_and_ramdisk_make_one_identity_mapped_vm() {
    let mods = [
        module(
            ModuleKind::Kernel,
            0x4800_0000,
            0x1a0_0000,
            Some("console=ttyAMA0 earlycon"),
        ),
        module(ModuleKind::Ramdisk, 0x4c00_0000, 0xf_1234, None),
        module(ModuleKind::Other, 0x4e00_0000, 0x1000, None),
    ];
    let vms = plan_vms(&mods, &virt_host(&RAM, &HYP)).unwrap();
    assert_eq!(vms.len(), 1);
    let vm = &vms[0];
    assert_eq!(vm.name, "vm0");
    assert_eq!(
        vm.ram,
        vec![RamRegion {
            ipa: Ipa(0x4100_0000),
            pa: Pa(0x4100_0000),
            size: 0x3ef0_0000
        }]
    );
    assert_eq!(vm.ram_size(), GIB - 0x110_0000);
    assert_eq!(vm.vcpu_mpidrs, vec![0, 1, 2, 3]);
    assert_eq!(vm.kernel, PaRange::new(0x4800_0000, 0x1a0_0000));
    assert_eq!(vm.initrd, Some(PaRange::new(0x4c00_0000, 0xf_1234)));
    assert_eq!(vm.dtb, None);
    assert_eq!(vm.bootargs, "console=ttyAMA0 earlycon");
    assert_eq!(vm.coherency, CoherencyMode::Auto);
    // The modules are guest RAM: the VM owns them.
    assert_eq!(vm.ipa_of(0x4c00_0000), Some(Ipa(0x4c00_0000)));
    assert_eq!(vm.ipa_of(0x4000_0000), None);
}

#[test]
fn no_kernel_says_how_to_pass_one() {
    let e = plan_vms(
        &[module(ModuleKind::Ramdisk, 0x4800_0000, 0x1000, None)],
        &virt_host(&RAM, &HYP),
    )
    .unwrap_err();
    assert_eq!(e, PlanError::NoKernel);
    assert_eq!(
        e.to_string(),
        "no guest: pass a kernel with -device guest-loader,kernel=…,addr=… (Xen multiboot,kernel)"
    );
}

#[test]
fn module_errors_name_the_module_and_the_overlap() {
    let host = virt_host(&RAM, &HYP);
    let two = [
        module(ModuleKind::Kernel, 0x4800_0000, 0x1000, None),
        module(ModuleKind::Kernel, 0x4900_0000, 0x1000, None),
    ];
    assert_eq!(
        plan_vms(&two, &host),
        Err(PlanError::SeveralKernels { count: 2 })
    );
    let rd = [
        module(ModuleKind::Kernel, 0x4800_0000, 0x1000, None),
        module(ModuleKind::Ramdisk, 0x4900_0000, 0x1000, None),
        module(ModuleKind::Ramdisk, 0x4a00_0000, 0x1000, None),
    ];
    assert!(plan_vms(&rd, &host)
        .unwrap_err()
        .to_string()
        .contains("2 ramdisk modules"));

    let fw = [PaRange::new(0x4100_0000, 0x1000)];
    let on_fw = [module(ModuleKind::Kernel, 0x40ff_f000, 0x2_0000, None)];
    let e = plan_vms(&on_fw, &HostFacts { firmware: &fw, ..host }).unwrap_err().to_string();
    assert_eq!(
        e,
        "the kernel module [0x40fff000, 0x4101f000) overlaps firmware memory [0x41000000, 0x41001000) by 0x1000 bytes: load it elsewhere"
    );
    let outside = [module(ModuleKind::Kernel, 0x8000_0000, 0x1000, None)];
    assert!(plan_vms(&outside, &host)
        .unwrap_err()
        .to_string()
        .contains("not in host RAM"));
    let clash = [
        module(ModuleKind::Kernel, 0x4800_0000, 0x2000, None),
        module(ModuleKind::Ramdisk, 0x4800_1000, 0x2000, None),
    ];
    assert_eq!(
        plan_vms(&clash, &host).unwrap_err().to_string(),
        "the kernel module overlaps the ramdisk module by 0x1000 bytes"
    );
    let empty = [module(ModuleKind::Kernel, 0x4800_0000, 0, None)];
    assert!(matches!(
        plan_vms(&empty, &host),
        Err(PlanError::EmptyModule { .. })
    ));
}

#[test]
fn vcpus_follow_kvm_mpidr_layout_and_gic_limits() {
    assert_eq!(vcpu_mpidr(0), 0);
    assert_eq!(vcpu_mpidr(15), 0xf);
    assert_eq!(vcpu_mpidr(16), 0x100);
    assert_eq!(vcpu_mpidr(33), 0x201);
    assert_eq!(vcpu_mpidr(4096), 0x1_0000);
    let mods = [module(ModuleKind::Kernel, 0x4800_0000, 0x1000, None)];
    let mut host = virt_host(&RAM, &HYP);
    host.cpus = 12;
    host.max_vcpus = Some(8);
    assert_eq!(plan_vms(&mods, &host).unwrap()[0].vcpu_mpidrs.len(), 8);
    host.cpus = 0;
    assert_eq!(plan_vms(&mods, &host), Err(PlanError::NoCpus));
}

#[test]
fn devices_are_passed_through_and_must_not_hit_ram() {
    let uart = DeviceRegion {
        ipa: Ipa(0x900_0000),
        pa: Pa(0x900_0000),
        size: 0x1000,
        kind: DeviceKind::Mmio,
    };
    let mods = [module(ModuleKind::Kernel, 0x4800_0000, 0x1000, None)];
    let mut host = virt_host(&RAM, &HYP);
    let devs = [uart];
    host.devices = &devs;
    assert_eq!(plan_vms(&mods, &host).unwrap()[0].devices, vec![uart]);
    let bad = [DeviceRegion {
        ipa: Ipa(0x7000_0000),
        pa: Pa(0x7000_0000),
        size: 0x1000,
        kind: DeviceKind::WriteCombining,
    }];
    host.devices = &bad;
    assert!(plan_vms(&mods, &host)
        .unwrap_err()
        .to_string()
        .contains("overlaps guest RAM"));
    let all_hyp = [PaRange::new(0x4000_0000, GIB)];
    host.hyp_reserved = &all_hyp;
    host.devices = &[];
    assert!(matches!(plan_vms(&[], &host), Err(PlanError::NoKernel)));
    let low = [module(ModuleKind::Kernel, 0x4800_0000, 0x1000, None)];
    assert_eq!(plan_vms(&low, &host), Err(PlanError::NoRamLeft));
}

#[test]
fn pristine_copies_at_the_top_leave_one_region_with_firmware_in_it() {
    // el2visor at the top (image, DTB, pool, the module copies); firmware memory low in RAM.
    let top = [PaRange::new(0x7900_0000, 0x700_0000)];
    let fw = [PaRange::new(0x4000_0000, 0x1000), PaRange::new(0x5000_0000, 0x10_0000)];
    let mods = [
        module(ModuleKind::Kernel, 0x7900_0000, 0x1a0_0000, None),
        module(ModuleKind::Ramdisk, 0x7ab0_0000, 0x10_0000, None),
    ];
    let host = HostFacts { firmware: &fw, ..virt_host(&RAM, &top) };
    let vm = plan_vms(&mods, &host).unwrap().remove(0);
    assert_eq!(vm.ram, vec![RamRegion { ipa: Ipa(0x4000_0000), pa: Pa(0x4000_0000), size: 0x3900_0000 }]);
    assert!(vm.module_keep_out().is_empty(), "the copies are not guest RAM");
    assert_eq!(vm.ipa_of(0x5000_0000), Some(Ipa(0x5000_0000)), "firmware memory stays in the VM's RAM");
}

#[test]
fn load_plan_keeps_clear_of_the_modules_it_copies_from() {
    // The kernel module sits exactly where the kernel would go: the plan moves the kernel up.
    let mods = [
        module(ModuleKind::Kernel, 0x4100_0000, 0x1a0_0000, None),
        module(ModuleKind::Ramdisk, 0x4400_0000, 0x10_0000, None),
    ];
    let vm = plan_vms(&mods, &virt_host(&RAM, &HYP)).unwrap().remove(0);
    let header = parse_header(&test_header(0, 0x2a0_0000, 0b1010)).unwrap();
    let plan = vm.plan_load(&header, 0x1_0000).unwrap();
    // Past the kernel module, then past the ramdisk module the image would cover.
    assert_eq!(plan.kernel_base, Ipa(0x4420_0000));
    assert_eq!(plan.initrd.unwrap().size, 0x10_0000);
    for r in plan.regions() {
        for k in vm.module_keep_out() {
            assert_eq!(r.overlap(&k), 0, "{r} vs {k}");
        }
    }
}

proptest! {
    #[test]
    fn vm_ram_never_touches_hypervisor_memory(
        holes in proptest::collection::vec((0u64..1024, 1u64..64), 0..6),
        kmib in 0u64..1024,
    ) {
        let reserved: Vec<PaRange> = holes.iter().map(|&(s, l)| PaRange::new(0x4000_0000 + (s << 20), l << 20)).collect();
        let mods = [module(ModuleKind::Kernel, 0x4000_0000 + (kmib << 20), 0x10_0000, None)];
        match plan_vms(&mods, &virt_host(&RAM, &reserved)) {
            Ok(vms) => {
                let vm = &vms[0];
                for r in &vm.ram {
                    prop_assert_eq!(r.ipa.0, r.pa.0);
                    for h in &reserved {
                        prop_assert_eq!(overlap(&PaRange { start: r.pa, size: r.size }, h), 0);
                    }
                }
                // A page of the kernel module is guest RAM exactly when it is not el2visor's (where
                // el2visor's copies are).
                for off in (0..0x10_0000u64).step_by(0x1000) {
                    let pa = vm.kernel.start.0 + off;
                    prop_assert_eq!(vm.ipa_of(pa).is_some(), !reserved.iter().any(|h| h.contains(pa)));
                }
            }
            Err(PlanError::NoRamLeft) => prop_assert!(false, "the holes leave RAM"),
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}
