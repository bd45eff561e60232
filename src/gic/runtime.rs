//! The GIC at run time: the host GIC driver, the VM's virtual distributor, and one list-register
//! manager per pCPU (each pCPU runs one vCPU).
//!
//! - A physical interrupt taken while a guest runs is acknowledged and priority-dropped
//!   (EOImode 1); if it belongs to the VM it is queued for its vCPU with the HW bit, so the
//!   guest's EOI deactivates it; el2visor's own (the maintenance interrupt, the kick SGI) are
//!   deactivated here.
//! - The guest's accesses to the distributor (and GICv3 redistributors) trap at Stage 2 and are
//!   emulated by [`VDist`]; the actions it returns are applied to the physical GIC.
//! - Before the guest runs again, the vCPU's list registers are synced and refilled.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::boot::{CPU_MPIDRS, MAX_CPUS};
use crate::arch::cpu;
use crate::arch::exception::TrapFrame;
use crate::gic::host::HostGic;
use crate::gic::vgic::{HwIrq, VDist};
use crate::gic::vgic::lr::{Injected, LrManager, LrState};
use crate::gic::vgic::{VcpuPlacement, VgicAction, VgicConfig, Virq};
use crate::gic::{Acked, GicError, GicInfo, GicVersion, MAINTENANCE_INTID, PTIMER_INTID, VTIMER_INTID};
use crate::mm::addr::PaRange;
use crate::trap::esr::Esr;
use crate::trap::iss::SysRegAccess;
use crate::vm::instance::Vm;

/// The SGI el2visor sends to make another pCPU leave its guest and pick up new interrupts. One of
/// 0..7: secure firmware conventionally claims SGIs 8..15 (guests' SGIs are virtual and unaffected).
pub const KICK_SGI: u32 = 1;

/// The maintenance interrupt of the host GIC (from the DT; INTID 25 on QEMU virt and GIC-400).
static MAINTENANCE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(MAINTENANCE_INTID);

/// GICv3 redistributor frame set per vCPU (RD_base + SGI_base).
const REDIST_STRIDE: u64 = 0x2_0000;

/// The host GIC, once the boot CPU has initialised its distributor.
static HOST: spin::Once<HostGic> = spin::Once::new();

/// The VM's virtual GIC and where the guest sees it.
struct VGic {
    config: VgicConfig,
    dist: spin::Mutex<VDist>,
    dist_ipa: PaRange,
    redist_ipa: Option<PaRange>,
}

static VGIC: spin::Once<VGic> = spin::Once::new();

/// One list-register manager per pCPU.
static LRS: [spin::Mutex<Option<LrManager>>; MAX_CPUS] = [const { spin::Mutex::new(None) }; MAX_CPUS];
/// Interrupts for a pCPU's vCPU not yet handed to its list-register manager. Only the pCPU
/// itself touches its manager, right after reading back its list registers, so the manager's
/// view is never stale when an interrupt is added.
static INBOX: [spin::Mutex<Vec<Virq>>; MAX_CPUS] = [const { spin::Mutex::new(Vec::new()) }; MAX_CPUS];
/// Something was queued for this pCPU's vCPU since its list registers were last filled.
static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn mpidr_of(pcpu: usize) -> u64 {
    CPU_MPIDRS[pcpu].load(Ordering::Relaxed)
}

/// The host GIC, if there is one.
pub fn host() -> Option<&'static HostGic> {
    HOST.get()
}

/// Boot CPU: take over the distributor.
pub fn init_host(info: &GicInfo) -> Result<(), GicError> {
    // SAFETY: `info` comes from the host DT; its frames are identity mapped as Device at EL2 and
    // only el2visor drives them (the VM gets GICV and emulated GICD/GICR, never these).
    let gic = unsafe { HostGic::init_distributor(info) }?;
    MAINTENANCE.store(info.maintenance_intid, Ordering::Relaxed);
    HOST.call_once(|| gic);
    Ok(())
}

/// Every CPU (the boot CPU too): its CPU interface, virtual interface and list-register manager.
pub fn init_cpu() -> Result<(), GicError> {
    let Some(h) = HOST.get() else { return Ok(()) };
    h.init_cpu()?;
    h.enable(KICK_SGI, mpidr_of(cpu::current()))?;
    *LRS[cpu::current()].lock() = Some(LrManager::new(h.lr_format(), h.lr_count()));
    Ok(())
}

