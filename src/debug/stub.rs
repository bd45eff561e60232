//! The GDB session: packets in, replies out, and what they ask of the machine, through the
//! [`Target`] trait (the VMs, implemented in `debug::target`; a model in the host tests). Every
//! VM is a GDB process (pid = VM slot + 1) and every vCPU that is on a thread of it (tid = vCPU
//! index + 1). All-stop: a stop stops every vCPU of every VM, and GDB is told once all have
//! stopped. Packets that need the machine stopped (all but Ctrl-C, in practice only the first
//! ones of an attach) wait for the stop. Pure.

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::packet::{self, Action, BpKind, Command, Id, ThreadId};
use super::regs::{self, Regs};
use super::rsp::{self, Event, Framer};

/// A vCPU: (VM slot, vCPU index).
pub type Tid = (usize, usize);

/// Why a vCPU stopped by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopWhy {
    /// A stop el2visor asked for (attach, Ctrl-C, another vCPU's stop).
    Asked,
    Step,
    Breakpoint,
    /// A watchpoint, with the address the access hit and its kind.
    Watch { addr: u64, kind: BpKind },
    /// The guest crashed and el2visor stopped it for the debugger (`on_crash=debug`): SIGSEGV.
    Crash,
}

/// A hardware breakpoint or watchpoint, the same in every vCPU of its VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwPoint {
    pub slot: usize,
    pub kind: BpKind,
    pub addr: u64,
    pub len: u64,
}

/// A software breakpoint: a BRK written at guest VA `va` of VM `slot`, which was guest-physical
/// `ipa` through the stage 1 of the vCPU GDB inserted it with. It is taken out again at `ipa`,
/// whichever vCPU GDB has selected by then: another vCPU's stage 1 may be another process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwPoint {
    pub slot: usize,
    pub va: u64,
    pub ipa: u64,
}

/// The breakpoints the target must know of: hardware ones to program, software ones to
/// recognise (a BRK at another address is the guest's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Points {
    pub hw: Vec<HwPoint>,
    pub sw: Vec<SwPoint>,
}

/// What the stub needs of the machine.
pub trait Target {
    /// The vCPUs that are threads now (on), in order.
    fn threads(&self) -> Vec<Tid>;
    fn vm_name(&self, slot: usize) -> String;
    /// Ask every vCPU to stop (returns at once).
    fn stop_all(&mut self);
    fn all_stopped(&self) -> bool;
    /// The first vCPU that stopped by itself since the last resume, and why.
    fn reporter(&self) -> Option<(Tid, StopWhy)>;
    fn regs(&self, t: Tid) -> Option<Regs>;
    fn set_regs(&mut self, t: Tid, r: &Regs) -> bool;
    /// Read guest virtual memory through `t`'s translation: the bytes read from the start (fewer
    /// than asked where a page is not mapped).
    fn read_mem(&self, t: Tid, va: u64, buf: &mut [u8]) -> usize;
    /// Write guest virtual memory, made visible to instruction fetch: all or nothing.
    fn write_mem(&mut self, t: Tid, va: u64, data: &[u8]) -> bool;
    /// The guest-physical address of guest VA `va` through `t`'s translation, when the `len`
    /// bytes from it (in one page) are the VM's RAM.
    fn translate(&self, t: Tid, va: u64, len: usize) -> Option<u64>;
    /// Read the VM's RAM at guest-physical `ipa`: all of `buf` or nothing.
    fn read_phys(&self, slot: usize, ipa: u64, buf: &mut [u8]) -> bool;
    /// Write the VM's RAM at guest-physical `ipa`, made visible to instruction fetch: all or
    /// nothing.
    fn write_phys(&mut self, slot: usize, ipa: u64, data: &[u8]) -> bool;
    /// A line for el2visor's log (what the stub could not do and GDB is not told).
    fn log(&mut self, line: &str);
    /// (hardware breakpoints, watchpoints) the CPUs have.
    fn hw_slots(&self) -> (usize, usize);
    fn set_points(&mut self, p: &Points);
    /// The debugger takes (true) or gives back (false) the vCPUs' debug registers.
    fn attach(&mut self, on: bool);
    /// Let the stopped vCPUs go: each continues or steps; those not named stay stopped. Those
    /// named no longer count as stopped from the moment this returns.
    fn resume(&mut self, plan: &[(Tid, bool)]);
    /// End VM `slot`.
    fn kill(&mut self, slot: usize);
}

