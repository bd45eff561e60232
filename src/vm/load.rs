//! Where a guest's kernel, device tree and initrd go in its RAM, following the arm64 boot protocol
//! (Documentation/arch/arm64/booting.rst):
//!
//! - the kernel at a 2 MiB-aligned base plus `text_offset`, occupying `image_size` bytes, as low in
//!   RAM as possible (memory below the base is lost to the linear map unless flags bit 3 is set);
//! - the DTB 8-byte aligned, at most 2 MiB, at the start of its own 2 MiB block above the kernel
//!   (the kernel maps it with block mappings, so the block must not hold the kernel image);
//! - the initrd page aligned after the DTB, inside a 1 GiB-aligned window of at most 32 GiB that also
//!   covers the kernel;
//! - everything inside the VM's RAM, clear of the `keep_out` regions (module images that still sit in
//!   guest RAM and must not be overwritten before they are copied, firmware memory).
//!
//! An image that already sits in guest RAM (a boot module where the loader put it, whose memory is
//! now the VM's) stays where it is when that place follows the rules ([`InPlace`]): the first boot
//! then needs no copy of it.
//!
//! Kernels before Linux 3.17 (image_size 0) do not say how much BSS follows the file; like QEMU, the
//! plan then keeps the DTB and initrd at least min(RAM/2, 128 MiB) above the kernel base.

#![forbid(unsafe_code)]

use core::fmt;

use super::image::ImageHeader;
use crate::mm::addr::{Ipa, PAGE_SIZE, SIZE_1G, SIZE_2M};

/// Largest DTB the boot protocol allows.
pub const MAX_DTB_SIZE: u64 = SIZE_2M;
/// Gap above a legacy kernel's base before the DTB (capped at half of RAM).
pub const LEGACY_GAP: u64 = 128 << 20;
/// Size of the window that must hold both the kernel and the initrd.
pub const INITRD_WINDOW: u64 = 32 * SIZE_1G;

/// A named guest-physical range `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub what: &'static str,
    pub start: Ipa,
    pub size: u64,
}

impl Region {
    pub const fn new(what: &'static str, start: u64, size: u64) -> Self {
        Self {
            what,
            start: Ipa(start),
            size,
        }
    }
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start.0 + self.size
    }
    /// Bytes shared with `other` (0 if disjoint).
    pub fn overlap(&self, other: &Region) -> u64 {
        let lo = self.start.0.max(other.start.0);
        let hi = self.end().min(other.end());
        hi.saturating_sub(lo)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{:#x}, {:#x})", self.what, self.start.0, self.end())
    }
}

/// Where each image goes, in guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The 2 MiB-aligned base the kernel's text_offset counts from.
    pub kernel_base: Ipa,
    /// The kernel image: starts at base + text_offset (the entry point), `size` = what it occupies.
    pub kernel: Region,
    /// The DTB: `size` is the blob's length.
    pub dtb: Region,
    pub initrd: Option<Region>,
}

impl LoadPlan {
    /// The guest's first instruction: the start of the image.
    pub const fn entry(&self) -> Ipa {
        self.kernel.start
    }

    /// The placed images, in address order of their kinds: kernel, DTB, initrd.
    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        [Some(self.kernel), Some(self.dtb), self.initrd]
            .into_iter()
            .flatten()
    }

    /// Check every boot-protocol rule and that nothing overlaps anything else or leaves RAM.
    pub fn check(&self, ram: Region, keep_out: &[Region]) -> Result<(), LoadError> {
        if !self.kernel_base.is_aligned(SIZE_2M) || self.kernel.start.0 < self.kernel_base.0 {
            return Err(LoadError::Misplaced {
                what: "kernel",
                rule: "at a 2 MiB-aligned base plus text_offset",
            });
        }
        if !self.dtb.start.is_aligned(8) {
            return Err(LoadError::Misplaced {
                what: "device tree",
                rule: "8-byte aligned",
            });
        }
        if self.dtb.size > MAX_DTB_SIZE {
            return Err(LoadError::DtbTooLarge { len: self.dtb.size });
        }
        if self.dtb.start.0 / SIZE_2M == (self.kernel.end() - 1) / SIZE_2M
            || self.dtb.start.0 / SIZE_2M == self.kernel.start.0 / SIZE_2M
        {
            return Err(LoadError::Misplaced {
                what: "device tree",
                rule: "in a 2 MiB block that holds no part of the kernel",
            });
        }
        let placed: alloc::vec::Vec<Region> = self.regions().collect();
        for r in &placed {
            if r.start.0 < ram.start.0 || r.end() > ram.end() {
                return Err(LoadError::OutsideRam { region: *r, ram });
            }
        }
        for (i, a) in placed.iter().enumerate() {
            for b in placed[i + 1..].iter().chain(keep_out) {
                let bytes = a.overlap(b);
                if bytes > 0 {
                    return Err(LoadError::Overlap {
                        a: *a,
                        b: *b,
                        bytes,
                    });
                }
            }
        }
        if let Some(initrd) = self.initrd {
            if !initrd.start.is_aligned(PAGE_SIZE) {
                return Err(LoadError::Misplaced {
                    what: "initrd",
                    rule: "page aligned",
                });
            }
            let lo = self.kernel.start.0.min(initrd.start.0) & !(SIZE_1G - 1);
            let hi = self.kernel.end().max(initrd.end());
            if hi - lo > INITRD_WINDOW {
                return Err(LoadError::Misplaced {
                    what: "initrd",
                    rule: "in a 1 GiB-aligned window of at most 32 GiB that also covers the kernel",
                });
            }
        }
        Ok(())
    }
}

