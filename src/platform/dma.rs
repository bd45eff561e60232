//! What a device node says about DMA: the properties the DMA policy (`vm::dma_policy`) reads to
//! decide whether a device can master DMA and whether an SMMU stands between it and memory.

#![forbid(unsafe_code)]

use super::tree::{self, Node};

/// The DMA-related facts of one device node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaFacts {
    /// A PCI host bridge (`device_type = "pci"`): its endpoints master DMA.
    pub pci_host: bool,
    /// `dma-coherent`: it masters coherent DMA.
    pub dma_coherent: bool,
    /// `dmas`: it uses a DMA engine's channels.
    pub dmas: bool,
    /// `#dma-cells` or `dma-controller`: it is a DMA engine.
    pub dma_controller: bool,
    /// `iommus` or `iommu-map`: its streams go through an IOMMU (the SMMU driver resolves them).
    pub iommu: bool,
}

/// The facts of node `n`.
pub fn facts(n: Node<'_, '_>) -> DmaFacts {
    let has = |p: &str| tree::prop(n, p).is_some();
    DmaFacts {
        pci_host: tree::prop_str(n, "device_type") == Some("pci"),
        dma_coherent: has("dma-coherent"),
        dmas: has("dmas"),
        dma_controller: has("dma-controller") || has("#dma-cells"),
        iommu: has("iommus") || has("iommu-map"),
    }
}