/// BRK #0, the software breakpoint instruction.
pub const BRK: [u8; 4] = 0xd420_0000u32.to_le_bytes();

/// How often one reply is sent again on `-`: GDB's own limit (`MAX_TRIES` in its remote.c),
/// after which it gives up on the reply.
const RESENDS: u8 = 3;

/// The most the output holds before it is taken: a few of the longest replies. What would go
/// past it is dropped (GDB has at most one packet outstanding, so only noise gets there).
const OUT_CAP: usize = 4 * rsp::MAX_PACKET;

/// The session.
pub struct Stub {
    framer: Framer,
    attached: bool,
    /// A stop reply is owed once every vCPU has stopped.
    owe_stop: bool,
    /// Whether el2visor believes the VMs run (resumed and not yet reported stopped).
    running: bool,
    /// Packets that wait for the stop.
    pending: VecDeque<Vec<u8>>,
    g_thread: Option<Tid>,
    c_thread: Option<Tid>,
    points: Points,
    /// Software breakpoints and the bytes their BRK replaced.
    saved: Vec<(SwPoint, [u8; 4])>,
    out: Vec<u8>,
    /// The last reply as sent, for a `-`; how often it was sent again, and whether a copy of it
    /// is still in `out` (GDB NACKs a reply only once it has all of it).
    last: Vec<u8>,
    resent: u8,
    last_queued: bool,
}

impl Default for Stub {
    fn default() -> Self {
        Self::new()
    }
}

fn pid(t: Tid) -> usize {
    t.0 + 1
}

fn matches(id: ThreadId, t: Tid) -> bool {
    let ok = |i: Id, n: usize| match i {
        Id::All | Id::Any => true,
        Id::N(v) => v == n as u64,
    };
    ok(id.pid, t.0 + 1) && ok(id.tid, t.1 + 1)
}

fn thread_str(t: Tid) -> String {
    format!("p{:x}.{:x}", pid(t), t.1 + 1)
}

impl Stub {
    pub const fn new() -> Self {
        Stub {
            framer: Framer::new(),
            attached: false,
            owe_stop: false,
            running: true,
            pending: VecDeque::new(),
            g_thread: None,
            c_thread: None,
            points: Points { hw: Vec::new(), sw: Vec::new() },
            saved: Vec::new(),
            out: Vec::new(),
            last: Vec::new(),
            resent: 0,
            last_queued: false,
        }
    }

    pub fn attached(&self) -> bool {
        self.attached
    }

