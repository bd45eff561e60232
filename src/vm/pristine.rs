//! Where a VM's pristine images come from when their copies are made lazily.
//!
//! A SYSTEM_RESET (and a crash restart) reloads a VM's kernel and initrd from pristine copies in
//! el2visor's memory. The first boot does not need them: the guest runs the loader's copies in
//! place, in its own RAM. So the pristine copies of those images are made after the guest has
//! started (`instance::LazyPristine`): each image's pages in guest RAM are write-protected at
//! Stage 2, 2 MiB span by span; a span is copied out to its pristine slot either by an idle pCPU
//! in the background or, when the guest writes to it first, by the faulting vCPU before the
//! write is let through (copy-on-write of the pristine image). Once a span is copied it is
//! writable again. A reset first completes every copy, then reloads as always.
//!
//! This module is the pure part: cutting the images into the 2 MiB spans that are protected and
//! copied as one.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::mm::addr::SIZE_2M;

/// One image whose pristine copy is still to be made: its bytes are at guest-physical `ipa`
/// (host-physical `pa`, in the VM's RAM) and go to `slot` (el2visor's memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub ipa: u64,
    pub pa: u64,
    pub slot: u64,
    pub len: u64,
}

/// Images whose pristine slot (the `VmSpec`'s `kernel`, `initrd`) is not filled yet: their bytes
/// are only at this host-physical address, in the VM's RAM, where the loader put them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unfilled {
    pub kernel: Option<u64>,
    pub initrd: Option<u64>,
}

/// A piece of an image inside one span: `len` bytes from `pa` to `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub pa: u64,
    pub slot: u64,
    pub len: u64,
}

/// A 2 MiB-aligned span of guest RAM, write-protected until its pieces are copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Guest-physical start, 2 MiB aligned; the span is 2 MiB long.
    pub ipa: u64,
    pub pieces: Vec<Piece>,
}

impl Span {
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < SIZE_2M
    }

    /// Bytes the span's copy moves.
    pub fn bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }
}

/// The spans covering `images`, in ascending guest-physical order; two images in one span share
/// it (it is copied and unprotected as one). Images of zero length have none.
pub fn spans(images: &[Pending]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut all: Vec<(u64, Piece)> = Vec::new();
    for im in images.iter().filter(|i| i.len > 0) {
        let mut off = 0;
        while off < im.len {
            let ipa = im.ipa + off;
            let span_end = (ipa / SIZE_2M + 1) * SIZE_2M;
            let len = (span_end - ipa).min(im.len - off);
            all.push((ipa, Piece { pa: im.pa + off, slot: im.slot + off, len }));
            off += len;
        }
    }
    all.sort_by_key(|(ipa, _)| *ipa);
    for (ipa, piece) in all {
        let base = ipa / SIZE_2M * SIZE_2M;
        match out.last_mut() {
            Some(s) if s.ipa == base => s.pieces.push(piece),
            _ => out.push(Span { ipa: base, pieces: alloc::vec![piece] }),
        }
    }
    out
}

/// `[ipa, ipa + size)` cut into (start, size, read-only) pieces: read-only inside `spans`
/// (ascending, as [`spans`] gives them), read-write elsewhere, in address order.
pub fn split(ipa: u64, size: u64, spans: &[Span]) -> Vec<(u64, u64, bool)> {
    let end = ipa + size;
    let mut out = Vec::new();
    let mut at = ipa;
    for s in spans.iter().filter(|s| s.ipa < end && s.ipa + SIZE_2M > ipa) {
        let (lo, hi) = (s.ipa.max(ipa), (s.ipa + SIZE_2M).min(end));
        if at < lo {
            out.push((at, lo - at, false));
        }
        out.push((lo, hi - lo, true));
        at = hi;
    }
    if at < end {
        out.push((at, end - at, false));
    }
    out
}

/// The order in which the background copier takes `spans` (made by [`spans`] from `images`):
/// image by image as `images` lists them (the kernel before its initrd), each from its last
/// span down; a span two images share goes with the first. A kernel writes its data and BSS,
/// at its image's end, within milliseconds of starting, and its initrd only after unpacking it,
/// so this order has the copier ahead of the guest's first writes as often as it can be.
pub fn copy_order(images: &[Pending], spans: &[Span]) -> Vec<usize> {
    let image_of = |s: &Span| {
        s.pieces
            .iter()
            .filter_map(|p| images.iter().position(|im| p.pa >= im.pa && p.pa - im.pa < im.len))
            .min()
            .unwrap_or(images.len())
    };
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_cached_key(|&i| (image_of(&spans[i]), core::cmp::Reverse(spans[i].ipa)));
    order
}

