//! The two operations on bytes, with no file access: check the inputs and build a bundle, and
//! describe a bundle the way el2visor will read it. Both use el2visor's own parser and Image header
//! rules, so the tool accepts exactly what the hypervisor accepts.

use std::fmt::Write as _;

use el2visor::vm::bundle::vms::{self, VmParts, VmsBundle};
use el2visor::vm::bundle::{self, AnyBundle, Bundle};
use el2visor::vm::image::{self, ImageHeader, PageSize};

use crate::error::{InputError, MAX_CMDLINE};

/// Which input an [`InputError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Kernel,
    Initrd,
    DtProps,
    Cmdline,
    /// A VM's name (`build-vms`).
    Name,
    /// A VM's RAM (`build-vms`).
    Memory,
    /// The bundle just built (only when the writer and the parser disagree: a bug).
    Output,
}

impl Role {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::DtProps => "DT properties",
            Self::Cmdline => "command line",
            Self::Name => "name",
            Self::Memory => "RAM",
            Self::Output => "built bundle (el2visor bug: the writer and the parser disagree)",
        }
    }
}

/// The contents of a bundle to build.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub dt_props: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// Check each input, then serialize. The result is parsed back before it is returned.
pub fn build_bytes(inputs: &Inputs<'_>) -> Result<Vec<u8>, (Role, InputError)> {
    check_inputs(inputs)?;
    let bytes = Bundle {
        kernel: inputs.kernel,
        initrd: inputs.initrd,
        dt_props: inputs.dt_props,
        cmdline: Some(inputs.cmdline),
    }
    .to_bytes();
    // A bundle el2visor cannot read back is a bug in the writer; say so rather than ship it.
    Bundle::parse(&bytes).map_err(|e| (Role::Output, InputError::Bundle(e)))?;
    Ok(bytes)
}

fn check_inputs(inputs: &Inputs<'_>) -> Result<(), (Role, InputError)> {
    image::parse_header(inputs.kernel).map_err(|e| (Role::Kernel, InputError::Kernel(e)))?;
    if let Some(initrd) = inputs.initrd {
        check_initrd(initrd).map_err(|e| (Role::Initrd, e))?;
    }
    if let Some(dtb) = inputs.dt_props {
        check_dtb(dtb).map_err(|e| (Role::DtProps, e))?;
    }
    if inputs.cmdline.contains('\0') {
        return Err((Role::Cmdline, InputError::CmdlineNul));
    }
    if inputs.cmdline.len() > MAX_CMDLINE {
        return Err((
            Role::Cmdline,
            InputError::CmdlineTooLong {
                len: inputs.cmdline.len(),
            },
        ));
    }
    Ok(())
}

