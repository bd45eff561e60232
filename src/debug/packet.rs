//! GDB packets as commands: what the stub is asked to do, parsed from a packet's bytes. Pure.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::rsp::{from_hex, parse_u64, unescape};

/// A thread id as the multiprocess extension writes it: `p<pid>.<tid>`, where either may be
/// `-1` (all) or `0` (any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    All,
    Any,
    N(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadId {
    pub pid: Id,
    pub tid: Id,
}

/// A `vCont` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Step,
    Stop,
}

/// A breakpoint or watchpoint kind (`Z`/`z` type 0..4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpKind {
    Software,
    Hardware,
    WriteWatch,
    ReadWatch,
    AccessWatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `?`
    StopReason,
    /// `g`
    ReadRegs,
    /// `G`
    WriteRegs(Vec<u8>),
    /// `p n`
    ReadReg(usize),
    /// `P n=v`
    WriteReg(usize, Vec<u8>),
    /// `m addr,len`
    ReadMem { addr: u64, len: usize },
    /// `M addr,len:hex` and `X addr,len:binary`
    WriteMem { addr: u64, data: Vec<u8> },
    /// `c [addr]`, `s [addr]`, `vCont;…` (each action with its thread, `None` for the default).
    Resume(Vec<(Action, Option<ThreadId>)>, Option<u64>),
    /// `Hg`/`Hc`
    SetThread { general: bool, thread: ThreadId },
    /// `T thread`
    ThreadAlive(ThreadId),
    /// `Z`/`z`
    Breakpoint { insert: bool, kind: BpKind, addr: u64, len: u64 },
    /// `D`, `D;pid`
    Detach,
    /// `k`, `vKill;pid`
    Kill(Option<u64>),
    QSupported,
    /// `qXfer:features:read:<annex>:<offset>,<length>`
    Features { annex: Vec<u8>, offset: usize, len: usize },
    QfThreadInfo,
    QsThreadInfo,
    CurrentThread,
    ThreadExtraInfo(ThreadId),
    Attached,
    VContQuery,
    /// Something the stub does not implement: the empty reply.
    Unsupported,
    /// A packet it implements but could not read: `E` reply.
    Malformed,
}

