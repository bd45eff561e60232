//! The shared physical console when several VMs print on it: each VM's output is cut into whole
//! lines, each printed with a prefix naming the VM (`(<name>) `), and console input goes to one
//! VM at a time, switched by pressing Ctrl-A three times, as on Xen. Pure: the runtime feeds it
//! bytes and prints what it returns.

#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

/// The longest line kept whole; a longer one is printed in pieces of this size.
pub const LINE_MAX: usize = 240;
/// The switch key: Ctrl-A, pressed three times in a row.
pub const SWITCH_KEY: u8 = 0x01;

/// One VM's output, collected into lines.
#[derive(Clone, Debug, Default)]
pub struct LineBuffer {
    line: Vec<u8>,
}

impl LineBuffer {
    pub fn new() -> Self {
        LineBuffer { line: Vec::with_capacity(LINE_MAX) }
    }

    /// Add one byte the VM printed; a finished line (without its newline) comes back to be
    /// printed with the VM's prefix. Carriage returns are dropped (the console adds its own).
    pub fn put(&mut self, b: u8) -> Option<Vec<u8>> {
        match b {
            b'\n' => Some(core::mem::take(&mut self.line)),
            b'\r' => None,
            _ => {
                self.line.push(b);
                (self.line.len() >= LINE_MAX).then(|| core::mem::take(&mut self.line))
            }
        }
    }

    /// What is left without a newline (printed when the VM ends).
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        (!self.line.is_empty()).then(|| core::mem::take(&mut self.line))
    }

    /// The line collected so far.
    pub fn current(&self) -> &[u8] {
        &self.line
    }
}

/// One VM's console output: cut into whole lines, each printed with the VM's prefix, or, while
/// the person types to this VM (`live`: its prompt, the echo of what they type, a line editor's
/// backspaces), shown byte by byte as it comes, raw, its lines still starting with the prefix
/// (`logging::write_partial`). Live output goes only to the VM the person is typing to, so
/// lines of VMs nobody types to stay whole and cannot carry escape sequences.
#[derive(Clone, Debug, Default)]
pub struct Output {
    lines: LineBuffer,
    /// Bytes of the current line already shown live.
    shown: usize,
    /// A carriage return held back while live: dropped before a newline (the console writes
    /// its own), shown before any other byte (a line redrawn in place).
    cr: bool,
    live: bool,
}

/// What to print for one byte of output: `live` bytes as they come, a finished `line` (the part
/// not shown live) with the prefix; `whole` is the finished line as the VM printed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Put {
    pub live: Vec<u8>,
    pub line: Option<Vec<u8>>,
    pub whole: Option<Vec<u8>>,
}

impl Output {
    pub fn new() -> Self {
        Output { lines: LineBuffer::new(), ..Output::default() }
    }

    /// Add one byte the VM printed.
    pub fn put(&mut self, b: u8) -> Put {
        let mut out = Put::default();
        if self.live {
            if b == b'\r' {
                self.cr = true;
            } else {
                if core::mem::take(&mut self.cr) && b != b'\n' {
                    out.live.push(b'\r');
                }
                out.live.push(b);
                if b != b'\n' {
                    self.shown = self.lines.current().len() + 1;
                }
            }
        }
        if let Some(line) = self.lines.put(b) {
            let shown = core::mem::take(&mut self.shown).min(line.len());
            if shown < line.len() {
                out.line = Some(line[shown..].to_vec());
            }
            out.whole = Some(line);
        }
        out
    }

    /// Show output as it comes (`on`), or in whole lines again. Returns what to show live now:
    /// the unfinished line so far, which the person should see (a prompt waiting for them).
    pub fn set_live(&mut self, on: bool) -> Vec<u8> {
        self.live = on;
        self.cr = false;
        if !on {
            return Vec::new();
        }
        let line = self.lines.current();
        let rest = line[self.shown.min(line.len())..].to_vec();
        self.shown = line.len();
        rest
    }

    /// What is left of the unfinished line and not shown yet (printed when the VM ends or
    /// resets); the line is over.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        let shown = core::mem::take(&mut self.shown);
        self.cr = false;
        self.lines.flush().map(|l| l[shown.min(l.len())..].to_vec()).filter(|rest| !rest.is_empty())
    }
}

/// `(<name>) <line>`, with bytes that are not printable ASCII shown as `.`, so that a VM cannot
/// send escape sequences to the person's terminal through another VM's prefix.
pub fn prefixed(name: &str, line: &[u8]) -> String {
    let mut s = String::with_capacity(name.len() + 3 + line.len());
    s.push('(');
    s.push_str(name);
    s.push_str(") ");
    s.extend(line.iter().map(|&b| if b == b'\t' || (0x20..0x7f).contains(&b) { b as char } else { '.' }));
    s
}

