use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::cmd::{encode, CmdError, Command};
use super::frame::*;
use super::lpi::*;
use super::model::*;
use super::pool::LpiPool;

/// Guest RAM at [0x4000_0000, +64 KiB).
struct Ram(RefCell<Vec<u8>>);
const RAM: u64 = 0x4000_0000;

impl Ram {
    fn new() -> Self {
        Self(RefCell::new(vec![0; 0x10000]))
    }
    fn put(&self, ipa: u64, c: Command) {
        let mut r = self.0.borrow_mut();
        for (i, w) in encode(c).iter().enumerate() {
            let at = (ipa - RAM) as usize + i * 8;
            r[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    fn put_raw(&self, ipa: u64, b: &[u8]) {
        let at = (ipa - RAM) as usize;
        self.0.borrow_mut()[at..at + b.len()].copy_from_slice(b);
    }
}

impl GuestMem for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        let off = ipa.checked_sub(RAM).ok_or(NotRam)?;
        let end = off.checked_add(buf.len() as u64).ok_or(NotRam)?;
        if end > 0x10000 {
            return Err(NotRam);
        }
        buf.copy_from_slice(&self.0.borrow()[off as usize..end as usize]);
        Ok(())
    }
}

fn model() -> ItsModel {
    ItsModel::new(ItsPolicy { devices: vec![(0, 0x100)], vcpus: 2, event_bits: 8, lpi_end: 16384, collections: 2, max_devices: 8 })
}

/// A frame enabled with a one-page queue at `RAM`.
fn frame() -> ItsFrame {
    let mut f = ItsFrame::new(8, 16, 256);
    f.write(0x80, 8, 1 << 63 | RAM).unwrap();
    f.write(0x0, 4, 1).unwrap();
    f
}

#[test]
fn id_and_type_registers() {
    let f = ItsFrame::new(8, 16, 256);
    assert_eq!(f.read(0xffe8, 4), Ok(0x3b), "PIDR2 says GICv3");
    let t = f.read(0x8, 8).unwrap();
    assert_eq!(t & 1, 1, "physical LPIs");
    assert_eq!((t >> 4) & 0xf, 7);
    assert_eq!((t >> 8) & 0x1f, 7);
    assert_eq!((t >> 13) & 0x1f, 15);
    assert_eq!(t >> 19 & 1, 0, "PTA = 0");
    assert_eq!((t >> 36 & 1, t >> 32 & 0xf), (1, 7), "CIL: 8-bit ICIDs for 256 collections");
    let t = ItsFrame::new(8, 16, 2).read(0x8, 8).unwrap();
    assert_eq!((t >> 36 & 1, t >> 32 & 0xf), (1, 0), "one ICID bit for 2 collections");
    // A VM reset gives the same TYPER back.
    let mut f = frame();
    f.reset();
    assert_eq!(f.read(0x8, 8).unwrap(), ItsFrame::new(8, 16, 256).typer());
    assert_eq!(f.read(0x0, 4), Ok(1 << 31), "disabled and quiescent");
    assert_eq!(f.read(0x100, 8).unwrap() >> 56 & 7, 1);
    assert_eq!(f.read(0x108, 8).unwrap() >> 56 & 7, 4);
    assert_eq!(f.read(0x110, 8), Ok(0));
    assert!(f.read(0x1, 1).is_err());
}

#[test]
fn baser_keeps_type_and_entry_size() {
    let mut f = ItsFrame::new(8, 16, 256);
    f.write(0x100, 8, u64::MAX).unwrap();
    let v = f.read(0x100, 8).unwrap();
    assert_eq!(v >> 56 & 7, 1);
    assert_eq!(v >> 48 & 0x1f, 7);
    assert_eq!(v & 0x0000_ffff_ffff_f000, 0x0000_ffff_ffff_f000);
    // Unimplemented BASERs stay zero.
    f.write(0x118, 8, u64::MAX).unwrap();
    assert_eq!(f.read(0x118, 8), Ok(0));
    // 32-bit halves.
    f.write(0x108, 4, 0x1000).unwrap();
    assert_eq!(f.read(0x108, 4), Ok(0x1000));
}

#[test]
fn queue_runs_commands_between_creadr_and_cwriter() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    ram.put(RAM, Command::Mapc { icid: 0, rdbase: 0, valid: true });
    ram.put(RAM + 32, Command::Mapd { dev: 8, size: 3, itt: 0, valid: true });
    ram.put(RAM + 64, Command::Mapti { dev: 8, event: 1, intid: 8300, icid: 0 });
    ram.put(RAM + 96, Command::Sync { rdbase: 0 });
    assert_eq!(f.write(0x88, 8, 128), Ok(true));
    let out = f.process(&mut m, &ram, &mut p);
    assert_eq!(out.len(), 4);
    assert!(matches!(&out[2], Outcome::Done(_, e) if e == &vec![Effect::MapEvent { dev: 8, event: 1, plpi: 8192, vcpu: 0, vlpi: 8300 }]));
    assert_eq!(f.read(0x90, 8), Ok(128));
    assert_eq!(f.errors, 0);
}

