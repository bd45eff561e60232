//! A VM's virtual GIC at run time: its distributor model ([`VDist`]) and where the guest sees it,
//! the actions the model asks for applied to the physical GIC or queued for vCPUs, and physical
//! interrupts routed to the vCPU they belong to.
//!
//! - A physical interrupt taken while a guest runs is acknowledged and priority-dropped
//!   (EOImode 1); if it belongs to the VM it is queued for its vCPU with the HW bit, so the
//!   guest's EOI deactivates it; el2visor's own (the maintenance interrupt, the kick SGI) are
//!   deactivated here.
//! - The guest's accesses to the distributor (and GICv3 redistributors) trap at Stage 2; the VM
//!   registers them as emulated MMIO regions that call [`VGic::dist_read`] and its siblings.
//! - Before the guest runs again, the vCPU's list registers are synced and refilled
//!   ([`super::lrs::before_entry`]).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::cpu;
use crate::gic::host::HostGic;
use crate::gic::hw::{host, kick_pcpu};
use crate::gic::its::frame::BadAccess;
use crate::gic::lrs::{self, VcpuIrq};
use crate::gic::vits::VIts;
use crate::gic::vgic::sgi::SgiSends;
use crate::gic::vgic::{lockless, redist_frame, HwIrq, LiveState, VDist, VcpuPlacement, VgicAction, VgicConfig, VgicError, REDIST_FRAME_SIZE};
use crate::gic::{GicError, GicVersion, PTIMER_INTID, VTIMER_INTID};
use crate::mm::addr::PaRange;
use crate::percpu;

mod irq;
mod off;

pub use irq::{on_irq, on_irq_fast, FastIrq};

/// One VM's virtual GIC and where its guest sees it.
pub struct VGic {
    config: VgicConfig,
    /// Purely virtual SPIs that emulated devices drive (`set_line`).
    emulated: Vec<u32>,
    dist: spin::Mutex<VDist>,
    /// A copy of the distributor words a guest reads without the lock (`vgic::lockless`):
    /// written under the lock whenever they may change ([`Self::publish`]), read without it.
    lockless: [AtomicU32; 4],
    /// The distributor's guest-physical range.
    pub dist_ipa: PaRange,
    /// GICv3: the redistributors, one frame set per vCPU.
    pub redist_ipa: Option<PaRange>,
    /// GICv3: the distance between two vCPUs' redistributors, as the guest's DT says
    /// (`redistributor-stride`; RD_base + SGI_base when it says nothing). Offsets past the two
    /// frames read as zero.
    redist_stride: u64,
    /// The VM's virtual ITS, when it has one.
    its: spin::Once<VIts>,
}

/// Why an emulated GIC access failed (the guest gets an abort).
pub type AccessError = VgicError;

impl VGic {
    /// Build a VM's virtual GIC: the VM owns `spis` (its devices' interrupts) and the timer PPIs,
    /// all backed by the physical ones. `vcpus` are the VM's vCPU MPIDRs and pCPUs. The guest sees
    /// the distributor at `dist_ipa` and (GICv3) one redistributor per vCPU from `redist`'s base,
    /// `redist`'s stride apart (RD_base + SGI_base, or more with padding frames). `emulated` are
    /// the SPIs of el2visor's own device models for the VM (purely virtual). `None` without a
    /// host GIC.
    pub fn new(
        vcpus: Vec<VcpuPlacement>,
        dist_ipa: PaRange,
        redist: Option<(u64, u64)>,
        spis: Vec<u32>,
        emulated: Vec<u32>,
    ) -> Result<Option<VGic>, GicError> {
        let Some(h) = host() else { return Ok(None) };
        let n = vcpus.len() as u64;
        let config = VgicConfig { version: h.version(), vcpus, hw_ppis: alloc::vec![VTIMER_INTID, PTIMER_INTID], hw_spis: spis };
        let mut dist = VDist::new(&config).map_err(|e| {
            log::error!("virtual GIC: {e}");
            GicError::BadIntid { intid: 0, expected: "a valid virtual GIC configuration" }
        })?;
        for &intid in &emulated {
            dist.ensure_spi(intid);
        }
        for a in dist.reset_actions().iter().filter(|a| !is_private(a)) {
            apply_hw(h, a);
        }
        let lockless = dist.lockless_words().map(AtomicU32::new);
        let redist_stride = redist.map_or(REDIST_FRAME_SIZE, |r| r.1).max(REDIST_FRAME_SIZE);
        let redist_ipa = match (h.version(), redist) {
            (GicVersion::V3, Some((b, _))) => Some(PaRange::new(b, redist_stride * n)),
            _ => None,
        };
        Ok(Some(VGic {
            config,
            emulated,
            dist: spin::Mutex::new(dist),
            lockless,
            dist_ipa,
            redist_ipa,
            redist_stride,
            its: spin::Once::new(),
        }))
    }

