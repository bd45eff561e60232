//! el2visor's own stop in the console input switch (as Xen's is): the person types line
//! commands there, to snapshot and restore a VM without the guest's help. Pure: the line
//! editor (bytes in, echo and finished lines out) and the command parser; `vcpu::console` runs
//! the commands.

#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::cmdline::RestoreKind;

/// The longest command line kept; further bytes are dropped (and not echoed).
pub const LINE_MAX: usize = 120;

/// What `help` prints, a line each.
pub const HELP: [&str; 5] = [
    "commands (Ctrl-A three times gives the input back to the VMs):",
    "  help                              this list",
    "  vms                               every VM, its state and whether it has a snapshot",
    "  snapshot <vm>                     take a snapshot of the VM (needs snapshot_mem=)",
    "  restore <vm> [eager|lazy|dirty]   restore its snapshot (default: restore=, else dirty)",
];

/// A command typed at el2visor's stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Help,
    Vms,
    Snapshot(&'a str),
    /// The VM, and the kind when given.
    Restore(&'a str, Option<RestoreKind>),
}

/// Parse one line: `Ok(None)` for an empty line; `Err` is the one line to print.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let usage = |u: &str| Err(alloc::format!("usage: {u}"));
    match words.as_slice() {
        [] => Ok(None),
        ["help" | "?"] => Ok(Some(Command::Help)),
        ["vms"] => Ok(Some(Command::Vms)),
        ["snapshot", vm] => Ok(Some(Command::Snapshot(vm))),
        ["snapshot", ..] => usage("snapshot <vm>"),
        ["restore", vm] => Ok(Some(Command::Restore(vm, None))),
        ["restore", vm, kind] => match *kind {
            "eager" => Ok(Some(Command::Restore(vm, Some(RestoreKind::Eager)))),
            "lazy" => Ok(Some(Command::Restore(vm, Some(RestoreKind::Lazy)))),
            "dirty" => Ok(Some(Command::Restore(vm, Some(RestoreKind::DirtyOnly)))),
            _ => Err(alloc::format!("restore: unknown kind '{}' (eager, lazy or dirty)", printable(kind))),
        },
        ["restore", ..] => usage("restore <vm> [eager|lazy|dirty]"),
        [other, ..] => Err(alloc::format!("unknown command '{}' (type help)", printable(other))),
    }
}

/// `s` with what is not printable ASCII shown as `.` (it is echoed to the person's terminal).
fn printable(s: &str) -> String {
    s.chars().map(|c| if (' '..='~').contains(&c) { c } else { '.' }).collect()
}

/// What a typed byte did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Send these bytes back to the terminal (the echo of what was typed).
    Echo(&'static [u8]),
    /// Echo this one byte.
    EchoByte(u8),
    /// Enter: the line typed (a newline is to be echoed).
    Line(String),
    /// Nothing to show.
    None,
}

/// The line being typed at el2visor's stop: printable ASCII, backspace, Ctrl-U, Enter.
#[derive(Clone, Debug, Default)]
pub struct LineEditor {
    line: Vec<u8>,
    /// The last byte was a CR: a LF right after it ends nothing (CR LF is one Enter).
    after_cr: bool,
}

impl LineEditor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn input(&mut self, b: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
        match b {
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => {
                let line = core::mem::take(&mut self.line);
                Edit::Line(line.into_iter().map(char::from).collect())
            }
            0x08 | 0x7f => match self.line.pop() {
                Some(_) => Edit::Echo(b"\x08 \x08"),
                None => Edit::None,
            },
            // Ctrl-U: the line is dropped; a new line on the terminal.
            0x15 => {
                self.line.clear();
                Edit::Echo(b"\r\n")
            }
            0x20..=0x7e if self.line.len() < LINE_MAX => {
                self.line.push(b);
                Edit::EchoByte(b)
            }
            _ => Edit::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse("?"), Ok(Some(Command::Help)));
        assert_eq!(parse("vms"), Ok(Some(Command::Vms)));
        assert_eq!(parse("snapshot domU1"), Ok(Some(Command::Snapshot("domU1"))));
        assert_eq!(parse(" restore  domU2 "), Ok(Some(Command::Restore("domU2", None))));
        assert_eq!(parse("restore domU2 lazy"), Ok(Some(Command::Restore("domU2", Some(RestoreKind::Lazy)))));
        assert_eq!(parse("restore domU2 eager"), Ok(Some(Command::Restore("domU2", Some(RestoreKind::Eager)))));
        assert_eq!(parse("restore domU2 dirty"), Ok(Some(Command::Restore("domU2", Some(RestoreKind::DirtyOnly)))));
    }

    #[test]
    fn bad_commands_get_one_line() {
        assert_eq!(parse("reboot now"), Err("unknown command 'reboot' (type help)".into()));
        assert_eq!(parse("snapshot"), Err("usage: snapshot <vm>".into()));
        assert_eq!(parse("snapshot a b"), Err("usage: snapshot <vm>".into()));
        assert_eq!(parse("restore"), Err("usage: restore <vm> [eager|lazy|dirty]".into()));
        assert_eq!(parse("restore a fast"), Err("restore: unknown kind 'fast' (eager, lazy or dirty)".into()));
        assert_eq!(parse("restore a b c"), Err("usage: restore <vm> [eager|lazy|dirty]".into()));
        assert_eq!(parse("x\u{1b}[2J"), Err("unknown command 'x.[2J' (type help)".into()));
    }

    fn typed(e: &mut LineEditor, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
        let (mut echo, mut lines) = (Vec::new(), Vec::new());
        for &b in bytes {
            match e.input(b) {
                Edit::Echo(s) => echo.extend_from_slice(s),
                Edit::EchoByte(c) => echo.push(c),
                Edit::Line(l) => lines.push(l),
                Edit::None => {}
            }
        }
        (echo, lines)
    }

    #[test]
    fn the_editor_echoes_and_edits() {
        let mut e = LineEditor::new();
        let (echo, lines) = typed(&mut e, b"helo\x7fp\r\nvms\nsnap\x15x\r");
        assert_eq!(lines, ["help", "vms", "x"], "CR LF is one Enter");
        assert_eq!(echo, b"helo\x08 \x08pvmssnap\r\nx");
        // Backspace on an empty line, control bytes and a line too long: nothing shown.
        let (echo, lines) = typed(&mut e, b"\x7f\x1b\x03\r");
        assert_eq!((echo.len(), lines), (0, alloc::vec![String::new()]));
        let long = alloc::vec![b'a'; LINE_MAX + 10];
        let (echo, _) = typed(&mut e, &long);
        assert_eq!(echo.len(), LINE_MAX);
        assert_eq!(typed(&mut e, b"\r").1[0].len(), LINE_MAX);
    }
}
