//! Issue 13: snapshots, lazy restore and dirty tracking. The probe guest in `snapshot` mode takes
//! a snapshot and restores it three ways (eager, lazy, dirty-only): registers (general, FP, EL1)
//! and memory must be the snapshot's after each, a page written after the snapshot reads its old
//! value, the lazy restore zaps RAM (no blocks, most pages missing) and collapses it back once
//! every page is in, and without FWB every restored page is cleaned to the PoC (the probe reads
//! RAM through a Normal-NC stage-1 mapping; `coherency=off`). Run under FWB (`-cpu max`) and
//! without (`-cpu cortex-a72`). Where the CPU has SME (`-cpu max`) two more rounds snapshot a
//! vCPU in streaming mode with ZA on, at the longest streaming length and at 32 bytes, and restore
//! it from outside streaming mode: SVCR, FPSR, the streaming Z16, P7 and FFR and every row of ZA
//! must come back; also without FEAT_SME_FA64 (`sme_fa64=off`), where FFR does not exist in
//! streaming mode and el2visor must not touch it. On GICv3 the probe VM has el2visor's virtual
//! ITS, and two more rounds change it after a snapshot (an event mapped to another LPI, another
//! device mapped, in the lazy round an LPI disabled in the property table) and restore it eagerly
//! and lazily: the queue position, the mappings and the property byte el2visor reads must be the
//! snapshot's (also on cortex-a72 with GICv3, the mair-trap mode). The probe runs say `s2_ram=blocks`, which `snapshot_mem=` makes
//! the default anyway: the collapse gives RAM its blocks back, which the probe checks (with
//! `s2_ram=pages` there is nothing to give back).

use crate::harness::{image, Qemu};

const PROBES: [&str; 6] = [
    "snapshot_restore_eager",
    "snapshot_restore_lazy",
    "snapshot_lazy_log_line",
    "snapshot_lazy_zapped",
    "snapshot_lazy_collapse",
    "snapshot_restore_dirty",
];
const SME_PROBES: [&str; 2] = ["snapshot_restore_sme", "snapshot_restore_sme_short"];
const ITS_PROBES: [&str; 2] = ["snapshot_restore_its", "snapshot_restore_its_lazy"];

/// The snapshot probes that run on `cpu`: the SME rounds only where the CPU has SME (QEMU's
/// `max`, not cortex-a72), the virtual ITS rounds only for a VM with one (`its`: on GICv3 the
/// dom0-like probe VM owns the PCI bridge and gets el2visor's virtual ITS; a dom0less domain
/// does not).
fn probes_on(cpu: &str, its: bool) -> Vec<&'static str> {
    let mut p = PROBES.to_vec();
    if cpu.starts_with("max") {
        p.extend(SME_PROBES);
    }
    if its {
        p.extend(ITS_PROBES);
    }
    p
}

#[test]
fn probe_snapshot_restores_every_kind() {
    for (cpu, gic, mode, args) in [
        ("max", 3, "fwb", "snapshot_mem=128M s2_ram=blocks guest_args=snapshot"),
        ("max,sme_fa64=off", 3, "fwb", "snapshot_mem=128M s2_ram=blocks guest_args=snapshot"),
        ("cortex-a72", 2, "off", "snapshot_mem=128M s2_ram=blocks coherency=off guest_args=snapshot"),
        ("cortex-a72", 3, "mair-trap", "snapshot_mem=128M s2_ram=blocks guest_args=snapshot"),
    ] {
        let run = Qemu::virt(cpu, 1, "1G", gic).kernel(&image()).append(args).timeout(300).run();
        let ctx = format!("-cpu {cpu} ({mode})");
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
        run.check(run.has(&format!("coherency: {mode}")), &format!("{ctx}: not in {mode} mode"));
        let probes = probes_on(cpu, gic == 3);
        for p in &probes {
            run.check(run.has(&format!("PROBE {p} PASS")), &format!("{ctx}: {p} did not pass"));
        }
        let done = format!("PROBE DONE pass={} fail=0", probes.len());
        run.check(run.has(&done), &format!("{ctx}: not {} passes and no failure", probes.len()));
        // LOG_LINE right after the lazy restore read the snapshot's text from a page not yet back.
        run.check(
            run.lines().any(|l| l.contains("log: EL2VISOR-LAZY-LOG the snapshot's text")),
            &format!("{ctx}: el2visor did not print the snapshot's LOG_LINE text after the lazy restore"),
        );
        run.check(
            !run.lines().any(|l| l.contains("written after the snapshot, must not be")),
            &format!("{ctx}: el2visor printed the text written after the snapshot"),
        );
        // The dirty-only restore copied back only the few pages written since the snapshot.
        let dirty = run.line("SNAPSHOT restore kind=dirty").unwrap_or("");
        let pages: u64 = field(dirty, "pages=").unwrap_or(u64::MAX);
        run.check((3..64).contains(&pages), &format!("{ctx}: the dirty-only restore copied {pages} pages"));
        let lines: u64 = field(dirty, "cmo_lines=").unwrap_or(u64::MAX);
        let expect_clean = mode != "fwb";
        run.check((lines > 0) == expect_clean, &format!("{ctx}: {lines} cache lines cleaned by the dirty-only restore"));
        if gic == 3 {
            // After each ITS restore the INT of the device mapped only after the snapshot is
            // refused: it was not mapped then.
            let refused = run.lines().filter(|l| l.contains("virtual ITS: command at queue offset") && l.contains("DeviceID 0x9 is not mapped")).count();
            run.check(refused == 2, &format!("{ctx}: {refused} refusals of DeviceID 9 logged, not 2"));
        }
    }
}

