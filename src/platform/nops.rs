//! Removing `FDT_NOP` tokens. libfdt leaves them wherever a loader edited the tree in place
//! (QEMU's raspi4b machine and the Raspberry Pi firmware both do), and `fdt` 0.1.5 misreads
//! them, so a blob that has them is repacked without them before anything parses it.

use alloc::vec::Vec;

use super::error::{DtError, DtErrorKind};

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
const HEADER_LEN: usize = 40;

/// Append `src` one byte at a time through volatile reads: this runs before the EL2 MMU is on,
/// when all memory is Device and a `memcpy` with wide or unaligned accesses could fault. The one
/// `unsafe` of the platform module, which otherwise forbids it.
#[allow(unsafe_code)]
fn push_bytes(out: &mut Vec<u8>, src: &[u8]) {
    for b in src {
        // SAFETY: `b` is a valid reference into `src`.
        out.push(unsafe { core::ptr::read_volatile(b) });
    }
}

fn be32(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `data` without its `FDT_NOP` tokens: `None` when it has none (use it as it is), else a
/// repacked copy (header, reservation map, structure without NOPs, strings). Only the token
/// stream is walked here; `validate` checks the result in full.
pub fn without_nops(data: &[u8]) -> Result<Option<Vec<u8>>, DtError> {
    let bad = |offset: usize, what: &'static str| DtError::new(data, DtErrorKind::Structure { offset, what });
    let total = super::header::dtb_size(data)?;
    if data.len() < total {
        return Err(DtError::new(data, DtErrorKind::Truncated { totalsize: total, available: data.len() }));
    }
    let field = |i: usize| be32(data, 4 * i).unwrap_or(0) as usize;
    let (off_struct, off_strings, off_rsv) = (field(2), field(3), field(4));
    let (size_strings, size_struct) = (field(8), field(9));
    let st = data.get(off_struct..off_struct + size_struct).ok_or(bad(off_struct, "structure block outside the blob"))?;
    let strings = data.get(off_strings..off_strings + size_strings).ok_or(bad(off_strings, "strings block outside the blob"))?;
    // The reservation map runs to its all-zero terminator (16-byte entries).
    let mut rsv_end = off_rsv;
    loop {
        let e = data.get(rsv_end..rsv_end + 16).ok_or(bad(off_rsv, "unterminated memory reservation map"))?;
        rsv_end += 16;
        if e.iter().all(|b| *b == 0) {
            break;
        }
    }
    let mut out_struct = Vec::with_capacity(st.len());
    let mut nops = 0usize;
    let mut off = 0usize;
    loop {
        let tok = be32(st, off).ok_or(bad(off, "runs off the end of the block before FDT_END"))?;
        let len = match tok {
            FDT_BEGIN_NODE => {
                let nul = st[off + 4..].iter().position(|b| *b == 0).ok_or(bad(off, "unterminated node name"))?;
                4 + ((nul + 1 + 3) & !3)
            }
            FDT_PROP => {
                let vlen = be32(st, off + 4).ok_or(bad(off, "property header cut short"))? as usize;
                12 + ((vlen + 3) & !3)
            }
            FDT_END_NODE | FDT_END | FDT_NOP => 4,
            _ => return Err(bad(off, "unknown token")),
        };
        let chunk = st.get(off..off + len).ok_or(bad(off, "token runs off the end of the block"))?;
        if tok == FDT_NOP {
            nops += 1;
        } else {
            push_bytes(&mut out_struct, chunk);
        }
        off += len;
        if tok == FDT_END {
            break;
        }
    }
    if nops == 0 {
        return Ok(None);
    }
    let rsv = &data[off_rsv..rsv_end];
    let new_rsv = HEADER_LEN.next_multiple_of(8);
    let new_struct = new_rsv + rsv.len();
    let new_strings = new_struct + out_struct.len();
    let new_total = new_strings + strings.len();
    let mut out = Vec::with_capacity(new_total);
    push_bytes(&mut out, &data[..HEADER_LEN]);
    while out.len() < new_rsv {
        out.push(0);
    }
    push_bytes(&mut out, rsv);
    push_bytes(&mut out, &out_struct);
    push_bytes(&mut out, strings);
    let mut put = |i: usize, v: usize| out[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
    put(1, new_total);
    put(2, new_struct);
    put(3, new_strings);
    put(4, new_rsv);
    put(8, strings.len());
    put(9, out_struct.len());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::header::{tests::tiny, validate};

    /// `tiny()` with a NOP token inserted after the root node's first token.
    fn with_nop(blob: &[u8]) -> Vec<u8> {
        let off_struct = be32(blob, 8).unwrap() as usize;
        let size_struct = be32(blob, 36).unwrap() as usize;
        let mut out = blob.to_vec();
        // The root's BEGIN_NODE with an empty name is 8 bytes.
        let at = off_struct + 8;
        out.splice(at..at, FDT_NOP.to_be_bytes());
        out.splice(at..at, FDT_NOP.to_be_bytes());
        let fix = |o: &mut Vec<u8>, i: usize, delta: usize| {
            let v = be32(o, 4 * i).unwrap() as usize + delta;
            o[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
        };
        fix(&mut out, 1, 8);
        if be32(&out, 12).unwrap() as usize > off_struct {
            fix(&mut out, 3, 8);
        }
        out[36..40].copy_from_slice(&((size_struct + 8) as u32).to_be_bytes());
        out
    }

    #[test]
    fn a_blob_without_nops_is_left_alone() {
        assert_eq!(without_nops(&tiny()).unwrap(), None);
    }

    #[test]
    fn nops_are_removed_and_the_result_validates_to_the_same_tree() {
        let orig = tiny();
        let nopped = with_nop(&orig);
        assert!(validate(&nopped).is_err(), "the checker refuses NOPs, so the test input must have some");
        let fixed = without_nops(&nopped).unwrap().expect("NOPs found");
        validate(&fixed).expect("repacked blob validates");
        let a = fdt::Fdt::new(&orig).unwrap();
        let b = fdt::Fdt::new(&fixed).unwrap();
        let names = |f: &fdt::Fdt<'_>| f.all_nodes().map(|n| n.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut nopped = with_nop(&tiny());
        let off_struct = be32(&nopped, 8).unwrap() as usize;
        nopped[off_struct + 8..off_struct + 12].copy_from_slice(&77u32.to_be_bytes());
        assert!(without_nops(&nopped).is_err());
        assert!(without_nops(&[0u8; 16]).is_err());
    }
}
