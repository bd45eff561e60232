//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst), parsed from the first 64
//! bytes of a guest kernel, with errors that say what the file is when it is not an Image.
//!
//! ```text
//! 0x00 u32 code0         executable code (a branch, or "MZ" for an EFI stub image)
//! 0x04 u32 code1
//! 0x08 u64 text_offset   little endian; offset from a 2 MiB-aligned base
//! 0x10 u64 image_size    effective size to reserve, including BSS; 0 before Linux 3.17
//! 0x18 u64 flags         bit 0 big endian, bits 2:1 page size, bit 3 placement anywhere
//! 0x20 u64 res2, res3, res4
//! 0x38 u32 magic         "ARM\x64"
//! 0x3c u32 res5          offset of the PE header (EFI stub), else 0
//! ```

#![forbid(unsafe_code)]

use core::fmt;

/// Size of the header.
pub const HEADER_LEN: usize = 64;
/// The magic at 0x38.
pub const MAGIC: [u8; 4] = *b"ARM\x64";
/// text_offset to assume when image_size is 0 (kernels before 3.17), as the boot protocol says.
pub const LEGACY_TEXT_OFFSET: u64 = 0x80000;

/// The kernel's page size, from flags bits 2:1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    K4,
    K16,
    K64,
}

/// The parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub code0: u32,
    pub code1: u32,
    /// The field as written; see [`ImageHeader::effective_text_offset`].
    pub text_offset: u64,
    /// The field as written; 0 for kernels before 3.17.
    pub image_size: u64,
    pub flags: u64,
    /// Offset of the PE/COFF header for an EFI-stub kernel, else 0.
    pub pe_offset: u32,
}

impl ImageHeader {
    /// Flags bit 0: the kernel is big endian.
    pub const fn big_endian(&self) -> bool {
        self.flags & 1 != 0
    }
    /// Flags bits 2:1.
    pub const fn page_size(&self) -> PageSize {
        match (self.flags >> 1) & 3 {
            0 => PageSize::Unspecified,
            1 => PageSize::K4,
            2 => PageSize::K16,
            _ => PageSize::K64,
        }
    }
    /// Flags bit 3: the 2 MiB-aligned base may be anywhere in RAM. When clear, memory below the base
    /// is not usable by the kernel's linear map, so the kernel should sit as low in RAM as possible.
    pub const fn placement_anywhere(&self) -> bool {
        self.flags & (1 << 3) != 0
    }
    /// Whether the image carries an EFI stub (code0 starts with "MZ").
    pub const fn has_efi_stub(&self) -> bool {
        self.code0 & 0xffff == 0x5a4d
    }
    /// The kernel predates image_size (Linux < 3.17).
    pub const fn is_legacy(&self) -> bool {
        self.image_size == 0
    }
    /// text_offset to use: the field, or 0x80000 for legacy kernels whose field endianness is unknown.
    pub const fn effective_text_offset(&self) -> u64 {
        if self.is_legacy() {
            LEGACY_TEXT_OFFSET
        } else {
            self.text_offset
        }
    }
}

/// Why a file is not a loadable arm64 Image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the 64-byte header.
    TooShort { len: usize },
    /// A recognised other format: `what` names it, `hint` says what to pass instead.
    OtherFormat {
        what: &'static str,
        hint: &'static str,
    },
    /// No `ARM\x64` magic and no format recognised.
    BadMagic { found: [u8; 4] },
    /// Flags bit 0 set: el2visor starts guests little endian only.
    BigEndian,
    /// text_offset not 4 KiB aligned, or larger than the 2 MiB block it offsets into.
    BadTextOffset { text_offset: u64 },
    /// Reserved flag bits set: a newer boot protocol this code does not know.
    UnknownFlags { flags: u64 },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "guest kernel is {len} bytes, shorter than the 64-byte arm64 Image header: wrong file or truncated load"
            ),
            Self::OtherFormat { what, hint } => {
                write!(f, "guest kernel is {what}, not an arm64 Image: {hint}")
            }
            Self::BadMagic { found } => write!(
                f,
                "guest kernel has no arm64 Image magic \"ARM\\x64\" at offset 0x38 (found {:02x} {:02x} {:02x} {:02x}): pass arch/arm64/boot/Image",
                found[0], found[1], found[2], found[3]
            ),
            Self::BigEndian => write!(
                f,
                "guest kernel is big endian (Image flags bit 0): el2visor boots little-endian guests only"
            ),
            Self::BadTextOffset { text_offset } => write!(
                f,
                "guest kernel text_offset {text_offset:#x} is not a 4 KiB multiple below 2 MiB: corrupt Image header"
            ),
            Self::UnknownFlags { flags } => write!(
                f,
                "guest kernel Image flags {flags:#x} set reserved bits 63:4: a boot protocol newer than el2visor knows"
            ),
        }
    }
}