/// With two vCPUs the probe also takes a snapshot right after a CPU_ON that succeeded: the
/// pause may come before the started vCPU ran, and it must run afterwards all the same.
#[test]
fn probe_snapshot_keeps_a_pending_cpu_on() {
    let run = Qemu::virt("max", 2, "1G", 3).kernel(&image()).append("snapshot_mem=128M guest_args=snapshot").timeout(300).run();
    run.check(run.exited, "QEMU did not exit by itself");
    run.check(run.has("PROBE snapshot_keeps_cpu_on PASS"), "the vCPU a CPU_ON started just before the snapshot did not run");
    // The six probes of the three rounds, the two SME rounds, the two ITS rounds and this one.
    run.check(run.has("PROBE DONE pass=11 fail=0"), "not 11 passes and no failure");
}

/// `snapshot_mem=` smaller than the VM's RAM: one line says so, and the snapshot call answers
/// NOT_SUPPORTED (the probe reports it) instead of anything breaking.
#[test]
fn probe_snapshot_refused_when_the_area_is_too_small() {
    let run = Qemu::virt("max", 1, "1G", 3).kernel(&image()).append("snapshot_mem=64M guest_args=snapshot").timeout(120).run();
    run.check(run.exited, "QEMU did not exit by itself");
    run.check(
        run.lines().filter(|l| l.contains("do not fit snapshot_mem=")).count() == 1,
        "no single line refusing the snapshot",
    );
    run.check(run.has("PROBE snapshot_restore_eager FAIL"), "the probe did not see the refusal");
}

/// The number after `key` in a `key=value` line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok())
}

/// A Linux guest (one vCPU) snapshotted when its /init prints `EL2VISOR-SNAPSHOT-POINT`
/// (`snapshot_on=`, el2visor watching the passed-through PL011) and restored by each of its
/// reboots (`reset=snapshot restores=20`, dirty-only): every run resumes right after the marker
/// and finds no /tmp file (written after the snapshot by the run before), and the 21st reset
/// powers the VM off.
#[test]
fn linux_snapshot_on_marker_restored_20_times() {
    let dir = crate::harness::guests_dir();
    let (kernel, initrd) = (dir.join("Image"), dir.join("initramfs.cpio.gz"));
    assert!(kernel.is_file() && initrd.is_file(), "run `make guests` for the Linux test guest");
    let k = format!("guest-loader,addr=0x49000000,kernel={},bootargs=console=ttyAMA0 el2visor.snapshot=1", kernel.display());
    let i = format!("guest-loader,addr=0x4c000000,initrd={}", initrd.display());
    let run = Qemu::virt("max", 1, "2G", 3)
        .kernel(&image())
        .append("snapshot_mem=1G snapshot_on=EL2VISOR-SNAPSHOT-POINT reset=snapshot restores=20")
        .push(&["-device", &k, "-device", &i])
        .timeout(900)
        .run();
    run.check(run.exited, "QEMU did not exit by itself");
    run.check(run.lines().filter(|l| l.contains("EL2VISOR-SNAPSHOT-POINT")).count() == 1, "the marker was printed more than once");
    run.check(run.has("snapshot: VM guest: taken"), "no snapshot taken at the marker");
    let clean = run.lines().filter(|l| *l == "EL2VISOR-RESUMED clean").count();
    run.check(clean == 21, &format!("{clean} runs resumed clean, expected 21 (the first and 20 restores)"));
    run.check(!run.has("EL2VISOR-RESUMED stale"), "a run found the file written after the snapshot");
    run.check(run.lines().filter(|l| l.starts_with("SNAPSHOT restore kind=dirty")).count() == 20, "not 20 dirty-only restores");
    run.check(run.has("reset: restores=20 used up; powering the VM off"), "the 21st reset did not power the VM off");
    run.check(run.line("STATS vm=guest").is_some(), "no STATS line for the VM");
}

