//! GICv3 distributor and redistributor emulation as a guest sees them.

use super::*;
use crate::gic::GicVersion;
use alloc::vec;
use alloc::vec::Vec;

const SGI: u64 = 0x1_0000;

/// Three vCPUs: two in cluster 0, one in cluster 1, on pCPUs 1..4; timer and SPI 40 passed through.
fn dist() -> VDist {
    let mpidrs = [0x8000_0000, 0x8000_0001, 0x8000_0100];
    VDist::new(&VgicConfig {
        version: GicVersion::V3,
        vcpus: mpidrs.iter().enumerate().map(|(i, &mpidr)| VcpuPlacement { mpidr, pcpu: i + 1 }).collect(),
        hw_ppis: vec![27],
        hw_spis: vec![40],
    })
    .unwrap()
}

fn rd(d: &mut VDist, off: u64) -> u64 {
    d.mmio_read(0, off, 4).unwrap()
}

fn wr(d: &mut VDist, off: u64, v: u64) -> Vec<VgicAction> {
    d.mmio_write(0, off, 4, v).unwrap()
}

#[test]
fn distributor_identification_and_ctlr() {
    let mut d = dist();
    assert_eq!(rd(&mut d, 0x0000), 0x50, "ARE and DS always set");
    wr(&mut d, 0x0000, 0x2);
    assert_eq!(rd(&mut d, 0x0000), 0x52);
    let typer = rd(&mut d, 0x0004);
    assert_eq!(typer & 0x1f, 1, "64 lines");
    assert_eq!(typer >> 19 & 0x1f, 9, "10 INTID bits");
    assert_eq!(typer >> 5 & 7, 2, "three CPUs");
    assert_eq!(rd(&mut d, 0xffe8) >> 4 & 0xf, 3, "PIDR2.ArchRev");
    assert_eq!(rd(&mut d, 0x0008), 0x43b);
}

#[test]
fn affinity_routing_hides_private_interrupts_in_gicd() {
    let mut d = dist();
    assert_eq!(wr(&mut d, 0x0100, 0xffff_ffff), vec![]);
    assert_eq!(rd(&mut d, 0x0100), 0);
    assert_eq!(wr(&mut d, 0x0400, 0xffff_ffff), vec![]);
    assert_eq!(rd(&mut d, 0x0400), 0);
    assert_eq!(wr(&mut d, 0x0800 + 40, 0xffff_ffff), vec![], "ITARGETSR is RES0");
    // SPI bitmaps work as on GICv2.
    assert_eq!(wr(&mut d, 0x0104, 1 << 8), vec![VgicAction::EnablePhys { intid: 40, pcpu: 1 }]);
    assert_eq!(rd(&mut d, 0x0104), 1 << 8);
    wr(&mut d, 0x0084, u32::MAX as u64);
    assert_eq!(rd(&mut d, 0x0084), u32::MAX as u64, "every advertised SPI keeps a group bit");
    wr(&mut d, 0x0088, u32::MAX as u64);
    assert_eq!(rd(&mut d, 0x0088), 0, "none past the 64 lines GICD_TYPER advertises");
}

#[test]
fn irouter() {
    let mut d = dist();
    let off = 0x6000 + 8 * 40;
    assert_eq!(d.mmio_read(0, off, 8).unwrap(), 0, "reset route: vCPU 0's affinity");
    // 64-bit write naming vCPU 2 (Aff1 = 1); the IRM bit is not supported.
    let acts = d.mmio_write(0, off, 8, 1 << 31 | 0x100).unwrap();
    assert_eq!(acts, vec![VgicAction::RouteSpi { intid: 40, pcpu: 3 }]);
    assert_eq!(d.mmio_read(0, off, 8).unwrap(), 0x100);
    // 32-bit halves: Aff3 lives in the upper word. Aff3 = 7 names no vCPU: the SPI has no
    // target, and its physical copy stays routed where it was.
    assert_eq!(d.mmio_write(0, off + 4, 4, 0x7).unwrap(), vec![]);
    assert_eq!(d.target_vcpu(0, 40), None);
    assert_eq!(d.mmio_read(0, off, 8).unwrap(), 0x7_0000_0100);
    assert_eq!(d.mmio_read(0, off + 4, 4).unwrap(), 0x7);
    assert_eq!(d.mmio_read(0, off, 4).unwrap(), 0x100);
    // SPI 41 has no device: its route is kept, with nothing physical to change. SPI 64 is past
    // the advertised lines; INTIDs below 32 have no IROUTER.
    assert_eq!(d.mmio_write(0, off + 8, 8, 0x100).unwrap(), vec![]);
    assert_eq!(d.mmio_read(0, off + 8, 8).unwrap(), 0x100);
    assert_eq!(d.mmio_write(0, 0x6000 + 8 * 64, 8, 0x100).unwrap(), vec![]);
    assert_eq!(d.mmio_read(0, 0x6000 + 8 * 64, 8).unwrap(), 0);
    assert!(matches!(d.mmio_write(0, 0x6000, 8, 1).unwrap().as_slice(), [VgicAction::Warn(_)]));
    assert_eq!(d.mmio_read(0, off, 2), Err(VgicError::BadSize { offset: off, size: 2 }));
}

