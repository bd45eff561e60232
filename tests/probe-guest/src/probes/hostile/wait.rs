//! Sleeping before the attack (`wait=<seconds>` in the bootargs), so that it lands while the VM
//! beside it is up and checking its memory: the virtual timer fires after the delay, its PPI
//! (27) goes through the VM's virtual GIC like any guest's timer, and WFI waits for it without
//! keeping a host CPU busy under QEMU. Interrupts stay masked at PSTATE: a pending virtual IRQ
//! wakes WFI all the same; the probe then acknowledges it and turns everything off again.

use super::gic::{Gic, View};
use core::arch::asm;
use probe_guest::msg;
use probe_guest::msg::Msg;

const VTIMER_PPI: u32 = 27;

fn cntvct() -> u64 {
    let t: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// ICC_* (GICv3 CPU interface) accesses by encoding.
macro_rules! icc {
    (read $enc:literal) => {{
        let v: u64;
        // SAFETY: a GICv3 CPU interface register of this vCPU (el2visor gives a GICv3 VM the
        // virtual interface): reading it changes only this vCPU's interrupt state.
        unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nostack)) };
        v
    }};
    (write $enc:literal, $v:expr) => {{
        // SAFETY: as above, for a write.
        unsafe { asm!(concat!("msr ", $enc, ", {}"), "isb", in(reg) $v as u64, options(nostack)) };
    }};
}

/// Enable or disable the timer PPI and the CPU interface around the wait.
fn route(v: &View, on: bool) -> Result<(), Msg> {
    let bit = 1u32 << VTIMER_PPI;
    let w = |a: u64, x: u32| {
        super::write32(a, x).map_err(|esr| msg!("writing {x:#x} to {a:#x} aborted ({esr:#x})"))
    };
    match v.gic {
        Gic::V3 { dist, .. } => {
            if on {
                w(dist, 2)?; // GICD_CTLR.EnableGrp1NS (affinity routing is always on)
                w(v.rd + 0x14, 0)?; // GICR_WAKER: awake
                w(v.rd + 0x1_0080, bit)?; // GICR_IGROUPR0: group 1
                w(v.rd + 0x1_0100, bit)?; // GICR_ISENABLER0
                icc!(write "S3_0_C4_C6_0", 0xffu64); // ICC_PMR_EL1
                icc!(write "S3_0_C12_C12_7", 1u64); // ICC_IGRPEN1_EL1
            } else {
                icc!(write "S3_0_C12_C12_7", 0u64);
                w(v.rd + 0x1_0180, bit)?; // GICR_ICENABLER0
            }
        }
        Gic::V2 { dist, cpu, .. } => {
            if on {
                w(dist, 1)?; // GICD_CTLR
                w(dist + 0x80, 0)?; // GICD_IGROUPR0: group 0, signalled as IRQ
                w(dist + 0x100, bit)?; // GICD_ISENABLER0
                w(cpu + 0x4, 0xff)?; // GICC_PMR
                w(cpu, 1)?; // GICC_CTLR.EnableGrp0
            } else {
                w(cpu, 0)?;
                w(dist + 0x180, bit)?; // GICD_ICENABLER0
            }
        }
    }
    Ok(())
}

/// Acknowledge and end the timer's interrupt: the INTID acknowledged.
fn ack(v: &View) -> Result<u32, Msg> {
    match v.gic {
        Gic::V3 { .. } => {
            let id = icc!(read "S3_0_C12_C12_0") as u32; // ICC_IAR1_EL1
            if id < 1020 {
                icc!(write "S3_0_C12_C12_1", id); // ICC_EOIR1_EL1
            }
            Ok(id)
        }
        Gic::V2 { cpu, .. } => {
            let iar =
                super::read32(cpu + 0xc).map_err(|esr| msg!("GICC_IAR aborted ({esr:#x})"))?;
            if iar & 0x3ff < 1020 {
                super::write32(cpu + 0x10, iar)
                    .map_err(|esr| msg!("GICC_EOIR aborted ({esr:#x})"))?;
            }
            Ok(iar & 0x3ff)
        }
    }
}

/// Sleep `secs` seconds in WFI until the virtual timer fires.
pub fn sleep(v: &View, secs: u64) -> Result<(), Msg> {
    let target = cntvct() + secs * crate::sysreg::cntfrq();
    route(v, true)?;
    // SAFETY: the EL1 virtual timer is the VM's own; it fires once, at `target`.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "msr cntv_ctl_el0, {}", "isb", in(reg) target, in(reg) 1u64, options(nostack))
    };
    let mut wakeups = 0u64;
    while cntvct() < target {
        aarch64_cpu::asm::wfi();
        wakeups += 1;
    }
    // SAFETY: stops the timer (its line drops).
    unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
    let id = ack(v)?;
    route(v, false)?;
    println!("probe: hostile: slept {secs} s ({wakeups} wake-ups, acknowledged INTID {id})");
    Ok(())
}
