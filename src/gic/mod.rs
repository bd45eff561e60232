//! The GIC: el2visor's own interrupt controller drivers and the virtual GIC its guests see.
//!
//! el2visor partitions statically: every vCPU is pinned to one pCPU. A physical interrupt that
//! belongs to a VM is acknowledged by el2visor, priority-dropped (the host CPU interface runs with
//! EOImode = 1) and injected into the vCPU with the list register's HW bit set, so the guest's own
//! EOI deactivates the physical interrupt. Nothing in el2visor deactivates a guest's interrupt.
//!
//! - [`vgic`]: pure state machines, tested on the host: the emulated distributor and
//!   redistributors ([`vgic::VDist`], [`vgic::VRedist`]) and list-register management
//!   ([`vgic::lr::LrManager`]).
//! - `v2`, `v3`, `host` (target only): thin register wrappers for GICv2 (GICD, GICC, GICH) and
//!   GICv3 (GICD, GICR, ICC_* and ICH_* system registers), and [`host::HostGic`] over both;
//!   `v2m` reads a GICv2m MSI frame's SPI range.
//! - At run time (target only): `hw` (the host GIC el2visor drives and the kick SGI), `lrs`
//!   (one vCPU's inbox and list registers) and `virt` (one VM's virtual GIC: the distributor
//!   model, its actions, physical interrupts routed to their vCPU).
//!
//! The GIC layer knows nothing of VMs: a VM hands it its [`virt::VGic`] and its vCPUs'
//! [`lrs::VcpuIrq`]s.

#[cfg(target_os = "none")]
pub mod hw;
#[cfg(target_os = "none")]
pub mod lrs;
pub mod its;
pub mod vgic;
#[cfg(target_os = "none")]
pub mod virt;

#[cfg(target_os = "none")]
pub mod host;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
pub mod v2;
#[cfg(target_os = "none")]
pub mod v3;
#[cfg(target_os = "none")]
pub mod v2m;
#[cfg(target_os = "none")]
pub mod its_hw;
#[cfg(target_os = "none")]
pub mod vits;

use alloc::vec::Vec;
use core::fmt;

use crate::mm::addr::Pa;

/// Number of software-generated interrupts (INTIDs 0..16).
pub const NR_SGIS: u32 = 16;
/// First SPI; INTIDs below are banked per CPU (SGIs and PPIs).
pub const FIRST_SPI: u32 = 32;
/// One past the largest SPI INTID any GIC version allows (1020..1023 are special).
pub const MAX_SPI_END: u32 = 1020;
/// The GIC maintenance interrupt (PPI 9) on every platform el2visor supports.
pub const MAINTENANCE_INTID: u32 = 25;
/// EL1 virtual timer (PPI 11), the timer a Linux guest uses.
pub const VTIMER_INTID: u32 = 27;
/// EL1 physical timer (PPI 14).
pub const PTIMER_INTID: u32 = 30;
/// EL2 physical timer (PPI 10).
pub const HYP_TIMER_INTID: u32 = 26;

/// Whether `intid` is a software-generated interrupt.
pub const fn is_sgi(intid: u32) -> bool {
    intid < NR_SGIS
}
/// Whether `intid` is a private peripheral interrupt.
pub const fn is_ppi(intid: u32) -> bool {
    intid >= NR_SGIS && intid < FIRST_SPI
}
/// Whether `intid` is a shared peripheral interrupt.
pub const fn is_spi(intid: u32) -> bool {
    intid >= FIRST_SPI && intid < MAX_SPI_END
}

/// Architecture version of a GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (GIC-400 and QEMU `gic-version=2`): memory-mapped CPU interface, GICH/GICV.
    V2,
    /// GICv3: redistributors, ICC_* system registers, ICH_* virtualization registers.
    V3,
}

/// What el2visor needs to know about the machine's GIC, as the platform module finds it in the DT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GicInfo {
    pub version: GicVersion,
    /// Distributor (GICD) base.
    pub dist: Pa,
    /// GICv2 CPU interface (GICC) base.
    pub cpu: Option<Pa>,
    /// GICv2 virtual interface control (GICH) base.
    pub hyp: Option<Pa>,
    /// GICv2 virtual CPU interface (GICV) base, mapped into guests at their GICC address.
    pub vcpu: Option<Pa>,
    /// GICv3 redistributor regions: (base, size).
    pub redist: Vec<(Pa, u64)>,
    /// INTID of the virtualization maintenance interrupt (25 on QEMU virt and GIC-400).
    pub maintenance_intid: u32,
    /// INTID of the EL2 physical timer (the fourth of the host DT's `arm,armv8-timer`
    /// interrupts: 26 on QEMU virt and the Pi 4), which wakes a timed EL2 sleep
    /// (`hw::sleep_until`); without one, such a wait polls.
    pub hyp_timer_intid: Option<u32>,
}