/// The same with two vCPUs and three restores: the other vCPU is kicked out of its guest for the
/// snapshot and for each restore and resumes with its state. The guest and el2visor print at the
/// same time here: el2visor's lines wait for a guest line being written, but a guest line that
/// stalls is cut by one (on a line of its own), so the guest's lines are counted with
/// el2visor's taken out.
#[test]
fn linux_two_vcpus_snapshot_and_restores() {
    let dir = crate::harness::guests_dir();
    let (kernel, initrd) = (dir.join("Image"), dir.join("initramfs.cpio.gz"));
    assert!(kernel.is_file() && initrd.is_file(), "run `make guests` for the Linux test guest");
    let k = format!("guest-loader,addr=0x49000000,kernel={},bootargs=console=ttyAMA0 el2visor.snapshot=1", kernel.display());
    let i = format!("guest-loader,addr=0x4c000000,initrd={}", initrd.display());
    let run = Qemu::virt("max", 2, "2G", 3)
        .kernel(&image())
        .append("snapshot_mem=1G snapshot_on=EL2VISOR-SNAPSHOT-POINT reset=snapshot restores=3")
        .push(&["-device", &k, "-device", &i])
        .timeout(600)
        .run();
    run.check(run.exited, "QEMU did not exit by itself");
    run.check(run.has("used up; powering the VM off"), "the 4th reset did not power the VM off");
    run.check(!run.guest_output().contains("RESUMED stale"), "a run found the file written after the snapshot");
    for bad in ["soft lockup", "Oops", "rcu_sched detected stalls"] {
        run.check(!run.has(bad), &format!("the guest reported {bad:?}"));
    }
    let clean = run.guest_output().matches("EL2VISOR-RESUMED clean").count();
    run.check(clean == 4, &format!("{clean} runs resumed clean, expected 4 (the first and 3 restores)"));
}

/// QEMU virt, 4 CPUs, 2 GiB, for dom0less domains.
/// A one-vCPU dom0less domain (tests/tools/dom0less.sh syntax) running the test Linux with a
/// vpl011, `mem` of RAM and `args` after `console=ttyAMA0`.
fn linux_domain(name: &str, mem: &str, args: &str) -> String {
    let (img, initrd) = (crate::harness::guest_file("Image"), crate::harness::guest_file("initramfs.cpio.gz"));
    format!("{name}={img}:{initrd}:1:{mem}:console=ttyAMA0 {args}:vpl011")
}

fn domains_machine(gic: u32, cpu: &str) -> String {
    format!("-M virt,virtualization=on,gic-version={gic} -cpu {cpu} -smp 4 -m 2G")
}

