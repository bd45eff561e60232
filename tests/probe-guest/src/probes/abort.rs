//! `abort_injected`: a read and a write of an address the VM does not own (the DT's
//! [`unowned`](probe_guest::dt::Platform::unowned) address, mapped Device at stage 1) must each
//! come back as a synchronous external abort taken at EL1 (ESR_EL1.EC 0x25, DFSC 0b010000,
//! FAR_EL1 = the address, WnR telling read from write), after which the probe resumes past the
//! access and el2visor still answers calls. `s2_device_alignment`: an unaligned load from a
//! device stage 2 maps Device comes back as an alignment fault, not an external abort. The
//! vector table (vectors.S) catches exactly these accesses.

use super::Context;
use crate::{hvc, sysreg};
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::abi;
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::pagetable::pa_range_bits;

extern "C" {
    // entry.S: `ldr x0, [x0]` / `str x1, [x0]`, each resumed past by vectors.S on a data abort.
    fn probe_abort_load(addr: u64) -> u64;
    fn probe_abort_store(addr: u64, value: u64);
}

/// Data aborts vectors.S caught at the two accesses (it adds one per abort).
#[export_name = "probe_aborts_caught"]
pub(super) static ABORTS_CAUGHT: AtomicU64 = AtomicU64::new(0);

const EC_DABT_SAME_EL: u64 = 0x25;
const DFSC_SYNC_EXTERNAL: u64 = 0b01_0000;
const ESR_WNR: u64 = 1 << 6;
const ESR_FNV: u64 = 1 << 10;

/// What one access did.
#[derive(Clone, Copy)]
enum Seen {
    /// No abort: the load returned this (the store went nowhere visible).
    Completed(u64),
    /// A data abort with these ESR_EL1 and FAR_EL1.
    Aborted { esr: u64, far: u64 },
}

fn access(addr: u64, write: bool) -> Seen {
    let before = ABORTS_CAUGHT.load(Ordering::Relaxed);
    // SAFETY: `addr` is mapped Device-nGnRE at stage 1 on a page no DT node claims, so the
    // access touches nothing the probe or anyone else uses; the only exception it can raise (a
    // data abort at EL1) is resumed past by vectors.S, and the C-ABI stubs clobber only x0-x2.
    let value = unsafe {
        if write {
            probe_abort_store(addr, 0x5a5a_5a5a_5a5a_5a5a);
            0
        } else {
            probe_abort_load(addr)
        }
    };
    if ABORTS_CAUGHT.load(Ordering::Relaxed) == before {
        return Seen::Completed(value);
    }
    // Read right away: nothing between the abort and here writes ESR_EL1 or FAR_EL1.
    Seen::Aborted {
        esr: sysreg::esr(),
        far: sysreg::far(),
    }
}

/// Check one access against the synchronous external abort el2visor must inject.
fn check(addr: u64, write: bool, seen: Seen) -> Result<(), Msg> {
    let what = if write { "write" } else { "read" };
    let (esr, far) = match seen {
        Seen::Completed(v) => {
            return Err(msg!(
                "{what} of unowned IPA {addr:#x} completed without an abort{}",
                if write {
                    msg!("")
                } else {
                    msg!(" (read {v:#x})")
                }
            ))
        }
        Seen::Aborted { esr, far } => (esr, far),
    };
    let ec = (esr >> 26) & 0x3f;
    let dfsc = esr & 0x3f;
    if ec != EC_DABT_SAME_EL || dfsc != DFSC_SYNC_EXTERNAL {
        return Err(msg!(
            "{what} of {addr:#x}: ESR_EL1={esr:#x} (EC {ec:#x}, DFSC {dfsc:#04x}), expected EC 0x25 with DFSC 0x10 (synchronous external abort)"
        ));
    }
    if (esr & ESR_WNR != 0) != write {
        return Err(msg!(
            "{what} of {addr:#x}: ESR_EL1={esr:#x} has WnR={}",
            (esr >> 6) & 1
        ));
    }
    if esr & ESR_FNV != 0 || far != addr {
        return Err(msg!(
            "{what} of {addr:#x}: FAR_EL1={far:#x} (FnV={}), expected the address",
            (esr >> 10) & 1
        ));
    }
    Ok(())
}

/// A store of `value` to `addr`, caught like [`access`]'s.
fn store(addr: u64, value: u64) -> Seen {
    let before = ABORTS_CAUGHT.load(Ordering::Relaxed);
    // SAFETY: `addr` is mapped Device-nGnRE at stage 1; the only exception the store can raise
    // (a data abort at EL1) is resumed past by vectors.S, and the stub clobbers only x0-x2.
    unsafe { probe_abort_store(addr, value) };
    if ABORTS_CAUGHT.load(Ordering::Relaxed) == before {
        return Seen::Completed(0);
    }
    Seen::Aborted { esr: sysreg::esr(), far: sysreg::far() }
}

