//! Issue 12: the VM's RAM is one contiguous range, as on real hardware and under KVM. el2visor
//! keeps one block at the top of RAM (its image, the device tree, its frame pool and the pristine
//! copies of the boot modules) and the VM's `/memory` is everything below it. The probe guest,
//! booted the Xen way (a guest-loader module, or a bundle on raspi4b, so that the VM takes host
//! RAM), prints every `/memory` range its device tree gives it (`probe: ram <base>+<size>`).

use crate::harness::{image, probe_image, scratch, Qemu, Run};
use crate::probe::PROBES;

/// Most el2visor may keep for itself in these runs: its 64 MiB pool, its 4 MiB image, the device
/// tree (QEMU's is 1 MiB) and the probe's copy, rounded to 2 MiB.
const KEPT_MAX: u64 = 72 << 20;

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Every `probe: ram <base>+<size>` line.
fn probe_ram(run: &Run) -> Vec<(u64, u64)> {
    run.lines()
        .filter_map(|l| l.strip_prefix("probe: ram "))
        .filter_map(|w| w.split_once('+').and_then(|(b, s)| Some((hex(b)?, hex(s.trim())?))))
        .collect()
}

/// The ranges of el2visor's `memory: el2visor keeps <a>..<b>, … (…)` line.
fn kept(run: &Run) -> Vec<(u64, u64)> {
    let Some(l) = run.lines().find_map(|l| l.split("memory: el2visor keeps ").nth(1)) else { return Vec::new() };
    l.split(" (")
        .next()
        .unwrap_or("")
        .split(", ")
        .filter_map(|r| r.split_once("..").and_then(|(a, b)| Some((hex(a)?, hex(b)?))))
        .collect()
}

/// Boot the probe guest as a multiboot kernel at `addr` on virt with `mem_mib` of RAM.
fn probe_multiboot(cpu: &str, gic: u32, mem_mib: u64, addr: u64, args: &str) -> Run {
    let loader = format!("guest-loader,addr={addr:#x},kernel={},bootargs=probe", probe_image().display());
    Qemu::virt(cpu, 2, &format!("{mem_mib}M"), gic).kernel(&image()).append(args).push(&["-device", &loader]).timeout(90).run()
}

/// Every probe passed: none failed, and at least every probe each machine runs did (virt adds the
/// RTC and GICv3 ones, which `probe.rs` checks one by one).
fn check_probe_passed(run: &Run, ctx: &str) {
    let done = run.line("PROBE DONE pass=").and_then(|l| l.strip_prefix("PROBE DONE pass="));
    let ok = done.and_then(|d| d.strip_suffix(" fail=0")).and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n >= PROBES.len());
    run.check(ok, &format!("{ctx}: expected `PROBE DONE pass=<at least {}> fail=0`", PROBES.len()));
}

/// The guest's RAM is one range from the start of RAM `ram` (base, size) to el2visor's block,
/// which ends where RAM ends.
fn check_one_range(run: &Run, ctx: &str, ram: (u64, u64)) {
    let guest = probe_ram(run);
    run.check(guest.len() == 1, &format!("{ctx}: the guest's /memory has {} ranges, not one: {guest:x?}", guest.len()));
    let (base, size) = guest[0];
    run.check(base == ram.0, &format!("{ctx}: the guest's RAM starts at {base:#x}, not at the start of RAM {:#x}", ram.0));
    let k = kept(run);
    run.check(k.len() == 1, &format!("{ctx}: el2visor keeps {k:x?}, not one block"));
    let (lo, hi) = k[0];
    run.check(hi == ram.0 + ram.1, &format!("{ctx}: el2visor's block ends at {hi:#x}, not at the top of RAM {:#x}", ram.0 + ram.1));
    run.check(base + size == lo, &format!("{ctx}: the guest's RAM ends at {:#x}, el2visor's block starts at {lo:#x}", base + size));
    run.check(hi - lo <= KEPT_MAX, &format!("{ctx}: el2visor keeps {} MiB, more than {} MiB", (hi - lo) >> 20, KEPT_MAX >> 20));
}

#[test]
fn guest_ram_is_one_range_below_el2visor() {
    // QEMU puts the DTB at the start of RAM and el2visor 2 MiB in; the probe's module is low.
    for (cpu, gic, mem_mib) in [("max", 3, 1024), ("cortex-a72", 2, 2048)] {
        let run = probe_multiboot(cpu, gic, mem_mib, 0x4900_0000, "");
        let ctx = format!("-cpu {cpu} gic-version={gic} -m {mem_mib}M");
        run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
        check_probe_passed(&run, &ctx);
        check_one_range(&run, &ctx, (0x4000_0000, mem_mib << 20));
    }
}

/// A module where el2visor's pool goes: el2visor moves it aside before filling its block.
#[test]
fn a_module_in_el2visors_way_is_moved() {
    let mem_mib = 512;
    let run = probe_multiboot("max", 3, mem_mib, 0x4000_0000 + (mem_mib << 20) - (24 << 20), "");
    let ctx = "-m 512M, the probe 24 MiB below the top of RAM";
    run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
    check_probe_passed(&run, ctx);
    check_one_range(&run, ctx, (0x4000_0000, mem_mib << 20));
}

/// `guest_mem=` is the size of the guest's RAM, exactly.
#[test]
fn guest_mem_gives_exactly_that_much() {
    let run = probe_multiboot("max", 3, 1024, 0x4900_0000, "guest_mem=128M");
    let ctx = "guest_mem=128M";
    run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
    check_probe_passed(&run, ctx);
    let guest = probe_ram(&run);
    run.check(guest == [(0x4000_0000, 128 << 20)], &format!("{ctx}: the guest's /memory is {guest:x?}, not 0x40000000+0x8000000"));
    run.check(run.has("VM guest: 2 vCPUs, 128 MiB RAM"), &format!("{ctx}: the VM line does not say 128 MiB"));
}

/// raspi4b: RAM starts at 0, where the firmware's spin table is (`/memreserve/` page 0). The
/// guest's RAM still starts at 0, in one range up to el2visor's block at the top of QEMU's
/// 960 MiB; the page stays reserved and unmapped.
#[test]
fn raspi4b_guest_ram_is_one_range_from_zero() {
    let dir = scratch("memory-rpi4");
    let probe = std::fs::read(probe_image()).unwrap();
    let bundle = dir.join("probe.bundle");
    std::fs::write(&bundle, el2visor::vm::bundle::build(&probe, None, "probe")).unwrap();
    let run = Qemu::raspi4b()
        .kernel(&image())
        .append("loglevel=debug")
        .push(&["-initrd", bundle.to_str().unwrap()])
        .timeout(120)
        .stop_on("el2visor: halted")
        .run();
    let ctx = "raspi4b, the probe as a bundle";
    check_probe_passed(&run, ctx);
    check_one_range(&run, ctx, (0, 960 << 20));
    // Stage 2 leaves the spin-table page out: the dump's RAM starts at 0x1000.
    let first = run.lines().filter(|l| l.contains(" debug: ") && l.contains("Normal-WB")).find_map(|l| {
        let w = l.split(" debug: ").nth(1)?.split_whitespace().next()?;
        hex(w.split('-').next()?)
    });
    run.check(first == Some(0x1000), &format!("{ctx}: Stage-2 RAM starts at {first:x?}, not 0x1000 (page 0 must stay unmapped)"));
}
