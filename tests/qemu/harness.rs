//! Running el2visor under QEMU and reading what it printed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bootable image `make image` leaves (`EL2VISOR_IMAGE` overrides the path).
pub fn image() -> PathBuf {
    let p = std::env::var_os("EL2VISOR_IMAGE").map(PathBuf::from).unwrap_or_else(|| root().join("target/el2visor.img"));
    assert!(p.exists(), "{} is missing: run `make image` (make test does)", p.display());
    p
}

/// The probe guest on its own, as `make image` builds it before embedding it
/// (`EL2VISOR_PROBE_IMAGE` overrides the path).
pub fn probe_image() -> PathBuf {
    let p = std::env::var_os("EL2VISOR_PROBE_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/probe/probe.img"));
    assert!(p.exists(), "{} is missing: run `make image` (make test does)", p.display());
    p
}

/// A generated host DTB from tests/fixtures/make-dtbs.sh.
pub fn dtb(name: &str) -> PathBuf {
    let dir = std::env::var_os("EL2VISOR_DTB_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target/dtbs"));
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `tests/fixtures/make-dtbs.sh target/dtbs`", p.display());
    p
}

/// A scratch directory for one test.
/// Where `make guests` leaves the Linux guests' files (`EL2VISOR_GUESTS`, else `.cache/guests`).
pub fn guests_dir() -> PathBuf {
    std::env::var_os("EL2VISOR_GUESTS").map(PathBuf::from).unwrap_or_else(|| root().join(".cache/guests"))
}

/// One of those files, as the real path (tests/tools/dom0less.sh sizes modules with stat, which
/// does not follow links) that QEMU can take in `-device` (no comma).
pub fn guest_file(name: &str) -> String {
    let p = guests_dir().join(name);
    assert!(p.is_file(), "{} is missing: run `make guests` (make test does)", p.display());
    let p = std::fs::canonicalize(&p).unwrap();
    assert!(!p.to_string_lossy().contains(','), "{}: QEMU cannot take a path with a comma in -device", p.display());
    p.to_str().unwrap().to_string()
}

/// Write the dom0less DT for `vms` (tests/tools/dom0less.sh syntax: `name=kernel:initrd:cpus:mem:…`)
/// for `machine` into `dir`; the QEMU arguments that load it and the modules.
pub fn dom0less_args(dir: &std::path::Path, machine: &str, vms: &[String]) -> Vec<String> {
    let out = std::process::Command::new("bash")
        .arg(root().join("tests/tools/dom0less.sh"))
        .arg(dir)
        .arg(machine)
        .args(vms)
        .output()
        .expect("bash");
    assert!(out.status.success(), "dom0less.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().map(str::to_string).collect()
}

pub fn scratch(name: &str) -> PathBuf {
    let p = root().join("target/qemu-tests").join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// What a QEMU run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub output: String,
    /// QEMU exited by itself (as it does on PSCI SYSTEM_OFF with -no-reboot).
    pub exited: bool,
    pub elapsed: Duration,
}

impl Run {
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.output.lines().map(|l| l.trim_end_matches('\r'))
    }
    /// The first line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.lines().find(|l| l.starts_with(prefix))
    }
    pub fn has(&self, needle: &str) -> bool {
        self.output.contains(needle)
    }
    /// What a guest with a passed-through console printed, el2visor's own lines taken out:
    /// el2visor starts its line on a line of its own when the guest's is unfinished (a bare
    /// `\n`, where Linux ends its lines with `\r\n`), so a guest line cut by one is whole again
    /// here.
    pub fn guest_output(&self) -> String {
        let ours = |l: &str| ["el2visor[", "el2visor:", "SNAPSHOT ", "STATS "].iter().any(|p| l.starts_with(p));
        let mut out = String::new();
        for piece in self.output.split_inclusive('\n') {
            if ours(piece) {
                continue;
            }
            match piece.strip_suffix('\n') {
                Some(cut) if !cut.ends_with('\r') => out.push_str(cut),
                _ => out.push_str(piece),
            }
        }
        out
    }
    /// Panic with the whole output when `cond` is false.
    #[track_caller]
    pub fn check(&self, cond: bool, what: &str) {
        assert!(cond, "{what}\n--- QEMU output ---\n{}\n--- end ---", self.output);
    }
}

/// A QEMU command line being put together.
pub struct Qemu {
    args: Vec<String>,
    timeout: Duration,
    /// Stop as soon as this appears in the output (for runs that park instead of exiting), this
    /// many times.
    stop_on: Option<String>,
    stop_count: usize,
    /// Console input: once the output holds the text this many times, type these bytes.
    inputs: Vec<(String, usize, Vec<u8>)>,
}

