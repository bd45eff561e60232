//! Issue 2: el2visor boots at EL2 on QEMU virt and raspi4b, finds the machine in the device tree,
//! brings up every CPU, prints the banner, and refuses bad starts with one clear line.

use crate::harness::{image, scratch, Qemu};

fn banner_cpus(run: &crate::harness::Run) -> Option<u32> {
    let l = run.line("el2visor ")?;
    l.split_whitespace().find_map(|w| w.strip_prefix("cpus=")).and_then(|n| n.parse().ok())
}

#[test]
fn virt_banner_matrix() {
    for cpu in ["cortex-a72", "max"] {
        for gic in [2, 3] {
            for smp in [1, 2, 4] {
                let run = Qemu::virt(cpu, smp, "1G", gic).kernel(&image()).timeout(60).run();
                let ctx = format!("-cpu {cpu} gic-version={gic} -smp {smp}");
                run.check(run.exited, &format!("{ctx}: QEMU did not exit by itself"));
                let banner = run.line("el2visor ").unwrap_or("");
                run.check(
                    banner.contains(" at EL2 on linux,dummy-virt "),
                    &format!("{ctx}: banner missing or wrong: {banner:?}"),
                );
                run.check(banner_cpus(&run) == Some(smp), &format!("{ctx}: banner cpus= is not {smp}"));
                run.check(run.line("coherency: ").is_some(), &format!("{ctx}: no coherency line"));
            }
        }
    }
}

#[test]
fn el1_start_is_refused_with_one_line() {
    // Without virtualization=on QEMU starts the image at EL1.
    let run = Qemu::bare()
        .push(&["-M", "virt", "-cpu", "max"])
        .kernel(&image())
        .timeout(20)
        .stop_on("parked")
        .run();
    run.check(run.has("started at EL1, but el2visor must be entered at EL2"), "no clear EL1 message");
}

/// An arm64 Image that jumps to el2visor at `target` with `x0 = dtb`: lets a test hand el2visor
/// a device tree QEMU itself would refuse to load.
fn trampoline(dtb: u64, target: u64) -> Vec<u8> {
    let mut img = vec![0u8; 0x60];
    let w32 = |img: &mut Vec<u8>, off: usize, v: u32| img[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let w64 = |img: &mut Vec<u8>, off: usize, v: u64| img[off..off + 8].copy_from_slice(&v.to_le_bytes());
    w32(&mut img, 0x00, 0x1400_0010); // b 0x40
    w64(&mut img, 0x10, 0x1000); // image_size
    w64(&mut img, 0x18, 0xa); // flags
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    w32(&mut img, 0x40, 0x5800_0080); // ldr x0, 0x50
    w32(&mut img, 0x44, 0x5800_00a1); // ldr x1, 0x58
    w32(&mut img, 0x48, 0xd61f_0020); // br x1
    w32(&mut img, 0x4c, 0xd503_201f); // nop
    w64(&mut img, 0x50, dtb);
    w64(&mut img, 0x58, target);
    img
}

fn boot_with_raw_dtb(name: &str, blob: &[u8]) -> crate::harness::Run {
    let dir = scratch(name);
    let tramp = dir.join("trampoline.img");
    let dtb = dir.join("dtb.bin");
    std::fs::write(&tramp, trampoline(0x4400_0000, 0x4060_0000)).unwrap();
    std::fs::write(&dtb, blob).unwrap();
    Qemu::virt("max", 1, "1G", 3)
        .kernel(&tramp)
        .push(&["-device", &format!("loader,file={},addr=0x40600000,force-raw=on", image().display())])
        .push(&["-device", &format!("loader,file={},addr=0x44000000,force-raw=on", dtb.display())])
        .timeout(20)
        .stop_on("parked")
        .run()
}

#[test]
fn garbage_dtb_gives_one_clear_line() {
    let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let run = boot_with_raw_dtb("garbage-dtb", &junk);
    run.check(run.has("el2visor: cannot boot: device tree at 0x44000000"), "no clear line for a garbage DTB");
    run.check(run.has("not a flattened device tree"), "the line does not say what is wrong");
}

#[test]
fn truncated_dtb_gives_one_clear_line() {
    let real = std::fs::read(crate::harness::dtb("virt-gic3-max-smp1-1G.dtb")).unwrap();
    let mut cut = real[..1024].to_vec();
    cut[4..8].copy_from_slice(&1024u32.to_be_bytes()); // the header admits only what is there
    let run = boot_with_raw_dtb("truncated-dtb", &cut);
    run.check(run.has("el2visor: cannot boot: device tree at 0x44000000"), "no clear line for a truncated DTB");
}

#[test]
fn raspi4b_banner_four_cpus() {
    let run = Qemu::raspi4b().kernel(&image()).timeout(60).stop_on("el2visor: halted").run();
    let banner = run.line("el2visor ").unwrap_or("");
    run.check(banner.contains(" at EL2 on Raspberry Pi 4 Model B"), &format!("banner wrong: {banner:?}"));
    run.check(banner_cpus(&run) == Some(4), "banner cpus= is not 4");
    run.check(run.has("el2visor: halted"), "no halted line (raspi4b has no PSCI SYSTEM_OFF)");
}

#[test]
fn a_guest_kernel_that_is_not_an_image_gives_one_clear_line() {
    let dir = scratch("bad-guest");
    let bogus = dir.join("not-an-image.bin");
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00]; // a gzip header: a compressed kernel, not an Image
    bytes.resize(64 * 1024, 0x5a);
    std::fs::write(&bogus, bytes).unwrap();
    let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=console=ttyAMA0", bogus.display());
    let run = Qemu::virt("max", 2, "1G", 3).kernel(&image()).push(&["-device", &loader]).timeout(60).run();
    run.check(run.exited, "QEMU did not exit by itself after el2visor refused the guest");
    let line = run.line("el2visor: cannot start the guest: ").unwrap_or("");
    run.check(line.contains("gzip"), &format!("the refusal does not say the kernel is gzip-compressed: {line:?}"));
    run.check(!run.has("STATS "), "no VM ran, so there are no exit statistics");
}
