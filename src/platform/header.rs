//! The flattened-device-tree header, the `/memreserve/` block, and a full structural check of the
//! structure block before anything else reads it.
//!
//! The `fdt` crate trusts its input: a bad offset or a truncated property makes it panic. So every
//! blob goes through [`validate`] first, which walks every token with bounds checks and accepts
//! exactly the shapes `fdt` 0.1.5 reads correctly (in particular no `FDT_NOP` after the root node
//! starts: `fdt` mis-skips them). After that, `fdt` never sees anything it could trip on.
//! No allocation here: the early probe uses it before the heap exists.

#![forbid(unsafe_code)]

use super::error::{DtError, DtErrorKind, MAX_DTB_SIZE};
use crate::mm::addr::PaRange;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Deepest node nesting accepted (the root is level 1). `fdt` itself stops at 63.
pub const MAX_DEPTH: usize = 32;

fn be32(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(data: &[u8], off: usize) -> Option<u64> {
    Some((u64::from(be32(data, off)?) << 32) | u64::from(be32(data, off + 4)?))
}

/// The header fields el2visor uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub totalsize: u32,
    pub off_dt_struct: u32,
    pub off_dt_strings: u32,
    pub off_mem_rsvmap: u32,
    pub version: u32,
    pub last_comp_version: u32,
    pub boot_cpuid_phys: u32,
    pub size_dt_strings: u32,
    pub size_dt_struct: u32,
}

fn read_header(data: &[u8]) -> Result<Header, DtError> {
    let err = |kind| DtError::new(data, kind);
    if data.len() < HEADER_LEN {
        return Err(err(DtErrorKind::TooShort { len: data.len() }));
    }
    let w = |i: usize| be32(data, i * 4).unwrap_or(0);
    if w(0) != MAGIC {
        return Err(err(DtErrorKind::BadMagic { magic: w(0) }));
    }
    let h = Header {
        totalsize: w(1),
        off_dt_struct: w(2),
        off_dt_strings: w(3),
        off_mem_rsvmap: w(4),
        version: w(5),
        last_comp_version: w(6),
        boot_cpuid_phys: w(7),
        size_dt_strings: w(8),
        size_dt_struct: w(9),
    };
    if h.version < 17 || h.last_comp_version > 17 {
        return Err(err(DtErrorKind::Version {
            version: h.version,
            last_comp: h.last_comp_version,
        }));
    }
    if (h.totalsize as usize) < HEADER_LEN || h.totalsize as usize > MAX_DTB_SIZE {
        return Err(err(DtErrorKind::BadSize {
            totalsize: h.totalsize,
        }));
    }
    Ok(h)
}

/// The size of the device tree whose header starts `header` (at least 40 bytes are read): magic,
/// version and `totalsize` are checked, and `totalsize` is at most 2 MiB. Used on target to know
/// how long a slice to make from the x0 pointer.
pub fn dtb_size(header: &[u8]) -> Result<usize, DtError> {
    read_header(header).map(|h| h.totalsize as usize)
}

/// How many bytes from its start hold the device tree whose header starts `header`: up to the end
/// of its structure or strings block, whichever is last, when the reserve map comes before both
/// (as every writer lays it out); else `totalsize`. QEMU pads its blob to 1 MiB of free space,
/// which a copy of the tree need not move.
pub fn dtb_used_len(header: &[u8]) -> Result<usize, DtError> {
    let h = read_header(header)?;
    let blocks = [(h.off_dt_struct, h.size_dt_struct), (h.off_dt_strings, h.size_dt_strings)];
    let end = blocks.iter().map(|&(off, size)| u64::from(off) + u64::from(size)).max().unwrap_or(0);
    let first = h.off_dt_struct.min(h.off_dt_strings);
    Ok(match h.off_mem_rsvmap < first {
        true => end.min(u64::from(h.totalsize)) as usize,
        false => h.totalsize as usize,
    })
}

/// Checks the whole blob and returns its header and the blob cut to `totalsize`.
pub fn validate(data: &[u8]) -> Result<(Header, &[u8]), DtError> {
    let h = read_header(data)?;
    let total = h.totalsize as usize;
    if data.len() < total {
        return Err(DtError::new(
            data,
            DtErrorKind::Truncated {
                totalsize: total,
                available: data.len(),
            },
        ));
    }
    let blob = &data[..total];
    let block = |name, off: u32, size: u32, align: u32| {
        let end = off as u64 + size as u64;
        if end > total as u64 || off < HEADER_LEN as u32 || !off.is_multiple_of(align) {
            Err(DtError::new(
                data,
                DtErrorKind::Block {
                    block: name,
                    offset: off,
                    size,
                    totalsize: h.totalsize,
                },
            ))
        } else {
            Ok(&blob[off as usize..end as usize])
        }
    };
    let structs = block("structure", h.off_dt_struct, h.size_dt_struct, 4)?;
    let strings = block("strings", h.off_dt_strings, h.size_dt_strings, 1)?;
    let rsv_len = h.totalsize.saturating_sub(h.off_mem_rsvmap);
    let rsv = block("memory reservation", h.off_mem_rsvmap, rsv_len, 8)?;
    check_rsvmap(data, rsv)?;
    check_structure(data, structs, strings)?;
    Ok((h, blob))
}

