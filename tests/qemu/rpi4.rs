//! Issue 6: on QEMU raspi4b, Debian's arm64 kernel with the busybox initramfs of `make guests`,
//! handed to el2visor as a guest bundle through `-initrd` (the way the Pi firmware's
//! `initramfs FILE followkernel` hands it over), boots to init with 4 vCPUs, prints its marker on the
//! PL011 (`console=ttyAMA0`), and its poweroff gives the `STATS` line and `el2visor: halted`.
//!
//! The kernel is Debian's generic `linux-image-<abi>-arm64`, not the cloud kernel the virt tests
//! use: the cloud flavour is built without `CONFIG_ARCH_BCM2835`, so it has no driver for the
//! BCM2711 clock manager (`brcm,bcm2711-cprman`) that supplies the PL011's `uartclk` and `apb_pclk`.
//! Its AMBA device then never probes, ttyAMA0 never registers, Linux says "unable to open an
//! initial console" and init's marker goes nowhere (on bare QEMU raspi4b as under el2visor). The
//! generic kernel builds the clock, mailbox, firmware and pinctrl drivers in; `make guests`
//! (tests/fixtures/fetch-guests.sh) extracts it as `Image-rpi4` (`EL2VISOR_RPI4_KERNEL` names
//! another uncompressed arm64 Image).
//!
//! QEMU's raspi4b lacks some BCM2711 blocks, so this test (never el2visor) disables the nodes
//! HARDWARE.md lists in the DTB it gives QEMU and puts `clk_ignore_unused` on the guest's command
//! line in the bundle. A real Pi 4 needs neither.
//!
//! Issue 10: two VMs from one several-VMs bundle (version 2) on raspi4b, and the same kind of
//! bundle on QEMU virt through `-initrd`.

use std::path::{Path, PathBuf};
use std::process::Command;

use el2visor::vm::bundle::{self, Bundle};

use crate::harness::guests_dir;
use crate::harness::{dtb, image, scratch, Qemu, Run};
use crate::probe::Stats;

/// The BCM2711 blocks QEMU's raspi4b does not model (HARDWARE.md): the HDMI interrupt controller,
/// both HDMI encoders and their DDC I2C buses.
const ABSENT_NODES: [&str; 5] = [
    "/soc/interrupt-controller@7ef00100",
    "/soc/hdmi@7ef00700",
    "/soc/hdmi@7ef05700",
    "/soc/i2c@7ef04500",
    "/soc/i2c@7ef09500",
];

/// The guest's command line in the bundle: the PL011 as its console, and no clock gating of the
/// clocks whose consumers QEMU lacks.
const GUEST_CMDLINE: &str = "console=ttyAMA0,115200 clk_ignore_unused";

/// The marker the initramfs's /init prints before powering off.
const MARKER: &str = "EL2VISOR-GUEST-OK ";

/// The lowest MemTotal accepted, as a percentage of the RAM el2visor gave the VM (the same bound as
/// the virt Linux tests: Linux keeps its image, struct pages and early tables out of MemTotal; the
/// generic kernel is larger than the cloud one, about 6% of an 860 MiB VM).
const MEMTOTAL_MIN_PERCENT: u64 = 90;

/// Four TCG CPUs on raspi4b are slow, and `make test` runs two QEMUs at once.
const TIMEOUT_SECS: u64 = 240;

/// Run a command; panic with what it printed when it fails.
fn run_cmd(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out.stdout
}

fn is_arm64_image(bytes: &[u8]) -> bool {
    bytes.len() > 0x40 && &bytes[0x38..0x3c] == b"ARM\x64"
}


/// The guest kernel: `EL2VISOR_RPI4_KERNEL`, else the generic kernel `make guests` extracts as
/// `Image-rpi4`.
fn pi_kernel() -> PathBuf {
    let p = std::env::var_os("EL2VISOR_RPI4_KERNEL").map(PathBuf::from).unwrap_or_else(|| guests_dir().join("Image-rpi4"));
    let head = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}: run `make guests` (make test does)", p.display()));
    assert!(is_arm64_image(&head), "{} is not an uncompressed arm64 Image", p.display());
    p
}

/// The initramfs of `make guests` (`EL2VISOR_GUESTS`, else `.cache/guests`).
fn initramfs() -> PathBuf {
    let p = guests_dir().join("initramfs.cpio.gz");
    assert!(p.is_file(), "{} is missing: run `make guests` (make test does)", p.display());
    p
}

