//! Issue 11, the virtual ITS against a hostile guest: the probe guest, loaded as a multiboot
//! kernel on gic3 (identity mapped, so it owns the PCI bridge and gets the virtual ITS), points
//! GITS_CBASER at el2visor's own memory (just past its RAM) and then feeds the queue pseudo-random commands, a DeviceID it
//! does not own and a collection on a processor it lacks (`its_garbage`, tests/probe-guest). The
//! queue must stall, then consume every command; el2visor logs the errors and stays intact (every
//! other probe passes, STATS, power-off). Linux through the virtual ITS is in `pci.rs`.

use crate::harness::{image, probe_image, Qemu};

#[test]
fn its_garbage_commands_get_errors_and_el2visor_stays_intact() {
    for cpu in ["cortex-a72", "max"] {
        let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=probe", probe_image().display());
        let r = Qemu::virt(cpu, 2, "1G", 3).kernel(&image()).push(&["-device", &loader]).timeout(120).run();
        let ctx = format!("-cpu {cpu}");
        r.check(r.has("VM guest: virtual ITS at 0x8080000"), &format!("{ctx}: the probe VM got no virtual ITS"));
        r.check(r.has("PROBE its_garbage PASS"), &format!("{ctx}: its_garbage did not pass"));
        // The probe aims CBASER just past its RAM: el2visor's own block at the top of RAM.
        let kept = r.lines().find_map(|l| l.split("el2visor keeps ").nth(1)).and_then(|s| s.split("..").next()).unwrap_or("?").to_string();
        r.check(
            r.has(&format!("virtual ITS: command queue stalled: offset 0x0 (IPA {kept})")),
            &format!("{ctx}: el2visor did not stall the queue aimed at its own memory at {kept}"),
        );
        r.check(r.has("is not the VM's"), &format!("{ctx}: el2visor did not refuse the foreign DeviceID"));
        r.check(r.has("ITS command error 0x010902: no vCPU 4000"), &format!("{ctx}: el2visor did not refuse the collection on processor 4000"));
        r.check(r.line("PROBE DONE pass=").is_some_and(|l| l.ends_with(" fail=0")), &format!("{ctx}: a probe failed"));
        r.check(r.line("STATS exits=").is_some(), &format!("{ctx}: no final STATS line"));
        r.check(r.exited, &format!("{ctx}: QEMU did not exit after the guest powered off"));
    }
}
