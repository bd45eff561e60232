//! The file side of each command: read the inputs, call the pure operations in
//! [`crate::bundle_ops`], write the output (atomically: a failed build leaves no partial bundle).

use std::fs;
use std::path::{Path, PathBuf};

use crate::bundle_ops::{self, Inputs};
use crate::cli::{BuildArgs, Command, USAGE};
use crate::error::ToolError;

fn read(path: &Path) -> Result<Vec<u8>, ToolError> {
    fs::read(path).map_err(|err| ToolError::Io {
        action: "read",
        path: path.to_owned(),
        err,
    })
}

/// Write `bytes` next to `path` under a temporary name, then rename it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let io_err = |err| ToolError::Io {
        action: "write",
        path: path.to_owned(),
        err,
    };
    if let Err(err) = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(err));
    }
    Ok(())
}

/// `build`: returns the summary to print (the same listing `check` gives).
pub fn build(args: &BuildArgs) -> Result<String, ToolError> {
    let kernel = read(&args.kernel)?;
    let initrd = args.initrd.as_deref().map(read).transpose()?;
    let dt_props = args.dt_props.as_deref().map(read).transpose()?;
    let inputs = Inputs {
        kernel: &kernel,
        initrd: initrd.as_deref(),
        dt_props: dt_props.as_deref(),
        cmdline: &args.cmdline,
    };
    let bytes = bundle_ops::build_bytes(&inputs).map_err(|(role, err)| {
        let path = match role {
            bundle_ops::Role::Kernel => Some(args.kernel.clone()),
            bundle_ops::Role::Initrd => args.initrd.clone(),
            bundle_ops::Role::DtProps => args.dt_props.clone(),
            bundle_ops::Role::Cmdline | bundle_ops::Role::Output => None,
        };
        ToolError::Input {
            role: role.name(),
            path,
            err,
        }
    })?;
    write_atomically(&args.output, &bytes)?;
    let listing = bundle_ops::describe(&bytes).map_err(|err| ToolError::Input {
        role: bundle_ops::Role::Output.name(),
        path: Some(args.output.clone()),
        err,
    })?;
    Ok(format!("wrote {}: {listing}", args.output.display()))
}

/// `check`: returns the listing to print.
pub fn check(file: &Path) -> Result<String, ToolError> {
    let bytes = read(file)?;
    bundle_ops::describe(&bytes)
        .map(|listing| format!("{}: {listing}", file.display()))
        .map_err(|err| ToolError::Input {
            role: "bundle",
            path: Some(file.to_owned()),
            err,
        })
}

/// Run one parsed command; returns what to print on stdout.
pub fn run(cmd: &Command) -> Result<String, ToolError> {
    match cmd {
        Command::Help => Ok(format!("{USAGE}\n")),
        Command::Build(args) => build(args),
        Command::Check { file } => check(file),
    }
}