/// How much of a VM's output its crash report shows.
pub const TAIL_SIZE: usize = 4096;

/// The last [`TAIL_SIZE`] bytes a VM printed (carriage returns dropped), for its crash report.
#[derive(Clone, Debug)]
pub struct Tail {
    buf: Vec<u8>,
    /// Where the next byte goes once `buf` is full.
    next: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self::new()
    }
}

impl Tail {
    pub fn new() -> Self {
        Tail { buf: Vec::new(), next: 0 }
    }

    pub fn push(&mut self, b: u8) {
        if b == b'\r' {
            return;
        }
        if self.buf.len() < TAIL_SIZE {
            self.buf.push(b);
        } else {
            self.buf[self.next] = b;
            self.next = (self.next + 1) % TAIL_SIZE;
        }
    }

    /// The bytes kept, oldest first.
    pub fn contents(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buf.len());
        v.extend_from_slice(&self.buf[self.next..]);
        v.extend_from_slice(&self.buf[..self.next]);
        v
    }
}

/// What Linux prints first when it panics (`panic()` in kernel/panic.c); a VM that prints it on
/// its virtual console has panicked even without a pvpanic driver.
pub const LINUX_PANIC: &[u8] = b"Kernel panic - not syncing";

/// Whether a line of a VM's output says that the VM's kernel panicked.
pub fn is_panic_line(line: &[u8]) -> bool {
    line.windows(LINUX_PANIC.len()).any(|w| w == LINUX_PANIC)
}

/// Where a byte of console input goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// To the VM at this index of the switch's list, in order.
    To(usize, Vec<u8>),
    /// Input now goes to the VM at this index: say so on the console.
    Switched(usize),
    /// To el2visor's own stop (its command line, `console_cmd`).
    Hyp(Vec<u8>),
    /// Input now goes to el2visor itself: say so.
    SwitchedToHyp,
    /// Held back (a Ctrl-A that may be the start of a switch), or nobody takes input.
    Held,
}

/// The input focus among the VMs that take console input, and el2visor's own stop after the
/// last of them when it has one (as Xen's own console is a stop of its switch).
#[derive(Clone, Debug)]
pub struct InputSwitch {
    count: usize,
    /// el2visor is a stop too, at index `count`.
    hyp: bool,
    focus: usize,
    ctrl_a: u8,
}

impl InputSwitch {
    /// `count` VMs take input; the first has it.
    pub fn new(count: usize) -> Self {
        InputSwitch { count, hyp: false, focus: 0, ctrl_a: 0 }
    }

    /// `count` VMs and, after them, el2visor's command line; the first VM has the input (or
    /// el2visor when no VM takes input).
    pub fn with_hyp_stop(count: usize) -> Self {
        InputSwitch { count, hyp: true, focus: 0, ctrl_a: 0 }
    }

    fn stops(&self) -> usize {
        self.count + usize::from(self.hyp)
    }

    /// The VM that has the input now, if a VM has it.
    pub fn focus(&self) -> Option<usize> {
        (self.focus < self.count).then_some(self.focus)
    }

    /// One byte typed on the console. Three Ctrl-A in a row move the input to the next stop;
    /// fewer are passed on, before the byte that follows them, as Xen does.
    pub fn input(&mut self, b: u8) -> Input {
        self.input_among(b, |_| true)
    }

