//! Issues 4, 5 and 12: the probe guest (tests/probe-guest, el2visor's embedded default guest) under
//! el2visor on QEMU virt and raspi4b, in every coherency mode: every probe passes, the `STATS` line
//! adds up, an access to an address the VM does not own is logged and answered with an injected
//! abort, and asking for FWB on a CPU without it is refused with one line.

use std::collections::BTreeMap;

use crate::harness::{image, Qemu, Run};

/// Every probe the guest runs on every machine, in its order; each must print `PROBE <name> PASS`
/// under el2visor.
pub const PROBES: [&str; 40] = [
    "ram_nc_attr",
    "device_attr",
    "sctlr_c0_attr",
    "sctlr_m0_attr",
    "tvm_sctlr",
    "tvm_ttbr0",
    "tvm_ttbr1",
    "tvm_tcr",
    "tvm_esr",
    "tvm_far",
    "tvm_afsr0",
    "tvm_afsr1",
    "tvm_mair",
    "tvm_amair",
    "tvm_contextidr",
    "tvm_feat_regs",
    "tvm_rt_sweep",
    "mair_storm",
    "vgic_pending_disabled",
    "vgic_pending_in_lr",
    "vgic_icpendr_retracts",
    "vgic_disable_holds_pending",
    "vgic_lr_overflow",
    "vgic_isv0_abort",
    "mmio_big_endian",
    "smccc_arch",
    "hvc_imm",
    "log_line",
    "wfit",
    "sme_tpidr2",
    "sme2_zt0",
    "mops_exception",
    "aa32_it_block",
    "cpu_on_already_on",
    "cpu_on_reset_state",
    "cpu_on_endianness",
    "cpu_off_moves_spi",
    "vgic_active_after_eoi",
    "s2_device_alignment",
    "abort_injected",
];

/// The probes that need a PL031 RTC (QEMU virt's) and a GICv3.
const RTC_PROBE: &str = "vgic_level_once";
/// The probe that needs QEMU virt's fw_cfg (which el2visor gives no VM: a DMA through it aborts).
const FW_CFG_PROBE: &str = "fw_cfg_dma";
const GICV3_PROBES: &[&str] = &["vgic_redist_layout", "vgic_sgi0r_asgi1r"];
/// The probe that needs el2visor's virtual ITS: QEMU virt with a GICv3 has an ITS, and the
/// embedded probe guest, identity mapped, owns the PCI bridge.
const ITS_PROBE: &str = "its_garbage";

/// MAIR_EL1 writes the probe's storm makes (each one a TVM trap in mair-trap mode).
const STORM_WRITES: u64 = 100_000;

/// The counters of the `STATS` line, by name.
#[derive(Debug)]
pub struct Stats(BTreeMap<String, u64>);

impl Stats {
    /// The first `STATS ` line of the run, every `key=value` word of it.
    pub fn parse(run: &Run) -> Option<Stats> {
        let line = run.line("STATS exits=")?;
        let mut m = BTreeMap::new();
        for w in line.split_whitespace().skip(1) {
            let (k, v) = w.split_once('=')?;
            m.insert(k.to_string(), v.parse().ok()?);
        }
        Some(Stats(m))
    }
    /// A counter; a missing one fails the test with the whole line.
    pub fn get(&self, key: &str) -> u64 {
        *self.0.get(key).unwrap_or_else(|| panic!("STATS has no {key}=: {:?}", self.0))
    }
    /// Whether `exits` is the sum of every other reason but `s2_mmio` (a kind of `dabt`).
    pub fn exits_add_up(&self) -> bool {
        let sum: u64 = self.0.iter().filter(|(k, _)| *k != "exits" && *k != "s2_mmio").map(|(_, v)| v).sum();
        self.get("exits") == sum
    }
}

/// A hexadecimal number after `prefix` on the first line starting with it (`0x` optional).
pub fn hex_after(run: &Run, prefix: &str) -> Option<u64> {
    let rest = run.lines().find_map(|l| l.strip_prefix(prefix))?;
    let word = rest.split(|c: char| !c.is_ascii_hexdigit() && c != 'x').next()?;
    u64::from_str_radix(word.trim_start_matches("0x"), 16).ok()
}

