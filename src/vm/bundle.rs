//! The el2visor guest bundle: one file carrying a guest's kernel, optional initrd, optional device-tree
//! properties and command line, for boards whose firmware loads a kernel and a single initrd (the
//! Raspberry Pi's `initramfs FILE followkernel`). el2visor finds it through
//! `/chosen/linux,initrd-start/-end`; QEMU `-initrd` works the same way. Multiboot modules, when
//! present, win.
//!
//! # Format, version 1
//!
//! All integers little endian. Offsets are from the start of the bundle.
//!
//! ```text
//! 0x00  [u8; 8]  magic "EL2VBNDL"
//! 0x08  u32      version = 1
//! 0x0c  u32      entry count n (1..=16)
//! 0x10  u64      total size of the bundle in bytes (the file may carry padding after it)
//! 0x18  u32      CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [0, total size), computed with
//!                this field read as 0
//! 0x1c  u32      reserved, 0
//! 0x20  n entries of 24 bytes:
//!         u32 kind   1 kernel (arm64 Image), 2 initrd, 3 device-tree properties (a DTB whose
//!                    properties are applied to the guest DT at the same paths), 4 command line
//!                    (UTF-8, no NUL)
//!         u32 reserved, 0
//!         u64 offset  multiple of 4096
//!         u64 length
//! ...   payloads, each starting on a 4 KiB boundary, zero padding between them
//! ```
//!
//! Exactly one kernel entry; at most one of each other kind; payloads lie inside the total size and
//! do not overlap each other or the header. The builder writes payloads in entry order, kernel
//! first, and pads only to reach the next 4 KiB boundary.
//!
//! Version 2 holds several VMs with the same header and entry table: see [`vms`]. [`parse_any`]
//! reads either.

#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

#[path = "bundle_vms.rs"]
pub mod vms;

/// The magic at offset 0.
pub const MAGIC: [u8; 8] = *b"EL2VBNDL";
/// The one-VM version.
pub const VERSION: u32 = 1;
/// The several-VMs version ([`vms`]).
pub const VERSION_VMS: u32 = 2;
/// Payload alignment.
pub const ALIGN: u64 = 4096;
/// Most entries a bundle may have.
pub const MAX_ENTRIES: u32 = 16;
pub(crate) const HEADER_LEN: usize = 0x20;
pub(crate) const ENTRY_LEN: usize = 24;
pub(crate) const CRC_OFFSET: usize = 0x18;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Kernel = 1,
    Initrd = 2,
    DtProps = 3,
    Cmdline = 4,
    /// Version 2 only: a VM descriptor, starting that VM's group of entries.
    Vm = 5,
    /// Version 2 only: a partial device tree (Xen's `multiboot,device-tree`: `/passthrough`).
    PartialDt = 6,
}

impl EntryKind {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Kernel,
            2 => Self::Initrd,
            3 => Self::DtProps,
            4 => Self::Cmdline,
            5 => Self::Vm,
            6 => Self::PartialDt,
            _ => return None,
        })
    }
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::DtProps => "device-tree properties",
            Self::Cmdline => "command line",
            Self::Vm => "VM descriptor",
            Self::PartialDt => "partial device tree",
        }
    }
}

/// A parsed bundle, borrowing its payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bundle<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub dt_props: Option<&'a [u8]>,
    pub cmdline: Option<&'a str>,
}