/// A copy of the Pi 4 DTB with the blocks QEMU lacks disabled.
fn qemu_dtb(dir: &Path) -> PathBuf {
    let out = dir.join("bcm2711-rpi-4-b-qemu.dtb");
    std::fs::copy(dtb("bcm2711-rpi-4-b.dtb"), &out).unwrap();
    for node in ABSENT_NODES {
        run_cmd(
            Command::new("fdtput").args(["-t", "s"]).arg(&out).args([node, "status", "disabled"]),
            &format!("fdtput {node} status disabled (device-tree-compiler: tests/setup.sh installs it)"),
        );
        let status = run_cmd(Command::new("fdtget").arg(&out).args([node, "status"]), &format!("fdtget {node} status"));
        assert_eq!(String::from_utf8_lossy(&status).trim(), "disabled", "{node} is not disabled in {}", out.display());
    }
    out
}

/// The guest bundle, built by el2visor's own builder and read back by its own parser.
fn guest_bundle(dir: &Path, kernel: &Path, initrd: &Path) -> PathBuf {
    let k = std::fs::read(kernel).unwrap_or_else(|e| panic!("{}: {e}", kernel.display()));
    let i = std::fs::read(initrd).unwrap_or_else(|e| panic!("{}: {e}", initrd.display()));
    let bytes = bundle::build(&k, Some(&i), GUEST_CMDLINE);
    let parsed = Bundle::parse(&bytes).unwrap_or_else(|e| panic!("el2visor refuses the bundle it built: {e}"));
    assert!(parsed.kernel == &k[..] && parsed.initrd == Some(&i[..]) && parsed.cmdline == Some(GUEST_CMDLINE));
    let out = dir.join("guest.bundle");
    std::fs::write(&out, bytes).unwrap();
    out
}

/// `VM <name>: <n> vCPUs, <m> MiB RAM, …`: the vCPUs and MiB el2visor gave the guest.
fn vm_line(run: &Run) -> Option<(u32, u64)> {
    let l = run.lines().find(|l| l.contains(" vCPUs, ") && l.contains(" MiB RAM"))?;
    let rest = l[l.find("VM ")?..].split_once(": ")?.1;
    let (cpus, rest) = rest.split_once(" vCPUs, ")?;
    let (mib, _) = rest.split_once(" MiB RAM")?;
    Some((cpus.trim().parse().ok()?, mib.trim().parse().ok()?))
}

/// `EL2VISOR-GUEST-OK cpus=<n> mem=<kB>`: what Linux saw.
fn marker(run: &Run) -> Option<(u32, u64)> {
    let l = run.line(MARKER)?;
    let field = |k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k));
    Some((field("cpus=")?.parse().ok()?, field("mem=")?.parse().ok()?))
}

/// Where `needle` first appears in the output.
fn pos(run: &Run, needle: &str) -> Option<usize> {
    run.output.find(needle)
}

#[test]
fn raspi4b_linux_bundle_four_vcpus() {
    let dir = scratch("rpi4-linux");
    let kernel = pi_kernel();
    let bundle = guest_bundle(&dir, &kernel, &initramfs());
    let dtb = qemu_dtb(&dir);
    let run = Qemu::bare()
        .push(&["-M", "raspi4b", "-dtb", dtb.to_str().unwrap()])
        .kernel(&image())
        .push(&["-initrd", bundle.to_str().unwrap()])
        .timeout(TIMEOUT_SECS)
        .stop_on("el2visor: halted")
        .run();

    let banner = run.line("el2visor ").unwrap_or("");
    run.check(banner.contains(" at EL2 on Raspberry Pi 4 Model B"), &format!("banner wrong: {banner:?}"));
    run.check(banner.contains(" cpus=4"), &format!("banner is not cpus=4: {banner:?}"));

    // The guest is the bundle's: its kernel runs with the bundle's command line.
    run.check(
        run.has(&format!("Kernel command line: {GUEST_CMDLINE}")),
        "no `Kernel command line: <the bundle's>` from the guest: either el2visor did not boot the bundle's \
         kernel with its command line, or the guest's console (ttyAMA0) never came up",
    );
    run.check(run.has("ttyAMA0 at MMIO 0xfe201000"), "the guest's PL011 (ttyAMA0 at 0xfe201000) did not probe");

    let Some((vcpus, vm_mib)) = vm_line(&run) else {
        return run.check(false, "no `VM …: <n> vCPUs, <m> MiB RAM` line");
    };
    run.check(vcpus == 4, &format!("the VM has {vcpus} vCPUs, not 4"));
    let markers = run.lines().filter(|l| l.starts_with(MARKER)).count();
    run.check(markers == 1, &format!("the guest marker `{MARKER}…` appears {markers} times, expected once"));
    let Some((cpus, mem_kb)) = marker(&run) else {
        return run.check(false, &format!("malformed `{MARKER}cpus=<n> mem=<kB>` line"));
    };
    run.check(cpus == 4, &format!("Linux runs {cpus} CPUs, expected 4"));
    let vm_kb = vm_mib * 1024;
    run.check(
        mem_kb <= vm_kb && mem_kb * 100 >= vm_kb * MEMTOTAL_MIN_PERCENT,
        &format!("Linux MemTotal {mem_kb} kB is not within {MEMTOTAL_MIN_PERCENT}%..100% of the VM's {vm_kb} kB"),
    );

    // Poweroff: PSCI SYSTEM_OFF, then STATS, then the halt (raspi4b has no way to power off).
    let (m, s, h) = (pos(&run, MARKER), pos(&run, "\nSTATS "), pos(&run, "el2visor: halted"));
    run.check(
        matches!((m, s, h), (Some(m), Some(s), Some(h)) if m < s && s < h),
        &format!("expected the marker, then STATS, then `el2visor: halted` (after {:?})", run.elapsed),
    );
    let Some(stats) = Stats::parse(&run) else {
        return run.check(false, "no well-formed STATS line");
    };
    run.check(stats.exits_add_up(), "STATS exits is not the sum of the reasons but s2_mmio");
    run.check(stats.get("hvc") >= 4, "STATS hvc < 4 (PSCI CPU_ON per secondary + SYSTEM_OFF, by HVC)");
    run.check(stats.get("smc") == 0, "the guest made SMCs, but its DT gives PSCI by hvc");
    run.check(stats.get("s2_mmio") == 0, "Stage-2 faults on the premapped /soc windows (s2_mmio > 0)");
    run.check(stats.get("iabt") == 0 && stats.get("other") == 0, "unexpected iabt/other exits");

    let complaints: Vec<&str> =
        run.lines().filter(|l| l.starts_with("el2visor[") && (l.contains("] warn:") || l.contains("] error:"))).collect();
    run.check(complaints.is_empty(), &format!("el2visor warned while Linux booted: {complaints:?}"));
    run.check(!run.has("injecting a synchronous external abort"), "Linux touched memory it does not own");
    run.check(!run.has("Kernel panic"), "the guest kernel panicked");
}