/// How a probe run is expected to end.
pub struct Expect<'a> {
    /// What the banner and the probe both say: `fwb`, `mair-trap` or `off`.
    pub mode: &'a str,
    /// QEMU exits by itself (PSCI SYSTEM_OFF); raspi4b halts instead.
    pub exits: bool,
    /// The GIC version the guest sees (the GICv3-only probe runs there).
    pub gic: u32,
    /// The machine is QEMU virt: it has a PL031 RTC (the level-triggered SPI probe runs) and
    /// fw_cfg (the fw_cfg DMA probe runs).
    pub rtc: bool,
}

impl Expect<'_> {
    /// The probes that must pass on this machine.
    fn probes(&self) -> Vec<&'static str> {
        let mut p = PROBES.to_vec();
        p.extend(self.rtc.then_some(RTC_PROBE));
        p.extend(self.rtc.then_some(FW_CFG_PROBE));
        if self.gic == 3 {
            p.extend(GICV3_PROBES);
        }
        p.extend((self.gic == 3 && self.rtc).then_some(ITS_PROBE));
        p
    }
}

/// Check a whole probe run under el2visor; `ctx` names the configuration in failures.
pub fn check_probe_run(run: &Run, ctx: &str, e: &Expect<'_>) {
    if e.exits {
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
    } else {
        run.check(run.has("el2visor: halted"), &format!("{ctx}: no `el2visor: halted` line"));
    }
    let mode = e.mode;
    run.check(run.line("coherency: ") == Some(&format!("coherency: {mode}")[..]), &format!("{ctx}: banner mode is not {mode}"));
    run.check(
        run.line("probe: el2visor coherency mode") == Some(&format!("probe: el2visor coherency mode {mode}")[..]),
        &format!("{ctx}: the probe was not told mode {mode} by el2visor"),
    );
    let probes = e.probes();
    for name in &probes {
        let pass = format!("PROBE {name} PASS");
        let n = run.lines().filter(|l| *l == pass).count();
        run.check(n == 1, &format!("{ctx}: `{pass}` appears {n} times, expected once"));
    }
    let fails: Vec<&str> = run.lines().filter(|l| l.starts_with("PROBE ") && l.contains(" FAIL")).collect();
    run.check(fails.is_empty(), &format!("{ctx}: failing probes: {fails:?}"));
    let done = format!("PROBE DONE pass={} fail=0", probes.len());
    run.check(run.line("PROBE DONE") == Some(&done[..]), &format!("{ctx}: expected `{done}`"));
    check_aborts(run, ctx);
    check_isv0(run, ctx);
    check_stats(run, ctx, mode);
    check_smccc(run, ctx);
}