/// Recognise common non-Image formats by their leading bytes.
fn other_format(bytes: &[u8]) -> Option<ImageError> {
    let starts = |m: &[u8]| bytes.starts_with(m);
    let (what, hint) = if starts(&[0x1f, 0x8b]) {
        (
            "gzip-compressed",
            "decompress it (gunzip) and pass the arm64 Image inside",
        )
    } else if starts(b"\x7fELF") {
        (
            "an ELF file (vmlinux?)",
            "pass the flat arm64 Image (arch/arm64/boot/Image), not the ELF",
        )
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (
            "zstd-compressed",
            "decompress it (unzstd) and pass the arm64 Image inside",
        )
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        (
            "xz-compressed",
            "decompress it (unxz) and pass the arm64 Image inside",
        )
    } else if starts(&[0x04, 0x22, 0x4d, 0x18]) {
        (
            "lz4-compressed",
            "decompress it (unlz4) and pass the arm64 Image inside",
        )
    } else if starts(b"BZh") {
        (
            "bzip2-compressed",
            "decompress it (bunzip2) and pass the arm64 Image inside",
        )
    } else if starts(&[0x27, 0x05, 0x19, 0x56]) {
        ("a U-Boot uImage", "pass the arm64 Image it wraps (dumpimage -T kernel, or strip the 64-byte uImage header)")
    } else if starts(b"MZ") && bytes.get(4..8) == Some(b"zimg") {
        (
            "an EFI zboot compressed image",
            "pass the uncompressed arch/arm64/boot/Image (CONFIG_EFI_ZBOOT wraps it)",
        )
    } else if starts(b"EL2VBNDL") {
        (
            "an el2visor guest bundle",
            "pass the bundle as the initrd, not as the kernel",
        )
    } else {
        return None;
    };
    Some(ImageError::OtherFormat { what, hint })
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Parse and check the header at the start of `bytes` (the whole kernel file, or at least 64 bytes).
pub fn parse_header(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
    if bytes.len() >= HEADER_LEN && bytes[0x38..0x3c] == MAGIC {
        let h = ImageHeader {
            code0: le32(bytes, 0),
            code1: le32(bytes, 4),
            text_offset: le64(bytes, 8),
            image_size: le64(bytes, 0x10),
            flags: le64(bytes, 0x18),
            pe_offset: le32(bytes, 0x3c),
        };
        if h.is_legacy() {
            // Only text_offset's endianness is unspecified; the rest of the header is valid.
            return Ok(h);
        }
        if h.big_endian() {
            return Err(ImageError::BigEndian);
        }
        if h.flags >> 4 != 0 {
            return Err(ImageError::UnknownFlags { flags: h.flags });
        }
        if !h.text_offset.is_multiple_of(4096) || h.text_offset >= 2 << 20 {
            return Err(ImageError::BadTextOffset {
                text_offset: h.text_offset,
            });
        }
        return Ok(h);
    }
    if let Some(e) = other_format(bytes) {
        return Err(e);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ImageError::TooShort { len: bytes.len() });
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&bytes[0x38..0x3c]);
    Err(ImageError::BadMagic { found })
}

#[cfg(test)]
pub(crate) fn test_header(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    // `b #16` style branch; the value does not matter to the parser.
    h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[24..32].copy_from_slice(&flags.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(&MAGIC);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_a_modern_header() {
        let bytes = test_header(0, 0x2a0_0000, 0b1010);
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x2a0_0000);
        assert_eq!(h.page_size(), PageSize::K4);
        assert!(h.placement_anywhere());
        assert!(!h.big_endian() && !h.is_legacy() && !h.has_efi_stub());
        assert_eq!(h.effective_text_offset(), 0);
    }

    #[test]
    fn legacy_kernel_gets_the_default_text_offset() {
        let bytes = test_header(0x0008_0000_0000_0000, 0, 0);
        let h = parse_header(&bytes).unwrap();
        assert!(h.is_legacy());
        assert_eq!(h.effective_text_offset(), LEGACY_TEXT_OFFSET);
    }

    #[test]
    fn recognises_efi_stub_and_page_sizes() {
        let mut bytes = test_header(0, 0x100_0000, 0b110);
        bytes[0] = b'M';
        bytes[1] = b'Z';
        bytes[0x3c] = 0x40;
        let h = parse_header(&bytes).unwrap();
        assert!(h.has_efi_stub());
        assert_eq!(h.pe_offset, 0x40);
        assert_eq!(h.page_size(), PageSize::K64);
    }

    #[test]
    fn names_other_formats() {
        let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0];
        let e = parse_header(&gz).unwrap_err();
        assert!(matches!(
            e,
            ImageError::OtherFormat {
                what: "gzip-compressed",
                ..
            }
        ));
        assert!(e.to_string().contains("gunzip"));
        let mut elf = [0u8; 128];
        elf[..4].copy_from_slice(b"\x7fELF");
        let e = parse_header(&elf).unwrap_err().to_string();
        assert!(
            e.contains("ELF") && e.contains("arch/arm64/boot/Image"),
            "{e}"
        );
        let mut zboot = [0u8; 128];
        zboot[..2].copy_from_slice(b"MZ");
        zboot[4..8].copy_from_slice(b"zimg");
        assert!(parse_header(&zboot)
            .unwrap_err()
            .to_string()
            .contains("zboot"));
    }

    #[test]
    fn rejects_garbage_short_and_bad_fields() {
        assert_eq!(
            parse_header(&[0u8; 10]),
            Err(ImageError::TooShort { len: 10 })
        );
        let e = parse_header(&[0xaau8; 64]).unwrap_err();
        assert_eq!(e, ImageError::BadMagic { found: [0xaa; 4] });
        assert!(e.to_string().contains("0x38"));
        assert_eq!(
            parse_header(&test_header(0, 1 << 20, 1)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(
            parse_header(&test_header(0x123, 1 << 20, 0)),
            Err(ImageError::BadTextOffset { text_offset: 0x123 })
        );
        assert_eq!(
            parse_header(&test_header(0, 1 << 20, 1 << 4)),
            Err(ImageError::UnknownFlags { flags: 1 << 4 })
        );
    }
}