/// A [`GicInfo`] that cannot drive a GIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GicInfoError {
    /// A GICv2 without its CPU interface address.
    MissingCpuInterface,
    /// A GICv2 without the virtualization interfaces (GICH and GICV): the DT node lacks the
    /// third and fourth `reg` entries, or the machine was started without virtualization.
    MissingVirtualization,
    /// A GICv3 without redistributor regions.
    MissingRedistributors,
    /// The maintenance interrupt is not a PPI.
    BadMaintenanceIntid(u32),
}

impl fmt::Display for GicInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCpuInterface => {
                write!(f, "GICv2 without a CPU interface address (DT `reg` needs GICD and GICC)")
            }
            Self::MissingVirtualization => write!(
                f,
                "GICv2 without GICH/GICV virtualization interfaces: the GIC node's `reg` needs 4 \
                 entries (on QEMU use -M virt,virtualization=on)"
            ),
            Self::MissingRedistributors => {
                write!(f, "GICv3 without redistributor regions in the DT `reg`")
            }
            Self::BadMaintenanceIntid(i) => write!(
                f,
                "maintenance interrupt INTID {i} is not a PPI (expected 16..32, usually 25)"
            ),
        }
    }
}

impl GicInfo {
    /// Check that every address the chosen version needs is present.
    pub fn validate(&self) -> Result<(), GicInfoError> {
        if !is_ppi(self.maintenance_intid) {
            return Err(GicInfoError::BadMaintenanceIntid(self.maintenance_intid));
        }
        match self.version {
            GicVersion::V2 => {
                if self.cpu.is_none() {
                    return Err(GicInfoError::MissingCpuInterface);
                }
                if self.hyp.is_none() || self.vcpu.is_none() {
                    return Err(GicInfoError::MissingVirtualization);
                }
            }
            GicVersion::V3 => {
                if self.redist.iter().all(|&(_, size)| size == 0) {
                    return Err(GicInfoError::MissingRedistributors);
                }
            }
        }
        Ok(())
    }
}

/// The affinity fields of an MPIDR in the GICD_IROUTER / MPIDR layout: Aff3 in 39:32,
/// Aff2..Aff0 in 23:0.
pub const fn mpidr_affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

/// The affinity of an MPIDR packed as in GICR_TYPER[63:32]: Aff3:Aff2:Aff1:Aff0, one byte each.
pub const fn packed_affinity(mpidr: u64) -> u32 {
    (((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff)) as u32
}

/// An interrupt the host CPU interface handed to el2visor (the raw GICC_IAR / ICC_IAR1_EL1
/// value). Give it back unchanged to `eoi` and `deactivate`: on GICv2 an SGI's IAR also carries
/// the source CPU, which the EOI must repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked(u32);

impl Acked {
    /// The acknowledged interrupt, or `None` for the special INTIDs 1020..=1023 (spurious).
    pub const fn from_iar(raw: u32) -> Option<Self> {
        let intid = raw & 0xff_ffff;
        if intid >= MAX_SPI_END && intid <= 1023 {
            None
        } else {
            Some(Self(raw))
        }
    }
    /// The INTID (GICv2 IAR 9:0, GICv3 IAR 23:0).
    pub const fn intid(self) -> u32 {
        // A GICv3 LPI (8192 and up) needs all 24 bits; GICv2's IAR never reaches 8192 (bits
        // 12:10 are its SGI source CPU, 31:13 are zero) and GICv3's other INTIDs fit in 10.
        let v3 = self.0 & 0xff_ffff;
        if v3 >= 8192 {
            v3
        } else {
            self.0 & 0x3ff
        }
    }
    /// The value to write back to EOIR / DIR.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// A host GIC operation that cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GicError {
    /// The GIC description is incomplete.
    Info(GicInfoError),
    /// No GICv2 CPU interface has been registered for this MPIDR (its CPU has not run
    /// `init_cpu` yet).
    UnknownCpu { mpidr: u64 },
    /// No GICv3 redistributor's GICR_TYPER affinity matches this MPIDR.
    NoRedistributor { mpidr: u64 },
    /// GICv2 banks SGIs and PPIs per CPU: only the CPU itself can change them.
    RemotePrivate { intid: u32, mpidr: u64 },
    /// Not an INTID this operation accepts.
    BadIntid { intid: u32, expected: &'static str },
}

impl fmt::Display for GicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Info(e) => e.fmt(f),
            Self::UnknownCpu { mpidr } => write!(
                f,
                "GIC: no CPU interface known for MPIDR {mpidr:#x}: that CPU has not initialised its GIC"
            ),
            Self::NoRedistributor { mpidr } => write!(
                f,
                "GIC: no redistributor matches MPIDR {mpidr:#x}: check the DT's GICv3 redistributor regions"
            ),
            Self::RemotePrivate { intid, mpidr } => write!(
                f,
                "GIC: INTID {intid} is banked per CPU on GICv2; change it on CPU {mpidr:#x} itself"
            ),
            Self::BadIntid { intid, expected } => write!(f, "GIC: INTID {intid}: expected {expected}"),
        }
    }
}

