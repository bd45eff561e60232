//! `vgic_level_once`: a level-triggered passthrough SPI (the PL031 RTC's match interrupt) is
//! delivered once per assertion. The probe's "handler" (polling the IAR with PSTATE.I masked)
//! runs twice: once ending the interrupt before it clears the RTC's line, as kvm-unit-tests'
//! pl031 test does, once clearing the line first, as Linux drivers do. After the line is low and
//! the interrupt ended, the IAR must stay spurious: on bare hardware the pending state of a
//! level-sensitive interrupt follows its line.

use super::gic::{self, GuestGic, SPURIOUS};
use super::Context;
use probe_guest::msg;
use probe_guest::msg::Msg;

const RTCDR: u64 = 0x00;
const RTCMR: u64 = 0x04;
const RTCIMSC: u64 = 0x10;
const RTCRIS: u64 = 0x14;
const RTCICR: u64 = 0x1c;

/// The RTC counts seconds: a match one second ahead comes within two.
const WAIT_US: u64 = 2_500_000;
/// How long the probe keeps polling for a second delivery.
const AFTER_US: u64 = 20_000;

/// One match interrupt, handled with the EOI before (`eoi_first`) or after clearing the line.
fn round(g: &GuestGic, base: u64, intid: u32, eoi_first: bool) -> Result<(), Msg> {
    let reg = |off: u64| base + off;
    gic::mmio_write(reg(RTCICR), 1);
    gic::mmio_write(reg(RTCMR), gic::mmio_read(reg(RTCDR)).wrapping_add(1));
    gic::mmio_write(reg(RTCIMSC), 1);
    let end = gic::now() + gic::ticks(WAIT_US);
    let iar = loop {
        let iar = g.ack();
        match iar & 0x3ff {
            i if i == intid => break iar,
            SPURIOUS if gic::now() < end => {}
            SPURIOUS => {
                gic::mmio_write(reg(RTCIMSC), 0);
                let ris = gic::mmio_read(reg(RTCRIS));
                return Err(msg!("no interrupt {intid} within {} s (RTCRIS {ris:#x})", WAIT_US / 1_000_000));
            }
            other => {
                g.eoi(iar);
                return Err(msg!("IAR gave INTID {other}, expected the RTC's {intid}"));
            }
        }
    };
    let ris = gic::mmio_read(reg(RTCRIS));
    if eoi_first {
        g.eoi(iar);
        gic::mmio_write(reg(RTCICR), 1);
    } else {
        gic::mmio_write(reg(RTCICR), 1);
        g.eoi(iar);
    }
    let cleared = gic::mmio_read(reg(RTCRIS));
    let order = if eoi_first { "EOI then clear" } else { "clear then EOI" };
    if ris & 1 == 0 || cleared & 1 != 0 {
        gic::mmio_write(reg(RTCIMSC), 0);
        return Err(msg!("{order}: RTCRIS {ris:#x} in the handler, {cleared:#x} after the clear"));
    }
    let end = gic::now() + gic::ticks(AFTER_US);
    let mut again = 0;
    while gic::now() < end {
        let iar = g.ack();
        if iar & 0x3ff == SPURIOUS {
            continue;
        }
        g.eoi(iar);
        if iar & 0x3ff == intid {
            again += 1;
        }
    }
    gic::mmio_write(reg(RTCIMSC), 0);
    if again > 0 {
        return Err(msg!("{order}: the handler ran {again} more time(s) after the line was cleared and the interrupt ended"));
    }
    Ok(())
}

pub fn level_once(ctx: &Context) -> Result<(), Msg> {
    let rtc = ctx.platform.rtc.ok_or_else(|| msg!("no arm,pl031 with an SPI in the DT"))?;
    let g = GuestGic::init(&ctx.platform)?;
    gic::mmio_write(rtc.base + RTCIMSC, 0);
    gic::mmio_write(rtc.base + RTCICR, 1);
    g.configure(rtc.intid);
    g.enable(rtc.intid, true);
    g.drain();
    let r = round(&g, rtc.base, rtc.intid, true).and_then(|()| round(&g, rtc.base, rtc.intid, false));
    g.enable(rtc.intid, false);
    g.drain();
    r
}