/// Why bytes are not a valid bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleError {
    BadMagic,
    UnsupportedVersion {
        version: u32,
    },
    BadEntryCount {
        count: u32,
    },
    /// The bundle claims `need` bytes but only `have` are there.
    Truncated {
        need: u64,
        have: u64,
    },
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    UnknownKind {
        index: u32,
        kind: u32,
    },
    Duplicate {
        kind: EntryKind,
    },
    NoKernel,
    Misaligned {
        kind: EntryKind,
        offset: u64,
    },
    OutOfBounds {
        kind: EntryKind,
        offset: u64,
        length: u64,
        total: u64,
    },
    Overlap {
        a: EntryKind,
        b: EntryKind,
        bytes: u64,
    },
    BadCmdline,
    NonZeroReserved,
    /// A kind this version does not have (a partial device tree in version 1, say).
    KindNotInVersion {
        kind: EntryKind,
        version: u32,
    },
    /// A version-2 bundle where one VM's (version 1) was wanted.
    SeveralVms,
    /// Version 2: the first entry is not a VM descriptor.
    FirstNotVm {
        kind: EntryKind,
    },
    /// Version 2: VM descriptor number `vm` (from 0) is malformed.
    BadVm {
        vm: u32,
        why: &'static str,
    },
    TooManyVms {
        count: u32,
    },
    /// Version 2: two VMs share a name.
    DuplicateName {
        name: String,
    },
    /// Version 2: VM `vm` has two entries of `kind`.
    VmDuplicate {
        vm: String,
        kind: EntryKind,
    },
    /// Version 2: VM `vm` has no kernel.
    VmNoKernel {
        vm: String,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not an el2visor guest bundle (no \"EL2VBNDL\" magic)"),
            Self::UnsupportedVersion { version } => {
                write!(f, "guest bundle version {version}; this el2visor reads versions {VERSION} and {VERSION_VMS}: rebuild it with `make bundle`")
            }
            Self::BadEntryCount { count } => {
                write!(f, "guest bundle has {count} entries; 1 to {MAX_ENTRIES} allowed")
            }
            Self::Truncated { need, have } => write!(
                f,
                "guest bundle truncated: needs {need:#x} bytes, only {have:#x} were loaded (check the initrd size the firmware reports)"
            ),
            Self::BadChecksum { stored, computed } => write!(
                f,
                "guest bundle checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt or was loaded partially"
            ),
            Self::UnknownKind { index, kind } => write!(f, "guest bundle entry {index} has unknown kind {kind}"),
            Self::Duplicate { kind } => write!(f, "guest bundle has more than one {} entry", kind.name()),
            Self::NoKernel => write!(f, "guest bundle has no kernel entry"),
            Self::Misaligned { kind, offset } => {
                write!(f, "guest bundle {} entry at offset {offset:#x} is not 4 KiB aligned", kind.name())
            }
            Self::OutOfBounds { kind, offset, length, total } => write!(
                f,
                "guest bundle {} entry [{offset:#x}, +{length:#x}) runs past the bundle's {total:#x} bytes or into its header",
                kind.name()
            ),
            Self::Overlap { a, b, bytes } => {
                write!(f, "guest bundle {} entry overlaps the {} entry by {bytes:#x} bytes", a.name(), b.name())
            }
            Self::BadCmdline => write!(f, "guest bundle command line is not UTF-8 text without NUL"),
            Self::NonZeroReserved => write!(f, "guest bundle has non-zero reserved fields: written by a newer tool?"),
            Self::KindNotInVersion { kind, version } => {
                write!(f, "guest bundle version {version} has no {} entries", kind.name())
            }
            Self::SeveralVms => write!(f, "this is a several-VMs guest bundle (version {VERSION_VMS}), not one VM's (version {VERSION})"),
            Self::FirstNotVm { kind } => write!(
                f,
                "guest bundle version {VERSION_VMS} starts with a {} entry: its first entry must be a VM descriptor",
                kind.name()
            ),
            Self::BadVm { vm, why } => write!(f, "guest bundle VM descriptor {vm}: {why}"),
            Self::TooManyVms { count } => write!(f, "guest bundle has {count} VMs; at most {} allowed", vms::MAX_VMS),
            Self::DuplicateName { name } => write!(f, "guest bundle has two VMs named {name:?}"),
            Self::VmDuplicate { vm, kind } => write!(f, "guest bundle VM {vm} has more than one {} entry", kind.name()),
            Self::VmNoKernel { vm } => write!(f, "guest bundle VM {vm} has no kernel entry"),
        }
    }
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-32 of a bundle image, with the checksum field taken as zero.
fn bundle_crc(bytes: &[u8]) -> u32 {
    let mut crc = crc_update(!0, &bytes[..CRC_OFFSET]);
    crc = crc_update(crc, &[0; 4]);
    !crc_update(crc, &bytes[CRC_OFFSET + 4..])
}

