//! Issue 3: the Stage-2 translation el2visor builds for its VM. The VTCR_EL2 it logs must match
//! what the CPU reports (read by the probe guest on bare QEMU, at EL1, independently of
//! el2visor), and the Stage-2 dump (`loglevel=debug`) must map RAM with blocks (`s2_ram=blocks`;
//! on QEMU virt the default `s2_ram=auto` maps it with 4 KiB pages) and premap every device
//! region the guest sees, and nothing the guest must not reach.

mod devtree;

use crate::harness::{image, probe_image, scratch, Qemu, Run};
use devtree::Span;

/// The number just before the first `suffix` in `line` (`48` in `48-bit IPA`).
fn number_before(line: &str, suffix: &str) -> Option<u64> {
    let head = &line[..line.find(suffix)?];
    let word = head.rsplit(|c: char| !c.is_ascii_digit()).next()?;
    word.parse().ok()
}

/// What el2visor's `VM probe: VTCR_EL2 …` info line says.
#[derive(Debug, PartialEq, Eq)]
struct VtcrLine {
    value: u64,
    ipa: u64,
    pa: u64,
    start_level: u64,
    root_tables: u64,
    root_entries: u64,
    vmid: u64,
}

fn vtcr_line(run: &Run) -> Option<VtcrLine> {
    let l = run.lines().find(|l| l.contains("VM probe: VTCR_EL2 0x"))?;
    let value = hex(l.split("VTCR_EL2 ").nth(1)?.split(':').next()?)?;
    let tables = l.split(", ").find(|w| w.contains("root table"))?;
    Some(VtcrLine {
        value,
        ipa: number_before(l, "-bit IPA")?,
        pa: number_before(l, "-bit PA")?,
        start_level: l.split("start level ").nth(1)?.split(',').next()?.parse().ok()?,
        root_tables: tables.split_whitespace().next()?.parse().ok()?,
        root_entries: number_before(tables, " entries)")?,
        vmid: number_before(l, "-bit VMID")?,
    })
}

/// PA bits for a PARange encoding.
fn pa_bits(range: u64) -> u64 {
    [32, 36, 40, 42, 44, 48, 52, 56][range as usize]
}

/// The line decoded from the VTCR_EL2 value itself (4 KiB granule), so the words and the
/// register agree.
fn decode(value: u64) -> VtcrLine {
    let ipa = 64 - (value & 0x3f);
    assert_eq!((value >> 14) & 3, 0, "VTCR_EL2 {value:#x}: TG0 is not 4 KiB");
    let start_level = 2 - ((value >> 6) & 3);
    let per_entry = 12 + 9 * (3 - start_level);
    let root_entries = 1u64 << (ipa - per_entry);
    VtcrLine {
        value,
        ipa,
        pa: pa_bits((value >> 16) & 7),
        start_level,
        root_tables: root_entries.div_ceil(512),
        root_entries,
        vmid: if (value >> 19) & 1 == 1 { 16 } else { 8 },
    }
}

/// The start level a 4 KiB-granule Stage 2 needs for `ipa` bits, concatenating up to 16 root
/// tables to save a level.
fn best_start_level(ipa: u64) -> u64 {
    (0..=2).rev().find(|&l| ipa <= 12 + 9 * (3 - l) + 9 + 4).expect("IPA of at most 52 bits")
}

/// PARange and VMIDBits as the CPU reports them at EL1 on bare QEMU (no el2visor, no EL2).
fn cpu_id(cpu: &str) -> (u64, u64) {
    let run = Qemu::bare().push(&["-M", "virt", "-cpu", cpu, "-m", "1G"]).kernel(&probe_image()).timeout(60).run();
    let l = run.line("probe: ID_AA64MMFR0_EL1.PARange ").unwrap_or_default().to_string();
    let range = l.split_whitespace().nth(2).and_then(|w| w.parse().ok());
    let vmid = l.rsplit(' ').next().and_then(|w| w.parse().ok());
    run.check(range.is_some() && vmid.is_some(), &format!("bare -cpu {cpu}: no parsable ID register line: {l:?}"));
    (range.unwrap(), vmid.unwrap())
}

