//! Address types. A physical address never passes for an intermediate physical address: the
//! compiler keeps `Pa`, `Ipa` and `Va` apart.

use core::fmt;

/// Size of a translation granule and of a frame.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a level-2 block (4 KiB granule).
pub const SIZE_2M: u64 = 2 << 20;
/// Size of a level-1 block (4 KiB granule).
pub const SIZE_1G: u64 = 1 << 30;

macro_rules! addr_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address.
            pub const fn raw(self) -> u64 {
                self.0
            }
            /// The address plus `off` bytes.
            pub const fn add(self, off: u64) -> Self {
                Self(self.0 + off)
            }
            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
            /// Rounded down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
            /// Rounded up to a multiple of `align` (a power of two).
            pub const fn align_up(self, align: u64) -> Self {
                Self((self.0 + align - 1) & !(align - 1))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

addr_type!(Pa, "A physical address, as the CPU puts on the bus.");
addr_type!(Ipa, "An intermediate physical address: what a guest believes is physical.");
addr_type!(Va, "A virtual address of the current translation regime.");

/// A half-open physical range `[start, start + size)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct PaRange {
    pub start: Pa,
    pub size: u64,
}

impl PaRange {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start: Pa(start), size }
    }
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start.0 + self.size
    }
    pub const fn contains(&self, pa: u64) -> bool {
        pa >= self.start.0 && pa < self.end()
    }
    pub const fn overlaps(&self, other: &PaRange) -> bool {
        self.start.0 < other.end() && other.start.0 < self.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert_eq!(Pa(0x1234).align_down(PAGE_SIZE), Pa(0x1000));
        assert_eq!(Pa(0x1234).align_up(PAGE_SIZE), Pa(0x2000));
        assert!(Ipa(SIZE_1G).is_aligned(SIZE_2M));
        assert!(!Ipa(SIZE_2M + PAGE_SIZE).is_aligned(SIZE_2M));
    }

    #[test]
    fn ranges() {
        let a = PaRange::new(0x1000, 0x1000);
        assert!(a.contains(0x1fff) && !a.contains(0x2000));
        assert!(a.overlaps(&PaRange::new(0x1800, 0x1000)));
        assert!(!a.overlaps(&PaRange::new(0x2000, 0x1000)));
    }
}
