//! GICv2 distributor emulation: register semantics as a guest sees them, and the actions the
//! runtime is asked to perform.

use super::*;
use crate::gic::GicVersion;
use alloc::vec;
use alloc::vec::Vec;

/// Four vCPUs on pCPUs 4..8, the virtual timer and SPIs 33, 40 and 79 passed through.
fn dist() -> VDist {
    VDist::new(&VgicConfig {
        version: GicVersion::V2,
        vcpus: (0..4).map(|i| VcpuPlacement { mpidr: 0x8000_0000 | i, pcpu: 4 + i as usize }).collect(),
        hw_ppis: vec![27],
        hw_spis: vec![33, 40, 79],
    })
    .unwrap()
}

fn rd(d: &mut VDist, vcpu: usize, off: u64) -> u64 {
    d.mmio_read(vcpu, off, 4).unwrap()
}

fn wr(d: &mut VDist, vcpu: usize, off: u64, v: u64) -> Vec<VgicAction> {
    d.mmio_write(vcpu, off, 4, v).unwrap()
}

#[test]
fn identification() {
    let mut d = dist();
    // 96 lines (ITLinesNumber 2), 4 CPUs (CPUNumber 3).
    assert_eq!(rd(&mut d, 0, 0x004), 0x62);
    assert_eq!(rd(&mut d, 0, 0x008), 0x43b);
    assert_eq!(rd(&mut d, 0, 0xfe8) >> 4 & 0xf, 2, "PIDR2.ArchRev");
    assert_eq!(wr(&mut d, 0, 0x004, 0), vec![VgicAction::Warn(VgicWarning::ReadOnly { frame: "GICD", offset: 4 })]);
    assert!(VDist::new(&VgicConfig {
        version: GicVersion::V2,
        vcpus: (0..9).map(|i| VcpuPlacement { mpidr: i, pcpu: i as usize }).collect(),
        hw_ppis: vec![],
        hw_spis: vec![],
    })
    .is_err());
}

#[test]
fn enable_bitmaps_set_clear_and_bank() {
    let mut d = dist();
    // SPI 40 is a device's, 41 is purely virtual: only 40 reaches the physical GIC.
    let acts = wr(&mut d, 1, 0x104, 1 << 8 | 1 << 9);
    assert_eq!(acts, vec![VgicAction::EnablePhys { intid: 40, pcpu: 4 }]);
    assert_eq!(rd(&mut d, 0, 0x104), 1 << 8 | 1 << 9);
    assert_eq!(rd(&mut d, 0, 0x184), 1 << 8 | 1 << 9);
    assert_eq!(wr(&mut d, 0, 0x184, 1 << 9), vec![]);
    // Past the 96 advertised lines nothing is there.
    assert_eq!(wr(&mut d, 0, 0x10c, u32::MAX as u64), vec![]);
    assert_eq!(rd(&mut d, 0, 0x10c), 0);
    // Enabling again changes nothing in hardware.
    assert_eq!(wr(&mut d, 0, 0x104, 1 << 8), vec![]);
    assert_eq!(wr(&mut d, 0, 0x184, 1 << 8), vec![VgicAction::DisablePhys { intid: 40, pcpu: 4 }]);
    assert_eq!(rd(&mut d, 0, 0x104), 0);
    // Banked: vCPU 2 enables SGIs and the timer; vCPU 1 sees nothing; PPI 26 is not owned.
    let acts = wr(&mut d, 2, 0x100, 0xffff | 1 << 27 | 1 << 26);
    assert_eq!(acts, vec![VgicAction::EnablePhys { intid: 27, pcpu: 6 }]);
    assert_eq!(rd(&mut d, 2, 0x100), 0xffff | 1 << 27);
    assert_eq!(rd(&mut d, 1, 0x100), 0);
    // Groups are plain read/write bits.
    wr(&mut d, 0, 0x084, 1 << 1 | 1 << 2);
    assert_eq!(rd(&mut d, 0, 0x084), 1 << 1 | 1 << 2);
}