    /// The bytes to send to GDB.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.last_queued = false;
        core::mem::take(&mut self.out)
    }

    /// Queue `bytes` unless that would take the output past [`OUT_CAP`].
    fn queue(&mut self, bytes: &[u8]) -> bool {
        let fits = self.out.len() + bytes.len() <= OUT_CAP;
        if fits {
            self.out.extend_from_slice(bytes);
        }
        fits
    }

    fn send(&mut self, data: &[u8]) {
        let f = rsp::frame(data);
        self.last_queued = self.queue(&f);
        self.last = f;
        self.resent = 0;
    }

    /// GDB NACKed the last reply: send it again, at most [`RESENDS`] times and not while a copy
    /// is still queued, so a run of `-` costs one copy, not one per byte.
    fn resend(&mut self) {
        if self.last.is_empty() || self.last_queued || self.resent >= RESENDS {
            return;
        }
        let last = core::mem::take(&mut self.last);
        self.last_queued = self.queue(&last);
        self.last = last;
        self.resent += 1;
    }

    /// One byte from GDB.
    pub fn input(&mut self, b: u8, t: &mut dyn Target) {
        match self.framer.push(b) {
            None | Some(Event::Ack) => {}
            Some(Event::Nack) => self.resend(),
            Some(Event::BadChecksum) => {
                self.queue(b"-");
            }
            Some(Event::Interrupt) => {
                if !self.attached {
                    self.attached = true;
                    t.attach(true);
                }
                if self.running {
                    t.stop_all();
                    self.owe_stop = true;
                    self.running = false;
                }
            }
            Some(Event::Packet(p)) => {
                self.queue(b"+");
                if !self.attached {
                    self.attached = true;
                    t.attach(true);
                }
                if self.running || !t.all_stopped() {
                    if self.running {
                        t.stop_all();
                        self.running = false;
                    }
                    self.pending.push_back(p);
                } else {
                    self.packet(&p, t);
                }
            }
        }
        self.poll(t);
    }

    /// See whether the stop GDB waits for has happened, and answer what waited for it.
    pub fn poll(&mut self, t: &mut dyn Target) {
        if !self.attached || !t.all_stopped() {
            return;
        }
        // Every vCPU has stopped (one by itself, the others because it did, or as asked). The
        // target stops counting a vCPU as stopped the moment it is told to resume.
        self.running = false;
        if self.owe_stop {
            self.owe_stop = false;
            let reply = self.stop_reply(t);
            self.send(reply.as_bytes());
        }
        while let Some(p) = self.pending.pop_front() {
            self.packet(&p, t);
            if self.running {
                break;
            }
        }
    }

    fn stop_reply(&mut self, t: &dyn Target) -> String {
        let threads = t.threads();
        let (tid, why) = match t.reporter() {
            Some((tid, why)) if threads.contains(&tid) => (tid, why),
            _ => match threads.first() {
                Some(&tid) => (tid, StopWhy::Asked),
                // Nothing runs: every VM has ended.
                None => return String::from("W00"),
            },
        };
        self.g_thread = Some(tid);
        self.c_thread = Some(tid);
        let sig = match why {
            StopWhy::Asked => 2,
            StopWhy::Crash => 11,
            _ => 5,
        };
        let mut s = format!("T{sig:02x}thread:{};", thread_str(tid));
        if let StopWhy::Watch { addr, kind } = why {
            let name = match kind {
                BpKind::ReadWatch => "rwatch",
                BpKind::AccessWatch => "awatch",
                _ => "watch",
            };
            s.push_str(&format!("{name}:{addr:x};"));
        }
        s
    }

    /// The thread `g`/`m`/… act on.
    fn current(&self, t: &dyn Target) -> Option<Tid> {
        let threads = t.threads();
        self.g_thread.filter(|g| threads.contains(g)).or_else(|| threads.first().copied())
    }

    fn packet(&mut self, p: &[u8], t: &mut dyn Target) {
        let cmd = packet::parse(p);
        let reply: Option<Vec<u8>> = match cmd {
            Command::StopReason => Some(self.stop_reply(t).into_bytes()),
            Command::ReadRegs => Some(match self.current(t).and_then(|c| t.regs(c)) {
                Some(r) => hex(&r.to_bytes()),
                None => b"E01".to_vec(),
            }),
            Command::WriteRegs(b) => Some(self.change_regs(t, |r| r.set_all(&b))),
            Command::ReadReg(n) => Some(match (self.current(t).and_then(|c| t.regs(c)), regs::size(n)) {
                (Some(r), Some(_)) => hex(&r.get(n).unwrap_or_default()),
                _ => b"E01".to_vec(),
            }),
            Command::WriteReg(n, b) => Some(self.change_regs(t, |r| r.set(n, &b))),
            Command::ReadMem { addr, len } => Some(self.read_mem(t, addr, len)),
            Command::WriteMem { addr, data } => Some(match self.current(t) {
                Some(c) if data.is_empty() || t.write_mem(c, addr, &data) => b"OK".to_vec(),
                _ => b"E14".to_vec(),
            }),
            Command::Resume(actions, addr) => {
                self.resume(t, &actions, addr);
                None
            }
            Command::SetThread { general, thread } => {
                let found = t.threads().into_iter().find(|&x| matches(thread, x));
                match found {
                    Some(x) => {
                        if general {
                            self.g_thread = Some(x);
                        } else {
                            self.c_thread = Some(x);
                        }
                        Some(b"OK".to_vec())
                    }
                    None => Some(b"E01".to_vec()),
                }
            }
            Command::ThreadAlive(id) => {
                let alive = matches!((id.pid, id.tid), (Id::N(_), Id::N(_))) && t.threads().iter().any(|&x| matches(id, x));
                Some(if alive { b"OK".to_vec() } else { b"E01".to_vec() })
            }
            Command::Breakpoint { insert, kind, addr, len } => Some(self.breakpoint(t, insert, kind, addr, len)),
            Command::Detach => {
                self.send(b"OK");
                self.detach(t);
                None
            }
            Command::Kill(which) => {
                let slot = match which {
                    Some(p) if p >= 1 => Some(p as usize - 1),
                    Some(_) => None,
                    None => self.current(t).map(|c| c.0),
                };
                if which.is_some() {
                    self.send(b"OK");
                }
                if let Some(s) = slot {
                    self.remove_all(t);
                    t.kill(s);
                }
                self.detach(t);
                None
            }
            Command::QSupported => Some(
                format!("PacketSize={:x};qXfer:features:read+;multiprocess+;vContSupported+", rsp::MAX_PACKET).into_bytes(),
            ),
            Command::Features { annex, offset, len } => Some(if annex == b"target.xml" {
                regs::xfer_chunk(&regs::target_xml(), offset, len)
            } else {
                b"E00".to_vec()
            }),
            Command::QfThreadInfo => {
                let list: Vec<String> = t.threads().into_iter().map(thread_str).collect();
                Some(if list.is_empty() { b"l".to_vec() } else { format!("m{}", list.join(",")).into_bytes() })
            }
            Command::QsThreadInfo => Some(b"l".to_vec()),
            Command::CurrentThread => Some(match self.current(t) {
                Some(c) => format!("QC{}", thread_str(c)).into_bytes(),
                None => Vec::new(),
            }),
            Command::ThreadExtraInfo(id) => Some(match t.threads().into_iter().find(|&x| matches(id, x)) {
                Some(x) => hex(format!("VM {} vCPU {}", t.vm_name(x.0), x.1).as_bytes()),
                None => b"E01".to_vec(),
            }),
            Command::Attached => Some(b"1".to_vec()),
            Command::VContQuery => Some(b"vCont;c;C;s;S;t".to_vec()),
            Command::Unsupported => Some(Vec::new()),
            Command::Malformed => Some(b"E01".to_vec()),
        };
        if let Some(r) = reply {
            self.send(&r);
        }
    }

    fn change_regs(&mut self, t: &mut dyn Target, f: impl FnOnce(&mut Regs) -> bool) -> Vec<u8> {
        let Some(c) = self.current(t) else { return b"E01".to_vec() };
        let Some(mut r) = t.regs(c) else { return b"E01".to_vec() };
        if f(&mut r) && t.set_regs(c, &r) {
            b"OK".to_vec()
        } else {
            b"E01".to_vec()
        }
    }

    fn read_mem(&mut self, t: &dyn Target, addr: u64, len: usize) -> Vec<u8> {
        let Some(c) = self.current(t) else { return b"E01".to_vec() };
        let len = len.min((rsp::MAX_PACKET - 4) / 2);
        let mut buf = alloc::vec![0u8; len];
        let n = t.read_mem(c, addr, &mut buf);
        if n == 0 && len > 0 {
            return b"E14".to_vec();
        }
        // GDB's own breakpoints are not shown in what it reads back: those at these addresses
        // of this thread's own stage 1 (another process's VA may be the same).
        for (p, orig) in &self.saved {
            let here = |i: u64| p.va.wrapping_add(i).wrapping_sub(addr) < n as u64;
            if p.slot != c.0 || !(0..4).any(here) || t.translate(c, p.va, 4) != Some(p.ipa) {
                continue;
            }
            for (i, &b) in orig.iter().enumerate() {
                let a = p.va.wrapping_add(i as u64);
                if a.wrapping_sub(addr) < n as u64 {
                    buf[(a - addr) as usize] = b;
                }
            }
        }
        hex(&buf[..n])
    }

    fn breakpoint(&mut self, t: &mut dyn Target, insert: bool, kind: BpKind, addr: u64, len: u64) -> Vec<u8> {
        let Some(c) = self.current(t) else { return b"E01".to_vec() };
        let slot = c.0;
        if kind == BpKind::Software {
            // GDB keeps one address space per process: a breakpoint is found by its VA, and
            // is written and taken out at the IPA it had when inserted.
            let at = self.saved.iter().position(|(p, _)| p.slot == slot && p.va == addr);
            if insert {
                if at.is_some() {
                    return b"OK".to_vec();
                }
                let mut orig = [0u8; 4];
                let Some(ipa) = (addr & 3 == 0).then(|| t.translate(c, addr, 4)).flatten() else {
                    return b"E14".to_vec();
                };
                if !t.read_phys(slot, ipa, &mut orig) || !t.write_phys(slot, ipa, &BRK) {
                    return b"E14".to_vec();
                }
                let p = SwPoint { slot, va: addr, ipa };
                self.saved.push((p, orig));
                self.points.sw.push(p);
            } else if let Some(i) = at {
                let (p, orig) = self.saved.remove(i);
                self.points.sw.retain(|&q| q != p);
                if !t.write_phys(slot, p.ipa, &orig) {
                    t.set_points(&self.points);
                    return b"E14".to_vec();
                }
            }
        } else {
            let p = HwPoint { slot, kind, addr, len };
            if insert {
                let (nb, nw) = t.hw_slots();
                let watch = kind != BpKind::Hardware;
                let used = self.points.hw.iter().filter(|q| q.slot == slot && (q.kind != BpKind::Hardware) == watch).count();
                if used >= if watch { nw } else { nb } || !hw_supported(&p) {
                    return b"E28".to_vec();
                }
                self.points.hw.push(p);
            } else {
                self.points.hw.retain(|q| *q != p);
            }
        }
        t.set_points(&self.points);
        b"OK".to_vec()
    }

    fn resume(&mut self, t: &mut dyn Target, actions: &[(Action, Option<ThreadId>)], addr: Option<u64>) {
        let threads = t.threads();
        // `s` (or `vCont;s` naming no thread): the current thread steps, the others stay.
        let legacy = actions.len() == 1 && actions[0].1.is_none();
        let mut plan = Vec::new();
        if legacy && actions[0].0 == Action::Step {
            if let Some(c) = self.c_thread.filter(|c| threads.contains(c)).or(self.current(t)) {
                plan.push((c, true));
            }
        } else {
            for &x in &threads {
                let act = actions.iter().find(|(_, id)| id.is_none_or(|id| matches(id, x))).map(|a| a.0);
                match act {
                    Some(Action::Continue) => plan.push((x, false)),
                    Some(Action::Step) => plan.push((x, true)),
                    _ => {}
                }
            }
        }
        if let (Some(a), Some(&(x, _))) = (addr, plan.first()) {
            if let Some(mut r) = t.regs(x) {
                r.pc = a;
                t.set_regs(x, &r);
            }
        }
        if plan.is_empty() {
            self.send(b"OK");
            return;
        }
        self.running = true;
        self.owe_stop = true;
        t.resume(&plan);
    }

    /// Every breakpoint out: a BRK that cannot be taken out is logged (the guest would take it
    /// as its own, a SIGTRAP). A VM with no thread left has ended, and its memory with it.
    fn remove_all(&mut self, t: &mut dyn Target) {
        let threads = t.threads();
        for (p, orig) in core::mem::take(&mut self.saved) {
            if threads.iter().any(|x| x.0 == p.slot) && !t.write_phys(p.slot, p.ipa, &orig) {
                let vm = t.vm_name(p.slot);
                t.log(&format!("el2visor: GDB: VM {vm}: the breakpoint at {:#x} (IPA {:#x}) could not be removed", p.va, p.ipa));
            }
        }
        self.points = Points::default();
        t.set_points(&self.points);
    }

    /// Breakpoints out, debug registers back to the guests, every vCPU running.
    fn detach(&mut self, t: &mut dyn Target) {
        self.remove_all(t);
        self.attached = false;
        self.owe_stop = false;
        self.pending.clear();
        t.attach(false);
        let plan: Vec<(Tid, bool)> = t.threads().into_iter().map(|x| (x, false)).collect();
        self.running = true;
        t.resume(&plan);
    }
}

/// Whether a hardware point can be programmed: an instruction address, or a watched range of 1
/// to 8 bytes inside one aligned doubleword (DBGWCR's byte-address-select).
pub fn hw_supported(p: &HwPoint) -> bool {
    match p.kind {
        BpKind::Hardware => p.addr & 3 == 0,
        BpKind::Software => false,
        _ => p.len >= 1 && p.len <= 8 && (p.addr & 7) + p.len <= 8,
    }
}

fn hex(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() * 2);
    rsp::push_hex(&mut v, b);
    v
}

#[cfg(test)]
#[path = "stub_tests.rs"]
mod tests;
