//! A vCPU going off (PSCI CPU_OFF) hands back the shared interrupts it holds that the guest has
//! routed elsewhere (`gic::virt::off`): the distributor's side of it. One it held only pending
//! now belongs to the vCPU it goes to; one it held back because the guest disabled it goes back
//! to the distributor, pending, and to wherever it is routed once the guest enables it again.

use super::dist::VDist;
use crate::gic::FIRST_SPI;

impl VDist {
    /// Shared interrupt `intid`'s pending copy went from the vCPU going off to vCPU `to`:
    /// a later clear of its pending or active state, or a disabling, goes there.
    pub fn moved_to(&mut self, intid: u32, to: usize) {
        if let Some(st) = self.shared_mut(intid) {
            st.handed_to = Some(to);
        }
    }

    /// The vCPU going off held back shared interrupt `intid`'s pending copy while the guest had
    /// it disabled: the distributor holds it pending (a passthrough one's physical copy stays
    /// active, as for any it holds), and hands it to its target when it is enabled again. The
    /// vCPU stays its holder until then: its list register may keep the interrupt active.
    pub fn take_back_held(&mut self, intid: u32) {
        if let Some(st) = self.shared_mut(intid) {
            st.pending = true;
        }
    }

    /// SPI `intid`'s state, if the VM owns it.
    pub(super) fn shared_mut(&mut self, intid: u32) -> Option<&mut super::types::IrqState> {
        intid.checked_sub(FIRST_SPI).and_then(|i| self.spis.get_mut(i as usize)).filter(|st| st.owned)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::gic::vgic::{Retraction, VcpuPlacement, VgicAction, VgicConfig, VDist};
    use crate::gic::GicVersion;

    fn dist() -> VDist {
        VDist::new(&VgicConfig {
            version: GicVersion::V3,
            vcpus: vec![VcpuPlacement { mpidr: 0, pcpu: 2 }, VcpuPlacement { mpidr: 1, pcpu: 3 }],
            hw_ppis: vec![27],
            hw_spis: vec![40],
        })
        .unwrap()
    }

    #[test]
    fn a_held_back_spi_given_back_goes_where_it_is_routed_once_enabled() {
        let mut d = dist();
        d.mmio_write(0, 0x000, 4, 0b10 | 1 << 4).unwrap(); // EnableGrp1NS, ARE
        d.mmio_write(0, 0x080 + 4, 4, 1 << 8).unwrap(); // SPI 40 group 1
        d.mmio_write(0, 0x100 + 4, 4, 1 << 8).unwrap(); // enabled
        assert!(matches!(d.hw_irq(0, 40), crate::gic::vgic::HwIrq::Deliver { vcpu: 0, .. }));
        d.mmio_write(0, 0x180 + 4, 4, 1 << 8).unwrap(); // disabled: vCPU 0 holds it back
        d.take_retractions();
        // Routed to vCPU 1, vCPU 0 goes off and gives it back.
        d.mmio_write(0, 0x6000 + 8 * 40, 8, 1).unwrap();
        d.take_back_held(40);
        let acts: Vec<VgicAction> = d.mmio_write(0, 0x100 + 4, 4, 1 << 8).unwrap();
        assert!(
            acts.iter().any(|a| matches!(a, VgicAction::Inject { vcpu: 1, virq } if virq.intid == 40 && virq.pintid == Some(40))),
            "{acts:?}"
        );
        // vCPU 0, which may still hold it active, is told it is enabled (nothing to let go there).
        assert_eq!(d.take_retractions(), vec![Retraction { vcpu: 0, intid: 40, source: None, pending: false, active: false, hold: Some(false) }]);
    }

    #[test]
    fn a_moved_spi_is_cleared_where_it_went() {
        let mut d = dist();
        d.mmio_write(0, 0x000, 4, 0b10 | 1 << 4).unwrap();
        d.mmio_write(0, 0x080 + 4, 4, 1 << 8).unwrap();
        d.mmio_write(0, 0x100 + 4, 4, 1 << 8).unwrap();
        assert!(matches!(d.hw_irq(0, 40), crate::gic::vgic::HwIrq::Deliver { vcpu: 0, .. }));
        d.moved_to(40, 1);
        d.mmio_write(1, 0x180 + 4, 4, 1 << 8).unwrap();
        assert_eq!(d.take_retractions(), vec![Retraction { vcpu: 1, intid: 40, source: None, pending: false, active: false, hold: Some(true) }]);
    }
}