/// Build the VM's virtual GIC: the VM owns `spis` (its devices' interrupts) and the timer PPIs,
/// all backed by the physical ones. The guest sees the distributor at `dist_ipa` and (GICv3)
/// one redistributor frame set per vCPU from `redist_base`.
pub fn create_vgic(vm: &Vm, dist_ipa: PaRange, redist_base: Option<u64>, spis: Vec<u32>) -> Result<(), GicError> {
    let Some(h) = HOST.get() else { return Ok(()) };
    let config = VgicConfig {
        version: h.version(),
        vcpus: vm.vcpus.iter().map(|v| VcpuPlacement { mpidr: v.mpidr, pcpu: v.pcpu }).collect(),
        hw_ppis: alloc::vec![VTIMER_INTID, PTIMER_INTID],
        hw_spis: spis,
    };
    let dist = VDist::new(&config).map_err(|e| {
        log::error!("virtual GIC: {e}");
        GicError::BadIntid { intid: 0, expected: "a valid virtual GIC configuration" }
    })?;
    for a in dist.reset_actions().iter().filter(|a| !is_private(a)) {
        apply(h, a);
    }
    let redist_ipa = match (h.version(), redist_base) {
        (GicVersion::V3, Some(b)) => Some(PaRange::new(b, REDIST_STRIDE * vm.vcpus.len() as u64)),
        _ => None,
    };
    VGIC.call_once(|| VGic { config, dist: spin::Mutex::new(dist), dist_ipa, redist_ipa });
    Ok(())
}

/// VM reset, on the resetting pCPU once every vCPU has stopped: the distributor back to its
/// reset state, and every passthrough SPI inactive, disabled and routed as at creation.
pub fn reset_vgic() {
    let (Some(h), Some(vg)) = (HOST.get(), VGIC.get()) else { return };
    let fresh = match VDist::new(&vg.config) {
        Ok(d) => d,
        Err(e) => {
            log::error!("virtual GIC reset: {e}");
            return;
        }
    };
    let actions = fresh.reset_actions();
    *vg.dist.lock() = fresh;
    for &intid in &vg.config.hw_spis {
        let pcpu = vg.config.vcpus.first().map_or(0, |v| v.pcpu);
        apply(h, &VgicAction::ClearPhysActive { intid, pcpu });
    }
    for a in actions.iter().filter(|a| !is_private(a)) {
        apply(h, a);
    }
}

/// A vCPU of this pCPU stops for a VM reset: empty its list registers and inbox, deactivating
/// any physical interrupt a list register still held (it would otherwise stay active for ever),
/// and put its banked passthrough interrupts back to their reset state.
pub fn reset_local() {
    let pcpu = cpu::current();
    let Some(h) = HOST.get() else { return };
    INBOX[pcpu].lock().clear();
    PENDING[pcpu].store(false, Ordering::Release);
    let format = h.lr_format();
    for i in 0..h.lr_count() {
        let v = format.decode(h.read_lr(i));
        if let (Some(p), false) = (v.pintid, v.state == LrState::Invalid) {
            if let Some(a) = Acked::from_iar(p) {
                h.deactivate(a);
            }
        }
        h.write_lr(i, 0);
    }
    if let Some(m) = LRS[pcpu].lock().as_mut() {
        m.reset();
    }
    h.set_underflow(false);
    if let Some(vg) = VGIC.get() {
        for &intid in &vg.config.hw_ppis {
            if let Err(e) = h.clear_active(intid, mpidr_of(pcpu)) {
                log::warn!("virtual GIC reset: INTID {intid}: {e}");
            }
        }
    }
    prepare_vcpu(pcpu);
}

/// Make vCPU `vcpu` leave the guest (a VM reset or power-off needs it at EL2).
pub fn kick_vcpu(vcpu: usize) {
    kick(vcpu);
}

/// Actions on banked (SGI/PPI) interrupts must run on their own pCPU under GICv2.
fn is_private(a: &VgicAction) -> bool {
    matches!(a, VgicAction::DisablePhys { intid, .. } | VgicAction::EnablePhys { intid, .. } if *intid < 32)
}

/// On this pCPU, before its vCPU first runs: its share of the reset state.
pub fn prepare_vcpu(pcpu: usize) {
    let (Some(h), Some(vg)) = (HOST.get(), VGIC.get()) else { return };
    let actions = vg.dist.lock().reset_actions();
    for a in actions.iter().filter(|a| is_private(a)) {
        if matches!(a, VgicAction::DisablePhys { pcpu: p, .. } if *p == pcpu) {
            apply(h, a);
        }
    }
}

