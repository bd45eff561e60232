//! Issue 8: several VMs side by side from Xen's dom0less device tree, written the way
//! ImageBuilder writes it for Xen (tests/tools/dom0less.sh: QEMU's own DT plus `xen,domain`
//! nodes, modules loaded with `-device loader`). Each domain prints through its vpl011, so its
//! lines carry `(<name>) `; each powers off on its own (`STATS vm=<name>`), and the last one takes
//! the machine with it.

use std::path::Path;

use crate::harness::{guest_file, image, scratch, Qemu, Run};

const MARKER: &str = "EL2VISOR-GUEST-OK ";



/// The machine: QEMU virt with `gic`, `cpu`, 4 CPUs and 2 GiB.
fn machine(gic: u32, cpu: &str) -> String {
    format!("-M virt,virtualization=on,gic-version={gic} -cpu {cpu} -smp 4 -m 2G")
}


fn run(machine: &str, extra: &[String], secs: u64, stop_on: Option<(&str, usize)>) -> Run {
    let mut q = Qemu::bare();
    let m: Vec<&str> = machine.split_whitespace().collect();
    q.push(&m).kernel(&image()).append("loglevel=info").timeout(secs);
    let e: Vec<&str> = extra.iter().map(String::as_str).collect();
    q.push(&e);
    if let Some((s, n)) = stop_on {
        q.stop_on_nth(s, n);
    }
    q.run()
}

/// The marker a VM printed: (cpus, MemTotal in KiB). Domains' lines carry their prefix; the
/// dom0-like VM writes to the UART itself, so whole domain lines are cut out of its text first
/// (one may land in the middle of its line).
fn marker(run: &Run, vm: Option<&str>) -> Option<(u64, u64)> {
    let text = match vm {
        Some(_) => run.output.clone(),
        None => strip_domain_lines(&run.output),
    };
    let prefix = vm.map_or(String::new(), |n| format!("({n}) "));
    let rest = text.lines().map(|l| l.trim_end_matches('\r')).find_map(|l| l.strip_prefix(&format!("{prefix}{MARKER}")))?;
    let mut cpus = None;
    let mut mem = None;
    for w in rest.split_whitespace() {
        match w.split_once('=') {
            Some(("cpus", v)) => cpus = v.parse().ok(),
            Some(("mem", v)) => mem = v.parse().ok(),
            _ => {}
        }
    }
    Some((cpus?, mem?))
}

