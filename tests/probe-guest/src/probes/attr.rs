//! `ram_nc_attr` and `device_attr`: the memory type that stage 1 and stage 2 together give,
//! as el2visor reads it from PAR_EL1 after `AT S12E1R`/`AT S12E1W` on the probe's VA.

use super::Context;
use crate::hvc;
use crate::mmu::RAM_TARGET;
use probe_guest::msg;
use probe_guest::msg::Msg;

/// PAR_EL1 of a successful translation of `va`, or why there is none.
fn par(va: u64, write: bool) -> Result<u64, Msg> {
    let par = hvc::at_s12e1(va, write)?;
    if par & 1 != 0 {
        return Err(msg!(
            "AT S12E1{} on VA {va:#x} faulted: PAR_EL1={par:#x} (FST={:#x}, S={})",
            if write { 'W' } else { 'R' },
            (par >> 1) & 0x3f,
            (par >> 9) & 1
        ));
    }
    Ok(par)
}

fn attr(par: u64) -> u8 {
    (par >> 56) as u8
}

/// RAM the probe maps Normal-NC at stage 1: 0xff (Normal WB) in fwb and mair-trap modes, 0x44
/// (Normal-NC, the stricter of the two stages) in off mode; read and write translations agree.
pub fn ram_nc_attr(ctx: &Context) -> Result<(), Msg> {
    let mode = ctx.mode()?;
    let va = core::ptr::addr_of!(RAM_TARGET) as u64;
    let expected = mode.expected_ram_nc_attr();
    for write in [false, true] {
        let got = attr(par(va, write)?);
        if got != expected {
            return Err(msg!(
                "AT S12E1{} on RAM VA {va:#x} (Normal-NC at stage 1) gave PAR.ATTR={got:#04x}, expected {expected:#04x} in {} mode",
                if write { 'W' } else { 'R' },
                mode.name()
            ));
        }
    }
    Ok(())
}

/// The passthrough device page, mapped Normal WB at stage 1 on purpose, comes out Device
/// (ATTR high nibble 0) because stage 2 keeps devices Device in every mode.
pub fn device_attr(ctx: &Context) -> Result<(), Msg> {
    let dev = ctx.platform.passthrough.ok_or_else(|| {
        msg!(
            "no node compatible with any of {:?} in the DT to use as a passthrough device",
            probe_guest::dt::PASSTHROUGH_COMPATIBLES
        )
    })?;
    let va = dev.region.base & !0xfff;
    if Some(va) == ctx.platform.uart.map(|u| u & !0xfff) {
        return Err(msg!(
            "the {} page {va:#x} is the console UART's page; cannot map it WB",
            dev.compatible
        ));
    }
    let got = attr(par(va, false)?);
    if got >> 4 != 0 {
        let mode = ctx.mode().map(|m| m.name()).unwrap_or("unknown");
        return Err(msg!(
            "{} page {va:#x} mapped Normal WB at stage 1 gave PAR.ATTR={got:#04x}, expected Device (0x0?) in {mode} mode",
            dev.compatible
        ));
    }
    Ok(())
}
