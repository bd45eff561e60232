//! Issue 4: a hostile or broken guest never hangs or crashes el2visor silently. A guest that
//! touches an address it does not own, with no exception vectors to take the injected abort,
//! ends up faulting at the same place again and again; el2visor prints the guest fault report
//! once (decoded ESR, addresses, registers, translation registers, exit counters) and ends the VM.

use crate::harness::{image, scratch, Qemu};

/// An arm64 Image whose code reads IPA 0x8000_0000 (not the VM's on a 1 GiB virt machine) with
/// VBAR_EL1 left at 0, so the injected abort sends it to 0x200: passthrough flash, execute-never
/// at Stage 2, where every instruction fetch aborts again.
fn hostile_guest() -> Vec<u8> {
    let mut img = vec![0u8; 0x1000];
    let w32 = |img: &mut Vec<u8>, off: usize, v: u32| img[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let w64 = |img: &mut Vec<u8>, off: usize, v: u64| img[off..off + 8].copy_from_slice(&v.to_le_bytes());
    w32(&mut img, 0x00, 0x1400_0010); // b 0x40
    w64(&mut img, 0x10, 0x1000); // image_size
    w64(&mut img, 0x18, 0xa); // flags: LE, 4K, anywhere
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    w32(&mut img, 0x40, 0xd518_c01f); // msr vbar_el1, xzr
    w32(&mut img, 0x44, 0x5800_0080); // ldr x0, 0x54
    w32(&mut img, 0x48, 0xf940_0001); // ldr x1, [x0]
    w32(&mut img, 0x4c, 0x1400_0000); // b .
    w64(&mut img, 0x54, 0x8000_0000);
    img
}

#[test]
fn an_abort_loop_gets_one_guest_fault_report_and_ends_the_vm() {
    let dir = scratch("hostile-guest");
    let guest = dir.join("hostile.img");
    std::fs::write(&guest, hostile_guest()).unwrap();
    let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=x", guest.display());
    let run = Qemu::virt("max", 1, "1G", 3).kernel(&image()).push(&["-device", &loader]).timeout(60).run();
    run.check(run.exited, "QEMU did not exit: el2visor must end a VM it cannot help, not hang");
    run.check(run.has("injecting a synchronous external abort"), "the first abort was not injected and logged");
    let reports = run.lines().filter(|l| l.starts_with("el2visor: GUEST FAULT in VM guest vCPU 0")).count();
    run.check(reports == 1, &format!("expected one guest fault report, got {reports}"));
    for part in ["ESR_EL2 ", "ELR ", "x0 =", "SCTLR_EL1 ", "MAIR_EL1 as the guest wrote it", "exits so far: STATS "] {
        run.check(run.has(part), &format!("the report lacks {part:?}"));
    }
    run.check(run.has("instruction abort from a lower EL"), "the report does not decode the ESR in words");
    run.check(run.line("STATS ").is_some(), "no STATS line after the VM ended");
}
