//! Issue 13: snapshots, lazy restore and dirty tracking. The probe guest in `snapshot` mode takes
//! a snapshot and restores it three ways (eager, lazy, dirty-only): registers (general, FP, EL1)
//! and memory must be the snapshot's after each, a page written after the snapshot reads its old
//! value, the lazy restore zaps RAM (no blocks, most pages missing) and collapses it back once
//! every page is in, and without FWB every restored page is cleaned to the PoC (the probe reads
//! RAM through a Normal-NC stage-1 mapping; `coherency=off`). Run under FWB (`-cpu max`) and
//! without (`-cpu cortex-a72`).

use crate::harness::{image, Qemu};

const PROBES: [&str; 5] =
    ["snapshot_restore_eager", "snapshot_restore_lazy", "snapshot_lazy_zapped", "snapshot_lazy_collapse", "snapshot_restore_dirty"];

#[test]
fn probe_snapshot_restores_every_kind() {
    for (cpu, gic, mode, args) in [
        ("max", 3, "fwb", "snapshot_mem=128M guest_args=snapshot"),
        ("cortex-a72", 2, "off", "snapshot_mem=128M coherency=off guest_args=snapshot"),
    ] {
        let run = Qemu::virt(cpu, 1, "1G", gic).kernel(&image()).append(args).timeout(300).run();
        let ctx = format!("-cpu {cpu} ({mode})");
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
        run.check(run.has(&format!("coherency: {mode}")), &format!("{ctx}: not in {mode} mode"));
        for p in PROBES {
            run.check(run.has(&format!("PROBE {p} PASS")), &format!("{ctx}: {p} did not pass"));
        }
        run.check(run.has("PROBE DONE pass=5 fail=0"), &format!("{ctx}: not 5 passes and no failure"));
        // The dirty-only restore copied back only the few pages written since the snapshot.
        let dirty = run.line("SNAPSHOT restore kind=dirty").unwrap_or("");
        let pages: u64 = field(dirty, "pages=").unwrap_or(u64::MAX);
        run.check((3..64).contains(&pages), &format!("{ctx}: the dirty-only restore copied {pages} pages"));
        let lines: u64 = field(dirty, "cmo_lines=").unwrap_or(u64::MAX);
        let expect_clean = mode != "fwb";
        run.check((lines > 0) == expect_clean, &format!("{ctx}: {lines} cache lines cleaned by the dirty-only restore"));
    }
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
/// same time here (the tapped UART passes the guest's bytes through at once), so lines may be cut
/// by each other: the checks count what cannot be missed.
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
    run.check(!run.has("RESUMED stale"), "a run found the file written after the snapshot");
    for bad in ["soft lockup", "Oops", "rcu_sched detected stalls"] {
        run.check(!run.has(bad), &format!("the guest reported {bad:?}"));
    }
    let clean = run.output.matches("RESUMED clean").count();
    run.check(clean == 4, &format!("{clean} runs resumed clean, expected 4 (the first and 3 restores)"));
}
