//! Which devices a VM may be given when they can master DMA. Without an SMMU stream between a
//! device and memory, the device reaches every physical address: el2visor's own memory and other
//! VMs' RAM included, whatever Stage 2 says. Such a device goes only to a VM that is identity
//! mapped (the DMA addresses its driver programs are physical addresses of its own RAM) and
//! trusted (the dom0-like VM, or a domU whose passthrough node says
//! `xen,force-assign-without-iommu`, Xen's binding); every other VM is refused it, with one line
//! naming it. QEMU's fw_cfg is withheld from every VM: nothing a guest runs under el2visor needs
//! it, and its DMA interface writes anywhere in physical memory.
//!
//! Pure: the facts come from the host DT (`platform::dma`), the verdict is a value.

#![forbid(unsafe_code)]

use alloc::string::String;

use crate::platform::dma::DmaFacts;

/// Compatibles of devices known to master DMA whose nodes may not say so.
pub const DMA_COMPATIBLES: [&str; 5] = ["virtio,mmio", "qemu,fw-cfg-mmio", "brcm,bcm2835-dma", "brcm,genet-v5", "brcm,bcm2711-pcie"];

/// Compatibles no VM is given.
pub const NEVER_GIVEN: [&str; 1] = ["qemu,fw-cfg-mmio"];

/// What el2visor knows of the VM a device would go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmTrust {
    /// Every RAM region's IPA equals its PA.
    pub identity: bool,
    /// The dom0-like VM, or a domU whose node for the device says `xen,force-assign-without-iommu`.
    pub trusted: bool,
}

/// The decision for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Give,
    /// Withheld, and why (the rest of a log line naming the device and the VM).
    Withhold(&'static str),
    /// A device no VM is ever given ([`NEVER_GIVEN`]), and why: withheld like the others, but
    /// the dom0-like VM, which did not ask for it by name, is only told at info level.
    NeverGiven(&'static str),
}

impl Verdict {
    /// Why the device is withheld, `None` when it is given.
    pub fn withheld(&self) -> Option<&'static str> {
        match *self {
            Verdict::Give => None,
            Verdict::Withhold(why) | Verdict::NeverGiven(why) => Some(why),
        }
    }
}

/// Whether a device with `compatible` and DT facts `f` can master DMA.
pub fn masters_dma<S: AsRef<str>>(compatible: &[S], f: &DmaFacts) -> bool {
    f.pci_host || f.dma_coherent || f.dmas || f.dma_controller || compatible.iter().any(|c| DMA_COMPATIBLES.contains(&c.as_ref()))
}

/// May a VM described by `vm` have the device?
pub fn decide<S: AsRef<str>>(compatible: &[S], f: &DmaFacts, vm: VmTrust) -> Verdict {
    if compatible.iter().any(|c| NEVER_GIVEN.contains(&c.as_ref())) {
        return Verdict::NeverGiven("QEMU's fw_cfg is given to no VM: nothing needs it and its DMA reaches all of memory");
    }
    if !masters_dma(compatible, f) || f.iommu {
        // No DMA, or its streams are the SMMU's to confine.
        return Verdict::Give;
    }
    match (vm.identity, vm.trusted) {
        (true, true) => Verdict::Give,
        (false, _) => Verdict::Withhold("masters DMA with no SMMU stream and the VM is not identity mapped"),
        (true, false) => Verdict::Withhold("masters DMA with no SMMU stream and the VM is not trusted (no xen,force-assign-without-iommu)"),
    }
}

/// The one log line for a withheld device.
pub fn withheld_line(vm: &str, path: &str, why: &str) -> String {
    alloc::format!("VM {vm}: withholding {path}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM0: VmTrust = VmTrust { identity: true, trusted: true };
    const DOMU: VmTrust = VmTrust { identity: false, trusted: false };
    const FORCED_DOMU: VmTrust = VmTrust { identity: false, trusted: true };
    const IDENTITY_UNTRUSTED: VmTrust = VmTrust { identity: true, trusted: false };

    fn facts() -> DmaFacts {
        DmaFacts::default()
    }

    #[test]
    fn what_masters_dma() {
        assert!(!masters_dma(&["arm,pl031", "arm,primecell"], &facts()));
        assert!(!masters_dma::<&str>(&[], &facts()));
        for c in DMA_COMPATIBLES {
            assert!(masters_dma(&[c], &facts()), "{c}");
        }
        for f in [
            DmaFacts { pci_host: true, ..facts() },
            DmaFacts { dma_coherent: true, ..facts() },
            DmaFacts { dmas: true, ..facts() },
            DmaFacts { dma_controller: true, ..facts() },
        ] {
            assert!(masters_dma(&["vendor,thing"], &f), "{f:?}");
        }
    }

    #[test]
    fn dma_masters_go_only_to_identity_mapped_trusted_vms() {
        let virtio = ["virtio,mmio"];
        assert_eq!(decide(&virtio, &facts(), DOM0), Verdict::Give);
        assert_eq!(Verdict::Give.withheld(), None);
        for vm in [DOMU, FORCED_DOMU, IDENTITY_UNTRUSTED] {
            assert!(matches!(decide(&virtio, &facts(), vm), Verdict::Withhold(_)), "{vm:?}");
            assert!(decide(&virtio, &facts(), vm).withheld().is_some());
        }
        let bridge = DmaFacts { pci_host: true, dma_coherent: true, ..facts() };
        assert_eq!(decide(&["pci-host-ecam-generic"], &bridge, DOM0), Verdict::Give);
        let Verdict::Withhold(why) = decide(&["pci-host-ecam-generic"], &bridge, DOMU) else { panic!() };
        assert!(why.contains("not identity mapped"), "{why}");
        let Verdict::Withhold(why) = decide(&["brcm,genet-v5"], &facts(), IDENTITY_UNTRUSTED) else { panic!() };
        assert!(why.contains("xen,force-assign-without-iommu"), "{why}");
    }

    #[test]
    fn devices_without_dma_or_behind_an_smmu_go_anywhere() {
        for vm in [DOM0, DOMU, FORCED_DOMU, IDENTITY_UNTRUSTED] {
            assert_eq!(decide(&["arm,pl031"], &facts(), vm), Verdict::Give);
            let behind = DmaFacts { pci_host: true, iommu: true, ..facts() };
            assert_eq!(decide(&["pci-host-ecam-generic"], &behind, vm), Verdict::Give);
        }
    }

    #[test]
    fn fw_cfg_goes_to_no_vm() {
        for vm in [DOM0, DOMU, FORCED_DOMU, IDENTITY_UNTRUSTED] {
            let Verdict::NeverGiven(why) = decide(&["qemu,fw-cfg-mmio"], &facts(), vm) else { panic!("{vm:?}") };
            assert!(why.contains("fw_cfg"));
        }
        assert_eq!(withheld_line("guest", "/fw-cfg@9020000", "why"), "VM guest: withholding /fw-cfg@9020000: why");
    }
}