/// Why the images cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file is longer than the header's image_size.
    KernelLongerThanImageSize {
        len: u64,
        image_size: u64,
    },
    DtbTooLarge {
        len: u64,
    },
    /// No place left in RAM for `what` of `size` bytes.
    NoRoom {
        what: &'static str,
        size: u64,
        ram: Region,
    },
    OutsideRam {
        region: Region,
        ram: Region,
    },
    Overlap {
        a: Region,
        b: Region,
        bytes: u64,
    },
    Misplaced {
        what: &'static str,
        rule: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KernelLongerThanImageSize { len, image_size } => write!(
                f,
                "guest kernel file is {len:#x} bytes but its Image header says image_size {image_size:#x}: not a plain Image, or corrupt"
            ),
            Self::DtbTooLarge { len } => write!(
                f,
                "guest device tree is {len:#x} bytes; the arm64 boot protocol allows at most 2 MiB"
            ),
            Self::NoRoom { what, size, ram } => write!(
                f,
                "no room for the {what} ({size:#x} bytes) in guest RAM [{:#x}, {:#x}) under the boot protocol's placement rules: give the VM more RAM",
                ram.start.0,
                ram.end()
            ),
            Self::OutsideRam { region, ram } => write!(
                f,
                "{region} is outside guest RAM [{:#x}, {:#x})",
                ram.start.0,
                ram.end()
            ),
            Self::Overlap { a, b, bytes } => write!(f, "{a} overlaps {b} by {bytes:#x} bytes"),
            Self::Misplaced { what, rule } => write!(f, "the {what} must be {rule}"),
        }
    }
}

/// The lowest `start = base + skew`, with `base` an `align` multiple at or above `from`, such that
/// `[start, start + size)` ends at or below `limit` and hits no region in `avoid`.
fn first_fit(
    from: u64,
    align: u64,
    skew: u64,
    size: u64,
    limit: u64,
    avoid: &[Region],
) -> Option<u64> {
    let mut base = from.checked_add(align - 1)? & !(align - 1);
    loop {
        let start = base.checked_add(skew)?;
        let end = start.checked_add(size.max(1))?;
        if end > limit {
            return None;
        }
        let probe = Region {
            what: "",
            start: Ipa(start),
            size: size.max(1),
        };
        match avoid
            .iter()
            .filter(|r| probe.overlap(r) > 0)
            .map(|r| r.end())
            .max()
        {
            None => return Some(start),
            // Jump past the highest conflicting region; its end minus skew, realigned.
            Some(past) => base = past.saturating_sub(skew).checked_add(align - 1)? & !(align - 1),
        }
    }
}

/// Plan kernel, DTB and initrd placement in `ram` = (base, size). `initrd_len == 0` means no initrd.
pub fn plan_load(
    ram: (Ipa, u64),
    kernel_len: u64,
    header: &ImageHeader,
    initrd_len: u64,
    dtb_len: u64,
) -> Result<LoadPlan, LoadError> {
    plan_load_around(ram, kernel_len, header, initrd_len, dtb_len, &[])
}

/// Where the kernel and the initrd already are in guest RAM, if they are (guest-physical).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InPlace {
    pub kernel: Option<u64>,
    pub initrd: Option<u64>,
}

/// [`plan_load`], keeping clear of `keep_out` (for example module images still sitting in guest RAM).
pub fn plan_load_around(
    ram: (Ipa, u64),
    kernel_len: u64,
    header: &ImageHeader,
    initrd_len: u64,
    dtb_len: u64,
    keep_out: &[Region],
) -> Result<LoadPlan, LoadError> {
    plan_load_in_place(ram, kernel_len, header, initrd_len, dtb_len, keep_out, InPlace::default())
}

