//! The file side of each command: read the inputs, call the pure operations in
//! [`crate::bundle_ops`], write the output (atomically: a failed build leaves no partial bundle).

use std::fs;
use std::path::{Path, PathBuf};

use crate::bundle_ops::{self, Inputs};
use crate::cli::{BuildArgs, BuildVmsArgs, Command, USAGE};
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
            bundle_ops::Role::Cmdline | bundle_ops::Role::Name | bundle_ops::Role::Memory | bundle_ops::Role::Output => None,
        };
        ToolError::Input {
            role: role.name().to_string(),
            path,
            err,
        }
    })?;
    write_atomically(&args.output, &bytes)?;
    let listing = bundle_ops::describe(&bytes).map_err(|err| ToolError::Input {
        role: bundle_ops::Role::Output.name().to_string(),
        path: Some(args.output.clone()),
        err,
    })?;
    Ok(format!("wrote {}: {listing}", args.output.display()))
}

/// `build-vms`: returns the summary to print (the listing `check` gives).
pub fn build_vms(args: &BuildVmsArgs) -> Result<String, ToolError> {
    let mut files = Vec::new();
    for v in &args.vms {
        files.push((read(&v.kernel)?, v.initrd.as_deref().map(read).transpose()?));
    }
    let inputs: Vec<bundle_ops::VmInputs<'_>> = args
        .vms
        .iter()
        .zip(&files)
        .map(|(v, (k, i))| bundle_ops::VmInputs {
            name: &v.name,
            cpus: v.cpus,
            memory: v.memory,
            kernel: k,
            initrd: i.as_deref(),
            cmdline: &v.cmdline,
        })
        .collect();
    let bytes = bundle_ops::build_vms_bytes(&inputs).map_err(|(vm, role, err)| {
        let (role, path) = match vm.map(|i| &args.vms[i]) {
            None => (role.name().to_string(), Some(args.output.clone())),
            Some(v) => {
                let path = match role {
                    bundle_ops::Role::Kernel => Some(v.kernel.clone()),
                    bundle_ops::Role::Initrd => v.initrd.clone(),
                    _ => None,
                };
                (format!("VM {} {}", v.name, role.name()), path)
            }
        };
        ToolError::Input { role, path, err }
    })?;
    write_atomically(&args.output, &bytes)?;
    let listing = bundle_ops::describe(&bytes).map_err(|err| ToolError::Input {
        role: bundle_ops::Role::Output.name().to_string(),
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
            role: "bundle".to_string(),
            path: Some(file.to_owned()),
            err,
        })
}

/// Run one parsed command; returns what to print on stdout.
pub fn run(cmd: &Command) -> Result<String, ToolError> {
    match cmd {
        Command::Help => Ok(format!("{USAGE}\n")),
        Command::Build(args) => build(args),
        Command::BuildVms(args) => build_vms(args),
        Command::Check { file } => check(file),
    }
}
