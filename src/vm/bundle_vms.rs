//! Version 2 of the guest bundle: several VMs in one file, for a board whose firmware loads one
//! initrd (a Raspberry Pi 4). el2visor boots them as dom0less domains (docs/guest-bundle.md).
//!
//! # Format, version 2
//!
//! The header and the entry table are version 1's, with `version = 2` and 1..=64 entries. Entry
//! kinds: 1 kernel, 2 initrd, 4 command line, 5 VM descriptor, 6 partial device tree (Xen's
//! `multiboot,device-tree`: a DTB whose `/passthrough` node assigns host devices); kind 3 (device
//! tree properties) is version 1's only. Every payload is on a 4 KiB boundary, inside the total
//! size, and overlaps neither another payload nor the header.
//!
//! The table is a sequence of groups, one per VM: a VM descriptor entry, then that VM's kernel
//! (exactly one), initrd, partial device tree and command line (at most one each), up to the next
//! descriptor. The first entry is a descriptor; 1..=8 VMs; names unique. A descriptor's payload is
//! 48 bytes:
//!
//! ```text
//! 0x00  [u8; 32]  name: 1..=31 bytes of [A-Za-z0-9_.-], NUL padded to 32
//! 0x20  u32       vCPUs, >= 1
//! 0x24  u32       flags: bit 0 vpl011 (an emulated PL011 at Xen's address); other bits 0
//! 0x28  u64       RAM in bytes, a non-zero multiple of 2 MiB
//! ```
//!
//! The builder writes the groups in order, each descriptor before its VM's payloads.

#![forbid(unsafe_code)]

use alloc::string::ToString;
use alloc::vec::Vec;

use super::{check_entries, cmdline_text, le32, le64, write, BundleError, EntryKind, VERSION_VMS};

/// Most VMs a version-2 bundle may hold: el2visor's VM table's slots.
pub use crate::vm::MAX_VMS;
/// Most entries a version-2 bundle may have (a descriptor and four payloads per VM).
pub const MAX_ENTRIES: u32 = 64;
/// A VM descriptor payload's length.
pub const DESC_LEN: usize = 48;
/// The longest VM name.
pub const MAX_NAME: usize = 31;
/// VM RAM granule.
pub const MEM_GRANULE: u64 = 2 << 20;
/// Descriptor flag: the VM gets a vpl011.
pub const FLAG_VPL011: u32 = 1;

/// Where a payload lies, from the start of the bundle: the bundle's load address plus `offset` is
/// its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub length: u64,
}

/// One VM of a version-2 bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleVm<'a> {
    pub name: &'a str,
    pub cpus: u32,
    /// RAM in bytes (a multiple of 2 MiB).
    pub memory: u64,
    pub vpl011: bool,
    pub kernel: Span,
    pub initrd: Option<Span>,
    pub partial_dt: Option<Span>,
    pub cmdline: Option<&'a str>,
}

/// A parsed version-2 bundle: its bytes (without loader padding) and its VMs in table order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmsBundle<'a> {
    pub image: &'a [u8],
    pub vms: Vec<BundleVm<'a>>,
}

/// Whether `name` is a valid VM name (it becomes a log prefix and a DT node name).
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn descriptor(vm: u32, p: &[u8]) -> Result<(&str, u32, u64, bool), BundleError> {
    let bad = |why| BundleError::BadVm { vm, why };
    if p.len() != DESC_LEN {
        return Err(bad("its payload is not 48 bytes"));
    }
    let len = p[..32].iter().position(|&b| b == 0).ok_or(bad("its name is not NUL terminated within 32 bytes"))?;
    if p[len..32].iter().any(|&b| b != 0) {
        return Err(bad("bytes after its name's NUL are not zero"));
    }
    let name = core::str::from_utf8(&p[..len]).map_err(|_| bad("its name is not UTF-8"))?;
    if !valid_name(name) {
        return Err(bad("its name is empty or has characters other than A-Z a-z 0-9 _ . -"));
    }
    let cpus = le32(p, 0x20);
    if cpus == 0 {
        return Err(bad("0 vCPUs"));
    }
    let flags = le32(p, 0x24);
    if flags & !FLAG_VPL011 != 0 {
        return Err(bad("unknown flags (written by a newer tool?)"));
    }
    let memory = le64(p, 0x28);
    if memory == 0 || !memory.is_multiple_of(MEM_GRANULE) {
        return Err(bad("its RAM is not a non-zero multiple of 2 MiB"));
    }
    Ok((name, cpus, memory, flags & FLAG_VPL011 != 0))
}

