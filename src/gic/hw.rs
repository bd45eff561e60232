//! The host GIC at run time: the one [`HostGic`] el2visor drives, each CPU's interface, and the
//! kick SGI one pCPU sends another to make it leave its guest. Nothing here knows about VMs.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::{cpu, sysreg};
use crate::gic::host::HostGic;
use crate::gic::{GicError, GicInfo, MAINTENANCE_INTID};
use crate::percpu;

/// The SGI el2visor sends to make another pCPU leave its guest and pick up new interrupts. One of
/// 0..7: secure firmware conventionally claims SGIs 8..15 (guests' SGIs are virtual and unaffected).
pub const KICK_SGI: u32 = 1;

/// The maintenance interrupt of the host GIC (from the DT; INTID 25 on QEMU virt and GIC-400).
static MAINTENANCE: AtomicU32 = AtomicU32::new(MAINTENANCE_INTID);

/// The EL2 physical timer's PPI (from the DT; INTID 26 on QEMU virt and the Pi 4), enabled on
/// every CPU for [`sleep_until`]; [`NO_INTID`] when the DT names none.
static HYP_TIMER: AtomicU32 = AtomicU32::new(NO_INTID);
const NO_INTID: u32 = u32::MAX;
/// The CPUs (a bit per index) whose GIC has the EL2 timer's PPI enabled: only these sleep in
/// [`sleep_until`]; one whose setup failed polls.
static HYP_TIMER_CPUS: AtomicU32 = AtomicU32::new(0);

/// CNTHP_CTL_EL2: the timer counts (ENABLE); IMASK (bit 1) clear, so it asserts its PPI.
const CNTHP_ENABLE: u64 = 1 << 0;
/// CNTHP_CTL_EL2 with the timer off: its PPI is low.
const CNTHP_OFF: u64 = 0;

/// Device interrupts el2visor handles itself (its console's receive interrupt when it owns
/// console input, the GDB stub's UART, an SMMU's event queue and global errors), and their handlers; `u32::MAX` marks
/// a free slot.
const DEVICE_SLOTS: usize = 8;
static DEVICE_IRQ: [AtomicU32; DEVICE_SLOTS] = [const { AtomicU32::new(u32::MAX) }; DEVICE_SLOTS];
static DEVICE_HANDLER: [spin::Once<fn()>; DEVICE_SLOTS] = [const { spin::Once::new() }; DEVICE_SLOTS];
static DEVICE_NEXT: AtomicU32 = AtomicU32::new(0);

/// The host GIC, once the boot CPU has initialised its distributor.
static HOST: spin::Once<HostGic> = spin::Once::new();

/// The host GIC, if there is one.
pub fn host() -> Option<&'static HostGic> {
    HOST.get()
}

/// Sleep until something may have changed for this pCPU: an interrupt (a kick SGI, a device's)
/// once the host GIC is up, else an event (no GIC, so no kicks: CPU_ON's caller sends an SEV).
pub fn sleep() {
    if host().is_some() {
        cpu::wait_for_interrupt();
    } else {
        cpu::wait_for_event();
    }
}

/// Boot CPU: take over the distributor.
pub fn init_host(info: &GicInfo) -> Result<(), GicError> {
    // SAFETY: `info` comes from the host DT; its frames are identity mapped as Device at EL2 and
    // only el2visor drives them (the VM gets GICV and emulated GICD/GICR, never these).
    let gic = unsafe { HostGic::init_distributor(info) }?;
    MAINTENANCE.store(info.maintenance_intid, Ordering::Relaxed);
    match info.hyp_timer_intid {
        Some(t) if crate::gic::is_ppi(t) => HYP_TIMER.store(t, Ordering::Relaxed),
        Some(t) => log::warn!("GIC: the EL2 timer's interrupt {t} is not a PPI: timed waits (WFIT) poll"),
        None => log::info!("GIC: the device tree names no EL2 timer interrupt: timed waits (WFIT) poll"),
    }
    HOST.call_once(|| gic);
    Ok(())
}

/// Every CPU (the boot CPU too): its CPU interface and virtual interface, the kick SGI, and the
/// EL2 timer's PPI, the timer itself off first (its control resets to an UNKNOWN value).
pub fn init_cpu() -> Result<(), GicError> {
    let Some(h) = HOST.get() else { return Ok(()) };
    h.init_cpu()?;
    let mpidr = percpu::mpidr_of(cpu::current());
    h.enable(KICK_SGI, mpidr)?;
    let timer = HYP_TIMER.load(Ordering::Relaxed);
    if timer != NO_INTID {
        sysreg::set_cnthp_ctl_el2(CNTHP_OFF);
        sysreg::isb();
        h.enable(timer, mpidr)?;
        HYP_TIMER_CPUS.fetch_or(1 << (cpu::current() % 32), Ordering::Relaxed);
    }
    Ok(())
}

