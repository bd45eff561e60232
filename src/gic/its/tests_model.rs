use alloc::vec;
use alloc::vec::Vec;

use super::cmd::{op, CmdError, Command};
use super::model::*;
use super::pool::LpiPool;

fn policy() -> ItsPolicy {
    ItsPolicy { devices: vec![(0x0000, 0x0100)], vcpus: 2, event_bits: 8, lpi_end: 8192 + 1024, collections: 4, max_devices: 4 }
}

fn setup() -> (ItsModel, LpiPool) {
    let mut m = ItsModel::new(policy());
    let mut p = LpiPool::new(8192, 16);
    m.execute(Command::Mapc { icid: 0, rdbase: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapc { icid: 1, rdbase: 1, valid: true }, &mut p).unwrap();
    (m, p)
}

#[test]
fn linux_sequence_maps_events_to_physical_lpis() {
    let (mut m, mut p) = setup();
    let e = m.execute(Command::Mapd { dev: 0x08, size: 4, itt: 0x1000, valid: true }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::MapDevice { dev: 8, event_bits: 5 }]);
    let e = m.execute(Command::Mapti { dev: 8, event: 0, intid: 8200, icid: 1 }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::MapEvent { dev: 8, event: 0, plpi: 8192, vcpu: 1, vlpi: 8200 }]);
    assert_eq!(m.event(8, 0), Some(Ite { vlpi: 8200, icid: 1, plpi: 8192 }));
    assert_eq!(m.execute(Command::Inv { dev: 8, event: 0 }, &mut p).unwrap(), vec![Effect::Reload { vcpu: 1, vlpi: 8200 }]);
    assert_eq!(m.execute(Command::Int { dev: 8, event: 0 }, &mut p).unwrap(), vec![Effect::SetPending { vcpu: 1, vlpi: 8200 }]);
    let e = m.execute(Command::Movi { dev: 8, event: 0, icid: 0 }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::MoveEvent { dev: 8, event: 0, plpi: 8192, vcpu: 0 }]);
    assert_eq!(m.execute(Command::Invall { icid: 0 }, &mut p).unwrap(), vec![Effect::ReloadAll { vcpu: 0, vlpis: vec![8200] }]);
    let e = m.execute(Command::Discard { dev: 8, event: 0 }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::UnmapEvent { dev: 8, event: 0, plpi: 8192, vlpi: 8200 }]);
    assert_eq!(p.in_use(), 0);
    assert_eq!(m.execute(Command::Sync { rdbase: 1 }, &mut p).unwrap(), vec![]);
}

#[test]
fn mapi_uses_the_event_as_intid() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 7, itt: 0, valid: true }, &mut p).unwrap();
    // EventID 5 is not an LPI.
    assert_eq!(
        m.execute(Command::Mapi { dev: 1, event: 5, icid: 0 }, &mut p),
        Err(CmdError::IntidOutOfRange { opcode: op::MAPI, intid: 5 })
    );
}

#[test]
fn devices_the_vm_does_not_own_are_refused() {
    let (mut m, mut p) = setup();
    for c in [
        Command::Mapd { dev: 0x100, size: 0, itt: 0, valid: true },
        Command::Mapd { dev: u32::MAX, size: 0, itt: 0, valid: false },
    ] {
        assert!(matches!(m.execute(c, &mut p), Err(CmdError::DeviceOutOfRange { .. })));
    }
    assert!(matches!(
        m.execute(Command::Int { dev: 0x1000, event: 0 }, &mut p),
        Err(CmdError::DeviceOutOfRange { opcode: op::INT, .. })
    ));
    assert_eq!(m.device_count(), 0);
}

#[test]
fn collections_only_on_the_vms_vcpus() {
    let (mut m, mut p) = setup();
    assert_eq!(
        m.execute(Command::Mapc { icid: 2, rdbase: 2, valid: true }, &mut p),
        Err(CmdError::ProcessorOutOfRange { opcode: op::MAPC, rdbase: 2 })
    );
    assert_eq!(
        m.execute(Command::Mapc { icid: 4, rdbase: 0, valid: true }, &mut p),
        Err(CmdError::CollectionOutOfRange { opcode: op::MAPC, icid: 4 })
    );
    assert!(matches!(m.execute(Command::Sync { rdbase: 1 << 34 }, &mut p), Err(CmdError::ProcessorOutOfRange { .. })));
    m.execute(Command::Mapd { dev: 1, size: 1, itt: 0, valid: true }, &mut p).unwrap();
    assert_eq!(
        m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 3 }, &mut p),
        Err(CmdError::UnmappedCollection { opcode: op::MAPTI, icid: 3 })
    );
    assert_eq!(p.in_use(), 0);
}

