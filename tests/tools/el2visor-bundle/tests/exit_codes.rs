//! The built binary end to end: files in a scratch folder, exit status and messages checked.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_el2visor-bundle");

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("el2visor-bundle-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn image() -> Vec<u8> {
    let mut v = vec![0u8; 8192];
    v[0x10..0x18].copy_from_slice(&0x10000u64.to_le_bytes());
    v[0x18..0x20].copy_from_slice(&0xau64.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(b"ARM\x64");
    v
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(BIN).args(args.iter().map(|a| a.as_ref())).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn build_then_check() {
    let s = Scratch::new("ok");
    let k = s.file("Image", &image());
    let i = s.file("initrd.cpio", b"070701 rest of a cpio archive");
    let out = s.path("guest.bundle");
    let o = run(&[&"build", &"--kernel", &k, &"--initrd", &i, &"--cmdline", &"console=ttyAMA0", &"-o", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("3 entries"), "{}", stdout(&o));
    // No temporary file is left next to the output.
    assert_eq!(fs::read_dir(&s.0).unwrap().count(), 3);

    let o = run(&[&"check", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("initrd") && text.contains("cpio newc"), "{text}");
    assert!(text.contains("\"console=ttyAMA0\""), "{text}");
}

#[test]
fn refused_inputs_exit_1_and_write_nothing() {
    let s = Scratch::new("refused");
    let gz = s.file("vmlinuz", &[0x1f, 0x8b, 8, 0].repeat(32));
    let out = s.path("guest.bundle");
    let o = run(&[&"build", &"--kernel", &gz, &"-o", &out]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("vmlinuz") && e.contains("gzip-compressed") && e.contains("gunzip"), "{e}");
    // Neither the bundle nor a temporary file: only the kernel is in the folder.
    assert_eq!(fs::read_dir(&s.0).unwrap().count(), 1);
}

#[test]
fn missing_files_exit_1_and_name_the_file() {
    let s = Scratch::new("missing");
    let o = run(&[&"build", &"--kernel", &s.path("nope"), &"-o", &s.path("b")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read") && stderr(&o).contains("nope"), "{}", stderr(&o));

    let k = s.file("Image", &image());
    let o = run(&[&"build", &"--kernel", &k, &"-o", &s.path("no-such-dir/b")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));

    let o = run(&[&"check", &s.path("absent.bundle")]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn check_refuses_a_corrupt_bundle() {
    let s = Scratch::new("corrupt");
    let k = s.file("Image", &image());
    let out = s.path("b");
    assert_eq!(run(&[&"build", &"--kernel", &k, &"-o", &out]).status.code(), Some(0));
    let mut bytes = fs::read(&out).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&out, &bytes).unwrap();
    let o = run(&[&"check", &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let o = run(&[&"build", &"--kernel", &"K"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-o OUT is required") && stderr(&o).contains("--help"), "{}", stderr(&o));
    assert_eq!(run(&[]).status.code(), Some(2));
    let o = run(&[&"--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("usage: el2visor-bundle build"));
}

#[test]
fn build_vms_then_check_and_refusals() {
    let s = Scratch::new("vms");
    let k = s.file("Image", &image());
    let i = s.file("initrd.cpio", b"070701 rest of a cpio archive");
    let spec1 = format!("pi1={}:{}:2:256M:console=ttyAMA0", k.display(), i.display());
    let spec2 = format!("{}::1:64M", k.display());
    let out = s.path("vms.bundle");
    let o = run(&[&"build-vms", &"--vm", &spec1, &"--vm", &spec2, &"-o", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[&"check", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("version 2, 2 VMs") && text.contains("VM pi1: 2 vCPUs, 256 MiB RAM") && text.contains("VM vm2: 1 vCPUs, 64 MiB RAM"), "{text}");

    // A VM whose RAM is not whole 2 MiB blocks: exit 1, the VM named, nothing written.
    let bad = s.path("bad.bundle");
    let o = run(&[&"build-vms", &"--vm", &spec1, &"--vm", &format!("odd={}::1:3M", k.display()), &"-o", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("VM odd RAM") && stderr(&o).contains("multiple of 2M"), "{}", stderr(&o));
    assert!(!bad.exists());
    let o = run(&[&"build-vms", &"--vm", &spec1, &"--vm", &spec1, &"-o", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("VM pi1 name: another VM has this name"), "{}", stderr(&o));
    let o = run(&[&"build-vms", &"--vm", &"K:I:1", &"-o", &bad]);
    assert_eq!(o.status.code(), Some(2));
}