/// The guest's SMCCC_ARCH_FEATURES answers for ARCH_WORKAROUND_1/2/3 are what el2visor says at
/// boot guests are told, from the host firmware's (QEMU's own PSCI provides none of them: -1 -1
/// -1 for both).
fn check_smccc(run: &Run, ctx: &str) {
    let Some(fw) = run
        .lines()
        .find(|l| l.contains("host firmware: SMCCC_ARCH_FEATURES for ARCH_WORKAROUND_1/2/3: "))
        .and_then(|l| l.split_once("; guests are told "))
    else {
        return run.check(false, &format!("{ctx}: el2visor did not say what the host firmware provides"));
    };
    let fw: Vec<i64> = fw.1.trim_matches(|c| c == '[' || c == ']').split(", ").filter_map(|w| w.parse().ok()).collect();
    let guest: Vec<i64> = run
        .line("probe: smccc workarounds ")
        .map(|l| l["probe: smccc workarounds ".len()..].split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_default();
    run.check(fw.len() == 3 && guest == fw, &format!("{ctx}: the guest saw workarounds {guest:?}, the firmware answered {fw:?}"));
}

/// The vgic_isv0_abort probe's one `ldp` from the distributor is logged once as an access
/// without syndrome (and answered with an abort, which the probe checked).
fn check_isv0(run: &Run, ctx: &str) {
    let logged: Vec<&str> =
        run.lines().filter(|l| l.contains("GIC distributor access at") && l.contains("without syndrome (ISV=0)")).collect();
    run.check(logged.len() == 1, &format!("{ctx}: expected one ISV=0 log line for the distributor, got {logged:?}"));
}

/// The abort probe's two accesses are each logged by el2visor as an injected abort on the
/// address the probe chose.
fn check_aborts(run: &Run, ctx: &str) {
    let Some(addr) = hex_after(run, "probe: unowned ") else {
        return run.check(false, &format!("{ctx}: the probe printed no `probe: unowned` address"));
    };
    let at = format!("at IPA {addr:#x} (not owned by the VM)");
    let logged: Vec<&str> =
        run.lines().filter(|l| l.contains("injecting a synchronous external abort") && l.contains(&at)).collect();
    run.check(logged.len() == 2, &format!("{ctx}: expected 2 injected-abort log lines {at}, got {logged:?}"));
}

/// The `STATS` line is there and consistent with the run.
fn check_stats(run: &Run, ctx: &str, mode: &str) {
    let Some(s) = Stats::parse(run) else {
        return run.check(false, &format!("{ctx}: no well-formed STATS line"));
    };
    run.check(s.exits_add_up(), &format!("{ctx}: STATS exits is not the sum of the reasons but s2_mmio"));
    run.check(s.get("s2_mmio") == 0, &format!("{ctx}: Stage-2 faults on passthrough devices (s2_mmio > 0)"));
    run.check(s.get("hvc") > 0, &format!("{ctx}: STATS counts no HVC, but the probe made vendor calls"));
    // dabt also counts the vGIC probes' distributor and redistributor accesses (emulated MMIO).
    let injected = run.lines().filter(|l| l.contains("injecting a synchronous external abort")).count() as u64;
    run.check(s.get("dabt") > injected, &format!("{ctx}: STATS dabt is not above the {injected} aborts injected"));
    run.check(s.get("iabt") == 0 && s.get("other") == 0, &format!("{ctx}: unexpected iabt/other exits"));
    let tvm = s.get("sysreg") + s.get("sysreg_fast");
    if mode == "mair-trap" {
        run.check(tvm >= STORM_WRITES, &format!("{ctx}: sysreg+sysreg_fast = {tvm} < {STORM_WRITES} storm writes"));
    } else {
        // The vGIC probes' ICC_SGI1R_EL1 writes (nine: `vgic_lr_overflow` sends eight) and CPU
        // interface accesses el2visor traps for a moment (GICv3) are the only sysreg exits left.
        run.check(tvm < 16, &format!("{ctx}: {tvm} trapped sysreg accesses in {mode} mode (TVM must be off)"));
    }
}

fn virt_probe(cpu: &str, gic: u32, mode: &str) {
    let run = Qemu::virt(cpu, 2, "1G", gic).kernel(&image()).timeout(90).run();
    check_probe_run(&run, &format!("-cpu {cpu} gic-version={gic}"), &Expect { mode, exits: true, gic, rtc: true });
}

#[test]
fn probe_max_gic2_fwb() {
    virt_probe("max", 2, "fwb");
}

#[test]
fn probe_max_gic3_fwb() {
    virt_probe("max", 3, "fwb");
}

#[test]
fn probe_a72_gic2_mair_trap() {
    virt_probe("cortex-a72", 2, "mair-trap");
}

#[test]
fn probe_a72_gic3_mair_trap() {
    virt_probe("cortex-a72", 3, "mair-trap");
}

/// mair-trap on a CPU that has FWB and the newer memory-model features QEMU's `max` implements:
/// every TVM register the CPU advertises (`tvm_feat_regs`: TCR2_EL1, MAIR2_EL1 … where
/// ID_AA64MMFR3_EL1 has them) is served, SCTLR_EL1.C = 0 and M = 0 come out write-back, and the
/// fast path handles every Rt. The probe names the feature registers it found; they must match
/// ID_AA64MMFR3_EL1 as it printed it.
#[test]
fn probe_max_mair_trap() {
    let run = Qemu::virt("max", 2, "1G", 3).kernel(&image()).append("coherency=mair-trap").timeout(90).run();
    check_probe_run(&run, "-cpu max coherency=mair-trap", &Expect { mode: "mair-trap", exits: true, gic: 3, rtc: true });
    let line = run.line("probe: ID_AA64MMFR3_EL1 ").unwrap_or("");
    let (mmfr3, names) = line
        .strip_prefix("probe: ID_AA64MMFR3_EL1 ")
        .and_then(|rest| rest.split_once(", TVM feature registers:"))
        .unwrap_or_else(|| panic!("no well-formed ID_AA64MMFR3_EL1 line: {line:?}"));
    let mmfr3 = u64::from_str_radix(mmfr3.trim_start_matches("0x"), 16).expect("hex ID_AA64MMFR3_EL1");
    // ID_AA64MMFR3_EL1: TCRX 3:0, SCTLRX 7:4, S1PIE 11:8, S1POE 19:16, S2POE 23:20, AIE 27:24.
    let expected: Vec<&str> = [
        (0, "TCR2_EL1"),
        (4, "SCTLR2_EL1"),
        (24, "MAIR2_EL1"),
        (24, "AMAIR2_EL1"),
        (8, "PIR_EL1"),
        (8, "PIRE0_EL1"),
        (16, "POR_EL1"),
        (16, "POR_EL0"),
        (20, "S2POR_EL1"),
    ]
    .iter()
    .filter(|(shift, _)| (mmfr3 >> shift) & 0xf != 0)
    .map(|(_, name)| *name)
    .collect();
    let found: Vec<&str> = names.split_whitespace().collect();
    run.check(found == expected, &format!("feature registers {found:?}, but ID_AA64MMFR3_EL1 {mmfr3:#x} says {expected:?}"));
}

/// `coherency=off`: no override, so RAM the probe maps Normal-NC keeps its raw attribute (the
/// probe's ram_nc_attr passes in mode off only on PAR.ATTR 0x44), and nothing is trapped.
#[test]
fn probe_coherency_off_shows_raw_attributes() {
    for cpu in ["max", "cortex-a72"] {
        let run = Qemu::virt(cpu, 2, "1G", 3).kernel(&image()).append("coherency=off").timeout(90).run();
        check_probe_run(&run, &format!("-cpu {cpu} coherency=off"), &Expect { mode: "off", exits: true, gic: 3, rtc: true });
        // Only the vGIC probes' GICv3 CPU interface traps (check_stats), no TVM trap.
        run.check(Stats::parse(&run).is_some_and(|s| s.get("sysreg") < 16), "coherency=off: STATS sysreg is not below 16");
    }
}

/// FWB asked for on a CPU without FEAT_S2FWB: one clear line, no guest, QEMU still exits.
#[test]
fn fwb_on_cortex_a72_is_refused() {
    let run = Qemu::virt("cortex-a72", 2, "1G", 3).kernel(&image()).append("coherency=fwb").timeout(30).run();
    run.check(run.exited, "QEMU did not exit after the refusal");
    let errors: Vec<&str> = run
        .lines()
        .filter(|l| l.starts_with("el2visor: ") && l.contains("coherency=fwb") && l.contains("FEAT_S2FWB"))
        .collect();
    run.check(errors.len() == 1, &format!("expected one line naming coherency=fwb and FEAT_S2FWB, got {errors:?}"));
    run.check(errors[0].contains("not starting a guest"), "the error line does not say the guest is not started");
    run.check(!run.has("PROBE START") && !run.has("STATS "), "a guest ran although FWB was refused");
}

/// raspi4b: four vCPUs, mair-trap (Cortex-A72), no PSCI on the board, so after STATS el2visor
/// says it halted and parks.
#[test]
fn probe_raspi4b() {
    let run = Qemu::raspi4b().kernel(&image()).timeout(120).stop_on("el2visor: halted").run();
    let banner = run.line("el2visor ").unwrap_or("");
    run.check(banner.contains("cpus=4"), &format!("raspi4b: banner is not cpus=4: {banner:?}"));
    run.check(run.has("VM probe: 4 vCPUs"), "raspi4b: the VM does not have 4 vCPUs");
    check_probe_run(&run, "raspi4b", &Expect { mode: "mair-trap", exits: false, gic: 2, rtc: false });
}

/// A host DT whose GICv3 redistributors are `redistributor-stride` = 256 KiB apart (GICv4
/// parts pad each with two more frames; QEMU `gic-version=4` has that layout but does not say so
/// in its DT): the guest DT and the virtual GIC must both use the stride, so the probe finds
/// vCPU 1's redistributor 256 KiB after vCPU 0's (vgic_redist_layout).
#[test]
fn probe_gic4_redistributor_stride() {
    let dir = crate::harness::scratch("gic4-stride");
    let machine = "virt,virtualization=on,gic-version=4";
    let dumped = dir.join("virt.dtb");
    let status = std::process::Command::new("qemu-system-aarch64")
        .args(["-M", &format!("{machine},dumpdtb={}", dumped.display()), "-cpu", "max", "-smp", "2", "-m", "1G"])
        .args(["-nographic", "-display", "none"])
        .status()
        .expect("qemu-system-aarch64");
    assert!(status.success(), "dumpdtb failed");
    let dts = std::process::Command::new("dtc").args(["-I", "dtb", "-O", "dts", "-q"]).arg(&dumped).output().expect("dtc");
    let dts = String::from_utf8(dts.stdout).unwrap();
    let intc = "compatible = \"arm,gic-v3\";";
    assert!(dts.contains(intc), "no GICv3 node in the dumped DT");
    let dts = dts.replacen(intc, &format!("{intc}\n\t\tredistributor-stride = <0x00 0x40000>;"), 1);
    let source = dir.join("stride.dts");
    let blob = dir.join("stride.dtb");
    crate::harness::compile_dts(&dts, &source, &blob);
    let mut q = Qemu::bare();
    q.push(&["-M", machine, "-cpu", "max", "-smp", "2", "-m", "1G", "-dtb", blob.to_str().unwrap()]);
    let run = q.kernel(&image()).timeout(90).run();
    check_probe_run(&run, "gic-version=4 with redistributor-stride 0x40000", &Expect { mode: "fwb", exits: true, gic: 3, rtc: true });
}

/// Issue 12: a hostile guest scans every 16 KiB of its IPA space below 4 GiB (outside its RAM and
/// every DT `reg`/`ranges` window) from one load instruction, handling each injected abort itself
/// and moving on. el2visor must answer every access with an abort and let the scan finish: the
/// "same abort keeps recurring" detector must not take a scan for a stuck guest.
#[test]
fn a_memory_scan_from_one_load_finishes() {
    let run = Qemu::virt("max", 1, "1G", 3).kernel(&image()).append("guest_args=scan").timeout(180).run();
    run.check(run.exited, "QEMU did not exit by itself");
    run.check(!run.has("GUEST FAULT"), "el2visor ended the scanning guest");
    run.check(run.has("PROBE abort_scan PASS"), "abort_scan did not pass");
    let scanned: Option<u64> = run
        .line("probe: scanned ")
        .and_then(|l| l["probe: scanned ".len()..].split_whitespace().next()?.parse().ok());
    let Some(scanned) = scanned else {
        return run.check(false, "the probe did not say how many addresses it scanned");
    };
    run.check(scanned > 100_000, &format!("only {scanned} addresses scanned below 4 GiB"));
    let stats = Stats::parse(&run);
    run.check(stats.is_some_and(|s| s.get("dabt") == scanned), &format!("STATS dabt is not the {scanned} aborts of the scan"));
}
