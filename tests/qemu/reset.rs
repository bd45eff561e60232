//! Issue 4: PSCI SYSTEM_RESET restarts the VM from pristine copies of its images. The probe guest
//! booted with `reset` leaves a marker in RAM, asks for the reset, and passes when it boots again
//! and finds the marker; passed as a Xen multiboot module, so the copy el2visor keeps is used.
//! Issue 12: the reset still happens while another vCPU turns a third one on in a loop.

use crate::harness::{image, probe_image, Qemu};

#[test]
fn system_reset_reboots_the_vm_from_pristine_images() {
    for (cpu, gic) in [("max", 3), ("cortex-a72", 2)] {
        let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=reset", probe_image().display());
        let run = Qemu::virt(cpu, 2, "1G", gic).kernel(&image()).push(&["-device", &loader]).timeout(120).run();
        let ctx = format!("-cpu {cpu} gic-version={gic}");
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
        run.check(run.has("probe: requesting SYSTEM_RESET"), &format!("{ctx}: the probe did not ask for a reset"));
        run.check(run.has("reset: images reloaded"), &format!("{ctx}: el2visor did not say it reset the VM"));
        run.check(run.lines().filter(|l| *l == "PROBE START").count() == 2, &format!("{ctx}: the probe did not boot twice"));
        run.check(run.has("PROBE system_reset PASS"), &format!("{ctx}: system_reset did not pass"));
        run.check(run.line("STATS ").is_some(), &format!("{ctx}: no STATS line"));
    }
}

/// Issue 12: with `reset_race`, vCPU 1 issues CPU_ON on vCPU 2 in a loop (vCPU 2 turns itself off
/// at once) while vCPU 0 asks for SYSTEM_RESET, three boots in a row; the fourth boot passes. A
/// CPU_ON landing during the reset must neither stall it (el2visor used to give up after 2 s and
/// end the VM) nor start a vCPU into the reloaded images.
#[test]
fn system_reset_during_a_cpu_on_storm() {
    for (cpu, gic) in [("max", 3), ("cortex-a72", 2)] {
        let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=reset_race", probe_image().display());
        let run = Qemu::virt(cpu, 3, "1G", gic).kernel(&image()).push(&["-device", &loader]).timeout(180).run();
        let ctx = format!("-cpu {cpu} gic-version={gic}");
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
        run.check(!run.has("did not stop"), &format!("{ctx}: a reset gave up on a vCPU"));
        let resets = run.lines().filter(|l| l.contains("reset: images reloaded")).count();
        run.check(resets == 3, &format!("{ctx}: {resets} resets, expected 3"));
        run.check(run.lines().filter(|l| *l == "PROBE START").count() == 4, &format!("{ctx}: the probe did not boot 4 times"));
        run.check(run.has("PROBE reset_race PASS"), &format!("{ctx}: reset_race did not pass"));
        run.check(!run.lines().any(|l| l.starts_with("PROBE ") && l.contains(" FAIL")), &format!("{ctx}: a probe failed"));
    }
}
