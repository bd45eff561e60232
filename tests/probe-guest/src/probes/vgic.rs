//! The virtual GIC's state registers, as a guest polling them sees them:
//! - `vgic_pending_disabled`: the virtual timer fires while the guest has INTID 27 disabled; its
//!   ISPENDR bit must read as set (the line is pending in the physical GIC) and clear once the
//!   timer stops driving the line, and nothing is delivered.
//! - `vgic_pending_in_lr`: the timer fires with INTID 27 enabled while the probe runs with
//!   PSTATE.I masked, so it waits in a list register: ISPENDR must show it pending, ISACTIVER
//!   active once acknowledged, and neither after the EOI.
//! - `vgic_icpendr_retracts`: an SGI and a purely virtual SPI made pending while masked, then
//!   cleared through ICPENDR (GICv2 SGIs: CPENDSGIR), must not be acknowledged afterwards.
//! - `vgic_disable_holds_pending`: the same purely virtual SPI (and on GICv3 an SGI) made
//!   pending while masked, so that it waits in a list register, then disabled: it must still
//!   read pending, must not be acknowledged while disabled, and must be once enabled again, once
//!   (a GIC keeps a disabled interrupt pending without signalling it); then the same with the
//!   interrupt also active (acknowledged, pending again, disabled, ended).
//! - `vgic_lr_overflow`: eight SGIs made pending at once while masked, more than the list
//!   registers hold (QEMU has four): every one must be acknowledged in turn, the rest coming in
//!   as list registers free up, with the timer stopped (no other interrupt to help them along).
//! - `vgic_redist_layout` (GICv3): each redistributor sits at the DT's stride with its own
//!   GICR_TYPER.Processor_Number, up to one flagged Last inside the DT's region.
//! - `vgic_sgi0r_asgi1r` (GICv3): ICC_SGI0R_EL1 and ICC_ASGI1R_EL1, which send Group 0 SGIs,
//!   are writable at EL1 like ICC_SGI1R_EL1 (el2visor traps all three): written with an empty
//!   target list (nothing is sent), neither may raise an UNDEF.

use super::gic::{self, GuestGic, ICPENDR, ISPENDR, SPURIOUS, VTIMER};
use super::Context;
use probe_guest::dt::Gic;
use probe_guest::msg;
use probe_guest::msg::Msg;

/// How long the probe gives el2visor to take a physical interrupt once its line is up.
const SETTLE_US: u64 = 2_000;
/// How long the timer may take to show its condition met: under a loaded host, QEMU updates
/// CNTV_CTL_EL0.ISTATUS (and raises the line with it) late.
const FIRE_US: u64 = 1_000_000;

fn expect(cond: bool, what: impl FnOnce() -> Msg) -> Result<(), Msg> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Fire the virtual timer and wait until its condition is met and el2visor had time to act.
fn fire_vtimer() -> Result<(), Msg> {
    gic::vtimer_arm(100);
    let end = gic::now() + gic::ticks(FIRE_US);
    while !gic::vtimer_fired() {
        if gic::now() > end {
            return Err(msg!("CNTV_CTL_EL0.ISTATUS is still 0 {} ms past the deadline", FIRE_US / 1000));
        }
    }
    gic::delay(SETTLE_US);
    Ok(())
}

pub fn pending_disabled(ctx: &Context) -> Result<(), Msg> {
    let g = GuestGic::init(&ctx.platform)?;
    gic::vtimer_stop();
    g.configure(VTIMER);
    g.enable(VTIMER, false);
    g.drain();
    let r = (|| {
        fire_vtimer()?;
        let seen = g.pending(VTIMER);
        let iar = g.ack();
        expect(iar & 0x3ff == SPURIOUS, || msg!("IAR gave {iar:#x} with INTID 27 disabled"))?;
        expect(seen, || msg!("the timer fired with INTID 27 disabled but ISPENDR shows it not pending"))?;
        gic::vtimer_stop();
        gic::delay(SETTLE_US);
        expect(!g.pending(VTIMER), || msg!("the timer stopped (its line is low) but INTID 27 still reads pending"))
    })();
    gic::vtimer_stop();
    r
}