/// Boot `vms` (tests/tools/dom0less.sh syntax) as dom0less domains with el2visor's `append`;
/// `inputs` typed on the console as `Qemu::input` does; the output is kept in
/// target/qemu-tests/<tag>/output.txt.
fn domains(tag: &str, machine: &str, vms: &[String], append: &str, secs: u64, inputs: &[(&str, usize, &[u8])]) -> crate::harness::Run {
    let dir = crate::harness::scratch(tag);
    let args = crate::harness::dom0less_args(&dir, machine, vms);
    let mut q = Qemu::bare();
    let m: Vec<&str> = machine.split_whitespace().collect();
    q.push(&m).kernel(&image()).append(append).timeout(secs);
    q.push(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (after, n, bytes) in inputs {
        q.input(after, *n, bytes);
    }
    let r = q.run();
    std::fs::write(dir.join("output.txt"), &r.output).unwrap();
    r
}

/// The numbers of `(<vm>) EL2VISOR-TICK <n>` lines, in order, from `from` (a line index) on. A
/// line may start after the echo of what is typed at el2visor's stop (no newline there).
fn ticks(lines: &[&str], vm: &str, from: usize) -> Vec<u64> {
    let p = format!("({vm}) EL2VISOR-TICK ");
    lines[from..].iter().filter_map(|l| l.find(p.as_str()).map(|i| &l[i + p.len()..])).filter_map(|n| n.trim().parse().ok()).collect()
}

/// Whether `t` counts 1, 2, … with no number missing or repeated.
fn counts_up(t: &[u64]) -> bool {
    t.iter().enumerate().all(|(i, &n)| n == i as u64 + 1)
}

/// Two probe guests as dom0less domains (each with a vpl011), both in `snapshot` mode at once:
/// each takes its area from the `snapshot_mem=` pool at its first snapshot, and for each restore
/// kind its registers and memory are the snapshot's, as for the dom0-like VM; without FWB
/// (`cortex-a72`, `coherency=off`) too. With a pool for one VM only, the other is refused with
/// one line and its probe sees the refusal, while the first passes.
#[test]
fn probe_snapshots_in_two_domains_at_once() {
    let probe = crate::harness::probe_image();
    let vms = [format!("snapA={}::1:128M:snapshot:vpl011", probe.display()), format!("snapB={}::1:128M:snapshot:vpl011", probe.display())];
    for (cpu, gic, extra, expect_clean) in [("max", 3, "", false), ("cortex-a72", 2, " coherency=off", true)] {
        let m = domains_machine(gic, cpu);
        let r = domains(&format!("snapshot-domains-{cpu}"), &m, &vms, &format!("loglevel=info snapshot_mem=256M s2_ram=blocks{extra}"), 600, &[]);
        let ctx = format!("-cpu {cpu}");
        r.check(r.exited, &format!("{ctx}: QEMU did not exit by itself"));
        let probes = probes_on(cpu, false);
        for vm in ["snapA", "snapB"] {
            for p in &probes {
                r.check(r.has(&format!("({vm}) PROBE {p} PASS")), &format!("{ctx}: VM {vm}: {p} did not pass"));
            }
            let n = probes.len();
            r.check(r.has(&format!("({vm}) PROBE DONE pass={n} fail=0")), &format!("{ctx}: VM {vm}: not {n} passes"));
            r.check(r.has(&format!("snapshot: VM {vm}: 128 MiB of snapshot_mem= at")), &format!("{ctx}: VM {vm} got no area"));
        }
        let dirty: Vec<&str> = r.lines().filter(|l| l.starts_with("SNAPSHOT restore kind=dirty")).collect();
        r.check(dirty.len() == 2, &format!("{ctx}: {} dirty-only restores, expected one per VM", dirty.len()));
        for d in dirty {
            let pages = field(d, "pages=").unwrap_or(u64::MAX);
            r.check((3..64).contains(&pages), &format!("{ctx}: a dirty-only restore copied {pages} pages"));
            let lines = field(d, "cmo_lines=").unwrap_or(u64::MAX);
            r.check((lines > 0) == expect_clean, &format!("{ctx}: {lines} cache lines cleaned by a dirty-only restore"));
        }
    }
    // A pool for one of them: whichever asks second is refused, in one line.
    let m = domains_machine(3, "max");
    let r = domains("snapshot-domains-pool", &m, &vms, "loglevel=info snapshot_mem=128M s2_ram=blocks", 600, &[]);
    r.check(r.exited, "pool: QEMU did not exit by itself");
    let refused: Vec<&str> = r.lines().filter(|l| l.contains("do not fit snapshot_mem= (0 MiB left of 128 MiB")).collect();
    r.check(refused.len() == 1, &format!("pool: {} refusal lines, expected one: {refused:?}", refused.len()));
    let (ok, no) = if refused.first().is_some_and(|l| l.contains("VM snapA:")) { ("snapB", "snapA") } else { ("snapA", "snapB") };
    let n = probes_on("max", false).len();
    r.check(r.has(&format!("({ok}) PROBE DONE pass={n} fail=0")), &format!("pool: VM {ok}, which got the area, did not pass"));
    r.check(r.has(&format!("({no}) PROBE snapshot_restore_eager FAIL")), &format!("pool: VM {no}'s probe did not see the refusal"));
}

/// A Linux domain snapshotted when it prints its marker on its vpl011 (`snapshot_on=<vm>:<text>`
/// names it) and restored by each of its reboots (`reset=snapshot restores=3`): every run
/// resumes after the marker without the /tmp file the run before wrote, the 4th reset powers it
/// off; meanwhile the other domain ticks once a second, every tick once and in order (it is
/// never paused nor snapshotted), and goes on after the first has ended.
#[test]
fn domain_snapshot_on_marker_restored_beside_a_ticking_domain() {
    let vms = [linux_domain("domU1", "256M", "el2visor.snapshot=1"), linux_domain("domU2", "256M", "el2visor.ticks=150")];
    let m = domains_machine(3, "max");
    let append = "loglevel=info snapshot_mem=512M snapshot_on=domU1:EL2VISOR-SNAPSHOT-POINT reset=snapshot restores=3";
    let r = domains("snapshot-domain-marker", &m, &vms, append, 900, &[]);
    let lines: Vec<&str> = r.lines().map(|l| l.trim_end_matches('\r')).collect();
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("snapshot: VM domU1: watching its vpl011 for snapshot_on="), "domU1's vpl011 is not watched");
    r.check(!r.has("snapshot: VM domU2: watching"), "snapshot_on=domU1:… watches domU2 too");
    r.check(lines.iter().filter(|l| l.contains("(domU1) EL2VISOR-SNAPSHOT-POINT")).count() == 1, "the marker was printed more than once");
    r.check(r.has("snapshot: VM domU1: taken"), "no snapshot of domU1 at its marker");
    r.check(!r.has("snapshot: VM domU2: taken"), "domU2 was snapshotted");
    let clean = lines.iter().filter(|l| **l == "(domU1) EL2VISOR-RESUMED clean").count();
    r.check(clean == 4, &format!("{clean} runs of domU1 resumed clean, expected 4 (the first and 3 restores)"));
    r.check(!r.has("EL2VISOR-RESUMED stale"), "a run found the file written after the snapshot");
    r.check(lines.iter().filter(|l| l.starts_with("SNAPSHOT restore kind=dirty")).count() == 3, "not 3 dirty-only restores");
    let off = lines.iter().position(|l| l.contains("VM domU1: reset: restores=3 used up; powering the VM off"));
    r.check(off.is_some(), "the 4th reset did not power domU1 off");
    let t = ticks(&lines, "domU2", 0);
    r.check(t.len() == 150 && counts_up(&t), &format!("domU2's ticks were disturbed: {} ticks, in order: {}", t.len(), counts_up(&t)));
    if let Some(first) = lines.iter().position(|l| l.contains("VM domU1: reset: restoring the snapshot (1)")) {
        let during = ticks(&lines[..off.unwrap_or(lines.len())], "domU2", first).len();
        let after = ticks(&lines, "domU2", off.unwrap_or(lines.len())).len();
        r.check(after >= 2, &format!("domU2 ticked {after} times after domU1 ended ({during} during the restores)"));
    }
    r.check(r.has("(domU2) EL2VISOR-GUEST-OK"), "domU2 did not finish");
}

