//! The physical GIC after a distributor state is restored (a snapshot): what each passthrough
//! interrupt must look like for the state the guest sees, as actions for the runtime.

use alloc::vec::Vec;

use super::dist::VDist;
use super::types::VgicAction;
use crate::gic::FIRST_SPI;

impl VDist {
    /// The actions that make the physical GIC match this distributor's passthrough interrupts:
    /// priority, trigger (SPIs), routing to the target vCPU's pCPU (SPIs), then enabled or
    /// disabled. Private ones name their vCPU's pCPU (the runtime applies them there).
    pub fn state_actions(&self) -> Vec<VgicAction> {
        let mut out = Vec::new();
        for (v, cpu) in self.cpus.iter().enumerate() {
            let pcpu = self.vcpus[v].pcpu;
            for (intid, st) in cpu.private.iter().enumerate().filter(|(_, s)| s.hw) {
                let intid = intid as u32;
                out.push(VgicAction::SetPhysPriority { intid, pcpu, priority: st.priority });
                out.push(if st.enabled { VgicAction::EnablePhys { intid, pcpu } } else { VgicAction::DisablePhys { intid, pcpu } });
            }
        }
        for (i, st) in self.spis.iter().enumerate().filter(|(_, s)| s.hw) {
            let intid = FIRST_SPI + i as u32;
            let pcpu = self.vcpus[self.phys_vcpu(0, intid)].pcpu;
            out.push(VgicAction::SetPhysPriority { intid, pcpu, priority: st.priority });
            out.push(VgicAction::SetPhysTrigger { intid, edge: st.edge });
            out.push(VgicAction::RouteSpi { intid, pcpu });
            out.push(if st.enabled { VgicAction::EnablePhys { intid, pcpu } } else { VgicAction::DisablePhys { intid, pcpu } });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::vgic::{VcpuPlacement, VgicConfig};
    use crate::gic::GicVersion;

    #[test]
    fn state_actions_follow_the_guest_view() {
        let config = VgicConfig {
            version: GicVersion::V3,
            vcpus: alloc::vec![VcpuPlacement { mpidr: 0, pcpu: 3 }, VcpuPlacement { mpidr: 1, pcpu: 4 }],
            hw_ppis: alloc::vec![27],
            hw_spis: alloc::vec![40],
        };
        let mut d = VDist::new(&config).unwrap();
        d.cpus[1].private[27].enabled = true;
        d.spis[8].enabled = true;
        d.spis[8].edge = true;
        d.spis[8].priority = 0xa0;
        d.spis[8].route = 1;
        let a = d.state_actions();
        assert!(a.contains(&VgicAction::DisablePhys { intid: 27, pcpu: 3 }));
        assert!(a.contains(&VgicAction::EnablePhys { intid: 27, pcpu: 4 }));
        assert!(a.contains(&VgicAction::SetPhysTrigger { intid: 40, edge: true }));
        assert!(a.contains(&VgicAction::SetPhysPriority { intid: 40, pcpu: 4, priority: 0xa0 }));
        assert!(a.contains(&VgicAction::RouteSpi { intid: 40, pcpu: 4 }));
        assert_eq!(a.last(), Some(&VgicAction::EnablePhys { intid: 40, pcpu: 4 }));
        // Untouched: nothing but the passthrough ones.
        assert_eq!(a.len(), 2 * 2 + 4);
    }
}