/// [`plan_load_around`], leaving the kernel and the initrd where `at` says they already are when
/// that place follows the rules: for the kernel a 2 MiB-aligned base (kernels that may sit anywhere
/// in RAM, flags bit 3, or at the lowest base the plan would pick anyway), for the initrd page
/// alignment, the kernel's 32 GiB window and room for the DTB's block after the kernel. When
/// keeping them there leaves no room for the rest, the plan is made as if they were not there.
pub fn plan_load_in_place(
    ram: (Ipa, u64),
    kernel_len: u64,
    header: &ImageHeader,
    initrd_len: u64,
    dtb_len: u64,
    keep_out: &[Region],
    at: InPlace,
) -> Result<LoadPlan, LoadError> {
    let plan = |at| plan_with(ram, kernel_len, header, initrd_len, dtb_len, keep_out, at);
    match plan(at) {
        Ok(p) => Ok(p),
        Err(_) if at != InPlace::default() => plan(InPlace::default()),
        Err(e) => Err(e),
    }
}

fn plan_with(
    ram: (Ipa, u64),
    kernel_len: u64,
    header: &ImageHeader,
    initrd_len: u64,
    dtb_len: u64,
    keep_out: &[Region],
    at: InPlace,
) -> Result<LoadPlan, LoadError> {
    let ram_region = Region {
        what: "guest RAM",
        start: ram.0,
        size: ram.1,
    };
    let limit = ram_region.end();
    if dtb_len > MAX_DTB_SIZE {
        return Err(LoadError::DtbTooLarge { len: dtb_len });
    }
    let footprint = if header.is_legacy() {
        kernel_len
    } else {
        if kernel_len > header.image_size {
            return Err(LoadError::KernelLongerThanImageSize {
                len: kernel_len,
                image_size: header.image_size,
            });
        }
        header.image_size
    };
    let text = header.effective_text_offset();
    let no_room = |what, size| LoadError::NoRoom {
        what,
        size,
        ram: ram_region,
    };

    let lowest = first_fit(ram.0 .0, SIZE_2M, text, footprint, limit, keep_out);
    let fits = |r: Region, avoid: &[Region]| {
        r.start.0 >= ram.0 .0 && r.end() <= limit && avoid.iter().all(|a| r.overlap(a) == 0)
    };
    let k = at
        .kernel
        .filter(|&k| {
            k.checked_sub(text).is_some_and(|b| b % SIZE_2M == 0)
                && (header.placement_anywhere() || Some(k) == lowest)
                && fits(Region::new("kernel", k, footprint), keep_out)
        })
        .or(lowest)
        .ok_or(no_room("kernel", footprint))?;
    let kernel_base = k - text;
    let kernel = Region::new("kernel", k, footprint);

    let mut dtb_from = kernel.end();
    if header.is_legacy() {
        dtb_from = dtb_from.max(kernel_base + LEGACY_GAP.min(ram.1 / 2));
    }
    let mut avoid = alloc::vec::Vec::from(keep_out);
    avoid.push(kernel);
    // An initrd in place must leave the DTB a block after the kernel (searched for below).
    let initrd_here = at.initrd.map(|i| Region::new("initrd", i, initrd_len)).filter(|r| {
        initrd_len != 0
            && r.start.is_aligned(PAGE_SIZE)
            && fits(*r, &avoid)
            && r.end().max(kernel.end()) - (r.start.0.min(kernel.start.0) & !(SIZE_1G - 1)) <= INITRD_WINDOW
    });
    let mut dtb_avoid = avoid.clone();
    dtb_avoid.extend(initrd_here);
    // Its own 2 MiB block: the first block boundary at or after the kernel's end.
    let d = first_fit(dtb_from, SIZE_2M, 0, dtb_len, limit, &dtb_avoid)
        .ok_or(no_room("device tree", dtb_len))?;
    let dtb = Region::new("device tree", d, dtb_len);

    let initrd = if initrd_len == 0 {
        None
    } else if initrd_here.is_some() {
        initrd_here
    } else {
        avoid.push(dtb);
        let i = first_fit(dtb.end(), PAGE_SIZE, 0, initrd_len, limit, &avoid)
            .ok_or(no_room("initrd", initrd_len))?;
        Some(Region::new("initrd", i, initrd_len))
    };

    let plan = LoadPlan {
        kernel_base: Ipa(kernel_base),
        kernel,
        dtb,
        initrd,
    };
    plan.check(ram_region, keep_out)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::image::{parse_header, test_header};
    use alloc::string::ToString;
    use proptest::prelude::*;

    const RAM: (Ipa, u64) = (Ipa(0x4000_0000), 1 << 30);

    fn hdr(text: u64, size: u64) -> ImageHeader {
        parse_header(&test_header(text, size, 0b1010)).unwrap()
    }

    #[test]
    fn modern_kernel_layout() {
        let p = plan_load(RAM, 0x180_0000, &hdr(0, 0x2a1_0000), 0x40_0123, 0x10_0000).unwrap();
        assert_eq!(p.kernel_base, Ipa(0x4000_0000));
        assert_eq!(p.entry(), Ipa(0x4000_0000));
        assert_eq!(p.kernel.size, 0x2a1_0000);
        // Kernel ends at 0x42a1_0000: the DTB takes the next 2 MiB block.
        assert_eq!(p.dtb.start, Ipa(0x42c0_0000));
        assert_eq!(p.initrd.unwrap().start, Ipa(0x42d0_0000));
    }

    #[test]
    fn text_offset_and_unaligned_ram() {
        let p = plan_load(
            (Ipa(0x4010_0000), 1 << 30),
            0x1000,
            &hdr(0x8_0000, 0x10_0000),
            0,
            0x1000,
        )
        .unwrap();
        assert_eq!(p.kernel_base, Ipa(0x4020_0000));
        assert_eq!(p.kernel.start, Ipa(0x4028_0000));
        assert_eq!(p.dtb.start, Ipa(0x4040_0000));
        assert!(p.initrd.is_none());
    }

    #[test]
    fn legacy_kernel_keeps_a_gap() {
        let legacy = parse_header(&test_header(0x0008_0000_0000_0000, 0, 0)).unwrap();
        let p = plan_load(RAM, 0x80_0000, &legacy, 0x1000, 0x1000).unwrap();
        assert_eq!(p.kernel.start, Ipa(0x4008_0000));
        assert_eq!(p.kernel.size, 0x80_0000);
        assert_eq!(p.dtb.start, Ipa(0x4800_0000));
        let small = plan_load((Ipa(0), 64 << 20), 0x80_0000, &legacy, 0, 0x1000).unwrap();
        assert_eq!(small.dtb.start, Ipa(32 << 20));
    }

    #[test]
    fn avoids_keep_out_regions() {
        let modules = [
            Region::new("initrd module", 0x4000_0000, 0x10_0000),
            Region::new("x", 0x42e0_0000, 0x1000),
        ];
        let p =
            plan_load_around(RAM, 0x1000, &hdr(0, 0x2a1_0000), 0x1000, 0x1000, &modules).unwrap();
        assert_eq!(p.kernel_base, Ipa(0x4020_0000));
        assert_eq!(p.dtb.start, Ipa(0x4300_0000));
        p.check(Region::new("ram", RAM.0 .0, RAM.1), &modules)
            .unwrap();
    }

    #[test]
    fn errors_say_what_and_how_much() {
        let e = plan_load(RAM, 0x3000_0000, &hdr(0, 0x2000_0000), 0, 0x1000).unwrap_err();
        assert!(matches!(e, LoadError::KernelLongerThanImageSize { .. }));
        let e = plan_load(
            (Ipa(0x4000_0000), 32 << 20),
            0x1000,
            &hdr(0, 0x1f0_0000),
            0,
            0x1000,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no room for the device tree"), "{e}");
        assert!(matches!(
            plan_load(RAM, 1, &hdr(0, 1 << 20), 0, 3 << 20),
            Err(LoadError::DtbTooLarge { .. })
        ));

        let mut p = plan_load(RAM, 0x1000, &hdr(0, 0x40_0000), 0x2000, 0x1000).unwrap();
        p.initrd = Some(Region::new("initrd", p.dtb.start.0 + 0x800, 0x2000));
        let ram = Region::new("ram", RAM.0 .0, RAM.1);
        assert_eq!(p.check(ram, &[]).unwrap_err().to_string(),
            "device tree [0x40400000, 0x40401000) overlaps initrd [0x40400800, 0x40402800) by 0x800 bytes");
        p.initrd = None;
        p.dtb.start = Ipa(0x4020_0000);
        assert!(p
            .check(ram, &[])
            .unwrap_err()
            .to_string()
            .contains("holds no part of the kernel"));
    }

    #[test]
    fn images_stay_where_they_are_when_the_rules_allow() {
        let h = hdr(0, 0x2a1_0000);
        let here = InPlace { kernel: Some(0x4900_0000), initrd: Some(0x4c00_0000) };
        let p = plan_load_in_place(RAM, 0x1a0_0000, &h, 0xf_0e60, 0x10_4000, &[], here).unwrap();
        assert_eq!(p.entry(), Ipa(0x4900_0000));
        assert_eq!(p.initrd.unwrap().start, Ipa(0x4c00_0000));
        assert_eq!(p.dtb.start, Ipa(0x4bc0_0000), "the DTB's block between the kernel and the initrd");
        // A kernel off a 2 MiB base, or one that must sit low (no flags bit 3), goes where
        // plan_load would put it; an initrd the kernel's BSS would cover is placed anew.
        let odd = InPlace { kernel: Some(0x4900_1000), initrd: Some(0x4100_0000) };
        let p = plan_load_in_place(RAM, 0x1a0_0000, &h, 0x1000, 0x1000, &[], odd).unwrap();
        assert_eq!(p.entry(), Ipa(0x4000_0000));
        assert_ne!(p.initrd.unwrap().start, Ipa(0x4100_0000));
        let pinned = parse_header(&test_header(0, 0x2a1_0000, 0b0010)).unwrap();
        let p = plan_load_in_place(RAM, 0x1a0_0000, &pinned, 0, 0x1000, &[], here).unwrap();
        assert_eq!(p.entry(), Ipa(0x4000_0000));
        // Never over what must be kept out, never outside RAM.
        let fw = [Region::new("firmware memory", 0x4a00_0000, 0x1000)];
        let p = plan_load_in_place(RAM, 0x1a0_0000, &h, 0, 0x1000, &fw, here).unwrap();
        assert_eq!(p.entry(), Ipa(0x4000_0000));
        let p = plan_load_in_place(RAM, 0x1a0_0000, &h, 0x1000, 0x1000, &[], InPlace { kernel: Some(0x7f00_0000), initrd: Some(0x8000_0000) })
            .unwrap();
        assert_eq!(p.entry(), Ipa(0x4000_0000));
        assert_ne!(p.initrd.unwrap().start, Ipa(0x8000_0000));
        // A kernel in place at the top of RAM leaves no block for the DTB above it: placed anew.
        let small = hdr(0, 0x10_0000);
        let top = InPlace { kernel: Some(0x7fe0_0000), initrd: None };
        let p = plan_load_in_place(RAM, 0x4_6000, &small, 0, 0x10_4000, &[], top).unwrap();
        assert_eq!(p.entry(), Ipa(0x4000_0000));
    }

    proptest! {
        #[test]
        fn in_place_plans_satisfy_the_protocol(
            size_kib in 1u64..65536, initrd_kib in 0u64..65536, k_mib in 0u64..1100, i_pages in 0u64..300_000,
            ko_start in 0u64..1024, ko_kib in 1u64..8192, anywhere in any::<bool>(),
        ) {
            let h = parse_header(&test_header(0, size_kib << 10, if anywhere { 0b1010 } else { 0b0010 })).unwrap();
            let keep = [Region::new("module", 0x4000_0000 + (ko_start << 20), ko_kib << 10)];
            let at = InPlace { kernel: Some(0x4000_0000 + (k_mib << 20)), initrd: Some(0x4000_0000 + i_pages * 4096) };
            if let Ok(p) = plan_load_in_place(RAM, size_kib << 10, &h, initrd_kib << 10, 0x1000, &keep, at) {
                prop_assert!(p.check(Region::new("ram", RAM.0.0, RAM.1), &keep).is_ok(), "{:?}", p);
            }
        }

        #[test]
        fn plans_always_satisfy_the_protocol(
            ram_base in 0u64..64, ram_mib in 8u64..4096, text in 0u64..512, size_kib in 1u64..65536,
            initrd_kib in 0u64..65536, dtb in 1u64..(2 << 20), ko_start in 0u64..4096, ko_kib in 1u64..8192,
        ) {
            let ram = (Ipa(ram_base << 20), ram_mib << 20);
            let h = hdr(text * 4096, size_kib << 10);
            let keep = [Region::new("module", (ram_base << 20) + (ko_start << 20), ko_kib << 10)];
            if let Ok(p) = plan_load_around(ram, size_kib << 10, &h, initrd_kib << 10, dtb, &keep) {
                prop_assert!(p.check(Region::new("ram", ram.0.0, ram.1), &keep).is_ok());
                prop_assert_eq!(p.kernel.start.0 - p.kernel_base.0, text * 4096);
            }
        }
    }
}