/// el2visor's own stop in the console switch (after the last VM, Ctrl-A three times a stop):
/// `help`, an unknown command, a restore before any snapshot (one line each), then `snapshot
/// domU1` and its three restores, each asked for on the console while domU1 ticks: after each
/// its ticks count again from where they were at the snapshot (its memory and registers are the
/// snapshot's), while domU2's ticks go on, each once and in order.
#[test]
fn console_commands_snapshot_and_restore_a_domain() {
    let vms = [linux_domain("domU1", "256M", "el2visor.ticks=20"), linux_domain("domU2", "128M", "el2visor.ticks=40")];
    let m = domains_machine(2, "cortex-a72");
    let inputs: [(&str, usize, &[u8]); 6] = [
        ("(domU1) EL2VISOR-TICK 3", 1, b"\x01\x01\x01\x01\x01\x01"),
        ("console input now goes to el2visor", 1, b"help\rfrobnicate\rrestore domU1\rsnapshot nosuchvm\rsnapshot domU1\r"),
        ("(domU1) EL2VISOR-TICK 12", 1, b"restore domU1 eager\r"),
        ("(domU1) EL2VISOR-TICK 12", 2, b"restore domU1 lazy\r"),
        ("(domU1) EL2VISOR-TICK 12", 3, b"restore domU1\r"),
        ("(domU1) EL2VISOR-TICK 12", 4, b"vms\r"),
    ];
    let r = domains("snapshot-console", &m, &vms, "loglevel=info snapshot_mem=256M", 900, &inputs);
    let lines: Vec<&str> = r.lines().map(|l| l.trim_end_matches('\r')).collect();
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("el2visor: console input now goes to VM domU2"), "the first switch did not go to domU2");
    r.check(r.has("el2visor: console input now goes to el2visor (type help)"), "el2visor is not a stop of the switch");
    r.check(r.has("el2visor:   snapshot <vm> "), "no help");
    r.check(r.has("el2visor: unknown command 'frobnicate' (type help)"), "no line for an unknown command");
    r.check(r.has("el2visor: VM domU1: cannot: it has no snapshot taken yet"), "a restore with no snapshot was not refused");
    r.check(r.has("el2visor: no VM is called 'nosuchvm'"), "an unknown VM was not refused");
    r.check(r.has("el2visor: VM domU1: snapshot asked for"), "the snapshot command was not taken");
    let taken = lines.iter().position(|l| l.contains("snapshot: VM domU1: taken"));
    r.check(taken.is_some(), "no snapshot of domU1");
    let at = taken.map_or(0, |i| ticks(&lines[..i], "domU1", 0).last().copied().unwrap_or(0));
    for kind in ["eager", "lazy", "dirty"] {
        r.check(r.has(&format!("el2visor: VM domU1: {kind} restore asked for")), &format!("the {kind} restore was not asked for"));
        let Some(i) = lines.iter().position(|l| l.starts_with(&format!("SNAPSHOT restore kind={kind} "))) else {
            r.check(false, &format!("no {kind} restore"));
            continue;
        };
        let next = ticks(&lines, "domU1", i).first().copied().unwrap_or(0);
        r.check(next >= at && next <= at + 2, &format!("after the {kind} restore domU1 ticked {next}, the snapshot was at tick {at}"));
    }
    r.check(r.has("el2visor: VM domU1: 1 vCPUs, running, snapshot taken"), "`vms` did not list domU1's snapshot");
    r.check(!r.has("snapshot: VM domU2: taken"), "domU2 was snapshotted");
    let t = ticks(&lines, "domU2", 0);
    r.check(t.len() == 40 && counts_up(&t), &format!("domU2's ticks were disturbed: {} ticks, in order: {}", t.len(), counts_up(&t)));
    r.check(r.has("(domU1) EL2VISOR-GUEST-OK") && r.has("(domU2) EL2VISOR-GUEST-OK"), "a domain did not finish");
}