#[test]
fn priorities_are_byte_accessible() {
    let mut d = dist();
    // Byte write to SPI 40: the low three bits are not implemented.
    let acts = d.mmio_write(0, 0x400 + 40, 1, 0xa3).unwrap();
    assert_eq!(acts, vec![VgicAction::SetPhysPriority { intid: 40, pcpu: 4, priority: 0xa0 }]);
    assert_eq!(d.mmio_read(0, 0x400 + 40, 1).unwrap(), 0xa0);
    // Word write over 40..44: every one keeps its priority, only 40 is a device's.
    let acts = wr(&mut d, 0, 0x400 + 40, 0x1020_3048);
    assert_eq!(acts, vec![VgicAction::SetPhysPriority { intid: 40, pcpu: 4, priority: 0x48 }]);
    assert_eq!(rd(&mut d, 0, 0x400 + 40), 0x1020_3048);
    // SGI priorities are banked.
    d.mmio_write(3, 0x401, 1, 0x80).unwrap();
    assert_eq!(rd(&mut d, 3, 0x400), 0x8000);
    assert_eq!(rd(&mut d, 0, 0x400), 0);
    assert_eq!(d.mmio_read(0, 0x402, 2), Err(VgicError::BadSize { offset: 0x402, size: 2 }));
    assert_eq!(d.mmio_read(0, 0x401, 4), Err(VgicError::Unaligned { offset: 0x401, size: 4 }));
}

#[test]
fn targets() {
    let mut d = dist();
    // Private interrupts read as the reading vCPU's own bit and ignore writes.
    assert_eq!(rd(&mut d, 2, 0x800), 0x0404_0404);
    assert_eq!(d.mmio_read(1, 0x800 + 27, 1).unwrap(), 0x02);
    assert_eq!(d.mmio_read(1, 0x800 + 26, 1).unwrap(), 0, "PPI 26 is not the VM's");
    assert_eq!(wr(&mut d, 2, 0x800, 0xffff_ffff), vec![]);
    // SPI 40 to vCPU 2 (pCPU 6), then to vCPUs that do not exist: back to vCPU 0.
    let acts = d.mmio_write(0, 0x800 + 40, 1, 0b0100).unwrap();
    assert_eq!(acts, vec![VgicAction::RouteSpi { intid: 40, pcpu: 6 }]);
    assert_eq!(d.mmio_read(0, 0x800 + 40, 1).unwrap(), 0b0100);
    let acts = d.mmio_write(0, 0x800 + 40, 1, 0xf0).unwrap();
    assert_eq!(acts, vec![VgicAction::RouteSpi { intid: 40, pcpu: 4 }]);
    assert_eq!(d.mmio_read(0, 0x800 + 40, 1).unwrap(), 0);
}

#[test]
fn trigger_configuration() {
    let mut d = dist();
    assert_eq!(rd(&mut d, 0, 0xc00), 0xaaaa_aaaa, "SGIs are edge-triggered");
    wr(&mut d, 0, 0xc00, 0);
    assert_eq!(rd(&mut d, 0, 0xc00), 0xaaaa_aaaa, "and stay so");
    // SPI 40 is field 8 of ICFGR2.
    assert_eq!(wr(&mut d, 0, 0xc08, 2 << 16), vec![VgicAction::SetPhysTrigger { intid: 40, edge: true }]);
    assert_eq!(rd(&mut d, 0, 0xc08), 2 << 16);
}

fn enable_sgis(d: &mut VDist) {
    for v in 0..4 {
        wr(d, v, 0x100, 0xffff);
    }
}

#[test]
fn sgir_filters() {
    let mut d = dist();
    enable_sgis(&mut d);
    wr(&mut d, 0, 0x000, 1);
    let acts = wr(&mut d, 1, 0xf00, 1 << 24 | 5);
    let injected: Vec<(usize, usize)> = acts
        .iter()
        .filter_map(|a| match a {
            VgicAction::InjectSgi { vcpu, intid: 5, source, virq } => {
                assert_eq!(virq.source as usize, *source);
                assert_eq!(virq.pintid, None);
                Some((*vcpu, *source))
            }
            _ => None,
        })
        .collect();
    assert_eq!(injected, vec![(0, 1), (2, 1), (3, 1)]);
    assert!(acts.contains(&VgicAction::Kick(0)) && !acts.contains(&VgicAction::Kick(1)));
    // Self only: no kick needed.
    let acts = wr(&mut d, 3, 0xf00, 2 << 24 | 1);
    assert!(matches!(acts.as_slice(), [VgicAction::InjectSgi { vcpu: 3, intid: 1, source: 3, .. }]));
    // Target list 0b1001.
    let acts = wr(&mut d, 1, 0xf00, 0b1001 << 16 | 2);
    assert_eq!(acts.iter().filter(|a| matches!(a, VgicAction::InjectSgi { .. })).count(), 2);
    assert!(matches!(wr(&mut d, 0, 0xf00, 3 << 24).as_slice(), [VgicAction::Warn(_)]));
    assert_eq!(rd(&mut d, 0, 0xf00), 0);
    assert!(matches!(d.take_warning(), Some(VgicWarning::WriteOnly { .. })));
}