fn check_vtcr(run: &Run, ctx: &str, cpu_range: u64, cpu_vmid_bits: u64) {
    let Some(got) = vtcr_line(run) else { return run.check(false, &format!("{ctx}: no VTCR_EL2 info line")) };
    let want_pa = pa_bits(cpu_range).min(48);
    run.check(got.pa == want_pa, &format!("{ctx}: {}-bit PA, the CPU has {} (capped at 48)", got.pa, pa_bits(cpu_range)));
    // The IPA space is capped by the CPU and sized to the VM: 40 bits cover QEMU virt's highest
    // window (PCIe high MMIO, below 1 TiB) and the Pi's, and save a Stage-2 level over 48.
    run.check(
        (32..=want_pa).contains(&got.ipa),
        &format!("{ctx}: {}-bit IPA, not within 32..={want_pa} (the CPU's PA size)", got.ipa),
    );
    let highest = run
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("0x") && w.contains('-')))
        .filter_map(|w| u64::from_str_radix(w.split('-').nth(1)?.trim_start_matches("0x"), 16).ok())
        .max();
    if let Some(last) = highest {
        run.check(last < 1u64 << got.ipa, &format!("{ctx}: the Stage-2 dump maps {last:#x}, beyond the {}-bit IPA space", got.ipa));
    }
    let vmid = if cpu_vmid_bits == 2 { 16 } else { 8 };
    run.check(got.vmid == vmid, &format!("{ctx}: {}-bit VMID, the CPU has {vmid}", got.vmid));
    run.check(decode(got.value) == got, &format!("{ctx}: the line does not match its own VTCR value: {:?}", decode(got.value)));
    run.check(got.start_level == best_start_level(got.ipa), &format!("{ctx}: start level {} wastes a level", got.start_level));
}

#[test]
fn vtcr_matches_the_cpu() {
    for cpu in ["max", "cortex-a72"] {
        let (range, vmid) = cpu_id(cpu);
        // QEMU's models: max has FEAT_LPA (52-bit PA), its Cortex-A72 reports 44 bits.
        assert_eq!(pa_bits(range), if cpu == "max" { 52 } else { 44 }, "QEMU's -cpu {cpu} PARange changed");
        let run = Qemu::virt(cpu, 2, "1G", 3).kernel(&image()).append("loglevel=debug").timeout(90).run();
        check_vtcr(&run, &format!("-cpu {cpu}"), range, vmid);
    }
    // raspi4b's CPU is QEMU's Cortex-A72 as well.
    let (range, vmid) = cpu_id("cortex-a72");
    let run = Qemu::raspi4b().kernel(&image()).append("loglevel=debug").timeout(120).stop_on("el2visor: halted").run();
    check_vtcr(&run, "raspi4b", range, vmid);
}