/// An SPI whose IROUTER names no vCPU is forwarded to none (GIC specification; KVM): pending,
/// emulated or passed through, it waits in the distributor until a write routes it to a vCPU,
/// which then gets it.
#[test]
fn an_spi_routed_to_no_vcpu_waits_for_a_route() {
    let mut d = dist();
    d.ensure_spi(41);
    wr(&mut d, 0x0000, 0b10); // GICD_CTLR.EnableGrp1NS
    wr(&mut d, 0x0084, 0b11 << 8); // SPIs 40 and 41 in group 1
    wr(&mut d, 0x0104, 0b11 << 8); // ... enabled
    for intid in [40u64, 41] {
        assert_eq!(d.mmio_write(0, 0x6000 + 8 * intid, 8, 0x5_0000).unwrap(), vec![], "Aff2 = 5: no vCPU");
    }
    // The emulated line and the physical interrupt both stay with the distributor.
    assert!(d.set_line(41, true, 0).is_empty());
    assert_eq!(d.hw_irq(0, 40), HwIrq::Held);
    // ISPENDR shows both pending.
    assert_eq!(rd(&mut d, 0x0204) & (0b11 << 8), 0b11 << 8);
    // Routed to vCPU 2 (Aff1 = 1): the physical copy follows, and both go to vCPU 2, kicked.
    let acts = d.mmio_write(0, 0x6000 + 8 * 40, 8, 0x100).unwrap();
    assert!(acts.contains(&VgicAction::RouteSpi { intid: 40, pcpu: 3 }), "{acts:?}");
    assert!(acts.iter().any(|a| matches!(a, VgicAction::Inject { vcpu: 2, virq } if virq.intid == 40 && virq.pintid == Some(40))), "{acts:?}");
    assert!(acts.contains(&VgicAction::Kick(2)), "{acts:?}");
    assert!(!acts.iter().any(|a| matches!(a, VgicAction::Inject { virq, .. } if virq.intid == 41)), "41 still has no route: {acts:?}");
    let acts = d.mmio_write(1, 0x6000 + 8 * 41, 4, 0x1).unwrap();
    assert!(acts.iter().any(|a| matches!(a, VgicAction::Inject { vcpu: 1, virq } if virq.intid == 41)), "{acts:?}");
    assert!(!acts.contains(&VgicAction::Kick(1)), "the writer itself needs no kick: {acts:?}");
}

#[test]
fn redistributor_typer_and_last() {
    let mut d = dist();
    let t0 = d.redist_read(0, 0x8, 8).unwrap();
    let t2 = d.redist_read(2, 0x8, 8).unwrap();
    assert_eq!(t0, 0, "affinity 0, processor 0, not last");
    assert_eq!(t2, 0x100 << 32 | 2 << 8 | 1 << 4);
    assert_eq!(d.redist_read(2, 0x8, 4).unwrap(), 2 << 8 | 1 << 4);
    assert_eq!(d.redist_read(2, 0xc, 4).unwrap(), 0x100);
    assert_eq!(d.redist(1).unwrap().typer() >> 32, 1);
    assert_eq!(d.redist_read(1, 0xffe8, 4).unwrap() >> 4 & 0xf, 3, "GICR PIDR2.ArchRev");
    assert_eq!(d.redist_read(3, 0x8, 8), Err(VgicError::NoSuchRedist { index: 3, count: 3 }));
}