#[test]
fn sgis_held_until_enabled_then_released() {
    let mut d = dist();
    // Distributor off: SGI 7 from vCPUs 1 and 2 to vCPU 0 stays pending per source.
    assert_eq!(wr(&mut d, 1, 0xf00, 1 << 16 | 7), vec![]);
    assert_eq!(wr(&mut d, 2, 0xf00, 1 << 16 | 7), vec![]);
    assert_eq!(d.mmio_read(0, 0xf10 + 7, 1).unwrap(), 0b110, "CPENDSGIR shows the sources");
    assert_eq!(d.mmio_read(0, 0xf20 + 4, 4).unwrap(), 0b110 << 24, "SPENDSGIR too");
    assert_eq!(rd(&mut d, 0, 0x200), 1 << 7);
    // ISPENDR/ICPENDR do not touch GICv2 SGIs.
    wr(&mut d, 0, 0x280, 0xffff);
    assert_eq!(rd(&mut d, 0, 0x200), 1 << 7);
    // Clear source 2, then enable: the SGI from source 1 is delivered.
    d.mmio_write(0, 0xf10 + 7, 1, 0b100).unwrap();
    wr(&mut d, 0, 0x100, 1 << 7);
    let acts = wr(&mut d, 1, 0x000, 1);
    assert_eq!(acts.len(), 2);
    assert!(matches!(acts[0], VgicAction::InjectSgi { vcpu: 0, intid: 7, source: 1, .. }));
    assert_eq!(acts[1], VgicAction::Kick(0));
    assert_eq!(rd(&mut d, 0, 0x200), 0, "handed over to the list registers");
    // SPENDSGIR sets pending from a named source and, enabled, delivers it at once.
    let acts = d.mmio_write(0, 0xf20 + 7, 1, 0b1000).unwrap();
    assert!(matches!(acts.as_slice(), [VgicAction::InjectSgi { vcpu: 0, intid: 7, source: 3, .. }]));
    // Handed over, the SGI is pending in vCPU 0's list registers from sources 1 and 3: its
    // SPENDSGIR and CPENDSGIR show them, with what the distributor still holds (source 2 again).
    wr(&mut d, 0, 0x000, 0);
    wr(&mut d, 2, 0xf00, 1 << 16 | 7);
    let live = SgiLive { vcpu: 0, intid: 7, sources: 0b1010 };
    assert_eq!(d.mmio_read_live(0, 0xf20 + 4, 4, &live).unwrap(), 0b1110 << 24);
    assert_eq!(d.mmio_read_live(0, 0xf10 + 7, 1, &live).unwrap(), 0b1110);
    assert_eq!(d.mmio_read_live(1, 0xf10 + 7, 1, &live).unwrap(), 0, "vCPU 1's bank holds none");
}

/// A runtime whose vCPU `vcpu` holds SGI `intid` pending from `sources` in its list registers.
struct SgiLive {
    vcpu: usize,
    intid: u32,
    sources: u8,
}

impl LiveState for SgiLive {
    fn phys_pending(&self, _vcpu: usize, _intid: u32) -> bool {
        false
    }
    fn held(&self, vcpu: usize, intid: u32) -> (bool, bool) {
        ((vcpu, intid) == (self.vcpu, self.intid), false)
    }
    fn sgi_sources(&self, vcpu: usize, intid: u32) -> u8 {
        if (vcpu, intid) == (self.vcpu, self.intid) { self.sources } else { 0 }
    }
}

