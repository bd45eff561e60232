//! Small no-allocation helpers over `fdt` nodes: typed property reads, `status`, path and alias
//! lookup that keeps the chain of ancestors (for `ranges` translation), translated `reg`, and the
//! choice of console. Shared by the early probe and the full [`super::Platform`] parse.
//!
//! Only call these on a blob that passed [`super::header::validate`].

#![forbid(unsafe_code)]

use fdt::node::FdtNode;
use fdt::Fdt;

use super::error::{DtErrorKind, ShortStr};
use super::header::MAX_DEPTH;
use super::ranges::{self, Cells, Level};
use crate::mm::addr::PaRange;

pub type Node<'b, 'a> = FdtNode<'b, 'a>;

/// The raw value of property `name`.
pub fn prop<'a>(n: Node<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    n.properties().find(|p| p.name == name).map(|p| p.value)
}

pub fn bad_prop(path: &str, prop: &'static str, what: &'static str) -> DtErrorKind {
    DtErrorKind::BadProperty {
        node: ShortStr::new(path),
        prop,
        what,
    }
}

/// A one-cell property.
pub fn prop_u32(
    n: Node<'_, '_>,
    path: &str,
    name: &'static str,
) -> Result<Option<u32>, DtErrorKind> {
    match prop(n, name) {
        None => Ok(None),
        Some(v) if v.len() == 4 => Ok(Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
        Some(_) => Err(bad_prop(path, name, "expected one 32-bit cell")),
    }
}

/// A property of one or two cells (like `linux,initrd-start` or `cpu-release-addr`).
pub fn prop_u64(
    n: Node<'_, '_>,
    path: &str,
    name: &'static str,
) -> Result<Option<u64>, DtErrorKind> {
    match prop(n, name) {
        None => Ok(None),
        Some(v) if v.len() == 4 || v.len() == 8 => Ok(ranges::read_cells(v, v.len() as u32 / 4)),
        Some(_) => Err(bad_prop(path, name, "expected one or two 32-bit cells")),
    }
}

/// The strings of a string-list value (`compatible`, `reg-names`), empty ones and non-UTF-8 skipped.
pub fn strings(value: &[u8]) -> impl Iterator<Item = &str> {
    value
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

/// The first string of property `name`.
pub fn prop_str<'a>(n: Node<'_, 'a>, name: &str) -> Option<&'a str> {
    prop(n, name).and_then(|v| strings(v).next())
}

pub fn is_compatible(n: Node<'_, '_>, compat: &str) -> bool {
    prop(n, "compatible").is_some_and(|v| strings(v).any(|c| c == compat))
}

/// The most `#address-cells` accepted: more than any bus uses (PCI's are 3) is a corrupt tree.
pub const MAX_ADDRESS_CELLS: u32 = 4;
/// The most `#size-cells` accepted: a size wider than 64 bits is a corrupt tree.
pub const MAX_SIZE_CELLS: u32 = 2;

/// The `#address-cells`/`#size-cells` a node gives its children (spec defaults when absent).
pub fn cells_of(n: Node<'_, '_>, path: &str) -> Result<Cells, DtErrorKind> {
    let addr = prop_u32(n, path, "#address-cells")?.unwrap_or(Cells::DEFAULT.addr);
    let size = prop_u32(n, path, "#size-cells")?.unwrap_or(Cells::DEFAULT.size);
    if addr > MAX_ADDRESS_CELLS {
        return Err(bad_prop(path, "#address-cells", "more than 4 cells"));
    }
    if size > MAX_SIZE_CELLS {
        return Err(bad_prop(path, "#size-cells", "more than 2 cells"));
    }
    Ok(Cells { addr, size })
}

/// The node as a step of a translation chain.
pub fn level_of<'a>(n: Node<'_, 'a>, path: &str) -> Result<Level<'a>, DtErrorKind> {
    Ok(Level {
        cells: cells_of(n, path)?,
        ranges: prop(n, "ranges"),
    })
}

/// A node's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `okay`, `ok`, or no `status` property.
    Okay,
    Disabled,
    /// Running but owned by something else (firmware, another OS).
    Reserved,
    /// `fail`, `fail-…`, or a value el2visor does not know.
    Fail,
}

impl Status {
    pub fn is_enabled(self) -> bool {
        self == Status::Okay
    }
}

pub fn status(n: Node<'_, '_>) -> Status {
    match prop_str(n, "status") {
        None | Some("okay") | Some("ok") => Status::Okay,
        Some("disabled") => Status::Disabled,
        Some("reserved") => Status::Reserved,
        Some(_) => Status::Fail,
    }
}

/// The child whose name is `name`, or whose name before `@` is `name` when `name` has no `@`.
pub fn child<'b, 'a>(n: Node<'b, 'a>, name: &str) -> Option<Node<'b, 'a>> {
    let exact = n.children().find(|c| c.name == name);
    if exact.is_some() || name.contains('@') {
        return exact;
    }
    n.children()
        .find(|c| c.name.split('@').next() == Some(name))
}

/// A node together with the translation levels of its ancestors (root first).
#[derive(Clone, Copy)]
pub struct Located<'b, 'a> {
    pub node: Node<'b, 'a>,
    chain: [Level<'a>; MAX_DEPTH],
    depth: usize,
}

impl<'b, 'a> Located<'b, 'a> {
    /// Ancestors from the root to the parent.
    pub fn chain(&self) -> &[Level<'a>] {
        &self.chain[..self.depth]
    }

    /// The node's translated `reg` entries.
    pub fn regs<'x>(
        &'x self,
        path: &'x str,
    ) -> impl Iterator<Item = Result<PaRange, DtErrorKind>> + 'x {
        translated_regs(self.node, self.chain(), path)
    }
}