#[test]
fn waker_children_follow_processor_sleep() {
    let mut d = dist();
    assert_eq!(d.redist_read(1, 0x14, 4).unwrap(), 0b110, "asleep at reset");
    assert!(!d.redist(1).unwrap().awake());
    assert_eq!(d.redist_write(0, 1, 0x14, 4, 0).unwrap(), vec![]);
    assert_eq!(d.redist_read(1, 0x14, 4).unwrap(), 0);
    assert!(d.redist(1).unwrap().awake());
    assert_eq!(d.redist_read(0, 0x14, 4).unwrap(), 0b110, "each redistributor has its own");
    d.redist_write(0, 1, 0x14, 4, 0b010).unwrap();
    assert_eq!(d.redist_read(1, 0x14, 4).unwrap(), 0b110);
    // ChildrenAsleep is read-only.
    d.redist_write(0, 1, 0x14, 4, 0b100).unwrap();
    assert_eq!(d.redist_read(1, 0x14, 4).unwrap(), 0);
}

#[test]
fn sgi_base_frame() {
    let mut d = dist();
    // vCPU 0 enables the timer PPI in vCPU 1's redistributor: it belongs to pCPU 2.
    let acts = d.redist_write(0, 1, SGI + 0x100, 4, 0xffff | 1 << 27 | 1 << 30).unwrap();
    assert_eq!(acts, vec![VgicAction::EnablePhys { intid: 27, pcpu: 2 }]);
    assert_eq!(d.redist_read(1, SGI + 0x100, 4).unwrap(), 0xffff | 1 << 27);
    assert_eq!(d.redist_read(0, SGI + 0x100, 4).unwrap(), 0);
    let acts = d.redist_write(1, 1, SGI + 0x180, 4, 1 << 27).unwrap();
    assert_eq!(acts, vec![VgicAction::DisablePhys { intid: 27, pcpu: 2 }]);
    // Priorities byte by byte; ICFGR0 read-only edge; IGROUPR0 plain bits.
    d.redist_write(1, 1, SGI + 0x400 + 27, 1, 0xa0).unwrap();
    assert_eq!(d.redist_read(1, SGI + 0x418, 4).unwrap(), 0xa0 << 24);
    assert_eq!(d.redist_read(1, SGI + 0xc00, 4).unwrap(), 0xaaaa_aaaa);
    d.redist_write(1, 1, SGI + 0xc04, 4, 0).unwrap();
    assert_eq!(d.redist_read(1, SGI + 0xc04, 4).unwrap(), 0);
    d.redist_write(1, 1, SGI + 0x80, 4, u32::MAX as u64).unwrap();
    assert_eq!(d.redist_read(1, SGI + 0x80, 4).unwrap(), 0xffff | 1 << 27);
    // A reserved SGI_base offset.
    assert_eq!(d.redist_read(1, SGI + 0x84, 4).unwrap(), 0);
    assert!(matches!(d.take_warning(), Some(VgicWarning::Reserved { frame: "GICR SGI_base", .. })));
}

