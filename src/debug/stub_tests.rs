//! The session against a model machine: one or two VMs whose vCPUs stop at once when asked,
//! guest-physical memory as a flat map, and each thread's VA = IPA - its offset (none unless
//! a test gives it one: threads in two processes).

use super::*;
use alloc::collections::BTreeMap;
use alloc::vec;

#[derive(Default)]
struct Model {
    threads: Vec<Tid>,
    stopped: bool,
    stop_asked: bool,
    reporter: Option<(Tid, StopWhy)>,
    regs: BTreeMap<Tid, Regs>,
    mem: BTreeMap<u64, u8>,
    /// A thread's VA is IPA `va + offset`.
    offset: BTreeMap<Tid, u64>,
    logs: Vec<String>,
    points: Points,
    attached: bool,
    resumed: Vec<(Tid, bool)>,
    killed: Vec<usize>,
}

impl Target for Model {
    fn threads(&self) -> Vec<Tid> {
        self.threads.clone()
    }
    fn vm_name(&self, slot: usize) -> String {
        format!("vm{slot}")
    }
    fn stop_all(&mut self) {
        self.stop_asked = true;
    }
    fn all_stopped(&self) -> bool {
        self.stopped
    }
    fn reporter(&self) -> Option<(Tid, StopWhy)> {
        self.reporter
    }
    fn regs(&self, t: Tid) -> Option<Regs> {
        self.regs.get(&t).copied()
    }
    fn set_regs(&mut self, t: Tid, r: &Regs) -> bool {
        self.regs.insert(t, *r);
        true
    }
    fn read_mem(&self, t: Tid, va: u64, buf: &mut [u8]) -> usize {
        let ipa = va + self.offset.get(&t).copied().unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            match self.mem.get(&(ipa + i as u64)) {
                Some(&v) => *b = v,
                None => return i,
            }
        }
        buf.len()
    }
    fn write_mem(&mut self, t: Tid, va: u64, data: &[u8]) -> bool {
        let ipa = va + self.offset.get(&t).copied().unwrap_or(0);
        self.write_phys(t.0, ipa, data)
    }
    fn translate(&self, t: Tid, va: u64, len: usize) -> Option<u64> {
        let ipa = va + self.offset.get(&t).copied().unwrap_or(0);
        (0..len as u64).all(|i| self.mem.contains_key(&(ipa + i))).then_some(ipa)
    }
    fn read_phys(&self, _slot: usize, ipa: u64, buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            match self.mem.get(&(ipa + i as u64)) {
                Some(&v) => *b = v,
                None => return false,
            }
        }
        true
    }
    fn write_phys(&mut self, _slot: usize, ipa: u64, data: &[u8]) -> bool {
        if (0..data.len()).any(|i| !self.mem.contains_key(&(ipa + i as u64))) {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            self.mem.insert(ipa + i as u64, b);
        }
        true
    }
    fn log(&mut self, line: &str) {
        self.logs.push(line.into());
    }
    fn hw_slots(&self) -> (usize, usize) {
        (2, 1)
    }
    fn set_points(&mut self, p: &Points) {
        self.points = p.clone();
    }
    fn attach(&mut self, on: bool) {
        self.attached = on;
    }
    fn resume(&mut self, plan: &[(Tid, bool)]) {
        self.stopped = false;
        self.reporter = None;
        self.resumed = plan.to_vec();
    }
    fn kill(&mut self, slot: usize) {
        self.killed.push(slot);
        self.threads.retain(|t| t.0 != slot);
    }
}

fn model() -> Model {
    let mut m = Model { threads: vec![(0, 0), (0, 1)], ..Default::default() };
    let mut r = Regs { pc: 0x1000, ..Default::default() };
    r.x[1] = 0xabcd;
    m.regs.insert((0, 0), r);
    m.regs.insert((0, 1), Regs { pc: 0x2000, ..Default::default() });
    for a in 0x1000..0x1010u64 {
        m.mem.insert(a, a as u8);
    }
    m
}

/// Send `data` as a packet; the replies (acks dropped, packets unframed).
fn send(s: &mut Stub, m: &mut Model, data: &str) -> Vec<String> {
    for b in rsp::frame(data.as_bytes()) {
        s.input(b, m);
    }
    replies(s)
}