#[test]
fn bad_events_and_intids_change_nothing() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 1, itt: 0, valid: true }, &mut p).unwrap();
    assert!(matches!(m.execute(Command::Mapti { dev: 1, event: 4, intid: 8192, icid: 0 }, &mut p), Err(CmdError::EventOutOfRange { .. })));
    assert!(matches!(m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192 + 1024, icid: 0 }, &mut p), Err(CmdError::IntidOutOfRange { .. })));
    assert!(matches!(m.execute(Command::Mapti { dev: 2, event: 0, intid: 8192, icid: 0 }, &mut p), Err(CmdError::UnmappedDevice { .. })));
    assert!(matches!(m.execute(Command::Int { dev: 1, event: 1 }, &mut p), Err(CmdError::UnmappedInterrupt { .. })));
    assert!(matches!(m.execute(Command::Mapd { dev: 3, size: 8, itt: 0, valid: true }, &mut p), Err(CmdError::IttSizeOutOfRange { .. })));
    assert_eq!(m.events().count(), 0);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn unmapping_a_device_frees_its_events() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    for ev in 0..3 {
        m.execute(Command::Mapti { dev: 1, event: ev, intid: 8192 + ev, icid: 0 }, &mut p).unwrap();
    }
    assert_eq!(p.in_use(), 3);
    let e = m.execute(Command::Mapd { dev: 1, size: 0, itt: 0, valid: false }, &mut p).unwrap();
    assert_eq!(e.len(), 4);
    assert_eq!(e.last(), Some(&Effect::UnmapDevice { dev: 1 }));
    assert_eq!(p.in_use(), 0);
    assert_eq!(m.device_count(), 0);
}

#[test]
fn remapping_an_event_frees_the_old_physical_lpi() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 0 }, &mut p).unwrap();
    let e = m.execute(Command::Mapti { dev: 1, event: 0, intid: 8193, icid: 1 }, &mut p).unwrap();
    assert_eq!(e[0], Effect::UnmapEvent { dev: 1, event: 0, plpi: 8192, vlpi: 8192 });
    assert!(matches!(e[1], Effect::MapEvent { vcpu: 1, vlpi: 8193, .. }));
    assert_eq!(p.in_use(), 1);
}

#[test]
fn moving_a_collection_moves_its_events() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 0 }, &mut p).unwrap();
    let e = m.execute(Command::Mapc { icid: 0, rdbase: 1, valid: true }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::MoveEvent { dev: 1, event: 0, plpi: 8192, vcpu: 1 }]);
}

#[test]
fn a_collection_unmapped_then_mapped_elsewhere_takes_its_events() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 0 }, &mut p).unwrap();
    assert_eq!(m.execute(Command::Mapc { icid: 0, rdbase: 0, valid: false }, &mut p).unwrap(), vec![]);
    let e = m.execute(Command::Mapc { icid: 0, rdbase: 1, valid: true }, &mut p).unwrap();
    assert_eq!(e, vec![Effect::MoveEvent { dev: 1, event: 0, plpi: 8192, vcpu: 1 }]);
    // Mapped again where it is: nothing moves.
    assert_eq!(m.execute(Command::Mapc { icid: 0, rdbase: 1, valid: true }, &mut p).unwrap(), vec![]);
}

#[test]
fn limits_hold_against_a_flood() {
    let (mut m, mut p) = setup();
    let mut errors = Vec::new();
    for dev in 0..8 {
        if let Err(e) = m.execute(Command::Mapd { dev, size: 7, itt: 0, valid: true }, &mut p) {
            errors.push(e);
        }
    }
    assert_eq!(m.device_count(), 4);
    assert_eq!(errors.len(), 4);
    let mut mapped = 0;
    for ev in 0..64 {
        if m.execute(Command::Mapti { dev: 0, event: ev, intid: 8192 + ev, icid: 0 }, &mut p).is_ok() {
            mapped += 1;
        }
    }
    assert_eq!(mapped, 16, "the pool has 16 physical LPIs");
}

#[test]
fn pool_hands_out_and_takes_back() {
    let mut p = LpiPool::new(9000, 70);
    let got: Vec<u32> = (0..70).map(|_| p.alloc().unwrap()).collect();
    assert_eq!(got[69], 9069);
    assert_eq!(p.alloc(), None);
    p.free(9065);
    p.free(1);
    p.free(100_000);
    assert_eq!(p.alloc(), Some(9065));
}

