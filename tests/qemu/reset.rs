//! Issue 4: PSCI SYSTEM_RESET restarts the VM from pristine copies of its images. The probe guest
//! booted with `reset` leaves a marker in RAM, asks for the reset, and passes when it boots again
//! and finds the marker; passed as a Xen multiboot module, so the copy el2visor keeps is used.

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
