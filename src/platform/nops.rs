//! Removing `FDT_NOP` tokens. libfdt leaves them wherever a loader edited the tree in place
//! (QEMU's raspi4b machine and the Raspberry Pi firmware both do), and `fdt` 0.1.5 misreads
//! them, so a blob that has them is compacted without them before anything parses it.
//!
//! The compaction happens in place, before the heap exists and with the MMU off (boot reads the
//! loader's tree before it moves itself to the top of RAM): the structure block's tokens move
//! towards its start and `size_dt_struct` shrinks; nothing else moves.

use super::error::{DtError, DtErrorKind};

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Move `len` bytes of `data` from `from` down to `to` (`to <= from`), one byte at a time
/// through volatile accesses: this runs with the MMU off, when all memory is Device and a
/// `memmove` with wide or unaligned accesses could fault. The one `unsafe` of the platform
/// module, which otherwise forbids it.
#[allow(unsafe_code)]
fn move_down(data: &mut [u8], from: usize, to: usize, len: usize) {
    assert!(to <= from && from + len <= data.len());
    let p = data.as_mut_ptr();
    for i in 0..len {
        // SAFETY: both indices are inside `data` (asserted above); moving down byte by byte in
        // increasing order never reads a byte this loop has already overwritten.
        unsafe { core::ptr::write_volatile(p.add(to + i), core::ptr::read_volatile(p.add(from + i))) };
    }
}

fn be32(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Length of the token at `off` of the structure block `st`.
fn token_len(st: &[u8], off: usize) -> Result<(u32, usize), (usize, &'static str)> {
    let tok = be32(st, off).ok_or((off, "runs off the end of the block before FDT_END"))?;
    let len = match tok {
        FDT_BEGIN_NODE => {
            let name = st.get(off + 4..).ok_or((off, "unterminated node name"))?;
            let nul = name.iter().position(|b| *b == 0).ok_or((off, "unterminated node name"))?;
            4 + ((nul + 1 + 3) & !3)
        }
        FDT_PROP => {
            let vlen = be32(st, off + 4).ok_or((off, "property header cut short"))? as usize;
            12 + ((vlen + 3) & !3)
        }
        FDT_END_NODE | FDT_END | FDT_NOP => 4,
        _ => return Err((off, "unknown token")),
    };
    if off + len > st.len() {
        return Err((off, "token runs off the end of the block"));
    }
    Ok((tok, len))
}

/// Remove the `FDT_NOP` tokens of the blob at the start of `data`, in place. Returns how many
/// there were; with none, `data` is not written at all. Only the token stream is walked here;
/// `validate` checks the result in full.
pub fn strip_in_place(data: &mut [u8]) -> Result<usize, DtError> {
    let total = super::header::dtb_size(data)?;
    if data.len() < total {
        return Err(DtError::new(data, DtErrorKind::Truncated { totalsize: total, available: data.len() }));
    }
    let field = |d: &[u8], i: usize| be32(d, 4 * i).unwrap_or(0) as usize;
    let (off_struct, size_struct) = (field(data, 2), field(data, 9));
    let bad = |d: &[u8], offset: usize, what: &'static str| DtError::new(d, DtErrorKind::Structure { offset, what });
    if off_struct.checked_add(size_struct).is_none_or(|end| end > total) {
        return Err(bad(data, off_struct, "structure block outside the blob"));
    }
    // First pass: count, so that a blob without NOPs is left untouched.
    let st = &data[off_struct..off_struct + size_struct];
    let (mut off, mut nops) = (0, 0);
    loop {
        let (tok, len) = token_len(st, off).map_err(|(o, what)| bad(data, off_struct + o, what))?;
        nops += usize::from(tok == FDT_NOP);
        off += len;
        if tok == FDT_END {
            break;
        }
    }
    if nops == 0 {
        return Ok(0);
    }
    let used = off;
    let (mut read, mut write) = (0, 0);
    while read < used {
        let (tok, len) = token_len(&data[off_struct..off_struct + size_struct], read)
            .map_err(|(o, what)| bad(data, off_struct + o, what))?;
        if tok != FDT_NOP {
            move_down(data, off_struct + read, off_struct + write, len);
            write += len;
        }
        read += len;
    }
    data[36..40].copy_from_slice(&(write as u32).to_be_bytes());
    Ok(nops)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::platform::header::{tests::tiny, validate};

    /// `blob` (root named "", as `tiny()` and vm-fdt write it) with two NOP tokens inserted after
    /// the root node's first token.
    pub(crate) fn with_nop(blob: &[u8]) -> Vec<u8> {
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
        let mut blob = tiny();
        assert_eq!(strip_in_place(&mut blob).unwrap(), 0);
        assert_eq!(blob, tiny());
    }

    #[test]
    fn nops_are_removed_and_the_result_validates_to_the_same_tree() {
        let orig = tiny();
        let nopped = with_nop(&orig);
        assert!(validate(&nopped).is_err(), "the checker refuses NOPs, so the test input must have some");
        let mut fixed = nopped.clone();
        assert_eq!(strip_in_place(&mut fixed).unwrap(), 2);
        assert_eq!(fixed.len(), nopped.len(), "nothing but the structure block changes");
        validate(&fixed).expect("compacted blob validates");
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
        assert!(strip_in_place(&mut nopped).is_err());
        assert!(strip_in_place(&mut [0u8; 16]).is_err());
        // A NOP-free prefix with a bad token after a NOP: refused before anything is written.
        let mut late = with_nop(&tiny());
        let size_struct = be32(&late, 36).unwrap() as usize;
        let end = off_struct + size_struct - 4;
        late[end..end + 4].copy_from_slice(&77u32.to_be_bytes());
        let before = late.clone();
        assert!(strip_in_place(&mut late).is_err());
        assert_eq!(late, before);
    }
}