    /// Give the VM a virtual ITS: its redistributors get LPIs.
    pub fn attach_its(&self, its: VIts) {
        {
            let mut d = self.dist.lock();
            d.enable_lpis(its.lpi_bits);
            self.publish(&d);
        }
        self.its.call_once(|| its);
    }

    /// The VM's virtual ITS.
    pub fn its(&self) -> Option<&VIts> {
        self.its.get()
    }

    /// A guest read of the virtual ITS's control frame.
    pub fn its_read(&self, vcpus: &[VcpuIrq], vm: &str, offset: u64, size: u8) -> Result<u64, BadAccess> {
        self.its.get().map_or(Ok(0), |i| i.read_after_run(&self.dist, vcpus, vm, offset, size))
    }

    /// A guest write of the virtual ITS's control frame.
    pub fn its_write(&self, vcpus: &[VcpuIrq], vm: &str, offset: u64, size: u8, value: u64) -> Result<(), BadAccess> {
        match self.its.get() {
            Some(i) => i.write(&self.dist, vcpus, vm, offset, size, value),
            None => Ok(()),
        }
    }

    /// The VM resets, on the resetting pCPU once every vCPU has stopped: the distributor back to
    /// its reset state, and every passthrough SPI inactive, disabled and routed as at creation.
    pub fn reset(&self, vcpus: &[VcpuIrq]) {
        let Some(h) = host() else { return };
        let fresh = match VDist::new(&self.config) {
            Ok(mut d) => {
                for &intid in &self.emulated {
                    d.ensure_spi(intid);
                }
                d
            }
            Err(e) => {
                log::error!("virtual GIC reset: {e}");
                return;
            }
        };
        let mut fresh = fresh;
        if let Some(i) = self.its.get() {
            i.reset("(reset)");
            fresh.enable_lpis(i.lpi_bits);
        }
        let actions = fresh.reset_actions();
        {
            let mut d = self.dist.lock();
            lrs::forget_vtimer(vcpus);
            // A vCPU that is off holds the old state's interrupts until it starts again.
            lrs::mark_stale(vcpus);
            *d = fresh;
            self.publish(&d);
        }
        let pcpu = self.config.vcpus.first().map_or(0, |v| v.pcpu);
        for &intid in &self.config.hw_spis {
            apply(h, vcpus, &VgicAction::ClearPhysActive { intid, pcpu });
        }
        for a in actions.iter().filter(|a| !is_private(a)) {
            apply(h, vcpus, a);
        }
    }

    /// A vCPU of this pCPU stops for a VM reset: empty its list registers and inbox, and put its
    /// banked passthrough interrupts back to their reset state.
    pub fn reset_local(&self, me: &VcpuIrq) {
        let Some(h) = host() else { return };
        lrs::clear(me);
        for &intid in &self.config.hw_ppis {
            if let Err(e) = h.clear_active(intid, percpu::mpidr_of(me.pcpu)) {
                log::warn!("virtual GIC reset: INTID {intid}: {e}");
            }
        }
        self.prepare_vcpu(me.pcpu);
    }

    /// A snapshot: a copy of the distributor's state.
    pub fn save(&self) -> VDist {
        self.dist.lock().clone()
    }

    /// Restore a saved distributor state (every vCPU stopped): the model, and the physical GIC's
    /// passthrough SPIs to match (inactive, then priority, trigger, routing, enable). Each vCPU's
    /// private interrupts follow on its own pCPU ([`Self::restore_local`]).
    pub fn restore(&self, vcpus: &[VcpuIrq], saved: &VDist) {
        let Some(h) = host() else { return };
        let pcpu = self.config.vcpus.first().map_or(0, |v| v.pcpu);
        for &intid in &self.config.hw_spis {
            apply(h, vcpus, &VgicAction::ClearPhysActive { intid, pcpu });
        }
        let actions = {
            let mut d = self.dist.lock();
            lrs::forget_vtimer(vcpus);
            // A vCPU that is off holds the old state's interrupts until it starts again.
            lrs::mark_stale(vcpus);
            *d = saved.clone();
            self.publish(&d);
            d.state_actions()
        };
        for a in actions.iter().filter(|a| !is_private_state(a)) {
            apply(h, vcpus, a);
        }
    }