pub fn pending_in_lr(ctx: &Context) -> Result<(), Msg> {
    let g = GuestGic::init(&ctx.platform)?;
    gic::vtimer_stop();
    g.configure(VTIMER);
    g.enable(VTIMER, true);
    g.drain();
    let r = (|| {
        fire_vtimer()?;
        // PSTATE.I is masked: el2visor has put INTID 27 in a list register, where it waits.
        let (pending, active) = (g.pending(VTIMER), g.active(VTIMER));
        expect(pending && !active, || msg!("INTID 27 fired while masked: ISPENDR {pending}, ISACTIVER {active}, expected pending only"))?;
        let iar = g.ack();
        expect(iar & 0x3ff == VTIMER, || msg!("IAR gave {iar:#x}, expected 27"))?;
        let active = g.active(VTIMER);
        gic::vtimer_stop();
        g.eoi(iar);
        expect(active, || msg!("INTID 27 acknowledged but ISACTIVER shows it not active"))?;
        let (pending, active) = (g.pending(VTIMER), g.active(VTIMER));
        expect(!pending && !active, || msg!("after the EOI with the timer stopped: ISPENDR {pending}, ISACTIVER {active}"))?;
        let iar = g.ack();
        expect(iar & 0x3ff == SPURIOUS, || msg!("IAR gave {iar:#x} after the EOI, expected 1023"))
    })();
    gic::vtimer_stop();
    g.enable(VTIMER, false);
    g.drain();
    r
}

/// An SPI the distributor implements that no DT node names: nothing drives it, so it is purely
/// virtual under el2visor.
pub fn free_spi(g: &GuestGic, ctx: &Context) -> Result<u32, Msg> {
    (32..g.lines().min(1020))
        .rev()
        .find(|&i| !ctx.platform.used_spis.contains(i))
        .ok_or_else(|| msg!("every SPI up to GICD_TYPER's {} lines is used by a device", g.lines()))
}

/// Make `intid` pending with `make`, check it reads pending, clear it with `clear`, and check it
/// is neither pending nor acknowledged afterwards.
fn retract(g: &GuestGic, intid: u32, make: impl Fn(), clear: impl Fn()) -> Result<(), Msg> {
    g.configure(intid);
    g.enable(intid, true);
    make();
    let pending = g.pending(intid);
    clear();
    let still = g.pending(intid);
    let iar = g.ack_and_end();
    g.enable(intid, false);
    expect(pending, || msg!("INTID {intid} made pending while masked does not read pending"))?;
    expect(!still, || msg!("INTID {intid} still reads pending after its pending state was cleared"))?;
    expect(iar & 0x3ff == SPURIOUS, || msg!("INTID {intid}: IAR gave {iar:#x} after its pending state was cleared, expected 1023"))
}

pub fn icpendr_retracts(ctx: &Context) -> Result<(), Msg> {
    let g = GuestGic::init(&ctx.platform)?;
    g.drain();
    const SGI: u32 = 3;
    if g.is_v3() {
        retract(&g, SGI, || g.sgi_self(SGI), || g.set_bit(ICPENDR, SGI))?;
    } else {
        // GICD_SPENDSGIR shows the SGI pending from this CPU while it waits in a list register.
        let seen = core::cell::Cell::new((0, 0));
        retract(&g, SGI, || { g.sgi_self(SGI); seen.set(g.sgi_sources_v2(SGI)) }, || g.clear_sgi_v2(SGI))?;
        let (sources, own) = seen.get();
        expect(sources == own, || msg!("SGI {SGI} sent to itself while masked: GICD_SPENDSGIR shows sources {sources:#x}, expected {own:#x}"))?;
    }
    let spi = free_spi(&g, ctx)?;
    retract(&g, spi, || g.set_bit(ISPENDR, spi), || g.set_bit(ICPENDR, spi))
}

/// After a disabled `intid` was acknowledged as `disabled` (the IAR): enable it, acknowledge
/// and end it, and take whatever else comes; what it checks is the caller's as well.
fn enable_and_take(g: &GuestGic, intid: u32, disabled: u32, what: &str) -> Result<(), Msg> {
    g.enable(intid, true);
    let enabled = g.ack_and_end();
    let again = g.drain();
    g.enable(intid, false);
    expect(disabled & 0x3ff == SPURIOUS, || msg!("INTID {intid} {what}: IAR gave {disabled:#x}, expected 1023"))?;
    expect(enabled & 0x3ff == intid, || msg!("INTID {intid} ({what}) enabled again: IAR gave {enabled:#x}, expected {intid}"))?;
    expect(again == 0, || msg!("INTID {intid}: {again} more interrupts acknowledged after it, expected none"))
}