#[test]
fn physical_interrupts_held_while_masked() {
    let mut d = dist();
    assert_eq!(d.hw_irq(0, 41), HwIrq::NotOwned);
    assert_eq!(d.hw_irq(0, 3), HwIrq::NotOwned);
    assert_eq!(d.hw_irq(0, 40), HwIrq::Held);
    assert_eq!(rd(&mut d, 0, 0x204), 1 << 8);
    d.mmio_write(0, 0x800 + 40, 1, 0b10).unwrap();
    wr(&mut d, 0, 0x000, 1);
    let acts = wr(&mut d, 0, 0x104, 1 << 8);
    assert_eq!(acts[0], VgicAction::EnablePhys { intid: 40, pcpu: 5 });
    assert!(matches!(acts[1], VgicAction::Inject { vcpu: 1, virq: Virq { intid: 40, pintid: Some(40), .. } }));
    assert_eq!(acts[2], VgicAction::Kick(1));
    // Now enabled: delivered straight to the target.
    assert!(matches!(d.hw_irq(1, 40), HwIrq::Deliver { vcpu: 1, .. }));
    // Timer PPI on vCPU 3: banked, held until vCPU 3 enables it.
    assert_eq!(d.hw_irq(3, 27), HwIrq::Held);
    wr(&mut d, 2, 0x100, 1 << 27);
    assert_eq!(d.hw_irq(3, 27), HwIrq::Held);
    // The guest clears a held one: its physical copy was acknowledged, so it is deactivated.
    let acts = wr(&mut d, 3, 0x280, 1 << 27);
    assert_eq!(
        acts,
        vec![
            VgicAction::ClearPhysActive { intid: 27, pcpu: 7 },
            VgicAction::SetPhysPending { intid: 27, pcpu: 7, pending: false }
        ]
    );
    assert_eq!(wr(&mut d, 0, 0x384, 1 << 8), vec![VgicAction::ClearPhysActive { intid: 40, pcpu: 5 }]);
}

#[test]
fn reserved_and_malformed_accesses() {
    let mut d = dist();
    assert_eq!(rd(&mut d, 0, 0x00c), 0);
    assert_eq!(d.take_warning(), Some(VgicWarning::Reserved { frame: "GICD", offset: 0xc, write: false }));
    assert_eq!(d.take_warning(), None);
    assert_eq!(
        wr(&mut d, 0, 0xe00, 1),
        vec![VgicAction::Warn(VgicWarning::Reserved { frame: "GICD", offset: 0xe00, write: true })]
    );
    assert_eq!(d.mmio_read(0, 0x000, 2), Err(VgicError::BadSize { offset: 0, size: 2 }));
    assert_eq!(d.mmio_read(0, 0x104, 3), Err(VgicError::BadSize { offset: 0x104, size: 3 }));
    assert_eq!(d.mmio_read(0, 0x102, 4), Err(VgicError::Unaligned { offset: 0x102, size: 4 }));
    assert_eq!(d.mmio_read(4, 0x000, 4), Err(VgicError::NoSuchVcpu { vcpu: 4, count: 4 }));
    assert!(VgicError::NoSuchVcpu { vcpu: 4, count: 4 }.to_string().contains("has 4"));
}

#[test]
fn reset_actions_disable_and_route() {
    let d = dist();
    let acts = d.reset_actions();
    assert!(acts.contains(&VgicAction::DisablePhys { intid: 27, pcpu: 7 }));
    assert!(acts.contains(&VgicAction::RouteSpi { intid: 79, pcpu: 4 }));
    assert_eq!(acts.len(), 4 + 2 * 3);
}

/// What kvm-unit-tests' `gic` test checks of GICD_IPRIORITYR: every advertised SPI has the same
/// priority mask (at least 5 bits here), values are kept, the last SPIs work, past the end is
/// RAZ/WI, and bytes work.
#[test]
fn every_advertised_spi_has_priority_state() {
    let mut d = dist();
    // 96 lines: SPIs 32..96, of which only 33, 40 and 79 are backed by a device.
    wr(&mut d, 0, 0x420, 0xffff_ffff);
    assert_eq!(rd(&mut d, 0, 0x420), 0xf8f8_f8f8, "consistent priority masking");
    wr(&mut d, 0, 0x420, 0);
    assert_eq!(rd(&mut d, 0, 0x420), 0, "clearing priorities");
    wr(&mut d, 0, 0x420, 0xff7f_bf3f);
    assert_eq!(rd(&mut d, 0, 0x420), 0xf878_b838, "priorities are preserved");
    wr(&mut d, 0, 0x400 + 96 - 4, 0x1020_3040);
    assert_eq!(rd(&mut d, 0, 0x400 + 96 - 4), 0x1020_3040, "accessing last SPIs");
    assert_eq!(wr(&mut d, 0, 0x400 + 96, 0xffff_ffff), vec![]);
    assert_eq!(rd(&mut d, 0, 0x400 + 96), 0, "accesses beyond limit RAZ/WI");
    assert_eq!(d.mmio_write(0, 0x400 + 34, 1, 0xc7).unwrap(), vec![], "no device: nothing physical");
    assert_eq!(d.mmio_read(0, 0x400 + 34, 1).unwrap(), 0xc0);
}

