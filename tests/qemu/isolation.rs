//! Issue 8's isolation test: a hostile VM (the probe guest with `hostile` on its command line,
//! tests/probe-guest/src/probes/hostile/) beside a Linux domain that checksums 64 MiB of its
//! memory. The hostile one waits until Linux is up, then scans its whole IPA space, writes every
//! register of its virtual GIC, sends SGIs to CPUs outside its VM and makes PSCI calls naming
//! them, and powers off. Nothing may leak (its own `PROBE` lines), Linux must find its memory
//! unchanged and finish, and el2visor's own output must stay intact and bounded. The hostile VM
//! is a dom0less domain (RAM from el2visor's frames at IPA 0x40000000) on gic3 and gic2, and the
//! dom0-like VM (host RAM identity mapped around el2visor's own and the domain's) on gic3.

use std::process::Command;

use crate::harness::{guest_file, image, probe_image, root, scratch, Qemu, Run};

const MARKER: &str = "EL2VISOR-GUEST-OK ";
/// Seconds the hostile VM sleeps before attacking: Linux boots and fills its memory meanwhile
/// (it reaches /init in about 25 s on an idle machine, so this leaves room for a busy one).
const WAIT: u64 = 80;
/// Seconds Linux keeps its filled memory before checking it: past the whole attack (5 to 60 s).
const SLEEP: u64 = 130;
/// el2visor's own lines (warnings of aborts it injected, rate limited) stay fewer than this,
/// though the hostile domain takes over a million aborts and writes 50 000 GIC registers.
const MAX_EL2VISOR_LINES: usize = 400;



/// Where the hostile VM runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// A dom0less domain `hostile` (1 vCPU, 64 MiB, a vpl011).
    Domain,
    /// The dom0-like VM (`guest`, the CPUs and RAM Linux leaves, the passthrough UART).
    Dom0,
}

impl Hostile {
    /// How its lines start.
    fn prefix(self) -> &'static str {
        match self {
            Hostile::Domain => "(hostile) ",
            Hostile::Dom0 => "",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Hostile::Domain => "hostile",
            Hostile::Dom0 => "guest",
        }
    }
}