#[test]
fn garbage_commands_are_skipped_with_errors() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    // 32 commands of pseudo-random garbage.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut bytes = vec![0u8; 32 * 32];
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    ram.put_raw(RAM, &bytes);
    f.write(0x88, 8, 32 * 32).unwrap();
    let out = f.process(&mut m, &ram, &mut p);
    assert_eq!(out.len(), 32);
    assert_eq!(f.read(0x90, 8), Ok(32 * 32), "the queue moved on, not stalled");
    assert!(out.iter().all(|o| matches!(o, Outcome::Error { .. } | Outcome::Done(..))));
    assert!(f.errors > 0);
    // Nothing outside the policy got in.
    assert!(m.events().all(|(d, _, _)| d < 0x100));
}

#[test]
fn a_queue_outside_ram_stalls_until_retry() {
    let ram = Ram::new();
    let mut f = ItsFrame::new(8, 16, 256);
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    // CBASER at el2visor-ish memory far outside the VM's RAM, 2 pages.
    f.write(0x80, 8, 1 << 63 | 0x7fff_0000 | 1).unwrap();
    f.write(0x0, 4, 1).unwrap();
    f.write(0x88, 8, 64).unwrap();
    let out = f.process(&mut m, &ram, &mut p);
    assert_eq!(out, vec![Outcome::Stalled { offset: 0, ipa: 0x7fff_0000 }]);
    assert_eq!(f.read(0x90, 8), Ok(1), "CREADR.Stalled, offset 0");
    // Still stalled: nothing is read.
    assert!(f.process(&mut m, &ram, &mut p).is_empty());
    // Retry reads again (and stalls again).
    f.write(0x88, 8, 64 | 1).unwrap();
    assert_eq!(f.process(&mut m, &ram, &mut p).len(), 1);
}

#[test]
fn cwriter_past_the_queue_stalls() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    f.write(0x88, 8, 0x8000).unwrap();
    assert!(matches!(f.process(&mut m, &ram, &mut p)[..], [Outcome::Stalled { .. }]));
}

#[test]
fn queue_wraps() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    // Move CREADR to the last slot of the 4 KiB queue by running SYNCs.
    for i in 0..127u64 {
        ram.put(RAM + i * 32, Command::Sync { rdbase: 0 });
    }
    f.write(0x88, 8, 127 * 32).unwrap();
    f.process(&mut m, &ram, &mut p);
    ram.put(RAM + 127 * 32, Command::Mapc { icid: 1, rdbase: 1, valid: true });
    ram.put(RAM, Command::Int { dev: 3, event: 0 });
    f.write(0x88, 8, 32).unwrap();
    let out = f.process(&mut m, &ram, &mut p);
    assert_eq!(out.len(), 2);
    assert!(matches!(out[1], Outcome::Error { error: CmdError::UnmappedDevice { .. }, .. }));
    assert_eq!(m.collection(1), Some(1));
    assert_eq!(f.read(0x90, 8), Ok(32));
}

