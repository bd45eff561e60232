//! Turns the caller's overlapping region list into sorted, disjoint, merged segments: later
//! entries win where they overlap earlier ones, neighbours of the same kind become one segment
//! (so they can share a block).

use alloc::vec::Vec;

use super::El2Mem;

/// Addresses `[start, end)` mapped as `mem`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub mem: El2Mem,
}

/// Paint `regions` in order (each already checked: non-empty, `start < end`) and return what is
/// visible, sorted by address, with touching segments of the same kind merged.
pub fn flatten(regions: impl IntoIterator<Item = Segment>) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    for new in regions {
        let mut out = Vec::with_capacity(segs.len() + 2);
        for s in segs.drain(..) {
            if s.end <= new.start || new.end <= s.start {
                out.push(s);
                continue;
            }
            if s.start < new.start {
                out.push(Segment {
                    end: new.start,
                    ..s
                });
            }
            if new.end < s.end {
                out.push(Segment {
                    start: new.end,
                    ..s
                });
            }
        }
        out.push(new);
        out.sort_unstable_by_key(|s| s.start);
        segs = out;
    }
    let mut merged: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs {
        match merged.last_mut() {
            Some(last) if last.end == s.start && last.mem == s.mem => last.end = s.end,
            _ => merged.push(s),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use El2Mem::*;

    fn seg(start: u64, end: u64, mem: El2Mem) -> Segment {
        Segment { start, end, mem }
    }

    #[test]
    fn later_entries_win_and_neighbours_merge() {
        let out = flatten([
            seg(0, 100, Device),
            seg(40, 80, ReadWrite),
            seg(50, 55, Code),
            seg(55, 60, ReadOnly),
            seg(60, 90, ReadWrite),
        ]);
        assert_eq!(
            out,
            vec![
                seg(0, 40, Device),
                seg(40, 50, ReadWrite),
                seg(50, 55, Code),
                seg(55, 60, ReadOnly),
                seg(60, 90, ReadWrite),
                seg(90, 100, Device),
            ]
        );
    }

    #[test]
    fn a_later_region_can_cover_everything() {
        let out = flatten([
            seg(10, 20, Code),
            seg(30, 40, Device),
            seg(0, 50, ReadWrite),
        ]);
        assert_eq!(out, vec![seg(0, 50, ReadWrite)]);
    }
}