fn check_rsvmap(data: &[u8], rsv: &[u8]) -> Result<(), DtError> {
    let mut off = 0;
    loop {
        match (be64(rsv, off), be64(rsv, off + 8)) {
            (Some(0), Some(0)) => return Ok(()),
            (Some(a), Some(s)) if a.checked_add(s).is_some() => off += 16,
            (Some(_), Some(_)) => {
                return Err(DtError::new(
                    data,
                    DtErrorKind::Structure {
                        offset: off,
                        what: "a /memreserve/ entry wraps past the end of the address space",
                    },
                ))
            }
            _ => {
                return Err(DtError::new(
                    data,
                    DtErrorKind::Structure {
                        offset: off,
                        what: "the /memreserve/ list has no terminating 0,0 entry",
                    },
                ))
            }
        }
    }
}

/// The `/memreserve/` entries (already validated), as physical ranges; empty entries skipped.
pub fn memreserve<'a>(blob: &'a [u8], h: &Header) -> impl Iterator<Item = PaRange> + 'a {
    let mut off = h.off_mem_rsvmap as usize;
    core::iter::from_fn(move || loop {
        let (a, s) = (be64(blob, off)?, be64(blob, off + 8)?);
        if a == 0 && s == 0 {
            return None;
        }
        off += 16;
        if s != 0 {
            return Some(PaRange::new(a, s));
        }
    })
}

