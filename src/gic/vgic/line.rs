//! Interrupt lines of emulated devices: a purely virtual SPI (no physical interrupt behind it)
//! whose level an el2visor device model drives, such as a VM's vpl011.

use alloc::vec::Vec;

use super::dist::VDist;
use super::types::{IrqState, VgicAction};
use crate::gic::{mpidr_affinity, FIRST_SPI};

impl VDist {
    /// Make sure SPI `intid` exists (GICD_TYPER then advertises it, rounded up to 32 lines), as a
    /// purely virtual interrupt for an emulated device.
    pub fn ensure_spi(&mut self, intid: u32) {
        if intid < FIRST_SPI {
            return;
        }
        let lines = (intid + 1).div_ceil(32) * 32;
        let have = FIRST_SPI + self.spis.len() as u32;
        if lines > have {
            let spi = IrqState { owned: true, route: mpidr_affinity(self.vcpus[0].mpidr), ..IrqState::default() };
            self.spis.resize((lines - FIRST_SPI) as usize, spi);
        }
    }

    /// An emulated device drives virtual SPI `intid` to `high`, seen from vCPU `writer` (whose
    /// own list registers are refilled before it resumes, so it needs no kick). High makes the
    /// interrupt pending (again, if the guest is still handling the last one: a level that stays
    /// up after the guest's handler fires again, as a level-sensitive line does); low withdraws
    /// it from the distributor if it was not handed to a vCPU yet. A HW-backed or unknown INTID is
    /// left alone.
    pub fn set_line(&mut self, intid: u32, high: bool, writer: usize) -> Vec<VgicAction> {
        let mut out = Vec::new();
        let Some(st) = intid.checked_sub(FIRST_SPI).and_then(|i| self.spis.get_mut(i as usize)) else { return out };
        if st.hw || !st.owned {
            return out;
        }
        st.pending = high;
        if high {
            self.release(writer, &mut out);
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
}