/// The two VMs of the several-VMs test: name, vCPUs, MiB.
const TWO_VMS: [(&str, u32, u64); 2] = [("pi1", 2, 256), ("pi2", 2, 256)];

/// A several-VMs bundle (version 2) of `vms`, each with `kernel`, `initrd`, a vpl011 and
/// `console=ttyAMA0` (the vpl011), built and read back by el2visor's own code.
fn vms_bundle(dir: &Path, kernel: &Path, initrd: &Path, vms: &[(&str, u32, u64)]) -> PathBuf {
    use bundle::vms::{build, VmParts, VmsBundle};
    let k = std::fs::read(kernel).unwrap_or_else(|e| panic!("{}: {e}", kernel.display()));
    let i = std::fs::read(initrd).unwrap_or_else(|e| panic!("{}: {e}", initrd.display()));
    let parts: Vec<VmParts<'_>> = vms
        .iter()
        .map(|&(name, cpus, mib)| VmParts {
            name,
            cpus,
            memory: mib << 20,
            vpl011: true,
            kernel: &k,
            initrd: Some(&i),
            partial_dt: None,
            cmdline: "console=ttyAMA0",
        })
        .collect();
    let bytes = build(&parts);
    let parsed = VmsBundle::parse(&bytes).unwrap_or_else(|e| panic!("el2visor refuses the bundle it built: {e}"));
    assert_eq!(parsed.vms.len(), vms.len());
    let out = dir.join("vms.bundle");
    std::fs::write(&out, bytes).unwrap();
    out
}

/// `(<vm>) EL2VISOR-GUEST-OK cpus=<n> mem=<kB>`: what VM `vm`'s Linux saw.
fn vm_marker(run: &Run, vm: &str) -> Option<(u32, u64)> {
    let prefix = format!("({vm}) {MARKER}");
    let l = run.lines().map(|l| l.trim_end_matches('\r')).find_map(|l| l.strip_prefix(prefix.as_str()))?;
    let field = |k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k));
    Some((field("cpus=")?.parse().ok()?, field("mem=")?.parse().ok()?))
}