impl<'a> VmsBundle<'a> {
    /// Parse and fully check a version-2 bundle. `bytes` may be longer (loader padding).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let (image, entries) = check_entries(bytes, VERSION_VMS, MAX_ENTRIES)?;
        if let Some(first) = entries.first().filter(|e| e.kind != EntryKind::Vm) {
            return Err(BundleError::FirstNotVm { kind: first.kind });
        }
        let count = entries.iter().filter(|e| e.kind == EntryKind::Vm).count();
        if count > MAX_VMS {
            return Err(BundleError::TooManyVms { count: count as u32 });
        }
        let mut vms: Vec<BundleVm<'a>> = Vec::with_capacity(count);
        // The VM being read, with its kernel not yet known.
        let mut kernel_seen = true;
        for e in &entries {
            let payload = &image[e.offset as usize..e.end as usize];
            let span = Span { offset: e.offset, length: e.end - e.offset };
            if e.kind == EntryKind::Vm {
                if let Some(prev) = vms.last().filter(|_| !kernel_seen) {
                    return Err(BundleError::VmNoKernel { vm: prev.name.to_string() });
                }
                let (name, cpus, memory, vpl011) = descriptor(vms.len() as u32, payload)?;
                if vms.iter().any(|v| v.name == name) {
                    return Err(BundleError::DuplicateName { name: name.to_string() });
                }
                let empty = Span { offset: e.offset, length: 0 };
                vms.push(BundleVm { name, cpus, memory, vpl011, kernel: empty, initrd: None, partial_dt: None, cmdline: None });
                kernel_seen = false;
                continue;
            }
            let vm = vms.last_mut().expect("the first entry is a descriptor");
            let dup = |kind| BundleError::VmDuplicate { vm: vm.name.to_string(), kind };
            match e.kind {
                EntryKind::Kernel if kernel_seen => return Err(dup(e.kind)),
                EntryKind::Kernel => {
                    vm.kernel = span;
                    kernel_seen = true;
                }
                EntryKind::Initrd if vm.initrd.is_some() => return Err(dup(e.kind)),
                EntryKind::Initrd => vm.initrd = Some(span),
                EntryKind::PartialDt if vm.partial_dt.is_some() => return Err(dup(e.kind)),
                EntryKind::PartialDt => vm.partial_dt = Some(span),
                EntryKind::Cmdline if vm.cmdline.is_some() => return Err(dup(e.kind)),
                EntryKind::Cmdline => vm.cmdline = Some(cmdline_text(payload)?),
                EntryKind::Vm | EntryKind::DtProps => unreachable!("handled above / refused by check_entries"),
            }
        }
        if let Some(last) = vms.last().filter(|_| !kernel_seen) {
            return Err(BundleError::VmNoKernel { vm: last.name.to_string() });
        }
        Ok(Self { image, vms })
    }

    /// The bytes of a payload of this bundle.
    pub fn bytes(&self, s: Span) -> &'a [u8] {
        &self.image[s.offset as usize..(s.offset + s.length) as usize]
    }
}

/// One VM to put in a version-2 bundle.
#[derive(Clone, Copy, Debug, Default)]
pub struct VmParts<'a> {
    pub name: &'a str,
    pub cpus: u32,
    pub memory: u64,
    pub vpl011: bool,
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub partial_dt: Option<&'a [u8]>,
    /// Left out when empty.
    pub cmdline: &'a str,
}

/// A VM descriptor payload. The name is cut at 32 bytes; the parser refuses what is invalid.
pub fn descriptor_bytes(name: &str, cpus: u32, memory: u64, vpl011: bool) -> [u8; DESC_LEN] {
    let mut d = [0u8; DESC_LEN];
    let n = name.len().min(32);
    d[..n].copy_from_slice(&name.as_bytes()[..n]);
    d[0x20..0x24].copy_from_slice(&cpus.to_le_bytes());
    d[0x24..0x28].copy_from_slice(&(if vpl011 { FLAG_VPL011 } else { 0 }).to_le_bytes());
    d[0x28..0x30].copy_from_slice(&memory.to_le_bytes());
    d
}

/// Serialize `vms` as a version-2 bundle (check it with [`VmsBundle::parse`]).
pub fn build(vms: &[VmParts<'_>]) -> Vec<u8> {
    let descs: Vec<[u8; DESC_LEN]> = vms.iter().map(|v| descriptor_bytes(v.name, v.cpus, v.memory, v.vpl011)).collect();
    let mut parts: Vec<(EntryKind, &[u8])> = Vec::new();
    for (v, d) in vms.iter().zip(&descs) {
        parts.push((EntryKind::Vm, d));
        parts.push((EntryKind::Kernel, v.kernel));
        if let Some(i) = v.initrd {
            parts.push((EntryKind::Initrd, i));
        }
        if let Some(p) = v.partial_dt {
            parts.push((EntryKind::PartialDt, p));
        }
        if !v.cmdline.is_empty() {
            parts.push((EntryKind::Cmdline, v.cmdline.as_bytes()));
        }
    }
    write(VERSION_VMS, &parts)
}

#[cfg(test)]
#[path = "bundle_vms_tests.rs"]
mod tests;