fn split2(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

fn id(s: &[u8]) -> Option<Id> {
    match s {
        b"-1" => Some(Id::All),
        b"0" => Some(Id::Any),
        _ => parse_u64(s).map(Id::N),
    }
}

/// `p1.2`, `p1`, `p1.-1`, or a bare tid (`2`, `-1`, `0`) without the process.
pub fn thread_id(s: &[u8]) -> Option<ThreadId> {
    match s.strip_prefix(b"p") {
        Some(rest) => match split2(rest, b'.') {
            Some((p, t)) => Some(ThreadId { pid: id(p)?, tid: id(t)? }),
            None => Some(ThreadId { pid: id(rest)?, tid: Id::All }),
        },
        None => Some(ThreadId { pid: Id::Any, tid: id(s)? }),
    }
}

fn addr_len(s: &[u8]) -> Option<(u64, u64)> {
    let (a, l) = split2(s, b',')?;
    Some((parse_u64(a)?, parse_u64(l)?))
}

fn vcont(s: &[u8]) -> Option<Vec<(Action, Option<ThreadId>)>> {
    let mut out = Vec::new();
    for part in s.split(|&b| b == b';').filter(|p| !p.is_empty()) {
        let (act, thread) = match split2(part, b':') {
            Some((a, t)) => (a, Some(thread_id(t)?)),
            None => (part, None),
        };
        let action = match act.first()? {
            b'c' | b'C' => Action::Continue,
            b's' | b'S' => Action::Step,
            b't' => Action::Stop,
            _ => return None,
        };
        out.push((action, thread));
    }
    (!out.is_empty()).then_some(out)
}

fn bp_kind(b: u8) -> Option<BpKind> {
    Some(match b {
        b'0' => BpKind::Software,
        b'1' => BpKind::Hardware,
        b'2' => BpKind::WriteWatch,
        b'3' => BpKind::ReadWatch,
        b'4' => BpKind::AccessWatch,
        _ => return None,
    })
}

/// The command in packet `p` (its data, escapes still in).
pub fn parse(p: &[u8]) -> Command {
    parse_opt(p).unwrap_or(Command::Malformed)
}

fn parse_opt(p: &[u8]) -> Option<Command> {
    let Some((&first, rest)) = p.split_first() else { return Some(Command::Unsupported) };
    Some(match first {
        b'?' => Command::StopReason,
        b'g' => Command::ReadRegs,
        b'G' => Command::WriteRegs(from_hex(rest)?),
        b'p' => Command::ReadReg(parse_u64(rest)? as usize),
        b'P' => {
            let (n, v) = split2(rest, b'=')?;
            Command::WriteReg(parse_u64(n)? as usize, from_hex(v)?)
        }
        b'm' => {
            let (addr, len) = addr_len(rest)?;
            Command::ReadMem { addr, len: len as usize }
        }
        b'M' | b'X' => {
            let (al, data) = split2(rest, b':')?;
            let (addr, len) = addr_len(al)?;
            let data = if first == b'M' { from_hex(data)? } else { unescape(data)? };
            if data.len() as u64 != len {
                return None;
            }
            Command::WriteMem { addr, data }
        }
        b'c' | b's' => {
            let action = if first == b'c' { Action::Continue } else { Action::Step };
            let addr = if rest.is_empty() { None } else { Some(parse_u64(rest)?) };
            Command::Resume(alloc::vec![(action, None)], addr)
        }
        b'H' => {
            let (&which, t) = rest.split_first()?;
            Command::SetThread { general: which == b'g', thread: thread_id(t)? }
        }
        b'T' => Command::ThreadAlive(thread_id(rest)?),
        b'Z' | b'z' => {
            let (&k, r) = rest.split_first()?;
            let r = r.strip_prefix(b",")?;
            // `Z0,addr,kind[;cond…]`: conditions are not offered, so not expected.
            let r = r.split(|&b| b == b';').next()?;
            let (addr, len) = addr_len(r)?;
            Command::Breakpoint { insert: first == b'Z', kind: bp_kind(k)?, addr, len }
        }
        b'D' => Command::Detach,
        b'k' => Command::Kill(None),
        b'v' => {
            if rest == b"Cont?" {
                Command::VContQuery
            } else if let Some(a) = rest.strip_prefix(b"Cont;") {
                Command::Resume(vcont(a)?, None)
            } else if let Some(pid) = rest.strip_prefix(b"Kill;") {
                Command::Kill(Some(parse_u64(pid)?))
            } else {
                Command::Unsupported
            }
        }
        b'q' => {
            if rest.starts_with(b"Supported") {
                Command::QSupported
            } else if let Some(x) = rest.strip_prefix(b"Xfer:features:read:") {
                let (annex, ol) = split2(x, b':')?;
                let (offset, len) = addr_len(ol)?;
                Command::Features { annex: annex.to_vec(), offset: offset as usize, len: len as usize }
            } else if rest == b"fThreadInfo" {
                Command::QfThreadInfo
            } else if rest == b"sThreadInfo" {
                Command::QsThreadInfo
            } else if rest == b"C" {
                Command::CurrentThread
            } else if let Some(t) = rest.strip_prefix(b"ThreadExtraInfo,") {
                Command::ThreadExtraInfo(thread_id(t)?)
            } else if rest.starts_with(b"Attached") {
                Command::Attached
            } else {
                Command::Unsupported
            }
        }
        _ => Command::Unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn t(pid: u64, tid: u64) -> ThreadId {
        ThreadId { pid: Id::N(pid), tid: Id::N(tid) }
    }

    #[test]
    fn registers_and_memory() {
        assert_eq!(parse(b"?"), Command::StopReason);
        assert_eq!(parse(b"g"), Command::ReadRegs);
        assert_eq!(parse(b"G0011"), Command::WriteRegs(vec![0, 0x11]));
        assert_eq!(parse(b"p20"), Command::ReadReg(32));
        assert_eq!(parse(b"P1f=0100000000000000"), Command::WriteReg(31, vec![1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(parse(b"mffffffc008000000,8"), Command::ReadMem { addr: 0xffff_ffc0_0800_0000, len: 8 });
        assert_eq!(parse(b"M1000,2:abcd"), Command::WriteMem { addr: 0x1000, data: vec![0xab, 0xcd] });
        assert_eq!(parse(b"X1000,2:}\x03a"), Command::WriteMem { addr: 0x1000, data: vec![0x23, b'a'] });
        assert_eq!(parse(b"M1000,3:abcd"), Command::Malformed);
        assert_eq!(parse(b"mzz,1"), Command::Malformed);
    }

    #[test]
    fn threads_and_resumption() {
        assert_eq!(parse(b"Hgp1.2"), Command::SetThread { general: true, thread: t(1, 2) });
        assert_eq!(parse(b"Hc-1"), Command::SetThread { general: false, thread: ThreadId { pid: Id::Any, tid: Id::All } });
        assert_eq!(parse(b"Hgp0.0"), Command::SetThread { general: true, thread: ThreadId { pid: Id::Any, tid: Id::Any } });
        assert_eq!(parse(b"Tp2.1"), Command::ThreadAlive(t(2, 1)));
        assert_eq!(parse(b"c"), Command::Resume(vec![(Action::Continue, None)], None));
        assert_eq!(parse(b"s4000"), Command::Resume(vec![(Action::Step, None)], Some(0x4000)));
        assert_eq!(
            parse(b"vCont;s:p1.1;c"),
            Command::Resume(vec![(Action::Step, Some(t(1, 1))), (Action::Continue, None)], None)
        );
        assert_eq!(parse(b"vCont;t:p1.-1"), Command::Resume(vec![(Action::Stop, Some(ThreadId { pid: Id::N(1), tid: Id::All }))], None));
        assert_eq!(parse(b"vCont;x"), Command::Malformed);
        assert_eq!(parse(b"vCont?"), Command::VContQuery);
        assert_eq!(parse(b"vKill;1"), Command::Kill(Some(1)));
        assert_eq!(parse(b"vMustReplyEmpty"), Command::Unsupported);
        assert_eq!(parse(b"qC"), Command::CurrentThread);
        assert_eq!(parse(b"qThreadExtraInfo,p1.2"), Command::ThreadExtraInfo(t(1, 2)));
    }

    #[test]
    fn breakpoints_and_queries() {
        assert_eq!(parse(b"Z0,ffff000010,4"), Command::Breakpoint { insert: true, kind: BpKind::Software, addr: 0x00ff_ff00_0010, len: 4 });
        assert_eq!(parse(b"z4,1000,8"), Command::Breakpoint { insert: false, kind: BpKind::AccessWatch, addr: 0x1000, len: 8 });
        assert_eq!(parse(b"Z1,1000,4;X1,0"), Command::Breakpoint { insert: true, kind: BpKind::Hardware, addr: 0x1000, len: 4 });
        assert_eq!(parse(b"Z5,1000,4"), Command::Malformed);
        assert_eq!(parse(b"qSupported:multiprocess+;xmlRegisters=aarch64"), Command::QSupported);
        assert_eq!(
            parse(b"qXfer:features:read:target.xml:0,ffb"),
            Command::Features { annex: b"target.xml".to_vec(), offset: 0, len: 0xffb }
        );
        assert_eq!(parse(b"qfThreadInfo"), Command::QfThreadInfo);
        assert_eq!(parse(b"qAttached:1"), Command::Attached);
        assert_eq!(parse(b"D;1"), Command::Detach);
        assert_eq!(parse(b""), Command::Unsupported);
    }
}