/// Apply one distributor action to the hardware, or queue what is for a vCPU.
fn apply(h: &HostGic, a: &VgicAction) {
    match h.apply(a, mpidr_of) {
        Ok(true) => {}
        Ok(false) => match *a {
            VgicAction::Inject { vcpu, virq } | VgicAction::InjectSgi { vcpu, virq, .. } => queue(vcpu, virq),
            VgicAction::Kick(vcpu) => kick(vcpu),
            VgicAction::Warn(w) => log::warn!("virtual GIC: {w}"),
            _ => {}
        },
        Err(e) => log::warn!("virtual GIC: {a:?} on the physical GIC failed: {e}"),
    }
}

/// Queue `virq` for vCPU `vcpu` (= its pCPU index) and make it notice.
fn queue(vcpu: usize, virq: Virq) {
    let pcpu = vcpu;
    log::trace!("queue INTID {} for vCPU {vcpu}", virq.intid);
    {
        // A vCPU that is off drains nothing: an interrupt already waiting is not queued again, so
        // a guest sending SGIs in a loop to a stopped vCPU cannot grow the inbox without bound.
        let mut inbox = INBOX[pcpu].lock();
        if !inbox.contains(&virq) {
            inbox.push(virq);
        }
    }
    PENDING[pcpu].store(true, Ordering::Release);
    if pcpu != cpu::current() {
        kick(vcpu);
    }
}

fn kick(vcpu: usize) {
    if let Some(h) = HOST.get() {
        // No logging here: kicks are sent from the fatal path too, which may hold the console.
        let _ = h.send_sgi(mpidr_of(vcpu), KICK_SGI);
    }
    cpu::send_event();
}

/// Physical IRQs arrived while `vcpu` ran (HCR_EL2.IMO routes them all to EL2).
pub fn on_irq(vm: &Vm, vcpu: usize) {
    let Some(h) = HOST.get() else { return };
    while let Some(a) = h.ack() {
        let intid = a.intid();
        h.eoi(a);
        log::trace!("irq {intid} on vCPU {vcpu}");
        if intid == KICK_SGI || intid == MAINTENANCE.load(Ordering::Relaxed) {
            h.deactivate(a);
            PENDING[cpu::current()].store(true, Ordering::Release);
            continue;
        }
        if !vm.is_running() {
            // A reset or the VM's end is under way: nothing is delivered to a guest that is going.
            h.deactivate(a);
            continue;
        }
        let verdict = match VGIC.get() {
            Some(vg) => vg.dist.lock().hw_irq(vcpu, intid),
            None => HwIrq::NotOwned,
        };
        match verdict {
            HwIrq::Deliver { vcpu: target, virq } => queue(target, virq),
            HwIrq::Held => {}
            HwIrq::NotOwned => {
                // Disabled, not just ignored: a stuck level-triggered line would storm otherwise.
                h.deactivate(a);
                let _ = h.disable(intid, mpidr_of(cpu::current()));
                log::warn!("VM {} vCPU {vcpu}: physical interrupt {intid} belongs to no VM; disabled", vm.name);
            }
        }
    }
}

/// Sync and refill this pCPU's list registers if anything changed: call before every guest entry.
pub fn before_entry() {
    let pcpu = cpu::current();
    if !PENDING[pcpu].swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(h) = HOST.get() else { return };
    let mut guard = LRS[pcpu].lock();
    let Some(m) = guard.as_mut() else { return };
    // Read back the list registers in use (a bit mask: this path runs on every interrupt and
    // should not allocate), then take the inbox in place, keeping its capacity. Lock order is
    // LRS then INBOX; queue() takes INBOX alone.
    let used = m.in_use().fold(0u64, |mask, i| mask | 1 << i);
    for i in (0..64).filter(|i| used & (1 << i) != 0) {
        m.sync_lr(i, h.read_lr(i));
    }
    for virq in INBOX[pcpu].lock().drain(..) {
        if m.inject(virq) == Injected::HwBusy {
            log::warn!("virtual GIC: INTID {} fired again while its list register holds it active", virq.intid);
        }
    }
    let (writes, more) = m.fill();
    for (i, v) in writes {
        h.write_lr(i, v);
    }
    h.set_underflow(more);
    if more {
        // The maintenance interrupt will come when list registers free up; look again then.
        PENDING[pcpu].store(true, Ordering::Release);
    }
}