/// A NUL-terminated UTF-8 string starting at `off`; returns it and its length with the NUL.
fn cstr(bytes: &[u8], off: usize) -> Option<(&str, usize)> {
    let rest = bytes.get(off..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let s = core::str::from_utf8(&rest[..nul]).ok()?;
    Some((s, nul + 1))
}

fn check_structure(data: &[u8], st: &[u8], strings: &[u8]) -> Result<(), DtError> {
    let bad = |offset, what| Err(DtError::new(data, DtErrorKind::Structure { offset, what }));
    let mut off = 0usize;
    while be32(st, off) == Some(FDT_NOP) {
        off += 4;
    }
    let mut depth = 0usize;
    // Whether the current node has had a child yet: properties must come before children.
    let mut seen_child = false;
    loop {
        let Some(tok) = be32(st, off) else {
            return bad(off, "runs off the end of the block before FDT_END");
        };
        match tok {
            FDT_BEGIN_NODE => {
                let Some((name, len)) = cstr(st, off + 4) else {
                    return bad(off, "a node name is not NUL-terminated UTF-8");
                };
                if depth == 0 && !name.is_empty() {
                    return bad(off, "the root node must have an empty name");
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DtError::new(data, DtErrorKind::TooDeep { max: MAX_DEPTH }));
                }
                seen_child = false;
                off += 4 + ((len + 3) & !3);
            }
            FDT_PROP => {
                if depth == 0 {
                    return bad(off, "a property outside any node");
                }
                if seen_child {
                    return bad(off, "a property after a child node");
                }
                let (Some(len), Some(name_off)) = (be32(st, off + 4), be32(st, off + 8)) else {
                    return bad(off, "a property header runs off the end of the block");
                };
                let len = len as usize;
                if st.len() < off + 12 || st.len() - (off + 12) < len {
                    return bad(off, "a property value runs off the end of the block");
                }
                if cstr(strings, name_off as usize).is_none() {
                    return bad(
                        off,
                        "a property name offset points outside the strings block",
                    );
                }
                off += 12 + ((len + 3) & !3);
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return bad(off, "FDT_END_NODE without a node to end");
                }
                depth -= 1;
                seen_child = true;
                off += 4;
                if depth == 0 {
                    return match be32(st, off) {
                        Some(FDT_END) => Ok(()),
                        _ => bad(off, "something other than FDT_END after the root node"),
                    };
                }
            }
            FDT_NOP => {
                return bad(
                    off,
                    "FDT_NOP inside the tree is not supported: repack it with dtc",
                )
            }
            FDT_END => return bad(off, "FDT_END before the root node is closed"),
            _ => return bad(off, "unknown token"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A minimal valid DTB: root with one `a = <1>` property and one empty child `c`.
    pub(crate) fn tiny() -> Vec<u8> {
        let mut st = Vec::new();
        let w = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        w(&mut st, FDT_BEGIN_NODE);
        w(&mut st, 0);
        w(&mut st, FDT_PROP);
        w(&mut st, 4);
        w(&mut st, 0);
        w(&mut st, 1);
        w(&mut st, FDT_BEGIN_NODE);
        st.extend_from_slice(b"c\0\0\0");
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END);
        let strings = b"a\0";
        let rsv: [u8; 32] = {
            let mut r = [0u8; 32];
            r[0..8].copy_from_slice(&0x1000u64.to_be_bytes());
            r[8..16].copy_from_slice(&0x2000u64.to_be_bytes());
            r
        };
        let off_rsv = 40u32;
        let off_st = off_rsv + 32;
        let off_str = off_st + st.len() as u32;
        let total = off_str + strings.len() as u32;
        let mut out = Vec::new();
        for x in [
            MAGIC,
            total,
            off_st,
            off_str,
            off_rsv,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ] {
            w(&mut out, x);
        }
        out.extend_from_slice(&rsv);
        out.extend_from_slice(&st);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn tiny_is_valid_and_lists_memreserve() {
        let d = tiny();
        let (h, blob) = validate(&d).unwrap();
        assert_eq!(dtb_size(&d).unwrap(), d.len());
        let r: Vec<_> = memreserve(blob, &h).collect();
        assert_eq!(r, [PaRange::new(0x1000, 0x2000)]);
    }

    #[test]
    fn used_len_leaves_out_the_free_space_at_the_end() {
        let d = tiny();
        assert_eq!(dtb_used_len(&d).unwrap(), d.len());
        // Padded as QEMU pads its blob: totalsize grows, the blocks do not.
        let mut padded = d.clone();
        padded.resize(0x10_0000, 0);
        padded[4..8].copy_from_slice(&0x10_0000u32.to_be_bytes());
        assert_eq!(dtb_size(&padded).unwrap(), 0x10_0000);
        assert_eq!(dtb_used_len(&padded).unwrap(), d.len());
        // A reserve map after the structure block: the whole blob, to be safe.
        let mut odd = padded.clone();
        odd[16..20].copy_from_slice(&0x8_0000u32.to_be_bytes());
        assert_eq!(dtb_used_len(&odd).unwrap(), 0x10_0000);
        // Blocks claimed past totalsize: never more than totalsize.
        let mut long = d.clone();
        long[32..36].copy_from_slice(&0x1000u32.to_be_bytes());
        assert_eq!(dtb_used_len(&long).unwrap(), d.len());
        assert!(dtb_used_len(&d[..20]).is_err());
    }

    #[test]
    fn header_errors() {
        let d = tiny();
        assert!(matches!(
            dtb_size(&d[..39]).unwrap_err().kind,
            DtErrorKind::TooShort { len: 39 }
        ));
        let mut bad = d.clone();
        bad[0] = 0;
        assert!(matches!(
            validate(&bad).unwrap_err().kind,
            DtErrorKind::BadMagic { magic: 0x000d_feed }
        ));
        let mut big = d.clone();
        big[4..8].copy_from_slice(&(3u32 << 20).to_be_bytes());
        assert!(matches!(
            dtb_size(&big).unwrap_err().kind,
            DtErrorKind::BadSize { .. }
        ));
        let e = validate(&d[..d.len() - 1]).unwrap_err();
        assert!(
            matches!(e.kind, DtErrorKind::Truncated { available, .. } if available == d.len() - 1)
        );
        let mut v16 = d.clone();
        v16[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert!(matches!(
            validate(&v16).unwrap_err().kind,
            DtErrorKind::Version { version: 16, .. }
        ));
    }

    #[test]
    fn structure_errors() {
        let d = tiny();
        let st = 72usize;
        let mut nop = d.clone();
        nop[st + 24..st + 28].copy_from_slice(&FDT_NOP.to_be_bytes());
        assert!(validate(&nop).is_err());
        let mut unknown = d.clone();
        unknown[st + 8..st + 12].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(
            validate(&unknown).unwrap_err().kind,
            DtErrorKind::Structure { offset: 8, .. }
        ));
        let mut long_prop = d.clone();
        long_prop[st + 12..st + 16].copy_from_slice(&1000u32.to_be_bytes());
        assert!(validate(&long_prop).is_err());
        let mut bad_name = d.clone();
        bad_name[st + 16..st + 20].copy_from_slice(&50u32.to_be_bytes());
        assert!(validate(&bad_name).is_err());
    }
}
