//! One VM's virtual ITS at run time: the guest's control frame and command queue
//! (`its::frame`), its tables (`its::model`), the physical LPIs its events were given and the
//! virtual LPIs they stand for, and the pending LPIs a disabled configuration holds back. Guest
//! commands become physical ITS commands (`its_hw`); a physical LPI that arrives on a pCPU becomes
//! the virtual LPI it stands for, delivered through a (non-HW) list register when the guest's
//! property table has it enabled.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::its::frame::{BadAccess, GuestMem, ItsFrame, Outcome};
use super::its::lpi::{LpiConfig, LpiPending, PropBase};
use super::its::model::{Effect, ItsModel, ItsPolicy, Ite};
use super::its_hw::PhysIts;
use super::lrs::{self, VcpuIrq};
use super::vgic::{Retraction, VDist, Virq};

/// A VM's virtual ITS.
pub struct VIts {
    phys: &'static PhysIts,
    state: Mutex<(ItsFrame, ItsModel)>,
    /// Held by the one vCPU running the command queue, from taking a command to committing it
    /// (`run_queue`): commands take effect in queue order, whichever vCPUs write CWRITER.
    runner: Mutex<()>,
    /// A run stopped at [`MAX_PER_RUN`] with commands left: the next access runs on.
    more: AtomicBool,
    /// Physical LPI → (vCPU, virtual LPI).
    routes: Mutex<BTreeMap<u32, (usize, u32)>>,
    pending: Mutex<LpiPending>,
    mem: Box<dyn GuestMem + Send + Sync>,
    /// pCPU of each vCPU.
    pcpus: Vec<usize>,
    /// One past the VM's largest LPI.
    lpi_end: u32,
    /// The VM's INTID bits (its vGIC's GICD_TYPER.IDbits + 1).
    pub lpi_bits: u8,
    /// Command errors logged so far (the log stops after a few).
    logged: Mutex<u32>,
}

/// A virtual ITS as a snapshot holds it ([`VIts::save`], [`VIts::restore`]).
#[derive(Clone, Debug)]
pub struct ItsSaved {
    frame: ItsFrame,
    model: ItsModel,
    /// Physical LPI → (vCPU, virtual LPI) then: the vCPU each event went to.
    routes: BTreeMap<u32, (usize, u32)>,
    pending: LpiPending,
}

/// Commands one access runs at most (one pass round the largest queue, 1 MiB of 32-byte
/// commands), so that a vCPU is not held at EL2 while other vCPUs keep writing CWRITER.
const MAX_PER_RUN: usize = 32 * 1024;

/// Log at most this many command errors per VM.
const MAX_LOGGED: u32 = 16;

impl VIts {
    pub fn new(phys: &'static PhysIts, policy: ItsPolicy, device_bits: u8, mem: Box<dyn GuestMem + Send + Sync>, pcpus: Vec<usize>) -> Self {
        let frame = ItsFrame::new(policy.event_bits, device_bits, policy.collections);
        let lpi_end = policy.lpi_end;
        let lpi_bits = lpi_end.trailing_zeros() as u8;
        Self {
            phys,
            state: Mutex::new((frame, ItsModel::new(policy))),
            runner: Mutex::new(()),
            more: AtomicBool::new(false),
            routes: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(LpiPending::default()),
            mem,
            pcpus,
            lpi_end,
            lpi_bits,
            logged: Mutex::new(0),
        }
    }

    /// The VM resets: every mapping goes from the physical ITS, the frame and the pending LPIs
    /// back to their reset state.
    pub fn reset(&self, vm: &str) {
        let _runner = self.runner.lock();
        let effects = {
            let mut st = self.state.lock();
            st.0.reset();
            let mut pool = self.phys.pool.lock();
            st.1.reset(&mut *pool)
        };
        for e in &effects {
            self.apply_phys(vm, " reset", e);
        }
        self.routes.lock().clear();
        self.pending.lock().reset();
    }

    /// A snapshot (every vCPU paused): the control frame and its queue position, the tables,
    /// the vCPU each event's LPI goes to and the LPIs held back.
    pub fn save(&self) -> ItsSaved {
        let _runner = self.runner.lock();
        let st = self.state.lock();
        ItsSaved { frame: st.0.clone(), model: st.1.clone(), routes: self.routes.lock().clone(), pending: self.pending.lock().clone() }
    }

