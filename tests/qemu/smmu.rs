//! Issue 11, SMMUv3: QEMU's `edu` PCI device, a DMA master on the PCI bridge the probe VM owns,
//! behind QEMU virt's SMMUv3 in stage-2 mode. The probe (`guest_args=dma`) makes edu copy a
//! buffer through its own RAM (must work), then write a pattern outside its RAM and read it back
//! (must be stopped: el2visor translates edu's stream with the VM's own Stage 2), then DMA into
//! its RAM again. el2visor must log the fault with the VM's name, stream ID and address, limit
//! those lines, and still print its STATS and power off.

use crate::harness::{image, Qemu, Run};
use crate::probe::Stats;

const EDU: &str = "edu,dma_mask=0xffffffffffffffff";
/// edu is the first device QEMU puts on virt's PCI bus after its default ones: slot 2 here.
const EDU_STREAM: &str = "stream 0x10";

fn run_dma(cpu: &str, gic: u32, smmu: bool, target: u64) -> Run {
    let mut q = Qemu::virt(cpu, 2, "1G", gic);
    if smmu {
        q.push(&["-M", &format!("virt,virtualization=on,gic-version={gic},iommu=smmuv3"), "-global", "arm-smmuv3.stage=2"]);
    }
    q.push(&["-device", &format!("{EDU},addr=2")]);
    q.kernel(&image()).append(&format!("guest_args=dma,dma_target={target:#x}")).timeout(120).run()
}

/// `el2visor keeps <start>..` from the memory line.
fn kept_start(run: &Run) -> Option<u64> {
    let l = run.lines().find(|l| l.contains("memory: el2visor keeps "))?;
    let v = l.split("el2visor keeps ").nth(1)?.split("..").next()?;
    u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()
}

fn check_common(run: &Run, what: &str) {
    run.check(run.exited, &format!("{what}: QEMU did not exit by itself"));
    run.check(run.has("PROBE dma_own_ram PASS"), &format!("{what}: edu's DMA into the VM's own RAM did not work"));
    run.check(run.has("PROBE dma_after_fault PASS"), &format!("{what}: edu's DMA did not work after the stopped one"));
    run.check(run.line("STATS vm=probe ").is_some(), &format!("{what}: no STATS line for the VM"));
    run.check(Stats::parse(run).is_some_and(|s| s.exits_add_up()), &format!("{what}: el2visor's final STATS line is missing or garbled"));
}

fn check_stopped(run: &Run, target: u64, what: &str) {
    check_common(run, what);
    run.check(run.has("SMMU /smmuv3@9050000: owned by el2visor"), &format!("{what}: el2visor did not take the SMMU"));
    run.check(
        run.has("SMMU /smmuv3@9050000: /pcie@10000000 (65536 streams) translates through VM probe's Stage 2"),
        &format!("{what}: the PCI bridge's streams were not given to the probe VM"),
    );
    run.check(run.has("PROBE dma_outside_ram PASS"), &format!("{what}: the DMA outside the VM's RAM was not stopped"));
    run.check(run.has("PROBE DONE pass=3 fail=0"), &format!("{what}: not every DMA probe passed"));
    let faults: Vec<&str> = run.lines().filter(|l| l.contains("SMMU: VM probe: ")).collect();
    run.check(
        faults.first().is_some_and(|l| l.contains(EDU_STREAM) && l.contains("F_TRANSLATION") && l.contains(&format!("write to {target:#x}"))),
        &format!("{what}: no fault line naming the VM, edu's stream and the address {target:#x}"),
    );
    // 2 x 4 KiB stopped, in 4-byte pieces under QEMU: about 2048 faults, a few dozen lines.
    run.check(faults.len() <= 40, &format!("{what}: {} fault lines; the log is not rate limited", faults.len()));
    run.check(faults.iter().any(|l| l.contains("were not logged")), &format!("{what}: no line counts the faults not logged"));
}

#[test]
fn edu_dma_outside_its_ram_is_stopped_by_the_smmu() {
    for (cpu, gic) in [("max", 3), ("cortex-a72", 2)] {
        // Host RAM that is not the VM's: the start of RAM, free after el2visor moved to the top.
        let run = run_dma(cpu, gic, true, 0x4000_0000);
        check_stopped(&run, 0x4000_0000, &format!("{cpu} gic{gic}, target free RAM"));
        // el2visor's own memory: the page of its image holding the STATS line's text, in the
        // block it keeps at the top of RAM (the same for every run of this machine and image).
        let Some(base) = kept_start(&run) else {
            return run.check(false, "no `el2visor keeps` memory line");
        };
        let img = std::fs::read(image()).unwrap();
        let at = img.windows(12).position(|w| w == b"STATS exits=").expect("the STATS text in the image") as u64;
        let target = (base + at) & !0xfff;
        let run = run_dma(cpu, gic, true, target);
        run.check(kept_start(&run) == Some(base), "el2visor's memory moved between two identical runs");
        check_stopped(&run, target, &format!("{cpu} gic{gic}, target el2visor's STATS text at {target:#x}"));
    }
}

/// Today's behaviour without an SMMU, noted rather than judged: which devices may master DMA
/// is the DMA policy's business (issue 11's other part). edu still works in its own RAM.
#[test]
fn edu_dma_without_an_smmu_is_not_translated() {
    let run = run_dma("max", 3, false, 0x4000_0000);
    check_common(&run, "no SMMU");
    run.check(!run.has("SMMU"), "el2visor talks of an SMMU the machine does not have");
    let outside = run.line("PROBE dma_outside_ram ").unwrap_or("(no line)");
    eprintln!("without an SMMU: {outside}");
}