    /// On pCPU `pcpu`, before its vCPU resumes from a snapshot: its banked passthrough
    /// interrupts as the restored distributor has them.
    pub fn restore_local(&self, pcpu: usize) {
        let Some(h) = host() else { return };
        let actions = self.dist.lock().state_actions();
        for a in actions.iter().filter(|a| is_private_state(a)) {
            if matches!(a, VgicAction::DisablePhys { pcpu: p, .. } | VgicAction::EnablePhys { pcpu: p, .. } | VgicAction::SetPhysPriority { pcpu: p, .. } if *p == pcpu) {
                apply_hw(h, a);
            }
        }
    }

    /// On pCPU `pcpu`, before its vCPU first runs: its share of the reset state (banked
    /// interrupts can only be changed from their own CPU under GICv2).
    pub fn prepare_vcpu(&self, pcpu: usize) {
        let Some(h) = host() else { return };
        let actions = self.dist.lock().reset_actions();
        for a in actions.iter().filter(|a| is_private(a)) {
            if matches!(a, VgicAction::DisablePhys { pcpu: p, .. } | VgicAction::RouteSpi { pcpu: p, .. } if *p == pcpu) {
                apply_hw(h, a);
            }
        }
    }

    /// Where physical interrupt `intid`, taken on vCPU `here` of `vcpus`, goes. The virtual
    /// timer's delivery to its own vCPU is remembered there ([`VcpuIrq::remember_vtimer`]) for
    /// the next tick, which then needs no distributor lock.
    pub fn hw_irq(&self, vcpus: &[VcpuIrq], here: usize, intid: u32) -> HwIrq {
        let mut d = self.dist.lock();
        let r = d.hw_irq(here, intid);
        if let (HwIrq::Deliver { vcpu, virq }, Some(v)) = (&r, vcpus.get(here)) {
            if *vcpu == here {
                v.remember_vtimer(virq);
            }
        }
        r
    }

