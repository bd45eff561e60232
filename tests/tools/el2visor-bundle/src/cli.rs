//! Command-line parsing: the argument list becomes a [`Command`] or a [`UsageError`]. Pure: nothing
//! here reads or writes files, so every rule is unit-tested.
//!
//! Options take their value either as the next argument (`--kernel Image`) or after `=`
//! (`--kernel=Image`); each may be given once.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

/// The help text `--help` prints.
pub const USAGE: &str = "\
usage: el2visor-bundle build --kernel IMAGE [--initrd FILE] [--dt-props DTB] [--cmdline TEXT] -o OUT
       el2visor-bundle build-vms --vm [NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE] [--vm …] -o OUT
       el2visor-bundle check FILE
       el2visor-bundle --help

build   write an el2visor guest bundle: an uncompressed arm64 Image (arch/arm64/boot/Image), an
        optional initrd, an optional DTB whose properties el2visor applies to the guest device tree,
        and the guest's command line. Boot it as the initrd (Raspberry Pi: `initramfs FILE
        followkernel` in config.txt; QEMU: -initrd FILE).
build-vms
        write a several-VMs bundle (version 2): el2visor boots each VM as a dom0less domain with
        CPUS vCPUs, MEM RAM (with M or G, a multiple of 2M) and an emulated PL011 (its console,
        ttyAMA0). INITRD may be empty; CMDLINE is the rest of the spec; NAME defaults to vm1, vm2…
check   parse a bundle (either version) exactly as el2visor does and list its entries.

exit status: 0 success, 1 the input was refused or a file could not be read or written,
             2 the command line was wrong.";

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Build(BuildArgs),
    BuildVms(BuildVmsArgs),
    Check { file: PathBuf },
    Help,
}

/// The inputs of `build`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildArgs {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub dt_props: Option<PathBuf>,
    /// The guest's command line; empty means none (the entry is left out).
    pub cmdline: String,
    pub output: PathBuf,
}

/// One `--vm` of `build-vms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cpus: u32,
    /// RAM in bytes.
    pub memory: u64,
    /// Empty means none.
    pub cmdline: String,
}

/// The inputs of `build-vms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildVmsArgs {
    pub vms: Vec<VmSpec>,
    pub output: PathBuf,
}

/// A wrong command line, with the message to print above the usage text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Parse the arguments after the program name.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return Err(usage("no command given: use `build`, `build-vms` or `check`"));
    };
    match sub.to_str() {
        Some("build") => parse_build(args).map(Command::Build),
        Some("build-vms") => parse_build_vms(args).map(Command::BuildVms),
        Some("check") => parse_check(args),
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        _ => Err(usage(format!(
            "unknown command {:?}: use `build`, `build-vms` or `check`",
            sub.to_string_lossy()
        ))),
    }
}

/// Splits `--name=value` into its two halves; other arguments come back whole.
fn split_inline(arg: &OsStr) -> (OsString, Option<OsString>) {
    if let Some(s) = arg.to_str() {
        if s.starts_with("--") {
            if let Some((name, value)) = s.split_once('=') {
                return (name.into(), Some(value.into()));
            }
        }
    }
    (arg.to_owned(), None)
}

fn parse_build(mut args: impl Iterator<Item = OsString>) -> Result<BuildArgs, UsageError> {
    let (mut kernel, mut initrd, mut dt_props, mut cmdline, mut output) =
        (None, None, None, None::<OsString>, None);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(usage("`build` takes no --help; run `el2visor-bundle --help`"));
        }
        let (name, inline) = split_inline(&arg);
        let slot = match name.to_str() {
            Some("--kernel") => &mut kernel,
            Some("--initrd") => &mut initrd,
            Some("--dt-props") => &mut dt_props,
            Some("--cmdline") => &mut cmdline,
            Some("-o" | "--output") => &mut output,
            _ if name.to_string_lossy().starts_with('-') => {
                return Err(usage(format!("build: unknown option {:?}", name.to_string_lossy())));
            }
            _ => {
                return Err(usage(format!(
                    "build: unexpected argument {:?}: every input is named (--kernel, --initrd, --dt-props, --cmdline, -o)",
                    name.to_string_lossy()
                )));
            }
        };
        let shown = name.to_string_lossy().into_owned();
        if slot.is_some() {
            return Err(usage(format!("build: {shown} given twice")));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| usage(format!("build: {shown} needs a value")))?,
        };
        if value.is_empty() && shown != "--cmdline" {
            return Err(usage(format!("build: {shown} has an empty value")));
        }
        *slot = Some(value);
    }
    let kernel = kernel.ok_or_else(|| usage("build: --kernel IMAGE is required"))?;
    let output = output.ok_or_else(|| usage("build: -o OUT is required"))?;
    let cmdline = match cmdline {
        None => String::new(),
        Some(c) => c
            .into_string()
            .map_err(|_| usage("build: --cmdline is not valid UTF-8"))?,
    };
    Ok(BuildArgs {
        kernel: kernel.into(),
        initrd: initrd.map(PathBuf::from),
        dt_props: dt_props.map(PathBuf::from),
        cmdline,
        output: output.into(),
    })
}