/// Issue 10: a Pi's firmware hands over one initrd, so two VMs come in one bundle. On raspi4b they
/// boot side by side as dom0less domains with 2 vCPUs each, each prints its prefixed marker and
/// powers off (`STATS vm=<name>`), and after the last one el2visor halts.
#[test]
fn raspi4b_two_vms_from_one_bundle() {
    let dir = scratch("rpi4-two-vms");
    let bundle = vms_bundle(&dir, &pi_kernel(), &initramfs(), &TWO_VMS);
    let dtb = qemu_dtb(&dir);
    let run = Qemu::bare()
        .push(&["-M", "raspi4b", "-dtb", dtb.to_str().unwrap()])
        .kernel(&image())
        .push(&["-initrd", bundle.to_str().unwrap()])
        .timeout(TIMEOUT_SECS + 120)
        .stop_on("el2visor: halted")
        .run();

    run.check(run.has("guest bundle at 0x"), "el2visor did not take the initrd as a several-VMs bundle");
    for (name, cpus, mib) in TWO_VMS {
        let Some((c, mem_kb)) = vm_marker(&run, name) else {
            run.check(false, &format!("VM {name} printed no `({name}) {MARKER}…` line"));
            continue;
        };
        run.check(c == cpus, &format!("VM {name}: Linux runs {c} CPUs, expected {cpus}"));
        let vm_kb = mib << 10;
        run.check(
            mem_kb <= vm_kb && mem_kb * 100 >= vm_kb * 80,
            &format!("VM {name}: MemTotal {mem_kb} kB for {vm_kb} kB of RAM"),
        );
        let stats = pos(&run, &format!("STATS vm={name} exits="));
        run.check(stats.is_some(), &format!("no `STATS vm={name}` line"));
        run.check(
            matches!((pos(&run, &format!("({name}) {MARKER}")), stats), (Some(m), Some(s)) if m < s),
            &format!("VM {name}'s STATS line comes before its marker"),
        );
    }
    // Last: the machine-wide STATS, then the halt (raspi4b has no PSCI SYSTEM_OFF).
    let last_vm = TWO_VMS.iter().filter_map(|(n, ..)| pos(&run, &format!("STATS vm={n} "))).max();
    let (s, h) = (pos(&run, "\nSTATS exits="), pos(&run, "el2visor: halted"));
    run.check(
        matches!((last_vm, s, h), (Some(v), Some(s), Some(h)) if v < s && s < h),
        &format!("expected every VM's STATS, then `STATS exits=`, then `el2visor: halted` (after {:?})", run.elapsed),
    );
    run.check(!run.has("Kernel panic"), "a guest kernel panicked");
    run.check(!run.has("injecting a synchronous external abort"), "a guest touched memory it does not own");
}

/// The same several-VMs bundle on QEMU virt (GICv3), passed with `-initrd`: two VMs with a
/// different kernel each boot side by side, and the machine powers off after the last.
#[test]
fn virt_two_vms_from_one_bundle_initrd() {
    let dir = scratch("virt-two-vms");
    let vms = [("v1", 2, 192), ("v2", 1, 160)];
    let bundle = vms_bundle(&dir, &guests_dir().join("Image"), &initramfs(), &vms);
    let run = Qemu::virt("cortex-a72", 4, "2G", 3)
        .kernel(&image())
        .push(&["-initrd", bundle.to_str().unwrap()])
        .timeout(TIMEOUT_SECS)
        .run();
    for (name, cpus, mib) in vms {
        let got = vm_marker(&run, name);
        run.check(
            matches!(got, Some((c, kb)) if c == cpus && kb <= mib << 10 && kb * 100 >= (mib << 10) * 80),
            &format!("VM {name}: marker {got:?}, want {cpus} CPUs and about {mib} MiB"),
        );
        run.check(run.has(&format!("STATS vm={name} exits=")), &format!("no `STATS vm={name}` line"));
    }
    run.check(run.line("STATS exits=").is_some(), "no machine-wide STATS line after the last VM");
    run.check(run.exited, "QEMU did not exit after the last VM powered off");
}

/// A several-VMs bundle el2visor cannot boot gives one line saying why, then the halt: a malformed
/// descriptor (3 MiB of RAM) and a VM asking for more CPUs than raspi4b has.
#[test]
fn raspi4b_bad_vms_bundles_are_one_line() {
    use bundle::vms::{build, VmParts};
    let dir = scratch("rpi4-bad-vms");
    let k = std::fs::read(pi_kernel()).unwrap();
    let vm = |name, cpus, memory| VmParts { name, cpus, memory, vpl011: true, kernel: &k, ..VmParts::default() };
    let cases = [
        ("ram", build(&[vm("odd", 1, 3 << 20)]), "guest bundle VM descriptor 0: its RAM is not a non-zero multiple of 2 MiB"),
        ("cpus", build(&[vm("a", 2, 64 << 20), vm("big", 3, 64 << 20)]), "VM big: asks for 3 vCPUs but only 2 of the 4 CPUs are left"),
    ];
    for (what, bytes, want) in cases {
        let file = dir.join(format!("{what}.bundle"));
        std::fs::write(&file, bytes).unwrap();
        let run = Qemu::raspi4b().kernel(&image()).push(&["-initrd", file.to_str().unwrap()]).timeout(60).stop_on("el2visor: halted").run();
        let lines: Vec<&str> = run.lines().filter(|l| l.starts_with("el2visor: cannot start")).collect();
        run.check(lines.len() == 1 && lines[0].ends_with(want), &format!("{what}: want one `el2visor: cannot start …{want}` line, got {lines:?}"));
        run.check(run.has("el2visor: halted"), &format!("{what}: el2visor did not halt"));
    }
}