    /// The live state the pending and active registers show, read for vCPU `vcpu`'s access.
    fn live<'a>(&'a self, h: &'a HostGic, vcpus: &'a [VcpuIrq]) -> Live<'a> {
        Live { h, vcpus, placements: &self.config.vcpus }
    }

    /// Refresh the lock-free copy of the distributor's identification and control words from
    /// `d` (the locked distributor): after every change that may alter them.
    fn publish(&self, d: &VDist) {
        for (slot, w) in self.lockless.iter().zip(d.lockless_words()) {
            slot.store(w, Ordering::Release);
        }
    }

    /// A guest read of the distributor at `offset` by vCPU `vcpu` of `vcpus`. The identification
    /// and control words are answered from their lock-free copy (`vgic::lockless`), the rest by
    /// the model under the lock.
    #[inline(always)]
    pub fn dist_read(&self, vcpus: &[VcpuIrq], vcpu: usize, offset: u64, size: u8) -> Result<u64, AccessError> {
        match lockless::read(self.config.version, offset, size, |i| self.lockless[i].load(Ordering::Acquire)) {
            Some(v) => Ok(v),
            None => self.dist_read_locked(vcpus, vcpu, offset, size),
        }
    }

    /// [`Self::dist_read`] of a register with per-interrupt state: the model under the lock.
    #[inline(never)]
    fn dist_read_locked(&self, vcpus: &[VcpuIrq], vcpu: usize, offset: u64, size: u8) -> Result<u64, AccessError> {
        let Some(h) = host() else { return Ok(0) };
        let mut d = self.dist.lock();
        let r = d.mmio_read_live(vcpu, offset, size, &self.live(h, vcpus));
        note_warning(&mut d, vcpu);
        r
    }

    /// A guest write of the distributor at `offset`.
    pub fn dist_write(&self, vcpus: &[VcpuIrq], vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), AccessError> {
        if offset == 0xf00 && size == 4 && self.sgir_write(vcpus, vcpu, value as u32).is_some() {
            return Ok(());
        }
        let actions = {
            let mut d = self.dist.lock();
            lrs::forget_vtimer(vcpus);
            let r = d.mmio_write(vcpu, offset, size, value);
            if offset < 0x10 {
                self.publish(&d);
            }
            note_warning(&mut d, vcpu);
            retract_all(&mut d, vcpus);
            r?
        };
        apply_all(vcpus, &actions);
        Ok(())
    }

    /// A guest's GICD_SGIR write (a GICv2 IPI, the 32-bit store at 0xf00) from vCPU `vcpu`: the
    /// targets under the lock, without allocating, delivered after. `None` (nothing done) on a
    /// GICv3 distributor, where the offset is no register, and for a vCPU the model does not
    /// have; else whether the write concerns the sender itself ([`SgiSends::concerns`]: an SGI
    /// to itself, or anything unusual), so that its list registers need a look before it
    /// resumes.
    #[inline(never)]
    pub fn sgir_write(&self, vcpus: &[VcpuIrq], vcpu: usize, value: u32) -> Option<bool> {
        let mut sends = SgiSends::new();
        if !self.dist.lock().sgir_store(vcpu, 0xf00, 4, value as u64, &mut sends) {
            return None;
        }
        deliver(vcpus, &sends);
        let concerns_me = sends.concerns(vcpu);
        sends.finish();
        Some(concerns_me)
    }

    /// Which redistributor `offset` (from their base) is in, and the offset within its frames;
    /// `None` past the frames (the padding of a larger stride, which reads as zero).
    fn redist_at(&self, offset: u64) -> (usize, Option<u64>) {
        redist_frame(offset, self.redist_stride)
    }

    /// A guest read of the redistributors at `offset` from their base.
    pub fn redist_read(&self, vcpus: &[VcpuIrq], vcpu: usize, offset: u64, size: u8) -> Result<u64, AccessError> {
        let Some(h) = host() else { return Ok(0) };
        let (index, Some(within)) = self.redist_at(offset) else {
            log::debug!("vCPU {vcpu}: virtual GIC: read of redistributor padding at {offset:#x} (zero)");
            return Ok(0);
        };
        let mut d = self.dist.lock();
        let r = d.redist_read_live(index, within, size, &self.live(h, vcpus));
        note_warning(&mut d, vcpu);
        r
    }

    /// A guest write of the redistributors at `offset` from their base.
    pub fn redist_write(&self, vcpus: &[VcpuIrq], vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), AccessError> {
        let (index, Some(within)) = self.redist_at(offset) else {
            log::debug!("vCPU {vcpu}: virtual GIC: write of redistributor padding at {offset:#x} (ignored)");
            return Ok(());
        };
        let actions = {
            let mut d = self.dist.lock();
            lrs::forget_vtimer(vcpus);
            let r = d.redist_write(vcpu, index, within, size, value);
            note_warning(&mut d, vcpu);
            retract_all(&mut d, vcpus);
            r?
        };
        apply_all(vcpus, &actions);
        if within == 0 {
            // GICR_CTLR: EnableLPIs may have let held LPIs through.
            if let Some(i) = self.its.get() {
                i.reload_pending(&self.dist, vcpus);
            }
        }
        Ok(())
    }

    /// An emulated device of the VM drives its interrupt line `intid` to `high`; `writer` is the
    /// vCPU on whose behalf (this pCPU's), or any other index when none is.
    pub fn set_line(&self, vcpus: &[VcpuIrq], writer: usize, intid: u32, high: bool) {
        let actions = {
            let mut d = self.dist.lock();
            let a = d.set_line(intid, high, writer);
            // A line that fell: its pending copy comes back from the vCPU that holds it.
            retract_all(&mut d, vcpus);
            a
        };
        apply_all(vcpus, &actions);
    }

    /// A guest write of ICC_SGI1R_EL1, or (`group0_only`) of ICC_SGI0R_EL1 or ICC_ASGI1R_EL1.
    pub fn sgi1r_write(&self, vcpus: &[VcpuIrq], vcpu: usize, value: u64, group0_only: bool) -> Result<(), AccessError> {
        let mut sends = SgiSends::new();
        match group0_only {
            false => self.dist.lock().sgi1r_send_into(vcpu, value, &mut sends)?,
            true => self.dist.lock().sgi0r_send_into(vcpu, value, &mut sends)?,
        }
        deliver(vcpus, &sends);
        sends.finish();
        Ok(())
    }
}

/// The interrupts the guest's last write cleared the pending or active state of, taken back
/// from the vCPUs that hold them (under the distributor lock, so that nothing the distributor
/// hands out later is taken back with them).
fn retract_all(d: &mut VDist, vcpus: &[VcpuIrq]) {
    for r in d.take_retractions() {
        lrs::retract(vcpus, r);
    }
}