pub(crate) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | (u64::from(le32(b, o + 4)) << 32)
}

/// Whether `bytes` start like a bundle (to tell a bundle initrd from a plain one).
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// One checked entry of the table: its kind and payload `[offset, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub kind: EntryKind,
    pub offset: u64,
    pub end: u64,
}

/// Check the header (magic, `version`, entry count up to `max_entries`, total size, CRC, reserved
/// fields) and every entry (a kind of this version, alignment, bounds, no overlap). Returns the
/// bundle's bytes without loader padding, and its entries in table order.
pub(crate) fn check_entries(bytes: &[u8], version: u32, max_entries: u32) -> Result<(&[u8], Vec<RawEntry>), BundleError> {
    let have = bytes.len() as u64;
    if bytes.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(bytes) || is_bundle(bytes) {
            BundleError::Truncated {
                need: HEADER_LEN as u64,
                have,
            }
        } else {
            BundleError::BadMagic
        });
    }
    if !is_bundle(bytes) {
        return Err(BundleError::BadMagic);
    }
    let found = le32(bytes, 8);
    if found != version {
        return Err(match (found, version) {
            (VERSION_VMS, VERSION) => BundleError::SeveralVms,
            _ => BundleError::UnsupportedVersion { version: found },
        });
    }
    let count = le32(bytes, 12);
    if count == 0 || count > max_entries {
        return Err(BundleError::BadEntryCount { count });
    }
    let total = le64(bytes, 16);
    let table_end = (HEADER_LEN + count as usize * ENTRY_LEN) as u64;
    if total < table_end {
        return Err(BundleError::Truncated {
            need: table_end,
            have: total,
        });
    }
    if total > have {
        return Err(BundleError::Truncated { need: total, have });
    }
    let image = &bytes[..total as usize];
    let stored = le32(image, CRC_OFFSET);
    let computed = bundle_crc(image);
    if stored != computed {
        return Err(BundleError::BadChecksum { stored, computed });
    }
    if le32(image, 0x1c) != 0 {
        return Err(BundleError::NonZeroReserved);
    }

    let mut seen: Vec<RawEntry> = Vec::with_capacity(count as usize);
    for index in 0..count {
        let e = HEADER_LEN + index as usize * ENTRY_LEN;
        let raw_kind = le32(image, e);
        let kind = EntryKind::from_u32(raw_kind).ok_or(BundleError::UnknownKind {
            index,
            kind: raw_kind,
        })?;
        let allowed = match version {
            VERSION => !matches!(kind, EntryKind::Vm | EntryKind::PartialDt),
            _ => kind != EntryKind::DtProps,
        };
        if !allowed {
            return Err(BundleError::KindNotInVersion { kind, version });
        }
        if le32(image, e + 4) != 0 {
            return Err(BundleError::NonZeroReserved);
        }
        let (offset, length) = (le64(image, e + 8), le64(image, e + 16));
        if offset % ALIGN != 0 {
            return Err(BundleError::Misaligned { kind, offset });
        }
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= total && offset >= table_end);
        let Some(end) = end else {
            return Err(BundleError::OutOfBounds {
                kind,
                offset,
                length,
                total,
            });
        };
        for o in &seen {
            if version == VERSION && o.kind == kind {
                return Err(BundleError::Duplicate { kind });
            }
            let bytes = end.min(o.end).saturating_sub(offset.max(o.offset));
            if bytes > 0 {
                return Err(BundleError::Overlap {
                    a: o.kind,
                    b: kind,
                    bytes,
                });
            }
        }
        seen.push(RawEntry { kind, offset, end });
    }
    Ok((image, seen))
}