/// One domain with a vpl011: the switch has two stops, it and el2visor, whose commands work
/// there too; three more Ctrl-A give the input back to the domain.
#[test]
fn console_commands_with_a_single_domain() {
    let vms = [linux_domain("domU1", "128M", "el2visor.ticks=12")];
    let m = domains_machine(3, "max");
    let inputs: [(&str, usize, &[u8]); 3] = [
        ("(domU1) EL2VISOR-TICK 2", 1, b"\x01\x01\x01"),
        ("console input now goes to el2visor", 1, b"snapshot domU1\r"),
        ("snapshot: VM domU1: taken", 1, b"vms\r\x01\x01\x01"),
    ];
    let r = domains("snapshot-console-one", &m, &vms, "loglevel=info snapshot_mem=128M", 600, &inputs);
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("el2visor: console input now goes to el2visor (type help)"), "three Ctrl-A did not reach el2visor");
    r.check(r.has("el2visor: VM domU1: snapshot asked for"), "the snapshot command was not taken");
    r.check(r.has("snapshot: VM domU1: taken"), "no snapshot of domU1");
    r.check(r.has("el2visor: VM domU1: 1 vCPUs, running, snapshot taken"), "`vms` did not list domU1's snapshot");
    r.check(r.has("el2visor: console input now goes to VM domU1"), "three more Ctrl-A did not give the input back to domU1");
    r.check(r.has("(domU1) EL2VISOR-GUEST-OK"), "domU1 did not finish");
}