/// `fw_cfg_dma` (QEMU virt): fw_cfg, whose DMA interface writes any physical address (el2visor's
/// memory included), is given to no VM: the DT lacks it, and starting a DMA (a write of a
/// request's address to its DMA register) aborts like any address the VM does not own. Were the
/// device reachable, the request would really run: it reads the `QEMU` signature into a buffer on
/// this probe's stack, harming nothing, and the probe fails saying so.
pub fn fw_cfg_dma(ctx: &Context) -> Result<(), Msg> {
    use probe_guest::fwcfg;
    let f = ctx.platform.fw_cfg.ok_or_else(|| msg!("not QEMU virt: no fw_cfg to aim at"))?;
    if f.in_dt {
        return Err(msg!("the DT gives this VM fw_cfg at {:#x}: its DMA reaches all physical memory", f.base));
    }
    let mut buf = [0u8; 8];
    let req = fwcfg::read_request(fwcfg::SIGNATURE, 4, buf.as_mut_ptr() as u64);
    let addr = f.base + fwcfg::DMA_REGISTER;
    let seen = store(addr, fwcfg::register_value(core::ptr::addr_of!(req) as u64));
    // SAFETY: `buf` is this frame's; the device (if it ran) wrote it before the store completed.
    let got: [u8; 4] = unsafe { core::ptr::read_volatile(buf.as_ptr().cast()) };
    if let Seen::Completed(_) = seen {
        let ran = if &got == b"QEMU" { msg!(" and the DMA ran (it wrote the signature)") } else { msg!("") };
        return Err(msg!("the write of fw_cfg's DMA register {addr:#x} completed{ran}"));
    }
    if ctx.mode().is_err() {
        return Err(msg!("not under el2visor; bare QEMU's answer at {addr:#x}: {}", describe(seen)));
    }
    check(addr, true, seen)?;
    hvc::vendor(abi::VENDOR_UID, 0).map_err(|e| msg!("after the fw_cfg abort the UID call failed: {e}"))?;
    Ok(())
}

/// Describe what bare QEMU (no el2visor) did, for the FAIL line.
fn describe(seen: Seen) -> Msg {
    match seen {
        Seen::Completed(v) => msg!("completed ({v:#x})"),
        Seen::Aborted { esr, far } => msg!("abort ESR={esr:#x} FAR={far:#x}"),
    }
}

const DFSC_ALIGNMENT: u64 = 0b10_0001;

/// `s2_device_alignment`: an unaligned 8-byte load from the passthrough device page, which the
/// probe maps Normal WB at stage 1 and el2visor's stage 2 keeps Device. The combined type is
/// Device, for which an unaligned access is an alignment fault: the guest must take one (EC
/// 0x25, DFSC 0b100001, FAR the address), as on hardware with the page mapped Device, not a
/// synchronous external abort for an address it owns. Reads of the page have no side effects
/// (virtio-mmio's identification registers, the Pi's GPIO function selects). A CPU model that
/// does not check the alignment of Device accesses (QEMU under -icount) completes the load, and
/// there is nothing to check.
pub fn s2_device_alignment(ctx: &Context) -> Result<(), Msg> {
    let dev = ctx.platform.passthrough.ok_or_else(|| msg!("no passthrough device in the DT"))?;
    let page = dev.region.base & !0xfff;
    if Some(page) == ctx.platform.uart.map(|u| u & !0xfff) {
        return Err(msg!("the {} page {page:#x} is the console UART's page", dev.compatible));
    }
    let addr = page + 1;
    let seen = access(addr, false);
    if ctx.mode().is_err() {
        return Err(msg!("not under el2visor (stage 1 alone maps the page Normal): {}", describe(seen)));
    }
    let Seen::Aborted { esr, far } = seen else {
        // QEMU under -icount (`make bench`) does its Device accesses without the alignment
        // check; that stage 2 keeps the page Device is `device_attr`'s to check.
        println!("probe: s2_device_alignment: the unaligned load of {addr:#x} completed: this CPU does not check the alignment of Device accesses (QEMU with -icount), nothing to check");
        return Ok(());
    };
    let (ec, dfsc) = ((esr >> 26) & 0x3f, esr & 0x3f);
    if ec != EC_DABT_SAME_EL || dfsc != DFSC_ALIGNMENT || esr & ESR_WNR != 0 {
        return Err(msg!(
            "the unaligned load of {addr:#x} took ESR_EL1={esr:#x} (EC {ec:#x}, DFSC {dfsc:#04x}), expected EC 0x25 with DFSC 0x21 (alignment fault), a read"
        ));
    }
    if far != addr {
        return Err(msg!("the unaligned load of {addr:#x}: FAR_EL1={far:#x}"));
    }
    hvc::vendor(abi::VENDOR_UID, 0).map_err(|e| msg!("after the alignment fault the UID call failed: {e}"))?;
    Ok(())
}

pub fn abort_injected(ctx: &Context) -> Result<(), Msg> {
    let addr = ctx.platform.unowned.ok_or_else(|| {
        msg!("every 1 GiB-aligned address above RAM below 2^48 is claimed by a DT reg or ranges window")
    })?;
    // Stage 1 outputs at most 48 bits (TCR_EL1.IPS, mmu.rs).
    let pa_bits = pa_range_bits(sysreg::pa_range()).unwrap_or(32).min(48);
    if addr >> pa_bits != 0 {
        return Err(msg!(
            "unowned address {addr:#x} is beyond the {pa_bits}-bit output range of stage 1"
        ));
    }
    let read = access(addr, false);
    let write = access(addr, true);
    if ctx.mode().is_err() {
        // No el2visor answered: whatever happened is QEMU's handling of an unassigned address.
        return Err(msg!(
            "not under el2visor; bare QEMU's own response at {addr:#x}: read {}, write {}",
            describe(read),
            describe(write)
        ));
    }
    check(addr, false, read)?;
    check(addr, true, write)?;
    // Still running, and el2visor still answers.
    hvc::vendor(abi::VENDOR_UID, 0)
        .map_err(|e| msg!("after the injected aborts the UID call failed: {e}"))?;
    Ok(())
}