    /// Restore a snapshot (every vCPU paused; they resume with their saved list registers, which
    /// hold the LPIs they had then): the mappings made since are undone on the physical ITS and
    /// the snapshot's made again, each event with a new physical LPI (the old ones may belong to
    /// other events or VMs by now); the frame, its queue position and the held LPIs are the
    /// snapshot's. A bounded run that had commands left goes on at the next access, as then.
    pub fn restore(&self, vm: &str, saved: &ItsSaved) {
        let _runner = self.runner.lock();
        let (effects, dropped) = {
            let mut st = self.state.lock();
            st.0.clone_from(&saved.frame);
            let mut pool = self.phys.pool.lock();
            let vcpu_of = |i: &Ite| saved.routes.get(&i.plpi).map(|r| r.0).or_else(|| saved.model.collection(i.icid)).unwrap_or(0);
            st.1.restore_from(&saved.model, &mut *pool, &vcpu_of)
        };
        // An LPI of a mapping being undone that arrives now finds no route and is dropped; a
        // restored event's route is in place before its physical MAPTI.
        self.routes.lock().clear();
        for e in &effects {
            if let Effect::MapEvent { plpi, vcpu, vlpi, .. } = *e {
                self.routes.lock().insert(plpi, (vcpu, vlpi));
            }
            self.apply_phys(vm, " restore", e);
        }
        self.pending.lock().clone_from(&saved.pending);
        self.more.store(self.state.lock().0.has_work(), Ordering::Release);
        if dropped > 0 {
            log::error!("VM {vm}: virtual ITS restore: {dropped} event(s) got no physical LPI (the host's are all in use) and stay unmapped");
        }
    }

    pub fn read(&self, offset: u64, size: u8) -> Result<u64, BadAccess> {
        self.state.lock().0.read(offset, size)
    }

    /// A guest read of the control frame, after any commands a bounded run left.
    pub fn read_after_run(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vm: &str, offset: u64, size: u8) -> Result<u64, BadAccess> {
        if self.more.load(Ordering::Acquire) {
            self.run_queue(dist, vcpus, vm);
        }
        self.read(offset, size)
    }

    /// A guest write of the control frame; commands it makes readable run at once.
    pub fn write(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vm: &str, offset: u64, size: u8, value: u64) -> Result<(), BadAccess> {
        if self.state.lock().0.write(offset, size, value)? || self.more.load(Ordering::Acquire) {
            self.run_queue(dist, vcpus, vm);
        }
        Ok(())
    }

    /// Run the guest's command queue up to CWRITER, one command at a time: take it, carry out its
    /// effects, then let CREADR pass it. Memory stays bounded by one command's effects however
    /// long the queue (up to 32 768 commands), and commands take effect in queue order. When
    /// another vCPU is running the queue this returns at once: the runner reads CWRITER again
    /// after each command, and looks once more after letting go, so a command made readable
    /// meanwhile is not left behind.
    fn run_queue(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vm: &str) {
        self.more.store(false, Ordering::Relaxed);
        let mut done = 0;
        loop {
            let Some(runner) = self.runner.try_lock() else { return };
            loop {
                if done == MAX_PER_RUN {
                    // Other vCPUs kept the queue full: this one goes back to its guest, and the
                    // next access to the control frame (a guest polling CREADR) goes on.
                    self.more.store(true, Ordering::Release);
                    return;
                }
                done += 1;
                let next = {
                    let mut st = self.state.lock();
                    let (frame, model) = &mut *st;
                    let mut pool = self.phys.pool.lock();
                    frame.next(model, &*self.mem, &mut *pool)
                };
                let Some((outcome, commit)) = next else { break };
                match outcome {
                    Outcome::Done(_, effects) => {
                        for e in &effects {
                            self.carry_out(dist, vcpus, vm, e);
                        }
                    }
                    Outcome::Error { offset, error } => self.log(vm, alloc::format!("command at queue offset {offset:#x}: {error} (skipped)")),
                    Outcome::Stalled { offset, ipa } => self.log(
                        vm,
                        alloc::format!("command queue stalled: offset {offset:#x} (IPA {ipa:#x}) is not readable guest RAM or past the queue"),
                    ),
                }
                self.state.lock().0.commit(commit);
            }
            drop(runner);
            if !self.state.lock().0.has_work() {
                return;
            }
        }
    }

    fn log(&self, vm: &str, what: alloc::string::String) {
        let mut n = self.logged.lock();
        if *n < MAX_LOGGED {
            log::warn!("VM {vm}: virtual ITS: {what}");
        } else if *n == MAX_LOGGED {
            log::warn!("VM {vm}: virtual ITS: more command errors, no longer logged");
        }
        *n += 1;
    }

    /// The physical part of effect `e` (a vCPU's events on its pCPU's collection); an error is
    /// logged, naming `what` the effect was part of.
    fn apply_phys(&self, vm: &str, what: &str, e: &Effect) {
        let pcpus = &self.pcpus;
        if let Err(err) = self.phys.apply(e, &|v| pcpus.get(v).copied().unwrap_or(0)) {
            log::error!("VM {vm}: physical ITS{what} for {e:?}: {err}");
        }
    }