/// One line of the Stage-2 dump: `ipa-last -> pa type perms count x size`.
#[derive(Debug, Clone)]
struct S2Range {
    ipa: Span,
    pa: u64,
    ty: String,
    leaf: u64,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn dump(run: &Run) -> Vec<S2Range> {
    let mut v = Vec::new();
    for l in run.lines() {
        let Some(rest) = l.split(" debug: ").nth(1).map(str::trim) else { continue };
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.len() != 8 || w[1] != "->" || w[6] != "x" {
            continue;
        }
        let (a, b) = w[0].split_once('-').unwrap_or(("", ""));
        let leaf = match w[7] {
            "4K" => 1 << 12,
            "2M" => 1 << 21,
            "1G" => 1 << 30,
            _ => continue,
        };
        if let (Some(a), Some(b), Some(pa), Ok(n)) = (hex(a), hex(b), hex(w[2]), w[5].parse::<u64>()) {
            run.check(b + 1 - a == n * leaf, &format!("dump line {l:?}: {n} x {} is not the range's size", w[7]));
            v.push(S2Range { ipa: (a, b + 1), pa, ty: w[3].into(), leaf });
        }
    }
    v
}

fn pages(s: Span) -> Span {
    (s.0 & !0xfff, (s.1 + 0xfff) & !0xfff)
}

/// The parts of `want` that no range in `have` covers.
fn uncovered(want: Span, have: &[Span]) -> Vec<Span> {
    let mut sorted = have.to_vec();
    sorted.sort_unstable();
    let (mut at, mut gaps) = (want.0, Vec::new());
    for (s, e) in sorted {
        if e <= at || s >= want.1 {
            continue;
        }
        if s > at {
            gaps.push((at, s));
        }
        at = at.max(e);
    }
    if at < want.1 {
        gaps.push((at, want.1));
    }
    gaps
}

fn debug_run(cpu: &str, gic: u32, append: &str) -> (Run, devtree::Regions) {
    let dir = scratch(&format!("stage2-{cpu}-gic{gic}"));
    let dtb = dir.join("host.dtb");
    // The same machine as Qemu::virt, with dumpdtb: the host DT el2visor parses.
    let machine = format!("virt,virtualization=on,gic-version={gic},dumpdtb={}", dtb.display());
    let d = Qemu::bare().push(&["-M", &machine, "-cpu", cpu, "-smp", "2", "-m", "1G"]).timeout(30).run();
    d.check(dtb.exists(), "QEMU dumpdtb wrote nothing");
    let regions = devtree::regions(&std::fs::read(&dtb).unwrap());
    let run = Qemu::virt(cpu, 2, "1G", gic).kernel(&image()).append(append).timeout(90).run();
    (run, regions)
}

const CONFIGS: [(&str, u32); 2] = [("max", 3), ("cortex-a72", 2)];

/// The RAM ranges of the dump, checked to cover the guest's RAM exactly.
fn ram_ranges(run: &Run, ctx: &str) -> Vec<S2Range> {
    let ram: Vec<S2Range> = dump(run).into_iter().filter(|r| r.ty.starts_with("Normal")).collect();
    run.check(!ram.is_empty(), &format!("{ctx}: no RAM in the Stage-2 dump"));
    let total: u64 = ram.iter().map(|r| r.ipa.1 - r.ipa.0).sum();
    let mib = run.lines().find_map(|l| l.split("vCPUs, ").nth(1)?.split(" MiB RAM").next()?.parse::<u64>().ok());
    run.check(mib == Some(total >> 20), &format!("{ctx}: Stage-2 RAM is {} MiB, the VM line says {mib:?}", total >> 20));
    let probe_ram = run.line("probe: ram ").and_then(|l| l.split_once(' ')?.1.split_once(' ')?.1.split_once('+'));
    let (b, s) = probe_ram.and_then(|(b, s)| Some((hex(b)?, hex(s)?))).unwrap_or((0, 0));
    let spans: Vec<Span> = ram.iter().map(|r| r.ipa).collect();
    run.check(s > 0 && uncovered((b, b + s), &spans).is_empty(), &format!("{ctx}: the guest's RAM is not all mapped"));
    ram
}

#[test]
fn stage2_maps_ram_with_blocks() {
    for (cpu, gic) in CONFIGS {
        let (run, _) = debug_run(cpu, gic, "loglevel=debug s2_ram=blocks");
        let ctx = format!("-cpu {cpu} gic-version={gic} s2_ram=blocks");
        run.check(run.has("stage 2: guest RAM mapped with blocks where aligned (s2_ram=blocks)"), &format!("{ctx}: no line saying so"));
        let ram = ram_ranges(&run, &ctx);
        for r in &ram {
            run.check(r.leaf > 1 << 12, &format!("{ctx}: RAM {:#x?} mapped with 4K pages", r.ipa));
            run.check(r.ipa.0 % r.leaf == 0 && r.pa % r.leaf == 0, &format!("{ctx}: {r:?} misaligned blocks"));
            let gib_inside = r.ipa.0.div_ceil(1 << 30) * (1 << 30) + (1 << 30) <= r.ipa.1;
            run.check(r.leaf == 1 << 30 || !gib_inside, &format!("{ctx}: {r:?} holds a whole GiB but uses 2M blocks"));
        }
    }
}

/// `s2_ram=auto` on QEMU virt: RAM with 4 KiB pages only (QEMU's software TLB flushes all on a
/// guest TLBI by VA inside a Stage-2 block), devices still with blocks where aligned.
#[test]
fn stage2_maps_ram_with_pages_on_qemu_virt_by_default() {
    for (cpu, gic) in CONFIGS {
        let (run, _) = debug_run(cpu, gic, "loglevel=debug");
        let ctx = format!("-cpu {cpu} gic-version={gic}");
        run.check(run.has("stage 2: guest RAM mapped with 4 KiB pages (s2_ram=auto, on QEMU virt)"), &format!("{ctx}: no line saying so"));
        for r in &ram_ranges(&run, &ctx) {
            run.check(r.leaf == 1 << 12, &format!("{ctx}: RAM {r:?} mapped with blocks"));
        }
        let dev_blocks = dump(&run).iter().any(|r| r.ty.starts_with("Device") && r.leaf > 1 << 12);
        run.check(dev_blocks, &format!("{ctx}: no device region mapped with a block"));
    }
}

#[test]
fn stage2_premaps_every_guest_visible_device() {
    let mut findings = Vec::new();
    for (cpu, gic) in CONFIGS {
        let (run, regions) = debug_run(cpu, gic, "loglevel=debug");
        let ctx = format!("-cpu {cpu} gic-version={gic}");
        run.check(run.has("Stage-2 layout:"), &format!("{ctx}: no Stage-2 dump at loglevel=debug"));
        let devs: Vec<S2Range> = dump(&run).into_iter().filter(|r| r.ty.starts_with("Device")).collect();
        let identity: Vec<Span> = devs.iter().filter(|r| r.pa == r.ipa.0).map(|r| r.ipa).collect();
        let mut missing = Vec::new();
        for (path, span) in &regions.passthrough {
            for (a, b) in uncovered(pages(*span), &identity) {
                missing.push(format!("{path}: {a:#x}..{b:#x}"));
            }
        }
        if let Some((gicc, gicv)) = regions.gicv2 {
            // The guest's GICC address is backed by the GICV frame.
            let size = (gicc.1 - gicc.0).min(gicv.1 - gicv.0);
            let ok = devs.iter().any(|r| r.ipa.0 <= gicc.0 && gicc.0 + size <= r.ipa.1 && r.pa + (gicc.0 - r.ipa.0) == gicv.0);
            if !ok {
                missing.push(format!("GICv2 CPU interface {:#x}+{size:#x} backed by GICV {:#x}", gicc.0, gicv.0));
            }
        }
        findings.extend(missing.into_iter().map(|m| format!("{ctx}: {m}")));
    }
    assert!(findings.is_empty(), "guest-visible device regions not premapped at Stage 2: {findings:#?}");
}

#[test]
fn stage2_maps_nothing_hidden_from_the_guest() {
    let mut findings = Vec::new();
    for (cpu, gic) in CONFIGS {
        let (run, regions) = debug_run(cpu, gic, "loglevel=debug");
        let ctx = format!("-cpu {cpu} gic-version={gic}");
        run.check(run.has("Stage-2 layout:"), &format!("{ctx}: no Stage-2 dump at loglevel=debug"));
        let mapped: Vec<S2Range> = dump(&run);
        let mut exposed = Vec::new();
        for (path, span) in &regions.hidden {
            let pages = pages(*span);
            for r in &mapped {
                let pa = (r.pa, r.pa + (r.ipa.1 - r.ipa.0));
                if pa.0 < pages.1 && pages.0 < pa.1 {
                    exposed.push(format!(
                        "{path} {:#x}..{:#x} mapped at IPA {:#x}..{:#x} ({})",
                        pages.0, pages.1, r.ipa.0, r.ipa.1, r.ty
                    ));
                }
            }
        }
        findings.extend(exposed.into_iter().map(|m| format!("{ctx}: {m}")));
    }
    assert!(findings.is_empty(), "regions the guest must not reach are mapped at Stage 2: {findings:#?}");
}
