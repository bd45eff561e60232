//! Interrupt lines of emulated devices: a purely virtual SPI (no physical interrupt behind it)
//! whose level an el2visor device model drives, such as a VM's vpl011.

use alloc::vec::Vec;

use super::dist::VDist;
use super::types::VgicAction;
use crate::gic::{mpidr_affinity, FIRST_SPI, MAX_SPI_END};

impl VDist {
    /// Make sure SPI `intid` exists (GICD_TYPER then advertises it, rounded up to 32 lines), as a
    /// purely virtual interrupt for an emulated device.
    pub fn ensure_spi(&mut self, intid: u32) {
        if !(FIRST_SPI..MAX_SPI_END).contains(&intid) {
            return;
        }
        let lines = (intid + 1).div_ceil(32) * 32;
        let have = FIRST_SPI + self.spis.len() as u32;
        if lines > have {
            super::dist::grow_spis(&mut self.spis, lines, mpidr_affinity(self.vcpus[0].mpidr));
        }
    }

    /// An emulated device drives virtual SPI `intid` to `high`, seen from vCPU `writer` (whose
    /// own list registers are refilled before it resumes, so it needs no kick). High makes the
    /// interrupt pending (again, if the guest is still handling the last one: a level that stays
    /// up after the guest's handler fires again, as a level-sensitive line does); going low
    /// withdraws its pending state: from the distributor, and from the vCPU it was handed to (a
    /// [`Retraction`](super::Retraction) in [`take_retractions`](Self::take_retractions)), whose
    /// list register keeps only an active copy. A level-sensitive interrupt is pending only while
    /// its line is up (else a guest's handler, which reads the device's status while the line is
    /// up and then drains it, would find a second, spurious interrupt after its EOI). A HW-backed
    /// or unknown INTID is left alone.
    pub fn set_line(&mut self, intid: u32, high: bool, writer: usize) -> Vec<VgicAction> {
        let mut out = Vec::new();
        let Some(st) = self.shared_mut(intid) else { return out };
        if st.hw {
            return out;
        }
        let fell = st.line_high && !high;
        st.line_high = high;
        st.pending = high;
        if high {
            self.release(writer, &mut out);
        } else if let (true, Some(vcpu)) = (fell, st.handed_to) {
            self.retractions.push(super::Retraction { vcpu, intid, source: None, pending: true, active: false, hold: None });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::vgic::{VcpuPlacement, VgicConfig};
    use crate::gic::GicVersion;

    fn dist() -> VDist {
        VDist::new(&VgicConfig {
            version: GicVersion::V3,
            vcpus: alloc::vec![VcpuPlacement { mpidr: 0, pcpu: 2 }, VcpuPlacement { mpidr: 1, pcpu: 3 }],
            hw_ppis: alloc::vec![27],
            hw_spis: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn an_emulated_line_exists_and_delivers_when_enabled() {
        let mut d = dist();
        assert_eq!(d.nr_lines(), 32, "no SPI without a device");
        d.ensure_spi(32);
        assert_eq!(d.nr_lines(), 64);
        // Held while the distributor and the SPI are off.
        assert!(d.set_line(32, true, 0).is_empty());
        d.mmio_write(0, 0x000, 4, 0b10).unwrap(); // GICD_CTLR.EnableGrp1NS
        d.mmio_write(0, 0x080 + 4, 4, 1).unwrap(); // group 1
        let acts = d.mmio_write(0, 0x100 + 4, 4, 1).unwrap(); // ISENABLER1: SPI 32
        assert!(acts.iter().any(|a| matches!(a, VgicAction::Inject { vcpu: 0, virq } if virq.intid == 32 && virq.pintid.is_none())), "{acts:?}");
        // Raised again while handled: pending again; lowered before delivery: withdrawn.
        let acts = d.set_line(32, true, 0);
        assert_eq!(acts.len(), 1);
        d.mmio_write(0, 0x180 + 4, 4, 1).unwrap(); // ICENABLER1
        assert!(d.set_line(32, true, 0).is_empty());
        assert_eq!(d.mmio_read(0, 0x200 + 4, 4).unwrap() & 1, 1, "held pending");
        d.set_line(32, false, 0);
        assert_eq!(d.mmio_read(0, 0x200 + 4, 4).unwrap() & 1, 0, "withdrawn");
        assert!(d.set_line(99, true, 0).is_empty(), "an SPI that does not exist");
    }

    #[test]
    fn the_special_intids_past_1019_are_no_interrupts() {
        let mut d = dist();
        d.ensure_spi(1000);
        assert_eq!(d.nr_lines(), 1024);
        d.mmio_write(0, 0x000, 4, 0b10).unwrap(); // GICD_CTLR.EnableGrp1NS
        d.mmio_write(0, 0x080 + 31 * 4, 4, 0xffff_ffff).unwrap(); // group 1: 992..1023
        let mut acts = d.mmio_write(0, 0x100 + 31 * 4, 4, 0xffff_ffff).unwrap(); // ISENABLER31
        acts.extend(d.mmio_write(0, 0x200 + 31 * 4, 4, 0xffff_ffff).unwrap()); // ISPENDR31
        assert!(acts.iter().all(|a| !matches!(a, VgicAction::Inject { virq, .. } if virq.intid >= 1020)), "{acts:?}");
        assert!(acts.iter().any(|a| matches!(a, VgicAction::Inject { virq, .. } if virq.intid == 1019)), "{acts:?}");
        assert_eq!(d.mmio_read(0, 0x100 + 31 * 4, 4).unwrap() >> 28, 0, "1020..1023 read as not enabled");
        assert!(d.set_line(1021, true, 0).is_empty());
    }

    #[test]
    fn a_line_that_falls_takes_back_the_pending_copy_it_handed_out() {
        let mut d = dist();
        d.ensure_spi(32);
        d.mmio_write(0, 0x000, 4, 0b10).unwrap(); // GICD_CTLR.EnableGrp1NS
        d.mmio_write(0, 0x080 + 4, 4, 1).unwrap(); // group 1
        d.mmio_write(0, 0x100 + 4, 4, 1).unwrap(); // ISENABLER1: SPI 32
        let acts = d.set_line(32, true, 0);
        assert!(acts.iter().any(|a| matches!(a, VgicAction::Inject { vcpu: 0, .. })), "{acts:?}");
        assert!(d.take_retractions().is_empty());
        // The guest's handler drained the device: the copy handed to vCPU 0 is no longer pending.
        assert!(d.set_line(32, false, 0).is_empty());
        let r = d.take_retractions();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].vcpu, r[0].intid, r[0].pending, r[0].active), (0, 32, true, false));
        // A line that stays low takes nothing back again.
        d.set_line(32, false, 0);
        assert!(d.take_retractions().is_empty());
    }
}
