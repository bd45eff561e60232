//! What can go wrong, as values: each error names the file involved and says what to do, and maps
//! to the tool's exit status.

use std::fmt;
use std::io;
use std::path::PathBuf;

use el2visor::vm::bundle::BundleError;
use el2visor::vm::image::ImageError;

use crate::cli::UsageError;

/// Exit status for a refused input or a failed read or write.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a wrong command line.
pub const EXIT_USAGE: u8 = 2;

/// Why an input was refused (no file name: the caller adds it).
#[derive(Debug, PartialEq, Eq)]
pub enum InputError {
    /// The kernel is not an arm64 Image; the message says what it is and what to pass instead.
    Kernel(ImageError),
    /// The initrd file is empty.
    EmptyInitrd,
    /// The initrd is itself a bundle: bundles do not nest.
    NestedBundle,
    /// The initrd parses as an arm64 Image: the two files were probably swapped.
    InitrdIsKernel,
    /// The DT properties file is not a flattened device tree.
    NotDtb { magic: [u8; 4] },
    /// The DTB header's totalsize disagrees with the file.
    BadDtbSize { totalsize: u64, file: u64 },
    /// A NUL byte in the command line (the format forbids it).
    CmdlineNul,
    /// Longer than arm64 Linux's COMMAND_LINE_SIZE allows.
    CmdlineTooLong { len: usize },
    /// A bundle (or its kernel entry) that el2visor would refuse.
    Bundle(BundleError),
    /// `build-vms`: a VM name el2visor would refuse.
    BadVmName,
    /// `build-vms`: a second VM of this name.
    DuplicateVmName,
    /// `build-vms`: RAM that is not a non-zero multiple of 2 MiB.
    BadVmMemory { memory: u64 },
    /// `build-vms`: more VMs than a bundle holds.
    TooManyVms { count: usize },
}

/// The longest command line arm64 Linux keeps (COMMAND_LINE_SIZE 2048, including the NUL).
pub const MAX_CMDLINE: usize = 2047;

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel(e) => write!(f, "{e}"),
            Self::EmptyInitrd => write!(f, "the initrd is empty: leave --initrd out if the guest needs none"),
            Self::NestedBundle => write!(
                f,
                "the initrd is already an el2visor guest bundle: pass the guest's own initrd (a cpio archive), bundles do not nest"
            ),
            Self::InitrdIsKernel => write!(
                f,
                "the initrd is an arm64 Image kernel: --kernel and --initrd look swapped"
            ),
            Self::NotDtb { magic } => write!(
                f,
                "not a device tree blob (magic {:02x}{:02x}{:02x}{:02x}, want d00dfeed): compile the .dts with `dtc -I dts -O dtb`",
                magic[0], magic[1], magic[2], magic[3]
            ),
            Self::BadDtbSize { totalsize, file } => write!(
                f,
                "device tree header says {totalsize} bytes but the file has {file}: truncated or not a DTB"
            ),
            Self::CmdlineNul => write!(f, "the command line contains a NUL byte"),
            Self::CmdlineTooLong { len } => write!(
                f,
                "the command line is {len} bytes; arm64 Linux keeps at most {MAX_CMDLINE} (COMMAND_LINE_SIZE)"
            ),
            Self::Bundle(e) => write!(f, "{e}"),
            Self::BadVmName => write!(
                f,
                "a VM name is 1 to {} characters of A-Z a-z 0-9 _ . -",
                el2visor::vm::bundle::vms::MAX_NAME
            ),
            Self::DuplicateVmName => write!(f, "another VM has this name"),
            Self::BadVmMemory { memory } => write!(f, "RAM {memory:#x} bytes is not a non-zero multiple of 2M"),
            Self::TooManyVms { count } => {
                write!(f, "{count} VMs; a bundle holds at most {}", el2visor::vm::bundle::vms::MAX_VMS)
            }
        }
    }
}

/// Everything the tool can fail with.
#[derive(Debug)]
pub enum ToolError {
    Usage(UsageError),
    /// `action` is "read" or "write".
    Io {
        action: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// `role` says which input ("kernel", "initrd", "DT properties", "command line", "bundle").
    Input {
        role: String,
        path: Option<PathBuf>,
        err: InputError,
    },
}

impl ToolError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Io { .. } | Self::Input { .. } => EXIT_FAILED,
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(u) => write!(f, "{u}"),
            Self::Io { action, path, err } => {
                write!(f, "cannot {action} {}: {err}", path.display())
            }
            Self::Input { role, path: Some(p), err } => {
                write!(f, "{role} {}: {err}", p.display())
            }
            Self::Input { role, path: None, err } => write!(f, "{role}: {err}"),
        }
    }
}

impl From<UsageError> for ToolError {
    fn from(u: UsageError) -> Self {
        Self::Usage(u)
    }
}
