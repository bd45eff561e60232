//! Issue 14: guest panic capture, the crash policy and traces (docs/debugging.md).
//!
//! - Debian's Linux (no pvpanic driver in its config) with `rdinit=/nonexistent panic=1`, as a
//!   dom0less domain with a vpl011: el2visor sees its panic line, prints the panic report with the
//!   guest's state and the tail of its console, restarts it `crash_restarts=2` times when it resets
//!   itself a second later, then halts it with one line, and the machine powers off.
//! - The probe guest's `panic` mode writes PANICKED to the pvpanic device el2visor gives every VM:
//!   `on_crash=halt`, `restart`, `report` and `debug` each do what they say.
//! - `trace=psci,s2fault` on a Linux boot prints the PSCI calls and stays within the rate limit's
//!   budget.
//! - The probe's `LOG_LINE` text appears in el2visor's log (`PROBE log_line` checks the errors).


use crate::harness::{guest_file, image, probe_image, scratch, Qemu, Run};

/// The rate limit of every trace class (src/trace.rs): a burst, then this many lines a second.
const TRACE_BURST: u64 = 32;
const TRACE_RATE: u64 = 8;


fn count(run: &Run, needle: &str) -> usize {
    run.lines().filter(|l| l.contains(needle)).count()
}

/// Debian's kernel panics at boot (no root file system, `rdinit=` names nothing) and reboots one
/// second later (`panic=1`): three boots, two restarts, then `crashed 3 times in a row; halted`.
#[test]
fn a_linux_guest_that_keeps_panicking_is_reported_restarted_then_halted() {
    let machine = "-M virt,virtualization=on,gic-version=3 -cpu max -smp 2 -m 1G";
    let dir = scratch("crash-linux");
    let vm = format!(
        "crash={}:{}:1:256M:console=ttyAMA0 rdinit=/nonexistent panic=1:vpl011",
        guest_file("Image"),
        guest_file("initramfs.cpio.gz")
    );
    let extra = crate::harness::dom0less_args(&dir, machine, &[vm]);
    let mut q = Qemu::bare();
    let m: Vec<&str> = machine.split_whitespace().collect();
    q.push(&m).kernel(&image()).append("loglevel=info crash_restarts=2").timeout(400);
    q.push(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    let r = q.run();
    r.check(r.exited, "QEMU did not exit by itself: the crash loop was not stopped");
    let boots = r.lines().filter(|l| l.starts_with("(crash) ") && l.contains("] Booting Linux on physical CPU")).count();
    r.check(boots == 3, &format!("{boots} boots, expected 3 (the first and two restarts)"));
    let panics = count(&r, "el2visor: VM crash panicked (Linux's panic line on its console)");
    r.check(panics == 3, &format!("{panics} panic reports, expected 3"));
    for needle in ["  vCPU 0 pc ", "  the guest's last exception", "  FAR_EL1 ", "  ELR_EL1 ", "  pc 0x", "bytes VM crash printed:"] {
        r.check(count(&r, needle) >= 3, &format!("the panic report lacks `{needle}` (three times)"));
    }
    r.check(
        r.lines().any(|l| l.starts_with("  | ") && l.contains("Kernel panic - not syncing")),
        "the console tail in the report does not show the panic line",
    );
    r.check(count(&r, "el2visor: VM crash: on_crash=report") == 3, "on_crash=report (the default) is not said for each panic");
    r.check(r.has("el2visor: VM crash crashed (1 in a row, crash_restarts=2): restarting it"), "no first restart line");
    r.check(r.has("el2visor: VM crash crashed (2 in a row, crash_restarts=2): restarting it"), "no second restart line");
    let halted: Vec<&str> = r.lines().filter(|l| l.contains("times in a row; halted")).collect();
    r.check(halted == ["el2visor: VM crash crashed 3 times in a row; halted"], &format!("halt lines: {halted:?}"));
    r.check(r.has("STATS vm=crash "), "no STATS line for the halted VM");
    r.check(r.line("STATS exits=").is_some(), "the machine did not end with its STATS line");
}

/// The probe guest in `panic` mode as a multiboot kernel, with el2visor's `args`.
fn probe_panic(args: &str, secs: u64) -> Run {
    let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=panic", probe_image().display());
    Qemu::virt("max", 2, "1G", 3).kernel(&image()).append(args).push(&["-device", &loader]).timeout(secs).run()
}

#[test]
fn on_crash_halt_ends_the_vm_at_the_pvpanic_write() {
    let r = probe_panic("on_crash=halt", 60);
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("probe: pvpanic at 0x90c0000 offers events 0x7; panicking"), "the probe did not find the pvpanic device at 0x90c0000 offering events 7");
    r.check(count(&r, "el2visor: VM guest panicked (pvpanic PANICKED)") == 1, "no (single) panic line");
    r.check(r.has("el2visor: VM guest: on_crash=halt: halting it"), "no on_crash=halt line");
    r.check(!r.has("still running after the pvpanic write"), "the guest ran on after the panic");
    r.check(r.has("STATS vm=guest "), "no STATS line for the VM");
    r.check(r.has("(VM guest has no virtual UART"), "the report does not say why there is no console tail");
}