impl From<GicInfoError> for GicError {
    fn from(e: GicInfoError) -> Self {
        Self::Info(e)
    }
}

/// How many ICH_AP0R<n>_EL2 / ICH_AP1R<n>_EL2 registers exist, from ICH_VTR_EL2.PREbits
/// (28:26, preemption bits minus one): 5 bits need one, 6 two, 7 four.
pub const fn ich_ap_count(vtr: u64) -> usize {
    let pre_bits = ((vtr >> 26) & 7) as u32 + 1;
    if pre_bits <= 5 {
        1
    } else {
        1 << (pre_bits - 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn v2_info() -> GicInfo {
        GicInfo {
            version: GicVersion::V2,
            dist: Pa(0x0800_0000),
            cpu: Some(Pa(0x0801_0000)),
            hyp: Some(Pa(0x0803_0000)),
            vcpu: Some(Pa(0x0804_0000)),
            redist: vec![],
            maintenance_intid: MAINTENANCE_INTID,
            hyp_timer_intid: Some(HYP_TIMER_INTID),
        }
    }

    #[test]
    fn acked_intids_of_both_versions() {
        // GICv2: bits 12:10 are the SGI's source CPU.
        assert_eq!(Acked::from_iar(7 << 10 | 3).unwrap().intid(), 3);
        assert_eq!(Acked::from_iar(0x3ff), None);
        // GICv3: an LPI needs all 24 bits.
        assert_eq!(Acked::from_iar(8192).unwrap().intid(), 8192);
        assert_eq!(Acked::from_iar(0x12_3456).unwrap().intid(), 0x12_3456);
        assert_eq!(Acked::from_iar(1019).unwrap().intid(), 1019);
    }

    #[test]
    fn intid_classes() {
        assert!(is_sgi(15) && !is_sgi(16));
        assert!(is_ppi(16) && is_ppi(31) && !is_ppi(32));
        assert!(is_spi(32) && is_spi(1019) && !is_spi(1020));
    }

    #[test]
    fn info_validation() {
        assert_eq!(v2_info().validate(), Ok(()));
        let mut no_hyp = v2_info();
        no_hyp.hyp = None;
        assert_eq!(no_hyp.validate(), Err(GicInfoError::MissingVirtualization));
        let mut v3 = v2_info();
        v3.version = GicVersion::V3;
        assert_eq!(v3.validate(), Err(GicInfoError::MissingRedistributors));
        v3.redist = vec![(Pa(0x080a_0000), 0xf6_0000)];
        assert_eq!(v3.validate(), Ok(()));
        v3.maintenance_intid = 40;
        assert_eq!(v3.validate(), Err(GicInfoError::BadMaintenanceIntid(40)));
        assert!(GicInfoError::MissingVirtualization.to_string().contains("virtualization=on"));
    }

    #[test]
    fn affinity_packing() {
        let mpidr = 0x8000_0000 | (0x12 << 32) | 0x03_0201;
        assert_eq!(mpidr_affinity(mpidr), 0x12_0003_0201);
        assert_eq!(packed_affinity(mpidr), 0x1203_0201);
    }

    #[test]
    fn acked_values() {
        assert_eq!(Acked::from_iar(1023), None);
        assert_eq!(Acked::from_iar(1020), None);
        let sgi = Acked::from_iar(3 << 10 | 5).unwrap();
        assert_eq!((sgi.intid(), sgi.raw()), (5, 0xc05));
        assert_eq!(Acked::from_iar(27).unwrap().intid(), 27);
    }

    #[test]
    fn ap_register_count() {
        assert_eq!(ich_ap_count(4 << 26), 1);
        assert_eq!(ich_ap_count(5 << 26), 2);
        assert_eq!(ich_ap_count(6 << 26), 4);
    }
}