fn replies(s: &mut Stub) -> Vec<String> {
    let out = s.take_output();
    let mut f = Framer::new();
    out.iter()
        .filter_map(|&b| match f.push(b) {
            Some(Event::Packet(p)) => Some(String::from_utf8(rsp::unescape(&p).unwrap()).unwrap()),
            _ => None,
        })
        .collect()
}

/// Attach: the first packet stops the machine and waits for it.
fn attached() -> (Stub, Model) {
    let mut s = Stub::new();
    let mut m = model();
    assert_eq!(send(&mut s, &mut m, "qSupported:multiprocess+"), Vec::<String>::new());
    assert!(m.stop_asked && m.attached);
    m.stopped = true;
    s.poll(&mut m);
    let r = replies(&mut s);
    assert!(r[0].contains("multiprocess+") && r[0].contains("qXfer:features:read+"), "{r:?}");
    assert_eq!(send(&mut s, &mut m, "?"), vec!["T02thread:p1.1;"]);
    (s, m)
}

#[test]
fn attach_threads_and_registers() {
    let (mut s, mut m) = attached();
    assert_eq!(send(&mut s, &mut m, "qfThreadInfo"), vec!["mp1.1,p1.2"]);
    assert_eq!(send(&mut s, &mut m, "qsThreadInfo"), vec!["l"]);
    assert_eq!(send(&mut s, &mut m, "qC"), vec!["QCp1.1"]);
    assert_eq!(send(&mut s, &mut m, "Tp1.2"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Tp1.3"), vec!["E01"]);
    assert_eq!(send(&mut s, &mut m, "p20"), vec!["0010000000000000"]);
    assert_eq!(send(&mut s, &mut m, "p1"), vec!["cdab000000000000"]);
    assert_eq!(send(&mut s, &mut m, "Hgp1.2"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "p20"), vec!["0020000000000000"]);
    assert_eq!(send(&mut s, &mut m, "P20=0030000000000000"), vec!["OK"]);
    assert_eq!(m.regs[&(0, 1)].pc, 0x3000);
    let g = send(&mut s, &mut m, "g");
    assert_eq!(g[0].len(), 2 * (33 * 8 + 4 + 32 * 16 + 8));
    assert_eq!(send(&mut s, &mut m, "p44"), vec!["E01"]);
    assert_eq!(send(&mut s, &mut m, "qThreadExtraInfo,p1.2"), vec![String::from_utf8(hex(b"VM vm0 vCPU 1")).unwrap()]);
    let x = send(&mut s, &mut m, "qXfer:features:read:target.xml:0,40");
    assert!(x[0].starts_with("m<?xml"), "{x:?}");
    assert_eq!(send(&mut s, &mut m, "vMustReplyEmpty"), vec![""]);
}

#[test]
fn memory_and_software_breakpoints() {
    let (mut s, mut m) = attached();
    assert_eq!(send(&mut s, &mut m, "m1000,4"), vec!["00010203"]);
    // Partly mapped: what could be read; not at all: an error.
    assert_eq!(send(&mut s, &mut m, "m100e,4"), vec!["0e0f"]);
    assert_eq!(send(&mut s, &mut m, "m5000,4"), vec!["E14"]);
    assert_eq!(send(&mut s, &mut m, "M1001,1:ff"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "M5000,1:ff"), vec!["E14"]);
    assert_eq!(send(&mut s, &mut m, "Z0,1004,4"), vec!["OK"]);
    assert_eq!([m.mem[&0x1004], m.mem[&0x1007]], [0x00, 0xd4]);
    assert_eq!(m.points.sw, vec![SwPoint { slot: 0, va: 0x1004, ipa: 0x1004 }]);
    // GDB reads its own breakpoint back as the original instruction.
    assert_eq!(send(&mut s, &mut m, "m1004,4"), vec!["04050607"]);
    assert_eq!(send(&mut s, &mut m, "Z0,1006,4"), vec!["E14"]);
    assert_eq!(send(&mut s, &mut m, "z0,1004,4"), vec!["OK"]);
    assert_eq!(m.mem[&0x1007], 7);
    assert!(m.points.sw.is_empty());
}

/// Threads 1 and 2 of VM 0 in two processes: thread 2's VA 0x1000 is IPA 0x9000.
fn two_processes() -> (Stub, Model) {
    let (s, mut m) = attached();
    m.offset.insert((0, 1), 0x8000);
    for a in 0x9000..0x9010u64 {
        m.mem.insert(a, 0xb0 | (a as u8 & 0xf));
    }
    (s, m)
}

#[test]
fn a_software_breakpoint_comes_out_of_the_process_it_went_into() {
    let (mut s, mut m) = two_processes();
    // Inserted through thread 1 (A), removed with thread 2 (B) selected: A's bytes come back,
    // B's page at the same VA is not written.
    assert_eq!(send(&mut s, &mut m, "Z0,1004,4"), vec!["OK"]);
    assert_eq!([m.mem[&0x1004], m.mem[&0x1007]], [0x00, 0xd4]);
    assert_eq!(send(&mut s, &mut m, "Hgp1.2"), vec!["OK"]);
    // B reads its own bytes at that VA, not A's hidden ones.
    assert_eq!(send(&mut s, &mut m, "m1004,4"), vec!["b4b5b6b7"]);
    assert_eq!(send(&mut s, &mut m, "z0,1004,4"), vec!["OK"]);
    assert_eq!((0x1004..0x1008).map(|a| m.mem[&a]).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    assert_eq!((0x9004..0x9008).map(|a| m.mem[&a]).collect::<Vec<_>>(), vec![0xb4, 0xb5, 0xb6, 0xb7]);
    assert!(m.points.sw.is_empty());
    // The same at detach.
    assert_eq!(send(&mut s, &mut m, "Hgp1.1"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Z0,1008,4"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Hgp1.2"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "D;1"), vec!["OK"]);
    assert_eq!((0x1008..0x100c).map(|a| m.mem[&a]).collect::<Vec<_>>(), vec![8, 9, 10, 11]);
    assert_eq!((0x9008..0x900c).map(|a| m.mem[&a]).collect::<Vec<_>>(), vec![0xb8, 0xb9, 0xba, 0xbb]);
    assert!(m.logs.is_empty(), "{:?}", m.logs);
}

#[test]
fn a_breakpoint_that_cannot_be_removed_at_detach_is_logged() {
    let (mut s, mut m) = attached();
    assert_eq!(send(&mut s, &mut m, "Z0,100c,4"), vec!["OK"]);
    for a in 0x100c..0x1010 {
        m.mem.remove(&a);
    }
    assert_eq!(send(&mut s, &mut m, "D;1"), vec!["OK"]);
    assert_eq!(m.logs.len(), 1, "{:?}", m.logs);
    assert!(m.logs[0].contains("VM vm0") && m.logs[0].contains("0x100c") && m.logs[0].contains("could not be removed"), "{:?}", m.logs);
}

#[test]
fn hardware_points_and_limits() {
    let (mut s, mut m) = attached();
    assert_eq!(send(&mut s, &mut m, "Z1,1000,4"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Z1,2000,4"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Z1,3000,4"), vec!["E28"]);
    assert_eq!(send(&mut s, &mut m, "Z2,4004,4"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Z3,5000,8"), vec!["E28"]);
    assert_eq!(m.points.hw.len(), 3);
    assert_eq!(send(&mut s, &mut m, "z2,4004,4"), vec!["OK"]);
    assert_eq!(send(&mut s, &mut m, "Z4,5006,4"), vec!["E28"], "crosses a doubleword");
    assert_eq!(send(&mut s, &mut m, "Z4,5004,4"), vec!["OK"]);
}

#[test]
fn resume_step_stop_and_interrupt() {
    let (mut s, mut m) = attached();
    // vCont: step one thread, continue the others: no reply until the stop.
    assert_eq!(send(&mut s, &mut m, "vCont;s:p1.2;c"), Vec::<String>::new());
    assert_eq!(m.resumed, vec![((0, 0), false), ((0, 1), true)]);
    m.stopped = true;
    m.reporter = Some(((0, 1), StopWhy::Step));
    s.poll(&mut m);
    assert_eq!(replies(&mut s), vec!["T05thread:p1.2;"]);
    assert_eq!(send(&mut s, &mut m, "qC"), vec!["QCp1.2"]);
    // Plain `s` steps only the current thread.
    send(&mut s, &mut m, "s");
    assert_eq!(m.resumed, vec![((0, 1), true)]);
    m.stopped = true;
    m.reporter = Some(((0, 1), StopWhy::Watch { addr: 0x4008, kind: BpKind::WriteWatch }));
    s.poll(&mut m);
    assert_eq!(replies(&mut s), vec!["T05thread:p1.2;watch:4008;"]);
    // A crash stop (on_crash=debug) is a SIGSEGV.
    send(&mut s, &mut m, "c");
    m.stopped = true;
    m.reporter = Some(((0, 0), StopWhy::Crash));
    s.poll(&mut m);
    assert_eq!(replies(&mut s), vec!["T0bthread:p1.1;"]);
    // `c`, then Ctrl-C.
    send(&mut s, &mut m, "c");
    assert_eq!(m.resumed.len(), 2);
    m.stop_asked = false;
    s.input(rsp::INTERRUPT, &mut m);
    assert!(m.stop_asked);
    assert_eq!(replies(&mut s), Vec::<String>::new());
    m.stopped = true;
    s.poll(&mut m);
    assert_eq!(replies(&mut s), vec!["T02thread:p1.1;"]);
    // A bad checksum is refused, a NACK repeats the last packet.
    for b in b"$g#00" {
        s.input(*b, &mut m);
    }
    assert_eq!(s.take_output(), b"-".to_vec());
    s.input(b'-', &mut m);
    assert_eq!(replies(&mut s), vec!["T02thread:p1.1;"]);
}

#[test]
fn detach_and_kill() {
    let (mut s, mut m) = attached();
    send(&mut s, &mut m, "Z0,1008,4");
    send(&mut s, &mut m, "Z1,1000,4");
    assert_eq!(send(&mut s, &mut m, "D;1"), vec!["OK"]);
    assert_eq!(m.mem[&0x100b], 0x0b, "breakpoint removed");
    assert!(m.points.hw.is_empty() && !m.attached && !s.attached());
    assert_eq!(m.resumed.len(), 2);
    // A new session, then kill.
    let (mut s, mut m) = attached();
    assert_eq!(send(&mut s, &mut m, "vKill;1"), vec!["OK"]);
    assert_eq!(m.killed, vec![0]);
    assert!(!m.attached);
}

#[test]
fn a_run_of_nacks_resends_the_reply_once_per_copy_sent() {
    let (mut s, mut m) = attached();
    for a in 0..0x2000u64 {
        m.mem.insert(a, a as u8);
    }
    let ask = |s: &mut Stub, m: &mut Model| {
        for b in rsp::frame(b"m0,1ffe") {
            s.input(b, m);
        }
    };
    ask(&mut s, &mut m);
    let reply = s.take_output()[1..].to_vec();
    assert_eq!(reply.len(), 2 * 0x1ffe + 4, "the framed hex, after the +");
    // The request again and 64 `-` in one go (what `debug::uart` takes at a time): the reply,
    // whose copy is still queued, not 64 more.
    ask(&mut s, &mut m);
    for _ in 0..64 {
        s.input(b'-', &mut m);
    }
    let out = s.take_output();
    assert!(out.len() <= 2 * reply.len(), "{} bytes queued", out.len());
    assert_eq!(out.len(), 1 + reply.len());
    // Once it has gone out, 64 `-` bring one copy; GDB NACKs one reply three times at most.
    for _ in 0..3 {
        for _ in 0..64 {
            s.input(b'-', &mut m);
        }
        assert!(s.take_output() == reply);
    }
    s.input(b'-', &mut m);
    assert!(s.take_output().is_empty());
    // A new reply can be NACKed again.
    assert_eq!(send(&mut s, &mut m, "qC"), vec!["QCp1.1"]);
    s.input(b'-', &mut m);
    assert_eq!(replies(&mut s), vec!["QCp1.1"]);
    // Requests piled up while the VMs run are answered at the stop, within the output's cap.
    send(&mut s, &mut m, "c");
    for _ in 0..10 {
        ask(&mut s, &mut m);
    }
    m.stopped = true;
    s.poll(&mut m);
    assert!(s.take_output().len() <= OUT_CAP);
}
