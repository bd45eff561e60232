//! A vCPU going off (PSCI CPU_OFF): the shared interrupts it holds only pending, and which the
//! guest has routed elsewhere since they were queued for it, go where they are routed now.
//!
//! A GIC forwards a pending SPI to its new target when the guest re-routes it (GICD_IROUTER,
//! GICD_ITARGETSR), and an ITS moves a pending LPI with its event (MOVI). el2visor queues an
//! interrupt for its vCPU when it arrives, and a re-route changes only where later ones go: a vCPU
//! that runs takes what it holds anyway, but one that goes off would keep it until it runs again,
//! and a passthrough interrupt would stay active at the physical GIC, its device silent. Linux
//! takes a CPU down by moving every interrupt away from it (`irq_migrate_all_off_this_cpu`) with
//! that CPU's interrupts masked, then calls CPU_OFF: what arrived in between is what this moves,
//! as KVM's list-register sync does on that exit.

use alloc::vec::Vec;

use super::VGic;
use crate::gic::its::lpi::is_lpi;
use crate::gic::lrs::{self, VcpuIrq};
use crate::gic::vgic::Virq;

/// The first SPI and the first INTID past the SPIs.
const FIRST_SPI: u32 = 32;
const SPI_END: u32 = 1020;

/// Where a shared interrupt `virq` goes now, when that is not vCPU `me` (`spi_target` for SPIs,
/// `lpis` as `(vLPI, vCPU)` for LPIs); `None` to leave it with `me` (private interrupts, one
/// still routed to `me`, an SPI routed to no vCPU now, an LPI whose event is gone).
fn new_target(virq: &Virq, me: usize, spi_target: impl Fn(u32) -> Option<usize>, lpis: &[(u32, usize)]) -> Option<usize> {
    let to = match virq.intid {
        FIRST_SPI..SPI_END => spi_target(virq.intid)?,
        i if is_lpi(i) => lpis.iter().find(|l| l.0 == i)?.1,
        _ => return None,
    };
    (to != me).then_some(to)
}

impl VGic {
    /// vCPU `me` of `vcpus` goes off, on its own pCPU: move what it holds only pending of the
    /// SPIs and LPIs now routed to another vCPU to that vCPU (module comment), which later
    /// clears and disablings then reach; what it holds back of them because the guest disabled
    /// them goes back to the distributor, pending until enabled.
    pub fn vcpu_off(&self, vcpus: &[VcpuIrq], me: usize) {
        let Some(irq) = vcpus.get(me) else { return };
        let lpis = self.its.get().map(|i| i.vlpi_targets()).unwrap_or_default();
        let moved: Vec<(usize, Virq)> = {
            // Lock order: the distributor, then a vCPU's list registers and inbox.
            let mut d = self.dist.lock();
            let (taken, held) = {
                let target = |intid| d.target_vcpu(0, intid);
                lrs::evict(irq, |v| new_target(v, me, target, &lpis).is_some())
            };
            for v in &held {
                log::debug!("virtual GIC: vCPU {me} goes off: INTID {}, disabled, is held pending by the distributor", v.intid);
                d.take_back_held(v.intid);
            }
            let target = |intid| d.target_vcpu(0, intid);
            let moved: Vec<(usize, Virq)> = taken.into_iter().filter_map(|v| Some((new_target(&v, me, target, &lpis)?, v))).collect();
            // Queued before the lock goes, so that a clear of its pending state, which now goes
            // to the new holder, cannot come before it.
            for (to, v) in &moved {
                d.moved_to(v.intid, *to);
                lrs::queue(vcpus, *to, *v);
            }
            moved
        };
        for (to, virq) in moved {
            log::debug!("virtual GIC: vCPU {me} goes off: INTID {} moved to vCPU {to}, where it is routed now", virq.intid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virq(intid: u32) -> Virq {
        Virq { intid, pintid: None, priority: 0xa0, group1: true, source: 0, level: false }
    }

    #[test]
    fn only_shared_interrupts_routed_elsewhere_move() {
        let spi_target = |intid: u32| Some(if intid == 40 { 1 } else { 0 });
        let lpis = [(8192, 1), (8193, 0)];
        // An SPI routed to vCPU 1 now moves there; one still routed to vCPU 0 stays.
        assert_eq!(new_target(&virq(40), 0, spi_target, &lpis), Some(1));
        assert_eq!(new_target(&virq(41), 0, spi_target, &lpis), None);
        // SGIs, PPIs (the timers) and the special INTIDs are the vCPU's own.
        for private in [0, 15, 27, 30, 31, 1020, 1023] {
            assert_eq!(new_target(&virq(private), 0, |_| Some(1), &lpis), None, "INTID {private}");
        }
        // An LPI follows its event's collection (MOVI); one whose event is unmapped stays (the
        // unmap retracts it).
        assert_eq!(new_target(&virq(8192), 0, spi_target, &lpis), Some(1));
        assert_eq!(new_target(&virq(8193), 0, spi_target, &lpis), None);
        assert_eq!(new_target(&virq(9000), 0, spi_target, &lpis), None);
        // Seen from vCPU 1, the SPI routed to it is its own.
        assert_eq!(new_target(&virq(40), 1, spi_target, &lpis), None);
        // An SPI routed to no vCPU stays where it is.
        assert_eq!(new_target(&virq(40), 0, |_| None, &lpis), None);
    }
}