/// Translated `reg` entries of `node`, whose ancestors are `chain` (root first).
pub fn translated_regs<'x, 'a: 'x>(
    node: Node<'_, 'a>,
    chain: &'x [Level<'a>],
    path: &'x str,
) -> impl Iterator<Item = Result<PaRange, DtErrorKind>> + 'x {
    let cells = chain.last().map_or(Cells::DEFAULT, |l| l.cells);
    let value = prop(node, "reg").unwrap_or(&[]);
    ranges::reg_entries(value, cells).map(move |e| {
        let (addr, size) =
            e.map_err(|()| bad_prop(path, "reg", "not a whole number of entries"))?;
        let pa = ranges::translate(chain, addr).map_err(|t| DtErrorKind::Untranslatable {
            node: ShortStr::new(path),
            addr,
            what: t.what(),
        })?;
        Ok(PaRange::new(pa, size))
    })
}

/// The path an alias names (value of `/aliases/<name>`).
pub fn alias<'a>(fdt: &Fdt<'a>, name: &str) -> Option<&'a str> {
    let aliases = fdt.find_node("/aliases")?;
    prop_str(aliases, name)
}

/// Finds the node at absolute `path`, or at the path alias `path` names.
pub fn locate<'b, 'a>(
    fdt: &'b Fdt<'a>,
    path: &str,
) -> Result<Option<Located<'b, 'a>>, DtErrorKind> {
    let path = if path.starts_with('/') {
        path
    } else {
        match alias(fdt, path) {
            Some(p) if p.starts_with('/') => p,
            _ => return Ok(None),
        }
    };
    let Some(root) = fdt.find_node("/") else {
        return Ok(None);
    };
    let mut at = Located {
        node: root,
        chain: [Level {
            cells: Cells::DEFAULT,
            ranges: None,
        }; MAX_DEPTH],
        depth: 0,
    };
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let Some(next) = child(at.node, comp) else {
            return Ok(None);
        };
        if at.depth + 1 >= MAX_DEPTH {
            return Err(DtErrorKind::TooDeep { max: MAX_DEPTH });
        }
        at.chain[at.depth] = level_of(at.node, path)?;
        at.depth += 1;
        at.node = next;
    }
    Ok(Some(at))
}

/// Aliases tried, in order, when `stdout-path` does not name a PL011.
pub const CONSOLE_ALIASES: [&str; 4] = ["serial0", "serial1", "serial2", "serial3"];

/// How the console was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleVia<'a> {
    /// `/chosen/stdout-path` names it.
    StdoutPath,
    /// `stdout-path` is missing or names something that is not an enabled PL011 (`stdout` is
    /// what it names, if anything), so the first enabled PL011 among the `serialN` aliases is used.
    Alias {
        alias: &'static str,
        stdout: Option<&'a str>,
    },
}

/// The console node, with the `stdout-path` options (like `115200n8`).
pub struct ConsoleNode<'b, 'a> {
    pub at: Located<'b, 'a>,
    pub path: &'a str,
    pub options: Option<&'a str>,
    pub via: ConsoleVia<'a>,
}

fn is_pl011(n: Node<'_, '_>) -> bool {
    is_compatible(n, "arm,pl011") && status(n).is_enabled()
}

/// Finds the PL011 el2visor prints on: the one `stdout-path` names, else the first `serialN`
/// alias that is an enabled PL011 (the Pi 4's stdout-path names the mini UART, `serial0` the PL011).
pub fn find_console<'b, 'a>(fdt: &'b Fdt<'a>) -> Result<Option<ConsoleNode<'b, 'a>>, DtErrorKind> {
    let chosen = fdt.find_node("/chosen");
    let stdout = chosen.and_then(|c| prop_str(c, "stdout-path"));
    let (target, options) = match stdout.map(|s| s.split_once(':').unwrap_or((s, ""))) {
        Some((t, o)) => (Some(t), if o.is_empty() { None } else { Some(o) }),
        None => (None, None),
    };
    let stdout_path = target.and_then(|t| {
        if t.starts_with('/') {
            Some(t)
        } else {
            alias(fdt, t)
        }
    });
    if let (Some(t), Some(path)) = (target, stdout_path) {
        if let Some(at) = locate(fdt, t)? {
            if is_pl011(at.node) {
                return Ok(Some(ConsoleNode {
                    at,
                    path,
                    options,
                    via: ConsoleVia::StdoutPath,
                }));
            }
        }
    }
    for name in CONSOLE_ALIASES {
        let Some(path) = alias(fdt, name) else {
            continue;
        };
        if let Some(at) = locate(fdt, path)? {
            if is_pl011(at.node) {
                let via = ConsoleVia::Alias {
                    alias: name,
                    stdout: stdout_path.or(target),
                };
                return Ok(Some(ConsoleNode {
                    at,
                    path,
                    options: None,
                    via,
                }));
            }
        }
    }
    Ok(None)
}