/// Make `intid` pending with `make` (it waits in a list register: PSTATE.I is masked), disable
/// it, and check it reads pending, is not acknowledged, and is once enabled again, once.
fn hold(g: &GuestGic, intid: u32, make: impl Fn()) -> Result<(), Msg> {
    g.configure(intid);
    g.enable(intid, true);
    make();
    let made = g.pending(intid);
    g.enable(intid, false);
    let pending = g.pending(intid);
    let disabled = g.ack_and_end();
    let r = enable_and_take(g, intid, disabled, "disabled while pending");
    expect(made, || msg!("INTID {intid} made pending while masked does not read pending"))?;
    expect(pending, || msg!("INTID {intid} disabled while pending does not read pending"))?;
    r
}

/// As [`hold`], with `intid` also active: acknowledged, then made pending again (pending and
/// active), then disabled; its end (EOI) must not let the pending part through while disabled.
fn hold_active(g: &GuestGic, intid: u32, make: impl Fn()) -> Result<(), Msg> {
    g.configure(intid);
    g.enable(intid, true);
    make();
    let first = g.ack();
    make();
    g.enable(intid, false);
    if first & 0x3ff < 1020 {
        g.eoi(first);
    }
    let disabled = g.ack_and_end();
    let r = enable_and_take(g, intid, disabled, "pending again while active, disabled, then ended");
    expect(first & 0x3ff == intid, || msg!("INTID {intid} made pending while masked: IAR gave {first:#x}"))?;
    r
}

pub fn disable_holds_pending(ctx: &Context) -> Result<(), Msg> {
    let g = GuestGic::init(&ctx.platform)?;
    g.drain();
    if g.is_v3() {
        // GICv2 leaves whether SGIs can be disabled to the implementation.
        const SGI: u32 = 4;
        hold(&g, SGI, || g.sgi_self(SGI))?;
        hold_active(&g, SGI, || g.sgi_self(SGI))?;
    }
    let spi = free_spi(&g, ctx)?;
    hold(&g, spi, || g.set_bit(ISPENDR, spi))?;
    hold_active(&g, spi, || g.set_bit(ISPENDR, spi))
}

pub fn lr_overflow(ctx: &Context) -> Result<(), Msg> {
    /// More than the list registers of any GIC QEMU models (four), fewer than the 16 SGIs.
    const N: u32 = 8;
    let g = GuestGic::init(&ctx.platform)?;
    gic::vtimer_stop();
    g.drain();
    for i in 0..N {
        g.configure(i);
        g.enable(i, true);
    }
    for i in 0..N {
        g.sgi_self(i);
    }
    let mut seen = 0u32;
    let end = gic::now() + gic::ticks(FIRE_US);
    while seen != (1 << N) - 1 && gic::now() < end {
        let iar = g.ack();
        let id = iar & 0x3ff;
        if id < 1020 {
            g.eoi(iar);
        }
        if id < N {
            seen |= 1 << id;
        }
    }
    for i in 0..N {
        g.enable(i, false);
    }
    g.drain();
    expect(seen == (1 << N) - 1, || msg!("of {N} SGIs pending at once only {seen:#x} were acknowledged within {} ms", FIRE_US / 1000))
}

pub fn sgi0r_asgi1r() -> Result<(), Msg> {
    match super::tvm_feat::undefs_in(gic::write_group0_sgi_regs_to_nobody) {
        0 => Ok(()),
        n => Err(msg!("{n} of the writes of ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 raised an UNDEF")),
    }
}

pub fn redist_layout(ctx: &Context) -> Result<(), Msg> {
    let Some(gicv3 @ Gic::V3 { redist, .. }) = ctx.platform.gic else {
        return Err(msg!("not a GICv3"));
    };
    let stride = gicv3.redist_stride();
    for i in 0..redist.size / stride {
        let typer = gic::rd64(redist.base + i * stride + 8);
        let number = (typer >> 8) & 0xffff;
        expect(number == i, || msg!("GICR_TYPER at {:#x} (stride {stride:#x}) has Processor_Number {number}, expected {i}", redist.base + i * stride))?;
        if typer & (1 << 4) != 0 {
            return Ok(());
        }
    }
    Err(msg!("no redistributor flagged Last in {:#x}+{:#x} at stride {stride:#x}", redist.base, redist.size))
}