/// The output without any `(name) …` line, wherever it starts.
fn strip_domain_lines(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("(domU") {
        out.push_str(&rest[..i]);
        rest = match rest[i..].find('\n') {
            Some(j) => &rest[i + j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// A domain with `cpus` vCPUs and `mib` MiB printed its marker: its CPU count, and MemTotal no
/// more than its RAM and at most 40 MiB short of it (the kernel's image and page structures).
fn check_domain(run: &Run, name: &str, cpus: u64, mib: u64) {
    let Some((c, mem)) = marker(run, Some(name)) else {
        return run.check(false, &format!("VM {name} printed no '({name}) {MARKER}' line"));
    };
    run.check(c == cpus, &format!("VM {name} saw {c} CPUs, not {cpus}"));
    let ram_kib = mib << 10;
    run.check(mem <= ram_kib && mem + (40 << 10) >= ram_kib, &format!("VM {name}: MemTotal {mem} kB for {mib} MiB of RAM"));
    run.check(run.lines().any(|l| l.starts_with(&format!("STATS vm={name} exits="))), &format!("no 'STATS vm={name}' line"));
}

#[test]
fn three_domains_boot_side_by_side() {
    // Every GIC version and CPU appears: gic3 with max (FWB), gic2 with cortex-a72 (mair-trap).
    for (gic, cpu) in [(3, "max"), (2, "cortex-a72")] {
        let m = machine(gic, cpu);
        let dir = scratch(&format!("dom0less-three-{gic}-{cpu}"));
        let (img, rpi, initrd) = (guest_file("Image"), guest_file("Image-rpi4"), guest_file("initramfs.cpio.gz"));
        let vms = [
            format!("domU1={img}:{initrd}:2:256M:console=ttyAMA0:vpl011"),
            format!("domU2={rpi}:{initrd}:1:192M:console=ttyAMA0:vpl011"),
            format!("domU3={img}:{initrd}:1:160M:console=ttyAMA0:vpl011"),
        ];
        let r = run(&m, &crate::harness::dom0less_args(&dir, &m, &vms), 300, None);
        check_domain(&r, "domU1", 2, 256);
        check_domain(&r, "domU2", 1, 192);
        check_domain(&r, "domU3", 1, 160);
        r.check(r.line("STATS exits=").is_some(), "no machine-wide STATS line after the last VM");
        r.check(r.exited, "QEMU did not exit after the last VM powered off");
        // Each VM's output is its own: no line of one carries another's marker.
        r.check(r.lines().filter(|l| l.contains(MARKER)).all(|l| l.starts_with("(domU")), "a marker without a VM prefix");
        r.check(!r.has("el2visor: GUEST FAULT") && !r.has("PANIC") && !r.has("FATAL"), "a fault");
    }
}

/// The partial device tree giving a domain QEMU virt's PL031 RTC, as Xen's docs write one.
const RTC_PARTIAL: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    passthrough {
        compatible = "simple-bus";
        ranges;
        #address-cells = <2>;
        #size-cells = <2>;
        apb_pclk: clk {
            compatible = "fixed-clock";
            #clock-cells = <0>;
            clock-frequency = <24000000>;
            clock-output-names = "clk24mhz";
        };
        pl031@9010000 {
            compatible = "arm,pl031", "arm,primecell";
            reg = <0x0 0x9010000 0x0 0x1000>;
            interrupts = <0 2 4>;
            interrupt-parent = <65000>;
            clocks = <&apb_pclk>;
            clock-names = "apb_pclk";
            xen,reg = <0x0 0x9010000 0x0 0x1000 0x0 0x9010000>;
            xen,path = "PATH";
        };
    };
};
"#;

fn partial_dtb(dir: &Path, host_path: &str) -> String {
    let (src, out) = (dir.join("rtc.dts"), dir.join("rtc.dtb"));
    crate::harness::compile_dts(&RTC_PARTIAL.replace("PATH", host_path), &src, &out);
    out.to_str().unwrap().to_string()
}

/// The top-level node names a VM printed (`EL2VISOR-DT …`).
fn dt_nodes(run: &Run, prefix: &str) -> Vec<String> {
    let text = if prefix.is_empty() { strip_domain_lines(&run.output) } else { run.output.clone() };
    let line = text.lines().find_map(|l| l.trim_end_matches('\r').strip_prefix(&format!("{prefix}EL2VISOR-DT ")).map(str::to_string));
    line.unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

#[test]
fn dom0_like_vm_beside_a_domain_that_owns_the_rtc() {
    let m = machine(3, "cortex-a72");
    let dir = scratch("dom0less-dom0-rtc");
    let (img, initrd) = (guest_file("Image"), guest_file("initramfs.cpio.gz"));
    let rtc = partial_dtb(&dir, "/pl031@9010000");
    let vms = [
        // The dom0-like VM writes to the UART itself, character by character, while el2visor prints
        // the domain's lines: it stays quiet until the domain is done, so the two do not mix.
        format!("linux={img}:{initrd}:0:0:console=ttyAMA0 quiet el2visor.delay=25:dom0"),
        format!("domU1={img}:{initrd}:1:256M:console=ttyAMA0:vpl011,dtb={rtc},pt=/pl031@9010000"),
    ];
    let r = run(&m, &crate::harness::dom0less_args(&dir, &m, &vms), 300, None);
    check_domain(&r, "domU1", 1, 256);
    let (cpus, _) = marker(&r, None).unwrap_or_else(|| panic!("no marker from the dom0-like VM\n{}", r.output));
    r.check(cpus == 3, &format!("the dom0-like VM saw {cpus} CPUs, not the 3 the domain left"));
    let domu = dt_nodes(&r, "(domU1) ");
    let want = ["aliases", "chosen", "cpus", "interrupt-controller@3001000", "memory@40000000", "passthrough", "psci", "sbsa-uart@22000000", "timer"];
    for n in want {
        r.check(domu.iter().any(|x| x == n), &format!("domU1's DT lacks {n}: {domu:?}"));
    }
    r.check(
        // Its own emulated pvpanic device (every VM has one) besides what it was given.
        domu.iter().all(|x| want.contains(&x.as_str()) || x.starts_with("pvpanic@") || !x.contains('@') && x != "pmu"),
        &format!("domU1 sees a node it does not own: {domu:?}"),
    );
    r.check(r.has("(domU1) EL2VISOR-RTC rtc-pl031"), "domU1 has no working PL031");
    let dom0 = dt_nodes(&r, "");
    r.check(!dom0.iter().any(|x| x.starts_with("pl031")), &format!("the dom0-like VM still sees the domain's RTC: {dom0:?}"));
    r.check(!dom0.is_empty() && dom0.iter().any(|x| x.starts_with("pl011")), "the dom0-like VM lost its UART");
    r.check(r.exited, "QEMU did not exit after both VMs powered off");
}

#[test]
fn a_domain_reset_leaves_the_others_running() {
    let m = machine(3, "max");
    let dir = scratch("dom0less-reset");
    let (img, initrd) = (guest_file("Image"), guest_file("initramfs.cpio.gz"));
    // domU1 reboots (PSCI SYSTEM_RESET) after each boot; domU2 ticks once a second meanwhile.
    let vms = [
        format!("domU1={img}:{initrd}:1:256M:console=ttyAMA0 el2visor.action=reboot:vpl011"),
        format!("domU2={img}:{initrd}:2:256M:console=ttyAMA0 el2visor.ticks=1000:vpl011"),
    ];
    let r = run(&m, &crate::harness::dom0less_args(&dir, &m, &vms), 400, Some((&format!("(domU1) {MARKER}"), 2)));
    let boots = r.lines().filter(|l| l.starts_with(&format!("(domU1) {MARKER}"))).count();
    r.check(boots >= 2, &format!("domU1 should have booted again after its reset ({boots} markers)"));
    let lines: Vec<&str> = r.lines().collect();
    let reset = lines.iter().position(|l| l.contains("VM domU1: reset: images reloaded"));
    r.check(reset.is_some(), "no reset of domU1");
    let ticks_after = lines[reset.unwrap()..].iter().filter(|l| l.starts_with("(domU2) EL2VISOR-TICK ")).count();
    r.check(ticks_after >= 2, &format!("domU2 stopped ticking when domU1 reset ({ticks_after} ticks after it)"));
    r.check(!r.has("STATS vm="), "a VM ended");
}

#[test]
fn console_input_goes_to_one_domain_at_a_time_switched_by_ctrl_a() {
    let m = machine(2, "cortex-a72");
    let dir = scratch("dom0less-input");
    let (img, initrd) = (guest_file("Image"), guest_file("initramfs.cpio.gz"));
    let vms = [
        format!("domU1={img}:{initrd}:1:256M:console=ttyAMA0 el2visor.read=1:vpl011"),
        format!("domU2={img}:{initrd}:1:256M:console=ttyAMA0 el2visor.read=1:vpl011"),
    ];
    let mut q = Qemu::bare();
    let mm: Vec<&str> = m.split_whitespace().collect();
    q.push(&mm).kernel(&image()).append("loglevel=info").timeout(300);
    let extra = crate::harness::dom0less_args(&dir, &m, &vms);
    let e: Vec<&str> = extra.iter().map(String::as_str).collect();
    q.push(&e);
    // Both wait for a line; the first goes to domU1, which has the input at first; three Ctrl-A
    // give it to domU2.
    q.input("EL2VISOR-WAITING", 2, b"one\r");
    q.input("EL2VISOR-READ", 1, b"\x01\x01\x01");
    q.input("console input now goes to VM domU2", 1, b"two\r");
    let r = q.run();
    r.check(r.has("el2visor: console input goes to VM domU1 (press Ctrl-A three times to switch)"), "no word on who has the input");
    r.check(r.has("(domU1) EL2VISOR-READ one"), "domU1 did not get the first line");
    r.check(r.has("el2visor: console input now goes to VM domU2"), "three Ctrl-A did not switch");
    r.check(r.has("(domU2) EL2VISOR-READ two"), "domU2 did not get the second line");
    r.check(!r.has("(domU2) EL2VISOR-READ one") && !r.has("(domU1) EL2VISOR-READ two"), "input went to the wrong VM");
    r.check(r.exited, "QEMU did not exit");
}

#[test]
fn bad_configurations_are_one_line_and_no_hang() {
    let m = machine(3, "max");
    let (img, initrd) = (guest_file("Image"), guest_file("initramfs.cpio.gz"));
    let dir = scratch("dom0less-bad");
    let rtc_missing = partial_dtb(&dir, "/nowhere@0");
    // The RTC passed through on SPI 0 (INTID 32), which a domain's vpl011 drives.
    let spi_dir = scratch("dom0less-bad-spi-dtb");
    let rtc = partial_dtb(&spi_dir, "/pl031@9010000");
    let dts = std::fs::read_to_string(spi_dir.join("rtc.dts")).unwrap().replace("interrupts = <0 2 4>", "interrupts = <0 0 4>");
    crate::harness::compile_dts(&dts, &spi_dir.join("rtc.dts"), Path::new(&rtc));
    let cases: [(&str, Vec<String>, &str); 5] = [
        (
            "vpl011-spi",
            vec![format!("d={img}:{initrd}:1:256M:console=ttyAMA0:vpl011,dtb={rtc},pt=/pl031@9010000")],
            "VM d: passthrough device pl031@9010000 (/pl031@9010000) uses INTID 32, which the domain's vpl011 drives",
        ),
        ("cpus", vec![format!("big={img}:{initrd}:5:256M:console=ttyAMA0:vpl011")], "VM big: asks for 5 vCPUs but only 4 of the 4 CPUs are left"),
        ("memory", vec![format!("fat={img}:{initrd}:1:4G:console=ttyAMA0:vpl011")], "VM fat: asks for 4096 MiB of RAM"),
        (
            "passthrough",
            vec![format!("d={img}:{initrd}:1:256M:console=ttyAMA0:vpl011,dtb={rtc_missing}")],
            "xen,path /nowhere@0 does not exist in the host device tree",
        ),
        (
            "two-domains-too-many",
            vec![format!("a={img}:{initrd}:2:256M::vpl011"), format!("b={img}:{initrd}:3:256M::vpl011")],
            "VM b: asks for 3 vCPUs but only 2 of the 4 CPUs are left",
        ),
    ];
    for (name, vms, says) in cases {
        let d = scratch(&format!("dom0less-bad-{name}"));
        let r = run(&m, &crate::harness::dom0less_args(&d, &m, &vms), 60, None);
        let line = r.lines().find(|l| l.starts_with("el2visor: cannot start the guest: "));
        r.check(line.is_some_and(|l| l.contains(says)), &format!("{name}: expected one line saying '{says}'"));
        r.check(r.exited, &format!("{name}: QEMU did not exit"));
        r.check(!r.has(MARKER), &format!("{name}: a VM ran"));
    }
    // Two domains whose kernels overlap in the DT (a typo in a hand-written one): the DT is edited
    // so that domain b's kernel module claims domain a's address.
    let d = scratch("dom0less-bad-overlap");
    let args = crate::harness::dom0less_args(&d, &m, &[format!("a={img}:{initrd}:1:256M::vpl011"), format!("b={img}:{initrd}:1:256M::vpl011")]);
    let dts = std::fs::read_to_string(d.join("dom0less.dts")).unwrap();
    let a_kernel = dts.find("a {").and_then(|i| dts[i..].find("reg = <").map(|j| i + j)).unwrap();
    let a_reg = &dts[a_kernel..a_kernel + dts[a_kernel..].find(';').unwrap()];
    let b_kernel = dts.find("b {").and_then(|i| dts[i..].find("reg = <").map(|j| i + j)).unwrap();
    let b_end = b_kernel + dts[b_kernel..].find(';').unwrap();
    let edited = format!("{}{}{}", &dts[..b_kernel], a_reg, &dts[b_end..]);
    crate::harness::compile_dts(&edited, &d.join("dom0less.dts"), &d.join("dom0less.dtb"));
    let r = run(&m, &args, 60, None);
    r.check(r.lines().any(|l| l.starts_with("el2visor: cannot start the guest: VM a: module") && l.contains("overlaps")), "overlapping modules");
    r.check(r.exited, "overlap: QEMU did not exit");

    // A module missing its kernel: the DT is edited by hand, as a user's typo would.
    let d = scratch("dom0less-bad-nokernel");
    let args = crate::harness::dom0less_args(&d, &m, &[format!("nok={img}:{initrd}:1:256M::vpl011")]);
    let dts = std::fs::read_to_string(d.join("dom0less.dts")).unwrap().replacen("multiboot,kernel", "multiboot,module", 1);
    crate::harness::compile_dts(&dts, &d.join("dom0less.dts"), &d.join("dom0less.dtb"));
    let r = run(&m, &args, 60, None);
    r.check(r.has("el2visor: cannot start the guest: VM nok: no multiboot,kernel module"), "a domain without a kernel");
    r.check(r.exited, "no kernel: QEMU did not exit");
}