#[test]
fn on_crash_restart_resets_at_once_until_the_limit() {
    let r = probe_panic("on_crash=restart crash_restarts=1", 60);
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(count(&r, "el2visor: VM guest panicked (pvpanic PANICKED)") == 2, "expected two panics (one restart)");
    r.check(count(&r, "on_crash=restart: restarting it") == 2, "on_crash=restart not said for each panic");
    r.check(!r.has("still running after the pvpanic write"), "the guest ran on after a panic");
    r.check(r.has("el2visor: VM guest crashed (1 in a row, crash_restarts=1): restarting it"), "no restart line");
    r.check(r.has("el2visor: VM guest crashed 2 times in a row; halted"), "no halt line");
    r.check(count(&r, "PROBE START") == 2, "the probe did not boot twice");
}

#[test]
fn on_crash_report_lets_the_guest_go_on_and_counts_its_reset() {
    let r = probe_panic("crash_restarts=0", 60);
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("el2visor: VM guest: on_crash=report: the guest goes on"), "no on_crash=report line");
    r.check(r.has("probe: still running after the pvpanic write; requesting SYSTEM_RESET"), "the guest did not go on");
    r.check(r.has("el2visor: VM guest crashed 1 times in a row; halted"), "crash_restarts=0 did not halt at the first crash");
    r.check(count(&r, "PROBE START") == 1, "the VM was restarted");
}

#[test]
fn on_crash_debug_stops_the_vm_for_a_debugger() {
    let r = probe_panic("on_crash=debug", 20);
    r.check(!r.exited, "QEMU exited: the held VM did not wait");
    r.check(r.has("el2visor: VM guest stopped (on_crash=debug), waiting for a debugger"), "no waiting line");
    r.check(!r.has("still running after the pvpanic write"), "the guest ran on while held");
}

/// `trace=psci,s2fault` on a Linux boot: the PSCI calls appear, decoded, and neither class prints
/// more than its budget, `TRACE_BURST + TRACE_RATE * seconds` lines plus as many suppression notes.
#[test]
fn trace_psci_and_s2fault_on_linux_stay_within_budget() {
    let kernel = format!("guest-loader,addr=0x49000000,kernel={},bootargs=console=ttyAMA0", guest_file("Image"));
    let initrd = format!("guest-loader,addr=0x4c000000,initrd={}", guest_file("initramfs.cpio.gz"));
    let r = Qemu::virt("max", 2, "1G", 3)
        .kernel(&image())
        .append("trace=psci,s2fault")
        .push(&["-device", &kernel, "-device", &initrd])
        .timeout(240)
        .run();
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("EL2VISOR-GUEST-OK "), "Linux did not reach its init");
    for call in ["PSCI_VERSION", "CPU_ON", "SYSTEM_OFF"] {
        r.check(
            r.lines().any(|l| l.starts_with("trace psci VM guest vCPU ") && l.contains(&format!(": {call} ("))),
            &format!("no `trace psci` line for {call}"),
        );
    }
    r.check(r.lines().any(|l| l.starts_with("trace s2fault VM guest vCPU ") && l.contains("IPA 0x")), "no `trace s2fault` line");
    let secs = r.elapsed.as_secs() + 1;
    let budget = TRACE_BURST + TRACE_RATE * secs;
    for class in ["psci", "s2fault"] {
        let lines = count(&r, &format!("trace {class} VM ")) as u64;
        let notes = count(&r, &format!("trace {class}: ")) as u64;
        r.check(lines <= budget && notes <= budget, &format!("trace {class}: {lines} lines and {notes} notes in {secs} s, over the budget of {budget}"));
    }
}

#[test]
fn the_probe_guest_logs_a_line_through_the_vendor_call() {
    let r = Qemu::virt("max", 2, "1G", 3).kernel(&image()).timeout(120).run();
    r.check(r.exited, "QEMU did not exit by itself");
    r.check(r.has("PROBE log_line PASS"), "the log_line probe did not pass");
    r.check(
        r.has("el2visor: VM probe vCPU 0 log: PROBE-LOG hello from the probe guest through LOG_LINE"),
        "the guest's line is not in el2visor's log",
    );
}