#[test]
fn cbaser_is_fixed_while_enabled_and_disabled_queue_does_nothing() {
    let ram = Ram::new();
    let mut f = frame();
    f.write(0x80, 8, 1 << 63 | 0x9000_0000).unwrap();
    assert_eq!(f.read(0x80, 8), Ok(1 << 63 | RAM));
    f.write(0x0, 4, 0).unwrap();
    ram.put(RAM, Command::Mapc { icid: 0, rdbase: 0, valid: true });
    f.write(0x88, 8, 32).unwrap();
    let mut m = model();
    assert!(f.process(&mut m, &ram, &mut LpiPool::new(8192, 1)).is_empty());
    // Enabling runs it.
    assert_eq!(f.write(0x0, 4, 1), Ok(true));
    assert_eq!(f.process(&mut m, &ram, &mut LpiPool::new(8192, 1)).len(), 1);
}

#[test]
fn lpi_configuration_and_pending() {
    let pb = PropBase::decode(0x4100_0000 | 13);
    assert_eq!(pb, PropBase { pa: 0x4100_0000, id_bits: 14 });
    assert_eq!(pb.end(1 << 16), 16384);
    assert_eq!(pb.config_addr(8192, 1 << 16), Some(0x4100_0000));
    assert_eq!(pb.config_addr(8200, 1 << 16), Some(0x4100_0008));
    assert_eq!(pb.config_addr(16384, 1 << 16), None);
    assert_eq!(pb.config_addr(1000, 1 << 16), None);
    assert_eq!(pendbase_pa(0x4000_1234_5678 | 1 << 62), 0x4000_1234_0000);
    let c = LpiConfig(0xa1);
    assert!(c.enabled());
    assert_eq!(c.priority(), 0xa0);

    let mut p = LpiPending::default();
    assert!(p.fire(8192, Some(LpiConfig(1))));
    assert!(!p.is_pending(8192));
    assert!(!p.fire(8193, Some(LpiConfig(0xa0))), "disabled: held");
    assert!(!p.fire(8194, None), "unreadable: held");
    assert!(!p.reload(8193, Some(LpiConfig(0xa0))));
    assert!(p.reload(8193, Some(LpiConfig(0xa1))), "enabled after INV: delivered");
    assert!(!p.reload(8193, Some(LpiConfig(0xa1))), "only once");
    p.clear(8194);
    assert!(p.all().is_empty());
}

#[test]
fn creadr_passes_a_command_only_when_it_is_committed() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    ram.put(RAM, Command::Mapc { icid: 0, rdbase: 0, valid: true });
    ram.put(RAM + 32, Command::Sync { rdbase: 0 });
    f.write(0x88, 8, 64).unwrap();
    assert!(f.has_work());
    let (o, c) = f.next(&mut m, &ram, &mut p).expect("a command");
    assert!(matches!(o, Outcome::Done(Command::Mapc { .. }, _)));
    assert_eq!(f.read(0x90, 8), Ok(0), "taken, not done: CREADR stays");
    f.commit(c);
    assert_eq!(f.read(0x90, 8), Ok(32));
    let (_, c) = f.next(&mut m, &ram, &mut p).expect("the SYNC");
    f.commit(c);
    f.commit(c);
    assert_eq!(f.read(0x90, 8), Ok(64), "a commit applies once");
    assert!(!f.has_work());
    assert!(f.next(&mut m, &ram, &mut p).is_none());
}

#[test]
fn a_commit_from_before_a_new_queue_is_dropped() {
    let ram = Ram::new();
    let mut f = frame();
    let mut m = model();
    let mut p = LpiPool::new(8192, 64);
    ram.put(RAM, Command::Sync { rdbase: 0 });
    f.write(0x88, 8, 32).unwrap();
    let (_, c) = f.next(&mut m, &ram, &mut p).expect("the SYNC");
    // Meanwhile the guest disables the ITS and sets up a new queue: CREADR is 0 again.
    f.write(0x0, 4, 0).unwrap();
    f.write(0x80, 8, 1 << 63 | RAM).unwrap();
    f.write(0x0, 4, 1).unwrap();
    f.commit(c);
    assert_eq!(f.read(0x90, 8), Ok(0), "the new queue's first command is not skipped");
}