/// `256M`, `1G`: bytes.
fn parse_mem(s: &str) -> Option<u64> {
    let (n, shift) = match s.as_bytes().last()? {
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `[NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE]`; `index` (from 0) gives the default name.
pub fn parse_vm_spec(spec: &str, index: usize) -> Result<VmSpec, UsageError> {
    let bad = |why: &str| usage(format!("build-vms: --vm {spec:?}: {why} (want [NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE])"));
    let (name, rest) = match spec.split_once('=') {
        Some((n, r)) if !n.contains(':') && !n.contains('/') => (n.to_string(), r),
        _ => (format!("vm{}", index + 1), spec),
    };
    let mut f = rest.splitn(5, ':');
    let (Some(kernel), Some(initrd), Some(cpus), Some(mem)) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err(bad("too few fields"));
    };
    if kernel.is_empty() {
        return Err(bad("no KERNEL"));
    }
    let cpus = cpus.parse().ok().filter(|&c: &u32| c >= 1).ok_or_else(|| bad("CPUS is not a number of at least 1"))?;
    let memory = parse_mem(mem).ok_or_else(|| bad("MEM is not a size like 256M or 1G"))?;
    Ok(VmSpec {
        name,
        kernel: kernel.into(),
        initrd: (!initrd.is_empty()).then(|| initrd.into()),
        cpus,
        memory,
        cmdline: f.next().unwrap_or("").to_string(),
    })
}

fn parse_build_vms(mut args: impl Iterator<Item = OsString>) -> Result<BuildVmsArgs, UsageError> {
    let (mut vms, mut output) = (Vec::new(), None::<OsString>);
    while let Some(arg) = args.next() {
        let (name, inline) = split_inline(&arg);
        let shown = name.to_string_lossy().into_owned();
        let mut value = || match inline.clone() {
            Some(v) => Ok(v),
            None => args.next().ok_or_else(|| usage(format!("build-vms: {shown} needs a value"))),
        };
        match name.to_str() {
            Some("--vm") => {
                let v = value()?;
                let v = v.to_str().ok_or_else(|| usage("build-vms: --vm is not valid UTF-8"))?;
                vms.push(parse_vm_spec(v, vms.len())?);
            }
            Some("-o" | "--output") if output.is_some() => return Err(usage(format!("build-vms: {shown} given twice"))),
            Some("-o" | "--output") => output = Some(value()?).filter(|v| !v.is_empty()),
            _ => return Err(usage(format!("build-vms: unexpected argument {shown:?}: give --vm SPEC … -o OUT"))),
        }
    }
    if vms.is_empty() {
        return Err(usage("build-vms: no --vm given"));
    }
    let output = output.ok_or_else(|| usage("build-vms: -o OUT is required"))?;
    Ok(BuildVmsArgs { vms, output: output.into() })
}

fn parse_check(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let file = args.next().ok_or_else(|| usage("check: which FILE?"))?;
    if file.to_string_lossy().starts_with('-') {
        return Err(usage(format!("check: unknown option {:?}", file.to_string_lossy())));
    }
    if let Some(extra) = args.next() {
        return Err(usage(format!(
            "check: one FILE only (also got {:?})",
            extra.to_string_lossy()
        )));
    }
    Ok(Command::Check { file: file.into() })
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