/// Sleep until an interrupt is pending for this pCPU or the physical counter reaches `deadline`
/// (a trapped WFIT). The EL2 physical timer, set to the deadline, wakes the WFI; it is off again
/// on return, so its level-sensitive PPI is low and nothing is left to acknowledge (should an
/// acknowledge still catch it, [`is_own`] has it deactivated). Without a GIC or a PPI for that
/// timer, or on a CPU whose GIC setup failed, the wait polls the counter instead.
pub fn sleep_until(deadline: u64) {
    // A bit is set only by `init_cpu` with the host GIC up.
    let timer = HYP_TIMER_CPUS.load(Ordering::Relaxed) & (1 << (cpu::current() % 32)) != 0;
    if timer {
        sysreg::set_cnthp_cval_el2(deadline);
        sysreg::set_cnthp_ctl_el2(CNTHP_ENABLE);
        sysreg::isb();
    }
    while sysreg::cntpct_el0() < deadline && !cpu::interrupt_pending() {
        if timer {
            cpu::wait_for_interrupt();
        } else {
            core::hint::spin_loop();
        }
    }
    if timer {
        sysreg::set_cnthp_ctl_el2(CNTHP_OFF);
        sysreg::isb();
    }
}

/// Take device interrupt `intid` (an SPI) for el2visor: level-sensitive, routed to pCPU `pcpu`,
/// enabled, and `handler` called when it fires (on that pCPU, with the interrupt acknowledged; it
/// must make the device drop the line). Registered handlers keep this layer free of calls up.
pub fn claim_device_irq(intid: u32, pcpu: usize, handler: fn()) -> Result<(), GicError> {
    claim_device_irq_trigger(intid, pcpu, false, handler)
}

/// [`claim_device_irq`] for an edge-triggered (`edge`) or level-sensitive interrupt. Up to eight
/// interrupts can be claimed; one more is refused.
pub fn claim_device_irq_trigger(intid: u32, pcpu: usize, edge: bool, handler: fn()) -> Result<(), GicError> {
    let Some(h) = HOST.get() else { return Ok(()) };
    let slot = DEVICE_NEXT.fetch_add(1, Ordering::AcqRel) as usize;
    if slot >= DEVICE_SLOTS {
        return Err(GicError::BadIntid { intid, expected: "one of at most 8 device interrupts el2visor handles itself" });
    }
    DEVICE_HANDLER[slot].call_once(|| handler);
    DEVICE_IRQ[slot].store(intid, Ordering::Release);
    let mpidr = percpu::mpidr_of(pcpu);
    h.set_trigger(intid, edge)?;
    h.route_spi(intid, mpidr)?;
    h.enable(intid, mpidr)
}

/// The handler of el2visor's own device interrupt `intid`, if it is one.
pub fn device_handler(intid: u32) -> Option<fn()> {
    let slot = DEVICE_IRQ.iter().position(|i| i.load(Ordering::Acquire) == intid)?;
    DEVICE_HANDLER[slot].get().copied()
}

/// Whether `intid` is the virtualization maintenance interrupt.
pub fn is_maintenance(intid: u32) -> bool {
    intid == MAINTENANCE.load(Ordering::Relaxed)
}

/// Whether `intid` is el2visor's own (the kick SGI, the maintenance interrupt, the EL2 timer's
/// PPI), never a guest's.
pub fn is_own(intid: u32) -> bool {
    intid == KICK_SGI || is_maintenance(intid) || intid == HYP_TIMER.load(Ordering::Relaxed)
}

/// Make pCPU `pcpu` take an interrupt (and leave its guest, if it runs one); without a GIC, wake
/// WFE waiters.
pub fn kick_pcpu(pcpu: usize) {
    if let Some(h) = HOST.get() {
        // What the target is kicked to see (a queued interrupt, a start request) must be visible
        // before the SGI arrives: the SGI register write is not ordered with earlier stores.
        crate::arch::sysreg::dsb_ish();
        // No logging here: kicks are sent from the fatal path too, which may hold the console.
        let _ = h.send_sgi(percpu::mpidr_of(pcpu), KICK_SGI);
    } else {
        // No GIC, so no kicks: a pCPU waits for an event instead ([`sleep`]). With one, only the
        // wait for the VMs to exist uses WFE, and `vcpu::run::announce_vms` sends its own SEV.
        cpu::send_event();
    }
}

/// Make the physical CPU interface look at its pending interrupts again (see
/// [`HostGic::refresh`]); called before every guest entry.
pub fn refresh() {
    if let Some(h) = HOST.get() {
        h.refresh();
    }
}

/// Whether guest WFIs must trap (see [`HostGic::needs_wfi_trap`]).
pub fn needs_wfi_trap() -> bool {
    HOST.get().is_some_and(|h| h.needs_wfi_trap())
}