    fn carry_out(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vm: &str, e: &Effect) {
        self.apply_phys(vm, "", e);
        match e {
            Effect::MapEvent { plpi, vcpu, vlpi, .. } => {
                self.routes.lock().insert(*plpi, (*vcpu, *vlpi));
            }
            Effect::UnmapEvent { plpi, vlpi, .. } => {
                let route = self.routes.lock().remove(plpi);
                self.pending.lock().clear(*vlpi);
                // Its pending state goes with the mapping (an LPI has no active state): a copy
                // still queued would be delivered for an event that no longer exists, and a guest
                // remapping events in a loop would grow the queues. From every vCPU: a MOVI may
                // have left one on the vCPU the event went to before, and an arrival on another
                // pCPU may have read the route just before it went.
                if route.is_some() {
                    Self::withdraw(vcpus, *vlpi);
                }
            }
            Effect::MoveEvent { plpi, vcpu, .. } => {
                if let Some(r) = self.routes.lock().get_mut(plpi) {
                    r.0 = *vcpu;
                }
            }
            Effect::SetPending { vcpu, vlpi } => self.fire(dist, vcpus, *vcpu, *vlpi),
            Effect::ClearPending { vlpi, .. } => {
                self.pending.lock().clear(*vlpi);
                // A copy already handed to a vCPU goes too: CLEAR removes the pending state
                // wherever it is.
                Self::withdraw(vcpus, *vlpi);
            }
            Effect::Reload { vcpu, vlpi } => self.reload(dist, vcpus, *vcpu, *vlpi),
            Effect::ReloadAll { vcpu, vlpis } => {
                for &v in vlpis {
                    self.reload(dist, vcpus, *vcpu, v);
                }
            }
            Effect::MapDevice { .. } | Effect::UnmapDevice { .. } => {}
        }
    }

    /// Take `vlpi`'s pending copies back from every vCPU's queue and list registers (an LPI has
    /// no active state to keep).
    fn withdraw(vcpus: &[VcpuIrq], vlpi: u32) {
        for vcpu in 0..vcpus.len() {
            lrs::retract(vcpus, Retraction { vcpu, intid: vlpi, source: None, pending: true, active: false, hold: None });
        }
    }

    /// The guest's configuration byte of `vlpi`, from the property table of `vcpu`'s
    /// redistributor (`None` when LPIs are off there or the byte is outside the VM's RAM).
    fn config(&self, dist: &Mutex<VDist>, vcpu: usize, vlpi: u32) -> Option<LpiConfig> {
        let prop = dist.lock().redist(vcpu)?.lpi_propbaser()?;
        let at = PropBase::decode(prop).config_addr(vlpi, self.lpi_end)?;
        let mut b = [0u8; 1];
        self.mem.read(at, &mut b).ok()?;
        Some(LpiConfig(b[0]))
    }

    fn deliver(vcpus: &[VcpuIrq], vcpu: usize, vlpi: u32, cfg: LpiConfig) {
        let virq = Virq { intid: vlpi, pintid: None, priority: cfg.priority(), group1: true, source: 0, level: false };
        lrs::queue(vcpus, vcpu, virq);
    }

    fn fire(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vcpu: usize, vlpi: u32) {
        let cfg = self.config(dist, vcpu, vlpi);
        if self.pending.lock().fire(vlpi, cfg) {
            if let Some(c) = cfg {
                Self::deliver(vcpus, vcpu, vlpi, c);
            }
        }
    }

    fn reload(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], vcpu: usize, vlpi: u32) {
        let cfg = self.config(dist, vcpu, vlpi);
        if self.pending.lock().reload(vlpi, cfg) {
            if let Some(c) = cfg {
                Self::deliver(vcpus, vcpu, vlpi, c);
            }
        }
    }

    /// Physical LPI `plpi` arrived (acknowledged and priority-dropped): deliver its virtual LPI.
    /// Returns whether `plpi` is one of this VM's.
    pub fn on_lpi(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq], plpi: u32) -> bool {
        let Some((vcpu, vlpi)) = self.routes.lock().get(&plpi).copied() else { return false };
        self.fire(dist, vcpus, vcpu, vlpi);
        true
    }

    /// The vCPU each mapped virtual LPI goes to now (MAPTI, MOVI), as `(vLPI, vCPU)`.
    pub fn vlpi_targets(&self) -> Vec<(u32, usize)> {
        self.routes.lock().values().map(|&(vcpu, vlpi)| (vlpi, vcpu)).collect()
    }

    /// A write to a redistributor changed LPI state (EnableLPIs): held LPIs may now go.
    pub fn reload_pending(&self, dist: &Mutex<VDist>, vcpus: &[VcpuIrq]) {
        let held = self.pending.lock().all();
        let routes: Vec<(usize, u32)> = self.routes.lock().values().copied().collect();
        for v in held {
            if let Some(&(vcpu, _)) = routes.iter().find(|r| r.1 == v) {
                self.reload(dist, vcpus, vcpu, v);
            }
        }
    }
}