/// A command-line payload: UTF-8 without NUL.
pub(crate) fn cmdline_text(payload: &[u8]) -> Result<&str, BundleError> {
    let s = core::str::from_utf8(payload).map_err(|_| BundleError::BadCmdline)?;
    if s.contains('\0') {
        return Err(BundleError::BadCmdline);
    }
    Ok(s)
}

/// Either version, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyBundle<'a> {
    One(Bundle<'a>),
    Several(vms::VmsBundle<'a>),
}

/// Parse a bundle of either version (the version field says which).
pub fn parse_any(bytes: &[u8]) -> Result<AnyBundle<'_>, BundleError> {
    match version(bytes) {
        Some(VERSION_VMS) => vms::VmsBundle::parse(bytes).map(AnyBundle::Several),
        _ => Bundle::parse(bytes).map(AnyBundle::One),
    }
}

/// The version field of something that starts like a bundle.
pub fn version(bytes: &[u8]) -> Option<u32> {
    (is_bundle(bytes) && bytes.len() >= 12).then(|| le32(bytes, 8))
}

impl<'a> Bundle<'a> {
    /// Parse and fully check a version-1 bundle. `bytes` may be longer than the bundle (loader
    /// padding).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let (image, entries) = check_entries(bytes, VERSION, MAX_ENTRIES)?;
        let mut out = Bundle::default();
        let mut kernel = None;
        for e in entries {
            let payload = &image[e.offset as usize..e.end as usize];
            match e.kind {
                EntryKind::Kernel => kernel = Some(payload),
                EntryKind::Initrd => out.initrd = Some(payload),
                EntryKind::DtProps => out.dt_props = Some(payload),
                EntryKind::Cmdline => out.cmdline = Some(cmdline_text(payload)?),
                EntryKind::Vm | EntryKind::PartialDt => unreachable!("check_entries refuses them in version 1"),
            }
        }
        out.kernel = kernel.ok_or(BundleError::NoKernel)?;
        Ok(out)
    }

    /// Serialize: header, entry table, then each payload on a 4 KiB boundary. An empty command line
    /// is left out.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut parts: Vec<(EntryKind, &[u8])> = alloc::vec![(EntryKind::Kernel, self.kernel)];
        if let Some(i) = self.initrd {
            parts.push((EntryKind::Initrd, i));
        }
        if let Some(d) = self.dt_props {
            parts.push((EntryKind::DtProps, d));
        }
        if let Some(c) = self.cmdline.filter(|c| !c.is_empty()) {
            parts.push((EntryKind::Cmdline, c.as_bytes()));
        }
        write(VERSION, &parts)
    }
}

/// Serialize `parts` as a bundle of `version`: header, entry table, then each payload on a 4 KiB
/// boundary, in order, padded only to the next boundary.
pub(crate) fn write(version: u32, parts: &[(EntryKind, &[u8])]) -> Vec<u8> {
    let align = |v: u64| (v + ALIGN - 1) & !(ALIGN - 1);
    let mut offset = align((HEADER_LEN + parts.len() * ENTRY_LEN) as u64);
    let mut table = Vec::new();
    for (kind, data) in parts {
        table.push((*kind, offset, data.len() as u64));
        offset = align(offset + data.len() as u64);
    }
    let total = table.last().map_or(offset, |&(_, o, l)| o + l);

    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    for &(kind, o, l) in &table {
        out.extend_from_slice(&(kind as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&l.to_le_bytes());
    }
    for ((_, o, _), (_, data)) in table.iter().zip(parts) {
        out.resize(*o as usize, 0);
        out.extend_from_slice(data);
    }
    let crc = bundle_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Build a bundle from a kernel, an optional initrd and a command line.
pub fn build(kernel: &[u8], initrd: Option<&[u8]>, cmdline: &str) -> Vec<u8> {
    Bundle {
        kernel,
        initrd,
        dt_props: None,
        cmdline: Some(cmdline),
    }
    .to_bytes()
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