/// The span holding `ipa`, by index.
pub fn find(spans: &[Span], ipa: u64) -> Option<usize> {
    let i = spans.partition_point(|s| s.ipa + SIZE_2M <= ipa);
    (i < spans.len() && spans[i].contains(ipa)).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn an_image_is_cut_at_2_mib_boundaries() {
        let k = Pending { ipa: 0x4900_0000 + 3 * M, pa: 0x4900_0000 + 3 * M, slot: 0x7a00_0000, len: 5 * M + 0x123 };
        let s = spans(&[k]);
        assert_eq!(s.iter().map(|s| s.ipa).collect::<Vec<_>>(), [0x4920_0000, 0x4940_0000, 0x4960_0000, 0x4980_0000]);
        assert_eq!(s[0].pieces, [Piece { pa: k.pa, slot: k.slot, len: M }]);
        assert_eq!(s[1].pieces, [Piece { pa: k.pa + M, slot: k.slot + M, len: 2 * M }]);
        assert_eq!(s[3].pieces, [Piece { pa: k.pa + 5 * M, slot: k.slot + 5 * M, len: 0x123 }]);
        assert_eq!(s.iter().map(Span::bytes).sum::<u64>(), k.len);
    }

    #[test]
    fn images_sharing_a_span_share_it_and_order_is_by_address() {
        let initrd = Pending { ipa: 0x4ab0_0000, pa: 0x4ab0_0000, slot: 0x7c00_0000, len: M };
        let kernel = Pending { ipa: 0x4900_0000, pa: 0x4900_0000, slot: 0x7a00_0000, len: 0x1a0_0000 };
        // The kernel ends where the initrd's span begins: 13 spans, then the initrd's own.
        let s = spans(&[initrd, kernel]);
        assert_eq!(s.len(), 14);
        assert_eq!(s[0].ipa, 0x4900_0000);
        assert_eq!((s[13].ipa, s[13].pieces.len()), (0x4aa0_0000, 1));
        // One more MiB of kernel: its tail and the initrd share the last span.
        let s = spans(&[initrd, Pending { len: 0x1b0_0000, ..kernel }]);
        assert_eq!(s.len(), 14);
        assert_eq!(s[13].ipa, 0x4aa0_0000);
        assert_eq!(s[13].pieces.len(), 2, "the kernel's tail and the initrd");
        assert_eq!(s[13].bytes(), 0x10_0000 + M);
        assert!(s.windows(2).all(|w| w[0].ipa < w[1].ipa));
    }

    #[test]
    fn guest_and_host_addresses_may_differ() {
        let im = Pending { ipa: 0x8000_0000 + M, pa: 0x4000_0000 + M, slot: 0x7000_0000, len: 2 * M };
        let s = spans(&[im]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].ipa, 0x8020_0000);
        assert_eq!(s[1].pieces[0], Piece { pa: 0x4020_0000, slot: 0x7010_0000, len: M });
    }

    #[test]
    fn split_marks_the_spans_read_only_and_nothing_else() {
        let s = spans(&[Pending { ipa: 0x4900_0000, pa: 0x4900_0000, slot: 0, len: 3 * M }, Pending { ipa: 0x4c00_0000, pa: 0, slot: 0, len: 1 }]);
        let ram = split(0x4000_0000, 0x3000_0000, &s);
        assert_eq!(
            ram,
            [
                (0x4000_0000, 0x900_0000, false),
                (0x4900_0000, 2 * M, true),
                (0x4920_0000, 2 * M, true),
                (0x4940_0000, 0x2c0_0000, false),
                (0x4c00_0000, 2 * M, true),
                (0x4c20_0000, 0x2400_0000 - 2 * M, false),
            ]
        );
        assert_eq!(ram.iter().map(|p| p.1).sum::<u64>(), 0x3000_0000);
        // A piece that starts inside a span, one without any, and no spans at all.
        assert_eq!(split(0x4910_0000, 0x20_0000, &s), [(0x4910_0000, M, true), (0x4920_0000, M, true)]);
        assert_eq!(split(0x5000_0000, 0x1000, &s), [(0x5000_0000, 0x1000, false)]);
        assert_eq!(split(0x4000_0000, 4 * M, &[]), [(0x4000_0000, 4 * M, false)]);
    }

    #[test]
    fn the_copier_takes_the_kernel_from_its_end_then_the_initrd() {
        let kernel = Pending { ipa: 0x4900_0000, pa: 0x4900_0000, slot: 0x7a00_0000, len: 5 * M };
        let initrd = Pending { ipa: 0x4c00_0000, pa: 0x4c00_0000, slot: 0x7c00_0000, len: 3 * M };
        let s = spans(&[kernel, initrd]);
        assert_eq!(s.len(), 5);
        // Spans 0..3 are the kernel's, 3..5 the initrd's, in address order.
        assert_eq!(copy_order(&[kernel, initrd], &s), [2, 1, 0, 4, 3]);
        // A span the kernel's tail shares with the initrd goes with the kernel.
        let initrd = Pending { ipa: 0x4950_0000, pa: 0x4950_0000, ..initrd };
        let s = spans(&[kernel, initrd]);
        assert_eq!(s.iter().map(|s| s.ipa).collect::<Vec<_>>(), [0x4900_0000, 0x4920_0000, 0x4940_0000, 0x4960_0000]);
        assert_eq!(copy_order(&[kernel, initrd], &s), [2, 1, 0, 3]);
        // Images listed the other way round: the initrd first.
        assert_eq!(copy_order(&[initrd, kernel], &s), [3, 2, 1, 0]);
        assert!(copy_order(&[], &[]).is_empty());
    }

    #[test]
    fn find_answers_only_inside_a_span() {
        let s = spans(&[Pending { ipa: 0x4900_0000, pa: 0x4900_0000, slot: 0, len: 3 * M }, Pending { ipa: 0x4c00_0000, pa: 0, slot: 0, len: 1 }]);
        assert_eq!(find(&s, 0x4900_0000), Some(0));
        assert_eq!(find(&s, 0x4930_0000), Some(1));
        assert_eq!(find(&s, 0x493f_ffff), Some(1));
        assert_eq!(find(&s, 0x4940_0000), None, "after the kernel's last span");
        assert_eq!(find(&s, 0x48ff_ffff), None);
        assert_eq!(find(&s, 0x4c1f_ffff), Some(2));
        assert_eq!(find(&s, 0x4c20_0000), None);
        assert_eq!(find(&[], 0), None);
        assert!(spans(&[Pending { ipa: 0, pa: 0, slot: 0, len: 0 }]).is_empty());
    }
}