    /// [`Self::input`], where a switch passes over the VMs `running` says have ended (el2visor's
    /// stop never is; with nothing else to go to, the input stays where it is).
    pub fn input_among(&mut self, b: u8, running: impl Fn(usize) -> bool) -> Input {
        if self.stops() == 0 {
            return Input::Held;
        }
        if b == SWITCH_KEY {
            self.ctrl_a += 1;
            if self.ctrl_a == 3 {
                self.ctrl_a = 0;
                let stops = self.stops();
                let next = (1..=stops).map(|k| (self.focus + k) % stops).find(|&f| f >= self.count || running(f));
                self.focus = next.unwrap_or(self.focus);
                return match self.focus() {
                    Some(i) => Input::Switched(i),
                    None => Input::SwitchedToHyp,
                };
            }
            return Input::Held;
        }
        let mut bytes = alloc::vec![SWITCH_KEY; self.ctrl_a as usize];
        self.ctrl_a = 0;
        bytes.push(b);
        match self.focus() {
            Some(i) => Input::To(i, bytes),
            None => Input::Hyp(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(o: &mut Output, bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut live, mut lines, mut wholes) = (Vec::new(), Vec::new(), Vec::new());
        for &b in bytes {
            let p = o.put(b);
            live.extend(p.live);
            lines.extend(p.line);
            wholes.extend(p.whole);
        }
        (live, lines, wholes)
    }

    /// Nobody types to the VM: whole lines only, carriage returns dropped.
    #[test]
    fn a_switch_passes_over_ended_vms() {
        let ctrl_a3 = |s: &mut InputSwitch, running: &dyn Fn(usize) -> bool| {
            assert_eq!(s.input_among(SWITCH_KEY, running), Input::Held);
            assert_eq!(s.input_among(SWITCH_KEY, running), Input::Held);
            s.input_among(SWITCH_KEY, running)
        };
        // VMs 0, 1, 2 and el2visor; VM 1 has ended.
        let mut s = InputSwitch::with_hyp_stop(3);
        let running = |i: usize| i != 1;
        assert_eq!(ctrl_a3(&mut s, &running), Input::Switched(2));
        assert_eq!(ctrl_a3(&mut s, &running), Input::SwitchedToHyp);
        assert_eq!(ctrl_a3(&mut s, &running), Input::Switched(0));
        // Every VM ended: el2visor's stop, and it stays there.
        let none = |_: usize| false;
        assert_eq!(ctrl_a3(&mut s, &none), Input::SwitchedToHyp);
        assert_eq!(ctrl_a3(&mut s, &none), Input::SwitchedToHyp);
        // Without el2visor's stop and with the others ended, the input stays where it is.
        let mut s = InputSwitch::new(2);
        assert_eq!(ctrl_a3(&mut s, &|i| i == 0), Input::Switched(0));
        assert_eq!(s.input_among(b'x', |_| true), Input::To(0, vec![b'x']));
    }

    #[test]
    fn output_in_whole_lines_until_the_person_types() {
        let mut o = Output::new();
        let (live, lines, wholes) = feed(&mut o, b"boot\r\nlogin: ");
        assert!(live.is_empty());
        assert_eq!((lines, wholes), (vec![b"boot".to_vec()], vec![b"boot".to_vec()]));
        // The person types: the prompt waiting for them shows at once, then the echo as it comes,
        // raw (a backspace, an escape), a CR before LF dropped, a lone CR kept before the next byte.
        assert_eq!(o.set_live(true), b"login: ".to_vec());
        let (live, lines, wholes) = feed(&mut o, b"rx\x08 \x08oot\r\n\x1b[1mok\rOK\r\n");
        assert_eq!(live, b"rx\x08 \x08oot\n\x1b[1mok\rOK\n".to_vec());
        assert!(lines.is_empty(), "everything was shown live: {lines:?}");
        assert_eq!(wholes, vec![b"login: rx\x08 \x08oot".to_vec(), b"\x1b[1mokOK".to_vec()], "whole lines, for the panic check");
        // Half a line live, then the person types elsewhere: the rest comes as a line of its own.
        let (live, _, _) = feed(&mut o, b"abc");
        assert_eq!(live, b"abc".to_vec());
        assert!(o.set_live(false).is_empty());
        let (live, lines, wholes) = feed(&mut o, b"def\r\n");
        assert!(live.is_empty());
        assert_eq!((lines, wholes), (vec![b"def".to_vec()], vec![b"abcdef".to_vec()]));
        // Back to it with nothing unfinished: nothing to show; what is unshown at the end is flushed.
        assert!(o.set_live(true).is_empty());
        feed(&mut o, b"xy");
        assert_eq!(o.flush(), None, "shown live already");
        o.set_live(false);
        feed(&mut o, b"zz");
        assert_eq!(o.flush(), Some(b"zz".to_vec()));
        assert_eq!(o.flush(), None);
    }

    /// A long line shown live is not printed again when the buffer cuts it.
    #[test]
    fn a_long_live_line_is_shown_once() {
        let mut o = Output::new();
        o.set_live(true);
        let long = [b'a'; LINE_MAX + 10];
        let (live, lines, wholes) = feed(&mut o, &long);
        assert_eq!(live.len(), LINE_MAX + 10);
        assert!(lines.is_empty());
        assert_eq!(wholes.len(), 1);
        o.set_live(false);
        let (_, lines, _) = feed(&mut o, b"b\n");
        assert_eq!(lines, vec![b"b".to_vec()], "the live part of the cut line is not repeated");
    }

    #[test]
    fn output_is_cut_into_prefixed_lines() {
        let mut b = LineBuffer::new();
        let mut lines = Vec::new();
        for &c in b"hello\r\nworld\npartial" {
            if let Some(l) = b.put(c) {
                lines.push(prefixed("domU1", &l));
            }
        }
        assert_eq!(lines, ["(domU1) hello", "(domU1) world"]);
        assert_eq!(b.flush().as_deref(), Some(&b"partial"[..]));
        assert_eq!(b.flush(), None);
        assert_eq!(prefixed("a", b"\x1b[2Jx\ty"), "(a) .[2Jx\ty", "no escape sequences reach the terminal");
    }

    #[test]
    fn a_flood_without_newlines_comes_out_in_bounded_pieces() {
        let mut b = LineBuffer::new();
        let pieces: Vec<_> = (0..1000).filter_map(|_| b.put(b'x')).collect();
        assert_eq!(pieces.len(), 1000 / LINE_MAX);
        assert!(pieces.iter().all(|p| p.len() == LINE_MAX));
    }

    #[test]
    fn the_tail_keeps_the_last_4_kib() {
        let mut t = Tail::new();
        for &b in b"ab\r\ncd" {
            t.push(b);
        }
        assert_eq!(t.contents(), b"ab\ncd");
        let mut t = Tail::new();
        for i in 0..(TAIL_SIZE + 10) {
            t.push(b'a' + (i % 26) as u8);
        }
        let c = t.contents();
        assert_eq!(c.len(), TAIL_SIZE);
        assert_eq!(c[0], b'a' + 10, "the oldest kept byte");
        assert_eq!(*c.last().unwrap(), b'a' + ((TAIL_SIZE + 9) % 26) as u8);
    }

    #[test]
    fn linux_panic_lines() {
        assert!(is_panic_line(b"[    2.123] Kernel panic - not syncing: No working init found."));
        assert!(!is_panic_line(b"Kernel panic"));
        assert!(!is_panic_line(b""));
    }

    #[test]
    fn three_ctrl_a_switch_input_and_fewer_pass_through() {
        let mut s = InputSwitch::new(3);
        assert_eq!(s.focus(), Some(0));
        assert_eq!(s.input(b'x'), Input::To(0, alloc::vec![b'x']));
        assert_eq!(s.input(SWITCH_KEY), Input::Held);
        assert_eq!(s.input(SWITCH_KEY), Input::Held);
        assert_eq!(s.input(b'y'), Input::To(0, alloc::vec![SWITCH_KEY, SWITCH_KEY, b'y']));
        for _ in 0..2 {
            assert_eq!(s.input(SWITCH_KEY), Input::Held);
        }
        assert_eq!(s.input(SWITCH_KEY), Input::Switched(1));
        assert_eq!(s.input(b'z'), Input::To(1, alloc::vec![b'z']));
        for _ in 0..6 {
            let _ = s.input(SWITCH_KEY);
        }
        assert_eq!(s.focus(), Some(0), "it wraps around");
        assert_eq!(InputSwitch::new(0).input(b'a'), Input::Held);
    }

    #[test]
    fn el2visor_is_the_stop_after_the_last_vm() {
        let mut s = InputSwitch::with_hyp_stop(2);
        let switch = |s: &mut InputSwitch| {
            assert_eq!(s.input(SWITCH_KEY), Input::Held);
            assert_eq!(s.input(SWITCH_KEY), Input::Held);
            s.input(SWITCH_KEY)
        };
        assert_eq!(switch(&mut s), Input::Switched(1));
        assert_eq!(switch(&mut s), Input::SwitchedToHyp);
        assert_eq!(s.focus(), None);
        assert_eq!(s.input(b'h'), Input::Hyp(alloc::vec![b'h']));
        assert_eq!(s.input(SWITCH_KEY), Input::Held);
        assert_eq!(s.input(b'x'), Input::Hyp(alloc::vec![SWITCH_KEY, b'x']));
        assert_eq!(switch(&mut s), Input::Switched(0), "and round to the first VM");
        // One VM with a vpl011: it and el2visor.
        let mut s = InputSwitch::with_hyp_stop(1);
        assert_eq!(switch(&mut s), Input::SwitchedToHyp);
        assert_eq!(switch(&mut s), Input::Switched(0));
        // No VM takes input: el2visor has it.
        let mut s = InputSwitch::with_hyp_stop(0);
        assert_eq!(s.input(b'a'), Input::Hyp(alloc::vec![b'a']));
        assert_eq!(switch(&mut s), Input::SwitchedToHyp);
    }
}