fn sign_extend(v: u64, bytes: u8) -> u64 {
    let shift = 64 - 8 * bytes as u32;
    (((v << shift) as i64) >> shift) as u64
}

/// A Stage-2 data abort at `ipa`: emulate it if it is the VM's virtual GIC. `false` if not ours.
pub fn mmio(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr, ipa: u64) -> bool {
    let Some(vg) = VGIC.get() else { return false };
    let (in_dist, in_redist) = (vg.dist_ipa.contains(ipa), vg.redist_ipa.is_some_and(|r| r.contains(ipa)));
    if !in_dist && !in_redist {
        return false;
    }
    let Some(da) = esr.data_abort() else { return false };
    if !da.isv {
        log::warn!("VM {} vCPU {vcpu}: GIC access at {ipa:#x} by an instruction without syndrome (ISV=0)", vm.name);
        return false;
    }
    let size = 1u8 << da.sas;
    let h = HOST.get();
    let result = {
        let mut d = vg.dist.lock();
        let r = if da.wnr {
            let value = frame.reg(da.srt as usize) & if size == 8 { u64::MAX } else { (1u64 << (8 * size as u32)) - 1 };
            let acts = if in_dist {
                d.mmio_write(vcpu, ipa - vg.dist_ipa.start.raw(), size, value)
            } else {
                let off = ipa - vg.redist_ipa.map_or(0, |r| r.start.raw());
                d.redist_write(vcpu, (off / REDIST_STRIDE) as usize, off % REDIST_STRIDE, size, value)
            };
            acts.map(Some)
        } else {
            let v = if in_dist {
                d.mmio_read(vcpu, ipa - vg.dist_ipa.start.raw(), size)
            } else {
                let off = ipa - vg.redist_ipa.map_or(0, |r| r.start.raw());
                d.redist_read((off / REDIST_STRIDE) as usize, off % REDIST_STRIDE, size)
            };
            v.map(|v| {
                let v = if da.sse { sign_extend(v, size) } else { v };
                frame.set_reg(da.srt as usize, v);
                None
            })
        };
        if let Some(w) = d.take_warning() {
            log::debug!("VM {} vCPU {vcpu}: virtual GIC: {w}", vm.name);
        }
        r
    };
    match result {
        Ok(Some(actions)) => {
            if let Some(h) = h {
                for a in &actions {
                    apply(h, a);
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            static LIMIT: crate::trap::ratelimit::RateLimit = crate::trap::ratelimit::RateLimit::new();
            if LIMIT.allow().is_some() {
                log::warn!("VM {} vCPU {vcpu}: virtual GIC access at {ipa:#x}: {e}", vm.name);
            }
            return false;
        }
    }
    frame.elr += 4;
    true
}

/// A trapped GIC system register (ICC_SGI1R_EL1). `false` if not one.
pub fn sysreg(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, acc: &SysRegAccess) -> bool {
    const ICC_SGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 5);
    let r = &acc.reg;
    if (r.op0, r.op1, r.crn, r.crm, r.op2) != ICC_SGI1R_EL1 || acc.read {
        return false;
    }
    let (Some(h), Some(vg)) = (HOST.get(), VGIC.get()) else { return false };
    let actions = vg.dist.lock().sgi1r_write(vcpu, frame.reg(acc.rt as usize));
    match actions {
        Ok(actions) => {
            for a in &actions {
                apply(h, a);
            }
        }
        Err(e) => log::warn!("VM {} vCPU {vcpu}: ICC_SGI1R_EL1: {e}", vm.name),
    }
    true
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

/// A trapped guest WFI: sleep at EL2 until a physical interrupt is pending, unless this vCPU
/// already has a virtual interrupt pending in its list registers (the guest's WFI would not
/// sleep then either). IRQs stay masked at EL2; the pending interrupt is taken when the guest
/// resumes.
pub fn idle() {
    let Some(h) = HOST.get() else { return };
    before_entry();
    let format = h.lr_format();
    let pending = (0..h.lr_count()).any(|i| {
        matches!(format.decode(h.read_lr(i)).state, LrState::Pending | LrState::PendingActive)
    });
    if !pending {
        h.refresh();
        // SAFETY: WFI only waits.
        unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
    }
}