#[test]
fn an_spi_without_a_device_is_a_virtual_interrupt() {
    let mut d = dist();
    // SPI 41: bit 9 of the second word of each bitmap. Nothing reaches the physical GIC.
    assert_eq!(wr(&mut d, 0, 0x104, 1 << 9), vec![]);
    assert_eq!(rd(&mut d, 0, 0x104), 1 << 9, "enable");
    wr(&mut d, 0, 0x084, 1 << 9);
    assert_eq!(rd(&mut d, 0, 0x084), 1 << 9, "group");
    assert_eq!(wr(&mut d, 0, 0xc08, 2 << 18), vec![]);
    assert_eq!(rd(&mut d, 0, 0xc08), 2 << 18, "config");
    assert_eq!(wr(&mut d, 0, 0x304, 1 << 9), vec![]);
    assert_eq!(rd(&mut d, 0, 0x304), 1 << 9, "active");
    assert_eq!(wr(&mut d, 0, 0x384, 1 << 9), vec![]);
    assert_eq!(rd(&mut d, 0, 0x304), 0);
    // ITARGETSR keeps its CPU bits.
    assert_eq!(d.mmio_write(0, 0x800 + 41, 1, 0xff).unwrap(), vec![]);
    assert_eq!(d.mmio_read(0, 0x800 + 41, 1).unwrap(), 0x0f);
    d.mmio_write(0, 0x800 + 41, 1, 0b0100).unwrap();
    // Distributor off: ISPENDR holds it pending; turning the distributor on delivers it to
    // vCPU 2 as a purely virtual interrupt.
    assert_eq!(wr(&mut d, 0, 0x204, 1 << 9), vec![]);
    assert_eq!(rd(&mut d, 0, 0x204), 1 << 9, "pending");
    let acts = wr(&mut d, 0, 0x000, 1);
    assert!(
        matches!(
            acts.as_slice(),
            [VgicAction::Inject { vcpu: 2, virq: Virq { intid: 41, pintid: None, .. } }, VgicAction::Kick(2)]
        ),
        "{acts:?}"
    );
    assert_eq!(d.hw_irq(2, 41), HwIrq::NotOwned, "no physical interrupt behind it");
    // ICPENDR clears a held one without touching the physical GIC.
    wr(&mut d, 0, 0x000, 0);
    wr(&mut d, 0, 0x204, 1 << 9);
    let acts = wr(&mut d, 0, 0x284, 1 << 9);
    assert!(!acts.iter().any(|a| matches!(a, VgicAction::SetPhysPending { .. } | VgicAction::ClearPhysActive { .. })));
    assert_eq!(rd(&mut d, 0, 0x204), 0);
}

fn retraction(vcpu: usize, intid: u32, source: Option<u8>, pending: bool, active: bool) -> Retraction {
    Retraction { vcpu, intid, source, pending, active, hold: None }
}

#[test]
fn clearing_pending_or_active_retracts_from_the_holding_vcpu() {
    let mut d = dist();
    wr(&mut d, 0, 0x000, 1);
    wr(&mut d, 0, 0x104, 1 << 8 | 1 << 9 | 1 << 15);
    // Never handed to a vCPU: nothing to take back (Linux clears every SPI at boot).
    wr(&mut d, 0, 0x384, u32::MAX as u64);
    assert_eq!(d.take_retractions(), vec![]);
    // SPI 40 goes to vCPU 0, then the guest retargets it to vCPU 2: the copy vCPU 0's list
    // registers may hold is the one to take back.
    assert!(matches!(d.hw_irq(0, 40), HwIrq::Deliver { vcpu: 0, .. }));
    d.mmio_write(1, 0x800 + 40, 1, 0b100).unwrap();
    let acts = wr(&mut d, 1, 0x284, 1 << 8);
    assert_eq!(acts, vec![VgicAction::SetPhysPending { intid: 40, pcpu: 6, pending: false }]);
    assert_eq!(d.take_retractions(), vec![retraction(0, 40, None, true, false)]);
    assert_eq!(d.take_retractions(), vec![], "taken");
    let acts = wr(&mut d, 1, 0x384, 1 << 8);
    assert_eq!(acts, vec![VgicAction::ClearPhysActive { intid: 40, pcpu: 6 }]);
    assert_eq!(d.take_retractions(), vec![retraction(0, 40, None, false, true)]);
    // Each write replaces the list: an untaken one does not pile up.
    wr(&mut d, 1, 0x384, 1 << 8);
    wr(&mut d, 1, 0x104, 1 << 8);
    assert_eq!(d.take_retractions(), vec![]);
    // Delivered again, now to vCPU 2.
    assert!(matches!(d.hw_irq(0, 40), HwIrq::Deliver { vcpu: 2, .. }));
    wr(&mut d, 0, 0x284, 1 << 8);
    assert_eq!(d.take_retractions(), vec![retraction(2, 40, None, true, false)]);
    // A purely virtual SPI made pending by the guest, then cleared.
    wr(&mut d, 0, 0x204, 1 << 9);
    wr(&mut d, 0, 0x284, 1 << 9 | 1 << 15);
    assert_eq!(d.take_retractions(), vec![retraction(0, 41, None, true, false)]);
}