/// One VM of a several-VMs bundle to build (it gets a vpl011: its console).
#[derive(Clone, Copy, Debug, Default)]
pub struct VmInputs<'a> {
    pub name: &'a str,
    pub cpus: u32,
    pub memory: u64,
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// Check each VM's inputs, then serialize a version-2 bundle, parsed back before it is returned.
/// An error says which VM (by index) and which of its inputs.
pub fn build_vms_bytes(list: &[VmInputs<'_>]) -> Result<Vec<u8>, (Option<usize>, Role, InputError)> {
    if list.len() > vms::MAX_VMS {
        return Err((None, Role::Output, InputError::TooManyVms { count: list.len() }));
    }
    for (i, v) in list.iter().enumerate() {
        let fail = |role, e| Err((Some(i), role, e));
        if !vms::valid_name(v.name) {
            return fail(Role::Name, InputError::BadVmName);
        }
        if list[..i].iter().any(|o| o.name == v.name) {
            return fail(Role::Name, InputError::DuplicateVmName);
        }
        if v.memory == 0 || !v.memory.is_multiple_of(vms::MEM_GRANULE) {
            return fail(Role::Memory, InputError::BadVmMemory { memory: v.memory });
        }
        // The one-VM checks, on this VM's kernel, initrd and command line.
        let one = Inputs { kernel: v.kernel, initrd: v.initrd, dt_props: None, cmdline: v.cmdline };
        if let Err((role, e)) = check_inputs(&one) {
            return fail(role, e);
        }
    }
    let parts: Vec<VmParts<'_>> = list
        .iter()
        .map(|v| VmParts {
            name: v.name,
            cpus: v.cpus,
            memory: v.memory,
            vpl011: true,
            kernel: v.kernel,
            initrd: v.initrd,
            partial_dt: None,
            cmdline: v.cmdline,
        })
        .collect();
    let bytes = vms::build(&parts);
    VmsBundle::parse(&bytes).map_err(|e| (None, Role::Output, InputError::Bundle(e)))?;
    Ok(bytes)
}

fn check_initrd(initrd: &[u8]) -> Result<(), InputError> {
    if initrd.is_empty() {
        return Err(InputError::EmptyInitrd);
    }
    if bundle::is_bundle(initrd) {
        return Err(InputError::NestedBundle);
    }
    if image::parse_header(initrd).is_ok() {
        return Err(InputError::InitrdIsKernel);
    }
    Ok(())
}

/// The FDT header's magic and totalsize (big endian).
fn check_dtb(dtb: &[u8]) -> Result<(), InputError> {
    let mut magic = [0u8; 4];
    let n = dtb.len().min(4);
    magic[..n].copy_from_slice(&dtb[..n]);
    if magic != [0xd0, 0x0d, 0xfe, 0xed] || dtb.len() < 8 {
        return Err(InputError::NotDtb { magic });
    }
    let totalsize = u64::from(u32::from_be_bytes([dtb[4], dtb[5], dtb[6], dtb[7]]));
    if totalsize > dtb.len() as u64 || totalsize < 40 {
        return Err(InputError::BadDtbSize {
            totalsize,
            file: dtb.len() as u64,
        });
    }
    Ok(())
}

/// One line per fact about the kernel's Image header.
fn describe_header(h: &ImageHeader) -> String {
    let page = match h.page_size() {
        PageSize::Unspecified => "page size unspecified",
        PageSize::K4 => "4K pages",
        PageSize::K16 => "16K pages",
        PageSize::K64 => "64K pages",
    };
    let mut s = format!(
        "arm64 Image, text_offset {:#x}, image_size {:#x}, flags {:#x} ({page}",
        h.effective_text_offset(),
        h.image_size,
        h.flags
    );
    if h.placement_anywhere() {
        s.push_str(", placement anywhere");
    }
    if h.has_efi_stub() {
        s.push_str(", EFI stub");
    }
    if h.is_legacy() {
        s.push_str(", pre-3.17 header");
    }
    s.push(')');
    s
}

/// What an initrd payload looks like, from its first bytes.
fn initrd_kind(data: &[u8]) -> &'static str {
    let starts = |m: &[u8]| data.starts_with(m);
    if starts(&[0x1f, 0x8b]) {
        "gzip"
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if starts(&[0x04, 0x22, 0x4d, 0x18]) || starts(&[0x02, 0x21, 0x4c, 0x18]) {
        "lz4"
    } else if starts(b"070701") || starts(b"070702") {
        "cpio newc"
    } else {
        "unrecognised format"
    }
}

/// Parse a bundle exactly as el2visor does and list its entries. Also refuses a bundle whose
/// kernel entry is not a valid arm64 Image, since el2visor would refuse to boot it.
pub fn describe(bytes: &[u8]) -> Result<String, InputError> {
    let b = match bundle::parse_any(bytes).map_err(InputError::Bundle)? {
        AnyBundle::One(b) => b,
        AnyBundle::Several(b) => return describe_vms(bytes, &b),
    };
    let header = image::parse_header(b.kernel).map_err(InputError::Kernel)?;
    let base = bytes.as_ptr() as usize;
    let offset = |p: &[u8]| p.as_ptr() as usize - base;
    let entries = 1 + usize::from(b.initrd.is_some())
        + usize::from(b.dt_props.is_some())
        + usize::from(b.cmdline.is_some());
    let total = u64::from_le_bytes(bytes[16..24].try_into().expect("parse checked the header length"));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "el2visor guest bundle, version {}, {entries} entries, {total} bytes, checksum ok",
        bundle::VERSION
    );
    let mut line = |name: &str, data: &[u8], what: String| {
        let _ = writeln!(
            out,
            "  {name:<8} offset {:#010x}  {:>10} bytes  {what}",
            offset(data),
            data.len()
        );
    };
    line("kernel", b.kernel, describe_header(&header));
    if let Some(i) = b.initrd {
        line("initrd", i, initrd_kind(i).to_string());
    }
    if let Some(d) = b.dt_props {
        line("dt-props", d, "device tree blob".to_string());
    }
    if let Some(c) = b.cmdline {
        line("cmdline", c.as_bytes(), format!("{c:?}"));
    }
    let padding = bytes.len() as u64 - total;
    if padding > 0 {
        let _ = writeln!(out, "  ({padding} bytes after the bundle: loader padding, ignored)");
    }
    Ok(out)
}

/// The listing of a several-VMs bundle: each VM, then its entries. Refuses a VM whose kernel is
/// not a valid arm64 Image.
fn describe_vms(bytes: &[u8], b: &VmsBundle<'_>) -> Result<String, InputError> {
    let total = b.image.len() as u64;
    let entries: usize = b
        .vms
        .iter()
        .map(|v| 2 + usize::from(v.initrd.is_some()) + usize::from(v.partial_dt.is_some()) + usize::from(v.cmdline.is_some()))
        .sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "el2visor guest bundle, version {}, {} VMs, {entries} entries, {total} bytes, checksum ok",
        bundle::VERSION_VMS,
        b.vms.len()
    );
    for v in &b.vms {
        let kernel = b.bytes(v.kernel);
        let header = image::parse_header(kernel).map_err(InputError::Kernel)?;
        let _ = writeln!(
            out,
            "  VM {}: {} vCPUs, {} MiB RAM{}",
            v.name,
            v.cpus,
            v.memory >> 20,
            if v.vpl011 { ", vpl011" } else { "" }
        );
        let mut line = |name: &str, s: vms::Span, what: String| {
            let _ = writeln!(out, "    {name:<8} offset {:#010x}  {:>10} bytes  {what}", s.offset, s.length);
        };
        line("kernel", v.kernel, describe_header(&header));
        if let Some(i) = v.initrd {
            line("initrd", i, initrd_kind(b.bytes(i)).to_string());
        }
        if let Some(d) = v.partial_dt {
            line("dt", d, "partial device tree".to_string());
        }
        if let Some(c) = v.cmdline {
            let at = c.as_ptr() as usize - b.image.as_ptr() as usize;
            line("cmdline", vms::Span { offset: at as u64, length: c.len() as u64 }, format!("{c:?}"));
        }
    }
    let padding = bytes.len() as u64 - total;
    if padding > 0 {
        let _ = writeln!(out, "  ({padding} bytes after the bundle: loader padding, ignored)");
    }
    Ok(out)
}

#[cfg(test)]
#[path = "bundle_ops_tests.rs"]
mod tests;