#[test]
fn sgi1r_targets_by_affinity() {
    let mut d = dist();
    for v in 0..3 {
        d.redist_write(v, v, SGI + 0x80, 4, 0xffff).unwrap();
        d.redist_write(v, v, SGI + 0x100, 4, 0xffff).unwrap();
    }
    wr(&mut d, 0x0000, 0x2);
    // Cluster 1, Aff0 0: vCPU 2.
    let acts = d.sgi1r_write(0, 1 << 16 | 3 << 24 | 1).unwrap();
    assert_eq!(acts.len(), 2);
    assert!(matches!(acts[0], VgicAction::InjectSgi { vcpu: 2, intid: 3, source: 0, virq: Virq { group1: true, .. } }));
    assert_eq!(acts[1], VgicAction::Kick(2));
    // IRM: everyone but the sender.
    let acts = d.sgi1r_write(1, 1 << 40 | 4 << 24).unwrap();
    let targets: Vec<usize> = acts
        .iter()
        .filter_map(|a| match a {
            VgicAction::InjectSgi { vcpu, .. } => Some(*vcpu),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec![0, 2]);
    // Group 1 disabled: held pending in the redistributor until re-enabled.
    wr(&mut d, 0x0000, 0x0);
    assert_eq!(d.sgi1r_write(0, 0b10 | 6 << 24).unwrap(), vec![]);
    assert_eq!(d.redist_read(1, SGI + 0x200, 4).unwrap(), 1 << 6);
    let acts = wr(&mut d, 0x0000, 0x2);
    assert!(matches!(acts[0], VgicAction::InjectSgi { vcpu: 1, intid: 6, .. }));
    assert_eq!(d.redist_read(1, SGI + 0x200, 4).unwrap(), 0);
    assert_eq!(d.sgi1r_write(5, 0), Err(VgicError::NoSuchVcpu { vcpu: 5, count: 3 }));
}

#[test]
fn every_advertised_spi_has_state() {
    let mut d = dist();
    // 64 lines: SPIs 32..64, only 40 backed by a device.
    wr(&mut d, 0x0420, 0xffff_ffff);
    assert_eq!(rd(&mut d, 0x0420), 0xf8f8_f8f8, "consistent priority masking");
    wr(&mut d, 0x0400 + 64 - 4, 0x1020_3040);
    assert_eq!(rd(&mut d, 0x0400 + 64 - 4), 0x1020_3040, "accessing last SPIs");
    assert_eq!(rd(&mut d, 0x0400 + 64), 0, "beyond the limit");
    // SPI 41 enable, group, config, active: state, and nothing physical.
    assert_eq!(wr(&mut d, 0x0104, 1 << 9), vec![]);
    wr(&mut d, 0x0084, 1 << 9);
    assert_eq!(wr(&mut d, 0x0c08, 2 << 18), vec![]);
    assert_eq!(wr(&mut d, 0x0304, 1 << 9), vec![]);
    let state = (rd(&mut d, 0x0104), rd(&mut d, 0x0084), rd(&mut d, 0x0c08), rd(&mut d, 0x0304));
    assert_eq!(state, (1 << 9, 1 << 9, 2 << 18, 1 << 9));
    // IROUTER: reset to vCPU 0, then vCPU 2; a pending one goes there once group 1 is on.
    let off = 0x6000 + 8 * 41;
    assert_eq!(d.mmio_read(0, off, 8).unwrap(), 0);
    assert_eq!(d.mmio_write(0, off, 8, 0x100).unwrap(), vec![]);
    assert_eq!(d.mmio_read(0, off, 8).unwrap(), 0x100);
    assert_eq!(wr(&mut d, 0x0204, 1 << 9), vec![]);
    let acts = wr(&mut d, 0x0000, 0x2);
    assert!(
        matches!(
            acts.as_slice(),
            [VgicAction::Inject { vcpu: 2, virq: Virq { intid: 41, pintid: None, .. } }, VgicAction::Kick(2)]
        ),
        "{acts:?}"
    );
}

#[test]
fn redistributor_clears_retract_banked_interrupts() {
    let mut d = dist();
    wr(&mut d, 0x0000, 0x2);
    d.redist_write(1, 1, SGI + 0x80, 4, 0xffff | 1 << 27).unwrap();
    d.redist_write(1, 1, SGI + 0x100, 4, 0xffff | 1 << 27).unwrap();
    // The timer PPI fires on vCPU 1; vCPU 0 clears its active state in vCPU 1's redistributor.
    assert!(matches!(d.hw_irq(1, 27), HwIrq::Deliver { vcpu: 1, .. }));
    let acts = d.redist_write(0, 1, SGI + 0x380, 4, 1 << 27).unwrap();
    assert_eq!(acts, vec![VgicAction::ClearPhysActive { intid: 27, pcpu: 2 }]);
    let expect = Retraction { vcpu: 1, intid: 27, source: None, pending: false, active: true, hold: None };
    assert_eq!(d.take_retractions(), vec![expect]);
    // An SGI sent to vCPU 1, then its pending state cleared through ICPENDR0.
    d.sgi1r_write(0, 0b10 | 5 << 24).unwrap();
    d.redist_write(1, 1, SGI + 0x280, 4, 1 << 5 | 1 << 6).unwrap();
    let expect = Retraction { vcpu: 1, intid: 5, source: None, pending: true, active: false, hold: None };
    assert_eq!(d.take_retractions(), vec![expect]);
    // The same write in vCPU 0's redistributor finds nothing handed out there.
    d.redist_write(0, 0, SGI + 0x280, 4, 1 << 5).unwrap();
    assert_eq!(d.take_retractions(), vec![]);
}

/// A runtime's view for the live-state tests: which (vCPU, INTID) pairs a list register holds
/// pending or active, and which physical interrupts are pending.
#[derive(Default)]
struct Live {
    held: Vec<(usize, u32, bool, bool)>,
    phys: Vec<(usize, u32)>,
}

impl LiveState for Live {
    fn phys_pending(&self, vcpu: usize, intid: u32) -> bool {
        self.phys.contains(&(vcpu, intid))
    }
    fn held(&self, vcpu: usize, intid: u32) -> (bool, bool) {
        self.held.iter().find(|h| (h.0, h.1) == (vcpu, intid)).map_or((false, false), |h| (h.2, h.3))
    }
    fn sgi_sources(&self, _vcpu: usize, _intid: u32) -> u8 {
        0
    }
}

#[test]
fn pending_and_active_reads_show_the_live_state() {
    let mut d = dist();
    let read = |d: &mut VDist, index: usize, off: u64, live: &Live| d.redist_read_live(index, SGI + off, 4, live).unwrap();
    // The timer PPI, disabled by the guest, pending in vCPU 1's physical redistributor: vCPU 1's
    // ISPENDR0 shows it, vCPU 0's does not, and the model alone knows nothing.
    let live = Live { phys: vec![(1, 27)], ..Live::default() };
    assert_eq!(read(&mut d, 1, 0x200, &live), 1 << 27);
    assert_eq!(read(&mut d, 1, 0x280, &live), 1 << 27, "ICPENDR0 reads as ISPENDR0");
    assert_eq!(read(&mut d, 0, 0x200, &live), 0);
    assert_eq!(d.redist_read(1, SGI + 0x200, 4).unwrap(), 0);
    // An SGI held pending in vCPU 2's list registers, the timer active there.
    let live = Live { held: vec![(2, 5, true, false), (2, 27, false, true)], ..Live::default() };
    assert_eq!(read(&mut d, 2, 0x200, &live), 1 << 5);
    assert_eq!(read(&mut d, 2, 0x300, &live), 1 << 27);
    assert_eq!(read(&mut d, 2, 0x380, &live), 1 << 27, "ICACTIVER0 reads as ISACTIVER0");
    // SPIs: the physical state of a passthrough one counts; a list register counts only on the
    // vCPU the distributor handed the SPI to.
    let live = Live { phys: vec![(0, 40)], held: vec![(1, 41, true, true)] };
    assert_eq!(d.mmio_read_live(0, 0x204, 4, &live).unwrap(), 1 << 8);
    assert_eq!(d.mmio_read_live(0, 0x304, 4, &live).unwrap(), 0, "SPI 41 was never handed to vCPU 1");
    wr(&mut d, 0x0000, 0x2);
    wr(&mut d, 0x0084, 1 << 9);
    wr(&mut d, 0x6000 + 8 * 41, 1);
    wr(&mut d, 0x0104, 1 << 9);
    wr(&mut d, 0x0204, 1 << 9);
    assert_eq!(d.mmio_read(0, 0x204, 4).unwrap(), 0, "handed to vCPU 1: the model alone no longer holds it");
    assert_eq!(d.mmio_read_live(0, 0x204, 4, &live).unwrap(), 1 << 8 | 1 << 9);
    assert_eq!(d.mmio_read_live(0, 0x304, 4, &live).unwrap(), 1 << 9);
}

#[test]
fn redistributors_at_a_gicv4_stride() {
    // 256 KiB apart: RD_base and SGI_base of each, then two padding frames.
    assert_eq!(redist_frame(0x0_0008, 0x4_0000), (0, Some(0x8)));
    assert_eq!(redist_frame(0x1_0100, 0x4_0000), (0, Some(0x1_0100)));
    assert_eq!(redist_frame(0x2_0000, 0x4_0000), (0, None));
    assert_eq!(redist_frame(0x4_0008, 0x4_0000), (1, Some(0x8)));
    assert_eq!(redist_frame(0x5_0200, 0x4_0000), (1, Some(0x1_0200)));
    // The default stride has no padding; a smaller one is taken as the default.
    assert_eq!(redist_frame(0x2_0008, 0x2_0000), (1, Some(0x8)));
    assert_eq!(redist_frame(0x2_0008, 0x1_0000), (1, Some(0x8)));
    // Decoded so, GICR_TYPER of vCPU 1 sits at 0x4_0008.
    let mut d = dist();
    let (index, within) = redist_frame(0x4_0008, 0x4_0000);
    assert_eq!(d.redist_read(index, within.unwrap(), 8).unwrap() >> 8 & 0xffff, 1);
}

#[test]
fn lpis_only_with_a_virtual_its() {
    let mut d = dist();
    assert_eq!(rd(&mut d, 0x0004) >> 17 & 1, 0, "no LPIs by default");
    assert_eq!(d.redist_read(0, 0x8, 8).unwrap() & 1, 0);
    d.redist_write(0, 0, 0x70, 4, 0x4100_0000 | 13).unwrap();
    assert_eq!(d.redist_read(0, 0x70, 4).unwrap(), 0, "PROPBASER is RAZ/WI without LPIs");

    d.enable_lpis(16);
    assert_eq!(rd(&mut d, 0x0004) >> 17 & 1, 1, "GICD_TYPER.LPIS");
    assert_eq!(rd(&mut d, 0x0004) >> 19 & 0x1f, 15, "16 INTID bits");
    assert_eq!(d.lpi_end(), 65536);
    assert_eq!(d.redist_read(1, 0x8, 8).unwrap() & 1, 1, "GICR_TYPER.PLPIS");
    d.redist_write(0, 0, 0x70, 8, 0x4100_0000 | 0x400 | 13).unwrap();
    d.redist_write(0, 0, 0x78, 8, 1 << 62 | 0x4200_0000).unwrap();
    assert_eq!(d.redist_read(0, 0x70, 8).unwrap(), 0x4100_0000 | 0x400 | 13);
    assert_eq!(d.redist_read(0, 0x78, 8).unwrap(), 0x4200_0000, "PTZ reads as zero");
    assert_eq!(d.redist(0).unwrap().lpi_propbaser(), None, "not enabled yet");
    d.redist_write(0, 0, 0x0, 4, 1).unwrap();
    assert_eq!(d.redist_read(0, 0x0, 4).unwrap() & 1, 1);
    // Fixed while enabled.
    d.redist_write(0, 0, 0x70, 8, 0x5000_0000).unwrap();
    assert_eq!(d.redist(0).unwrap().lpi_propbaser(), Some(0x4100_0000 | 0x400 | 13));
    // 32-bit halves work on another redistributor.
    d.redist_write(1, 1, 0x74, 4, 0x1).unwrap();
    assert_eq!(d.redist_read(1, 0x70, 8).unwrap(), 0x1_0000_0000);
}

#[test]
fn sgi0r_and_asgi1r_reach_only_group_0_sgis_and_sgi1r_either_group() {
    let mut d = dist();
    for v in 0..3 {
        // SGI 3 enabled; Group 1 everywhere but on vCPU 1, where it is Group 0.
        d.redist_write(v, v, SGI + 0x80, 4, if v == 1 { 0xfff7 } else { 0xffff }).unwrap();
        d.redist_write(v, v, SGI + 0x100, 4, 0xffff).unwrap();
    }
    wr(&mut d, 0x0000, 0x3);
    let targets = |acts: &[VgicAction]| -> Vec<usize> {
        acts.iter().filter_map(|a| if let VgicAction::InjectSgi { vcpu, .. } = a { Some(*vcpu) } else { None }).collect()
    };
    let irm_sgi3 = 1u64 << 40 | 3 << 24;
    let mut sends = super::sgi::SgiSends::new();
    d.sgi0r_send_into(0, irm_sgi3, &mut sends).unwrap();
    assert_eq!(sends.deliveries().map(|(v, _)| v).collect::<Vec<_>>(), vec![1], "Group 0 only: vCPU 1");
    let acts = d.sgi1r_write(0, irm_sgi3).unwrap();
    assert_eq!(targets(&acts), vec![1, 2], "ICC_SGI1R_EL1 reaches an SGI of either group");
}