#[test]
fn reset_unmaps_everything() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 0 }, &mut p).unwrap();
    let e = m.reset(&mut p);
    assert_eq!(e, vec![Effect::UnmapEvent { dev: 1, event: 0, plpi: 8192, vlpi: 8192 }, Effect::UnmapDevice { dev: 1 }]);
    assert_eq!(p.in_use(), 0);
    assert_eq!(m.collection(0), None);
}

#[test]
fn restore_from_a_snapshot_undoes_later_mappings_and_maps_the_saved_ones_anew() {
    let (mut m, mut p) = setup();
    m.execute(Command::Mapd { dev: 8, size: 4, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 8, event: 0, intid: 8200, icid: 1 }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 8, event: 1, intid: 8201, icid: 0 }, &mut p).unwrap();
    let saved = m.clone();
    // After the snapshot: an event discarded, another device mapped, collection 1 moved.
    m.execute(Command::Discard { dev: 8, event: 0 }, &mut p).unwrap();
    m.execute(Command::Mapd { dev: 9, size: 0, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 9, event: 0, intid: 8300, icid: 1 }, &mut p).unwrap();
    m.execute(Command::Mapc { icid: 1, rdbase: 0, valid: true }, &mut p).unwrap();
    let (now_8_1, now_9_0) = (m.event(8, 1).unwrap().plpi, m.event(9, 0).unwrap().plpi);

    // The saved event with vLPI 8200 was on vCPU 1 (its collection's), the other on vCPU 0.
    let vcpu_of = |i: &Ite| if i.vlpi == 8200 { 1 } else { 0 };
    let (e, dropped) = m.restore_from(&saved, &mut p, &vcpu_of);
    assert_eq!(dropped, 0);
    let (a, b) = (m.event(8, 0).unwrap(), m.event(8, 1).unwrap());
    assert_eq!((a.vlpi, a.icid, b.vlpi, b.icid), (8200, 1, 8201, 0));
    assert_eq!(
        e,
        vec![
            Effect::UnmapEvent { dev: 8, event: 1, plpi: now_8_1, vlpi: 8201 },
            Effect::UnmapDevice { dev: 8 },
            Effect::UnmapEvent { dev: 9, event: 0, plpi: now_9_0, vlpi: 8300 },
            Effect::UnmapDevice { dev: 9 },
            Effect::MapDevice { dev: 8, event_bits: 5 },
            Effect::MapEvent { dev: 8, event: 0, plpi: a.plpi, vcpu: 1, vlpi: 8200 },
            Effect::MapEvent { dev: 8, event: 1, plpi: b.plpi, vcpu: 0, vlpi: 8201 },
        ]
    );
    assert_eq!(m.event(9, 0), None);
    assert_eq!(m.device_count(), 1);
    assert_eq!((m.collection(0), m.collection(1)), (Some(0), Some(1)));
    // Only the restored events hold physical LPIs, each its own.
    assert_eq!(p.in_use(), 2);
    assert_ne!(a.plpi, b.plpi);
    // Commands go on from the restored tables.
    assert_eq!(m.execute(Command::Int { dev: 8, event: 0 }, &mut p).unwrap(), vec![Effect::SetPending { vcpu: 1, vlpi: 8200 }]);
}

#[test]
fn restore_from_leaves_events_unmapped_when_the_pool_runs_dry() {
    let mut m = ItsModel::new(policy());
    let mut p = LpiPool::new(8192, 2);
    m.execute(Command::Mapc { icid: 0, rdbase: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapd { dev: 1, size: 3, itt: 0, valid: true }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 0, intid: 8192, icid: 0 }, &mut p).unwrap();
    m.execute(Command::Mapti { dev: 1, event: 1, intid: 8193, icid: 0 }, &mut p).unwrap();
    let saved = m.clone();
    // Someone else (another VM) now holds one of the two physical LPIs.
    m.execute(Command::Discard { dev: 1, event: 1 }, &mut p).unwrap();
    let taken = p.alloc().unwrap();
    let (_, dropped) = m.restore_from(&saved, &mut p, &|_| 0);
    assert_eq!(dropped, 1);
    assert_eq!(m.events().count(), 1);
    assert_eq!(p.in_use(), 2);
    assert!(m.events().all(|(_, _, i)| i.plpi != taken));
}