impl Qemu {
    /// QEMU virt with virtualization, as `make run` uses it.
    pub fn virt(cpu: &str, smp: u32, mem: &str, gic: u32) -> Self {
        let mut q = Self::bare();
        q.push(&["-M", &format!("virt,virtualization=on,gic-version={gic}"), "-cpu", cpu]);
        q.push(&["-smp", &smp.to_string(), "-m", mem]);
        q
    }

    /// QEMU raspi4b with Debian's Pi 4 DTB.
    pub fn raspi4b() -> Self {
        let mut q = Self::bare();
        let dtb = dtb("bcm2711-rpi-4-b.dtb");
        q.push(&["-M", "raspi4b", "-dtb", dtb.to_str().unwrap()]);
        q
    }

    /// Any machine: just the common flags.
    pub fn bare() -> Self {
        let mut q = Self { args: Vec::new(), timeout: Duration::from_secs(60), stop_on: None, stop_count: 1, inputs: Vec::new() };
        q.push(&["-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio"]);
        q
    }

    /// The command line put together so far (for a test that drives QEMU itself).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn push(&mut self, a: &[&str]) -> &mut Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    pub fn kernel(&mut self, p: &Path) -> &mut Self {
        self.push(&["-kernel", p.to_str().unwrap()])
    }
    pub fn append(&mut self, s: &str) -> &mut Self {
        self.push(&["-append", s])
    }
    pub fn timeout(&mut self, secs: u64) -> &mut Self {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn stop_on(&mut self, s: &str) -> &mut Self {
        self.stop_on = Some(s.to_string());
        self
    }
    /// Type `bytes` on the serial console once `after` has appeared `n` times in the output.
    pub fn input(&mut self, after: &str, n: usize, bytes: &[u8]) -> &mut Self {
        self.inputs.push((after.to_string(), n, bytes.to_vec()));
        self
    }
    /// Stop once `s` has appeared `n` times.
    pub fn stop_on_nth(&mut self, s: &str, n: usize) -> &mut Self {
        self.stop_on = Some(s.to_string());
        self.stop_count = n;
        self
    }

    /// Run QEMU to exit, to `stop_on`, or to the time-out, whichever comes first.
    pub fn run(&self) -> Run {
        let start = Instant::now();
        let mut child = Command::new("qemu-system-aarch64")
            .args(&self.args)
            .stdin(if self.inputs.is_empty() { Stdio::null() } else { Stdio::piped() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 not found: run tests/setup.sh (make test does)");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut output = Vec::new();
        let mut stdin = child.stdin.take();
        let mut typed = 0;
        let exited = loop {
            while let Ok(chunk) = rx.try_recv() {
                output.extend(chunk);
            }
            if let (Some(input), Some((after, n, bytes))) = (stdin.as_mut(), self.inputs.get(typed)) {
                if String::from_utf8_lossy(&output).matches(after.as_str()).count() >= *n {
                    use std::io::Write;
                    // One byte at a time, as a person types: the UART's FIFO is small.
                    for b in bytes {
                        let _ = input.write_all(&[*b]);
                        let _ = input.flush();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    typed += 1;
                }
            }
            if let Some(stop) = &self.stop_on {
                if String::from_utf8_lossy(&output).matches(stop.as_str()).count() >= self.stop_count {
                    // Let the rest of the line arrive.
                    std::thread::sleep(Duration::from_millis(200));
                    while let Ok(chunk) = rx.try_recv() {
                        output.extend(chunk);
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(chunk) = rx.try_recv() {
                    output.extend(chunk);
                }
                break true;
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let mut text = String::from_utf8_lossy(&output).into_owned();
        if !err.trim().is_empty() {
            text.push_str("\n[qemu stderr] ");
            text.push_str(&err);
        }
        Run { output: text, exited, elapsed: start.elapsed() }
    }
}

/// Write device-tree source `dts` to `src` and compile it to `out` with `dtc` (test setup: a
/// failure is a panic).
pub fn compile_dts(dts: &str, src: &Path, out: &Path) {
    std::fs::write(src, dts).unwrap();
    let st = Command::new("dtc").args(["-q", "-I", "dts", "-O", "dtb", "-o"]).arg(out).arg(src).status().expect("dtc");
    assert!(st.success(), "dtc failed on {}", src.display());
}