/// The runtime's side of a pending or active register read.
struct Live<'a> {
    h: &'a HostGic,
    vcpus: &'a [VcpuIrq],
    placements: &'a [VcpuPlacement],
}

impl LiveState for Live<'_> {
    fn phys_pending(&self, vcpu: usize, intid: u32) -> bool {
        let pcpu = self.placements.get(vcpu).map_or(cpu::current(), |p| p.pcpu);
        self.h.is_pending(intid, percpu::mpidr_of(pcpu)).unwrap_or(false)
    }

    fn held(&self, vcpu: usize, intid: u32) -> (bool, bool) {
        self.vcpus.get(vcpu).map_or((false, false), |v| lrs::held(v, intid))
    }

    fn sgi_sources(&self, vcpu: usize, intid: u32) -> u8 {
        self.vcpus.get(vcpu).map_or(0, |v| lrs::held_sgi_sources(v, intid))
    }
}

fn note_warning(d: &mut VDist, vcpu: usize) {
    if let Some(w) = d.take_warning() {
        log::debug!("vCPU {vcpu}: virtual GIC: {w}");
    }
}

/// Actions that must run on their own pCPU: banked (SGI/PPI) interrupts under GICv2, and routing
/// an SPI to a pCPU (GICv2's ITARGETSR names the CPU interface, which a CPU learns only when it
/// initialises its own).
fn is_private(a: &VgicAction) -> bool {
    matches!(a, VgicAction::DisablePhys { intid, .. } | VgicAction::EnablePhys { intid, .. } if *intid < 32)
        || matches!(a, VgicAction::RouteSpi { .. })
}

/// A state action for a banked interrupt (only its own pCPU may apply it under GICv2).
fn is_private_state(a: &VgicAction) -> bool {
    matches!(a, VgicAction::DisablePhys { intid, .. } | VgicAction::EnablePhys { intid, .. } | VgicAction::SetPhysPriority { intid, .. } if *intid < 32)
}

/// Carry out an SGI write: each delivery straight to its vCPU's queue (`lrs::queue`, which also
/// wakes a vCPU on another pCPU), then whatever else it asked for.
fn deliver(vcpus: &[VcpuIrq], sends: &SgiSends) {
    for (vcpu, virq) in sends.deliveries() {
        lrs::queue(vcpus, vcpu, virq);
    }
    if !sends.other().is_empty() {
        apply_all(vcpus, sends.other());
    }
}

fn apply_all(vcpus: &[VcpuIrq], actions: &[VgicAction]) {
    if let Some(h) = host() {
        for (k, a) in actions.iter().enumerate() {
            // `lrs::queue` kicks the vCPU it queues for already (the distributor pairs a Kick
            // with each interrupt it hands another vCPU): a second kick SGI is a second physical
            // SGI to send, and possibly a second exit of the target.
            if let VgicAction::Kick(v) = *a {
                let queued = actions[..k].iter().any(|b| matches!(*b, VgicAction::Inject { vcpu, .. } | VgicAction::InjectSgi { vcpu, .. } if vcpu == v));
                if queued {
                    continue;
                }
            }
            apply(h, vcpus, a);
        }
    }
}

/// Apply one action to the physical GIC; `false` if it is not a hardware action.
fn apply_hw(h: &HostGic, a: &VgicAction) -> bool {
    match h.apply(a, percpu::mpidr_of) {
        Ok(done) => done,
        Err(e) => {
            log::warn!("virtual GIC: {a:?} on the physical GIC failed: {e}");
            true
        }
    }
}

/// Apply one distributor action to the hardware, or queue what is for a vCPU.
fn apply(h: &HostGic, vcpus: &[VcpuIrq], a: &VgicAction) {
    if apply_hw(h, a) {
        return;
    }
    match *a {
        VgicAction::Inject { vcpu, virq } | VgicAction::InjectSgi { vcpu, virq, .. } => lrs::queue(vcpus, vcpu, virq),
        VgicAction::Kick(vcpu) => {
            if let Some(v) = vcpus.get(vcpu) {
                kick_pcpu(v.pcpu);
            }
        }
        // A guest writes reserved and read-only registers at will: like the read warnings
        // (`note_warning`) these are debug lines, so that no guest can flood the console.
        VgicAction::Warn(w) => log::debug!("virtual GIC: {w}"),
        _ => {}
    }
}