/// Boot Linux (a domain: 2 vCPUs, 256 MiB) and the hostile probe side by side on QEMU virt with
/// `gic` and `cpu`, 4 CPUs, 2 GiB.
fn hostile_beside_linux(gic: u32, cpu: &str, hostile: Hostile, tag: &str) -> Run {
    let machine = format!("-M virt,virtualization=on,gic-version={gic} -cpu {cpu} -smp 4 -m 2G");
    let probe = probe_image();
    let linux = format!(
        "linux={}:{}:2:256M:console=ttyAMA0 el2visor.memcheck=64 el2visor.sleep={SLEEP}:vpl011",
        guest_file("Image"),
        guest_file("initramfs.cpio.gz")
    );
    let vms = match hostile {
        Hostile::Domain => [linux, format!("hostile={}::1:64M:hostile wait={WAIT}:vpl011", probe.display())],
        Hostile::Dom0 => [format!("dom0={}::0:0:hostile wait={WAIT}:dom0", probe.display()), linux],
    };
    let dir = scratch(&format!("isolation-{tag}"));
    let args = crate::harness::dom0less_args(&dir, &machine, &vms);
    let mut q = Qemu::bare();
    let m: Vec<&str> = machine.split_whitespace().collect();
    q.push(&m).kernel(&image()).append("loglevel=info").timeout(WAIT + SLEEP + 300);
    q.push(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let r = q.run();
    // Kept for a look afterwards: a passing run says how long each part took.
    std::fs::write(dir.join("output.txt"), &r.output).unwrap();
    r
}

/// Index of the first line starting with `prefix`.
fn at(lines: &[&str], prefix: &str) -> Option<usize> {
    lines.iter().position(|l| l.starts_with(prefix))
}

fn check(r: &Run, hostile: Hostile) {
    let lines: Vec<&str> = r.lines().collect();
    // The hostile VM: every probe ran and passed, nothing leaked.
    let h = |s: &str| format!("{}{s}", hostile.prefix());
    for name in ["hostile_gic_observe", "hostile_scan", "hostile_gic_writes", "hostile_sgi", "hostile_psci"] {
        r.check(r.has(&h(&format!("PROBE {name} PASS"))), &format!("the hostile VM's {name} did not pass"));
    }
    r.check(!r.has(" FAIL "), "a PROBE line failed");
    r.check(r.has(&h("PROBE DONE pass=5 fail=0")), "the hostile VM did not finish with 5 passes");
    r.check(r.output.matches("PROBE START").count() == 1, "the hostile probe started more than once (a CPU started at its entry?)");
    r.check(r.line(&format!("STATS vm={} exits=", hostile.name())).is_some(), "no STATS line for the hostile VM");
    // Linux: memory unchanged, finished, and the attack fell inside its check.
    r.check(r.has("(linux) EL2VISOR-MEMCHECK ok"), "Linux's memory changed, or it never checked it");
    r.check(r.has(&format!("(linux) {MARKER}cpus=2")), "Linux did not finish with its 2 CPUs");
    r.check(r.line("STATS vm=linux exits=").is_some(), "no STATS line for Linux");
    let filling = at(&lines, "(linux) EL2VISOR-RTC");
    // The dom0-like VM's lines have no prefix: one of Linux's may start in the middle of them.
    let attack = lines.iter().position(|l| l.contains(&h("probe: hostile attack starts")));
    let done = lines.iter().position(|l| l.contains(&h("PROBE DONE")));
    let checked = at(&lines, "(linux) EL2VISOR-MEMCHECK");
    r.check(
        filling < attack && done < checked,
        &format!("the attack ({attack:?}..{done:?}) did not fall between Linux's fill ({filling:?}) and check ({checked:?}): change WAIT/SLEEP"),
    );
    // el2visor itself: intact, bounded, and it ended the machine after both VMs.
    let stats = r.line("STATS exits=");
    r.check(stats.is_some_and(|l| l.ends_with(" s2_mmio=0")), "no machine-wide STATS line with s2_mmio=0");
    r.check(r.exited, "QEMU did not exit after both VMs powered off");
    r.check(!r.has("FATAL") && !r.has("PANIC") && !r.has("GUEST FAULT"), "el2visor reported a fault");
    // No VM owns a passthrough interrupt here: a physical one arriving anyway came from a VM.
    r.check(!r.has("belongs to no VM"), "a physical interrupt nobody owns was raised");
    let own = lines.iter().filter(|l| l.starts_with("el2visor[")).count();
    r.check(own < MAX_EL2VISOR_LINES, &format!("el2visor printed {own} lines: its log is not bounded"));
}

#[test]
fn hostile_domain_beside_linux_gic3() {
    check(&hostile_beside_linux(3, "max", Hostile::Domain, "gic3"), Hostile::Domain);
}

#[test]
fn hostile_domain_beside_linux_gic2() {
    check(&hostile_beside_linux(2, "cortex-a72", Hostile::Domain, "gic2"), Hostile::Domain);
}

#[test]
fn hostile_dom0_like_vm_beside_linux_gic3() {
    check(&hostile_beside_linux(3, "max", Hostile::Dom0, "dom0-gic3"), Hostile::Dom0);
}

/// `make run VMS=…` (the Makefile) boots one dom0less domain per word, named domU1, domU2… with
/// a vpl011, on the machine `make run` describes: here two probe guests, the second with
/// `reset` (a comma in CMDLINE is a space), on 4 CPUs. The probe runs as a domain: its console is
/// the vpl011 its DT names, and an IPA outside its RAM aborts (`abort_injected`).
#[test]
fn make_run_vms_boots_each_domain() {
    let img = image();
    let probe = probe_image();
    let out = Command::new("make")
        .current_dir(root())
        .args(["--no-print-directory", "-o", img.to_str().unwrap(), "run", "SMP=4", "MEM=2G"])
        .arg(format!("IMG={}", img.display()))
        .arg(format!("VMS={p}::1:64M {p}::2:64M:console=ttyAMA0,reset", p = probe.display()))
        .output()
        .expect("make");
    let r = Run {
        output: String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        exited: out.status.success(),
        elapsed: std::time::Duration::ZERO,
    };
    r.check(r.exited, "make run VMS=… failed");
    r.check(r.has("VM domU1: pCPUs [0], 64 MiB RAM at IPA 0x40000000"), "domU1 is not 1 vCPU with 64 MiB at 0x40000000");
    r.check(r.has("VM domU2: pCPUs [1, 2], 64 MiB RAM at IPA 0x40000000"), "domU2 is not 2 vCPUs with 64 MiB at 0x40000000");
    for p in ["(domU1) PROBE ram_nc_attr PASS", "(domU1) PROBE tvm_mair PASS", "(domU1) PROBE abort_injected PASS", "(domU2) PROBE system_reset PASS"] {
        r.check(r.has(p), &format!("no '{p}'"));
    }
    r.check(r.line("STATS vm=domU1 ").is_some() && r.line("STATS vm=domU2 ").is_some(), "a domain did not end");
    r.check(r.line("STATS exits=").is_some(), "no machine-wide STATS line");
}