#[test]
fn cpendsgir_retracts_the_sgi_from_each_cleared_source() {
    let mut d = dist();
    enable_sgis(&mut d);
    wr(&mut d, 0, 0x000, 1);
    // SGI 7 from vCPUs 1 and 2 to vCPU 0, delivered at once.
    wr(&mut d, 1, 0xf00, 1 << 16 | 7);
    wr(&mut d, 2, 0xf00, 1 << 16 | 7);
    // vCPU 0 clears source 2 (and 3, which never sent it: the list register manager finds
    // nothing for that one).
    d.mmio_write(0, 0xf10 + 7, 1, 0b1100).unwrap();
    assert_eq!(
        d.take_retractions(),
        vec![retraction(0, 7, Some(2), true, false), retraction(0, 7, Some(3), true, false)]
    );
    // ICPENDR does not touch GICv2 SGIs; ICACTIVER does, for every source.
    wr(&mut d, 0, 0x280, 1 << 7);
    assert_eq!(d.take_retractions(), vec![]);
    wr(&mut d, 0, 0x380, 1 << 7);
    assert_eq!(d.take_retractions(), vec![retraction(0, 7, None, false, true)]);
    // vCPU 1 never received SGI 7.
    wr(&mut d, 1, 0x380, 1 << 7);
    assert_eq!(d.take_retractions(), vec![]);
}

#[test]
fn disabling_a_handed_interrupt_holds_it_back_at_its_vcpu() {
    let mut d = dist();
    wr(&mut d, 0, 0x000, 1);
    let hold = |vcpu, intid, h| Retraction { vcpu, intid, source: None, pending: false, active: false, hold: Some(h) };
    // SPI 41 (purely virtual) made pending and handed to vCPU 0.
    wr(&mut d, 0, 0x104, 1 << 9);
    let acts = wr(&mut d, 0, 0x204, 1 << 9);
    assert!(matches!(acts.as_slice(), [VgicAction::Inject { vcpu: 0, .. }, ..]), "{acts:?}");
    assert_eq!(d.take_retractions(), vec![]);
    // Disabled: vCPU 0 holds its copy back; disabled again: nothing changes, nothing to say.
    wr(&mut d, 1, 0x184, 1 << 9);
    assert_eq!(d.take_retractions(), vec![hold(0, 41, true)]);
    wr(&mut d, 1, 0x184, 1 << 9);
    assert_eq!(d.take_retractions(), vec![]);
    // Enabled again: vCPU 0 lets it go.
    wr(&mut d, 1, 0x104, 1 << 9);
    assert_eq!(d.take_retractions(), vec![hold(0, 41, false)]);
    // An SPI never handed to a vCPU has no holder to tell.
    wr(&mut d, 0, 0x104, 1 << 10);
    wr(&mut d, 0, 0x184, 1 << 10);
    assert_eq!(d.take_retractions(), vec![]);
    // A passthrough SPI is disabled in the physical GIC too, and its holder told.
    wr(&mut d, 0, 0x104, 1 << 8);
    assert!(matches!(d.hw_irq(0, 40), HwIrq::Deliver { vcpu: 0, .. }));
    let acts = wr(&mut d, 0, 0x184, 1 << 8);
    assert_eq!(acts, vec![VgicAction::DisablePhys { intid: 40, pcpu: 4 }], "routed to vCPU 0, on pCPU 4");
    assert_eq!(d.take_retractions(), vec![hold(0, 40, true)]);
}
