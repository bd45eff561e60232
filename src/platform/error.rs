//! Device-tree errors as values a person can act on. No allocation: the early probe reports them
//! before the heap exists, so node paths are kept in a small fixed buffer.

#![forbid(unsafe_code)]

use core::fmt;

/// The largest device tree el2visor accepts (the arm64 boot protocol caps it at 2 MiB).
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// A short string kept inline (node paths in errors). A longer one keeps its end, the most
/// specific part of a path, and shows as `...` followed by that end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortStr {
    buf: [u8; 62],
    len: u8,
    cut: bool,
}

impl ShortStr {
    /// Copies `s`, or its last characters that fit.
    pub fn new(s: &str) -> Self {
        let mut out = Self {
            buf: [0; 62],
            len: 0,
            cut: false,
        };
        let mut start = 0;
        while s.len() - start > out.buf.len() {
            start += s[start..].chars().next().map_or(1, char::len_utf8);
            out.cut = true;
        }
        let tail = &s.as_bytes()[start..];
        out.buf[..tail.len()].copy_from_slice(tail);
        out.len = tail.len() as u8;
        out
    }

    /// The kept text.
    pub fn as_str(&self) -> &str {
        // Only a suffix starting on a character boundary is copied in, so this cannot fail.
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cut {
            f.write_str("...")?;
        }
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// What is wrong with a device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtErrorKind {
    /// Fewer bytes than the 40-byte header.
    TooShort { len: usize },
    /// The first word is not 0xd00dfeed.
    BadMagic { magic: u32 },
    /// A format version this parser does not read.
    Version { version: u32, last_comp: u32 },
    /// `totalsize` is smaller than the header or larger than [`MAX_DTB_SIZE`].
    BadSize { totalsize: u32 },
    /// The buffer is shorter than the header's `totalsize`.
    Truncated { totalsize: usize, available: usize },
    /// A block named by the header lies outside `totalsize` or is misaligned.
    Block {
        block: &'static str,
        offset: u32,
        size: u32,
        totalsize: u32,
    },
    /// The structure block is malformed at `offset` (bytes into the structure block).
    Structure { offset: usize, what: &'static str },
    /// Nodes nested deeper than the parser supports.
    TooDeep { max: usize },
    /// A node the platform cannot do without is missing.
    MissingNode { path: &'static str },
    /// A property has a value that cannot be read.
    BadProperty {
        node: ShortStr,
        prop: &'static str,
        what: &'static str,
    },
    /// An address could not be translated to a CPU physical address.
    Untranslatable {
        node: ShortStr,
        addr: u64,
        what: &'static str,
    },
}

/// A device-tree error with the address of the blob it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtError {
    /// Where the device tree was (the x0 pointer on target; a buffer address in tests).
    pub at: usize,
    pub kind: DtErrorKind,
}

impl DtError {
    pub(crate) fn new(data: &[u8], kind: DtErrorKind) -> Self {
        Self {
            at: data.as_ptr() as usize,
            kind,
        }
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device tree at {:#x}: {}", self.at, self.kind)
    }
}

impl fmt::Display for DtErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtErrorKind::TooShort { len } => {
                write!(
                    f,
                    "only {len} bytes, a header needs 40: was a DTB passed in x0?"
                )
            }
            DtErrorKind::BadMagic { magic } => write!(
                f,
                "bad magic {magic:#010x} (expected 0xd00dfeed): x0 does not point at a DTB; \
                 give QEMU -kernel an Image (not an ELF) or check the loader's DTB address"
            ),
            DtErrorKind::Version { version, last_comp } => write!(
                f,
                "format version {version} (last compatible {last_comp}) is not supported, \
                 version 17 is needed: rebuild it with dtc"
            ),
            DtErrorKind::BadSize { totalsize } => write!(
                f,
                "header says {totalsize} bytes: a DTB must be 40 bytes to {MAX_DTB_SIZE} bytes"
            ),
            DtErrorKind::Truncated {
                totalsize,
                available,
            } => write!(
                f,
                "truncated: header says {totalsize} bytes, only {available} available"
            ),
            DtErrorKind::Block {
                block,
                offset,
                size,
                totalsize,
            } => write!(
                f,
                "{block} block at offset {offset:#x} size {size:#x} does not fit in the \
                 {totalsize} bytes of the blob (or is misaligned): the DTB is corrupt"
            ),
            DtErrorKind::Structure { offset, what } => {
                write!(f, "corrupt structure block at offset {offset:#x}: {what}")
            }
            DtErrorKind::TooDeep { max } => {
                write!(
                    f,
                    "nodes nested deeper than {max} levels: the DTB is corrupt"
                )
            }
            DtErrorKind::MissingNode { path } => {
                write!(f, "no {path} node: the firmware or loader must provide one")
            }
            DtErrorKind::BadProperty { node, prop, what } => {
                write!(f, "{node}: property {prop}: {what}")
            }
            DtErrorKind::Untranslatable { node, addr, what } => {
                write!(f, "{node}: address {addr:#x} cannot be translated: {what}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn short_str_keeps_the_end_on_a_char_boundary() {
        let long = alloc::format!("/{}/uart@1000", "é".repeat(100));
        let s = ShortStr::new(&long);
        assert!(s.to_string().starts_with("...é"));
        assert!(s.to_string().ends_with("é/uart@1000"));
        assert!(s.as_str().len() <= 62 && s.as_str().len() >= 60);
        assert_eq!(ShortStr::new("/soc").to_string(), "/soc");
        assert_eq!(ShortStr::new(&"a".repeat(62)).to_string(), "a".repeat(62));
    }

    #[test]
    fn messages_name_the_problem() {
        let e = DtError {
            at: 0x4800_0000,
            kind: DtErrorKind::BadMagic { magic: 0x1234 },
        };
        assert!(e
            .to_string()
            .starts_with("device tree at 0x48000000: bad magic 0x00001234"));
        let e = DtError {
            at: 0,
            kind: DtErrorKind::Truncated {
                totalsize: 4096,
                available: 100,
            },
        };
        assert!(e
            .to_string()
            .contains("truncated: header says 4096 bytes, only 100 available"));
        let e = DtError {
            at: 0,
            kind: DtErrorKind::MissingNode { path: "/memory" },
        };
        assert!(e.to_string().contains("no /memory node"));
    }
}
