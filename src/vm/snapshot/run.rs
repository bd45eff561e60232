//! The snapshot of a running VM, on the target: its state, RAM copies, restores and the lazy
//! restore's Stage-2 faults.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use super::plan::{layout, ConsoleWatch, Piece, Pool};
use super::sme::SmeState;
use super::sve::SveState;
use crate::arch::exception::TrapFrame;
use crate::arch::feature_regs::FeatureRegs;
use crate::arch::vcpu_state::{El1State, FpState, PauthKeys};
use crate::arch::{cache, sysreg};
use crate::cmdline::{RestoreKind, SnapshotOptions};
use crate::gic::lrs::LrSnapshot;
use crate::gic::vgic::VDist;
use crate::gic::vits::ItsSaved;
use crate::mm::addr::{Ipa, PaRange, PAGE_SIZE};
use crate::mm::frames::global::GlobalPages;
use crate::mm::stage2::hw::HwTlb;
use crate::mm::stage2::{RegionFault, RegionId, S2Attrs, S2Error, Stage2};
use crate::vm::instance::Vm;

/// One vCPU's state, saved on its own pCPU at an instruction boundary.
#[derive(Clone)]
pub struct VcpuState {
    pub frame: TrapFrame,
    pub el1: El1State,
    /// Those of newer features the CPU has (TCR2, PIR, POR, GCS, MTE, ...).
    pub feat: FeatureRegs,
    pub fp: FpState,
    pub keys: Option<PauthKeys>,
    /// Z0-Z31, P0-P15 and FFR, where the CPU has SVE (and the guest is not in
    /// streaming mode).
    pub sve: Option<SveState>,
    /// SVCR, the streaming Z, P (and FFR) and ZA (and ZT0), where the CPU has SME.
    pub sme: Option<SmeState>,
    pub lrs: Option<LrSnapshot>,
    /// The values the guest wrote to the TVM registers el2visor rewrites (`percpu`).
    pub guest_mair: u64,
    pub guest_tcr: u64,
    pub guest_sctlr: u64,
}

struct Saved {
    /// Per vCPU: its state, `None` for a vCPU that was off.
    vcpus: Vec<Option<VcpuState>>,
    /// Per vCPU: the start request (entry point, context ID) of a CPU_ON that had succeeded but
    /// not yet started the vCPU; a restore makes it again.
    starts: Vec<Option<crate::vm::instance::VcpuStart>>,
    dist: Option<VDist>,
    /// The virtual ITS's frame, tables and held LPIs, for a VM with one.
    its: Option<ItsSaved>,
    /// The vpl011's registers and FIFOs, for a VM with one.
    vuart: Option<crate::vm::vpl011::Vpl011>,
    /// The vCPU whose vendor call took it: after a restore its call returns 1 in x0.
    caller: Option<usize>,
}

/// Why a snapshot operation was refused (one line for the log; the guest gets an error code).
pub type SnapError = &'static str;

/// `snapshot_mem=`: the pool every VM's snapshot area comes from (set by boot).
static POOL: spin::Mutex<Option<Pool>> = spin::Mutex::new(None);

/// Make `area` the pool of snapshot areas (`snapshot_mem=`).
pub fn set_pool(area: PaRange) {
    *POOL.lock() = Some(Pool::new(area.start.raw(), area.size));
}

/// A VM's snapshot machinery (every VM when `snapshot_mem=` set a pool aside): its area comes
/// from the pool at its first snapshot.
pub struct Snapshot {
    /// Each piece's `copy` is its offset in the area.
    pieces: Vec<Piece>,
    /// Where the area is, once the first snapshot got one from the pool.
    area: spin::Once<u64>,
    /// The pool had no room for the area (said once; every later call answers −1).
    refused: AtomicBool,
    /// The Stage-2 region of each piece.
    regions: Vec<RegionId>,
    saved: spin::Mutex<Option<Saved>>,
    /// Each vCPU's state while the VM is paused for a snapshot operation; set again for the
    /// vCPUs that resume (their pCPU takes it, like a start request).
    pub live: Vec<spin::Mutex<Option<VcpuState>>>,
    pub options: SnapshotOptions,
    clean: bool,
    /// Restores made by `reset=snapshot`.
    pub reset_restores: AtomicU32,
    /// Every restore so far.
    restores: AtomicU64,
    /// Pages a lazy restore has still to bring back.
    lazy_left: AtomicUsize,
    /// CNTPCT when the last restore was asked for, and whether its first guest entry is yet to
    /// be timed.
    pub request_t: AtomicU64,
    pub first_entry_pending: AtomicBool,
    /// A lazy restore's first missing page is yet to be timed (the guest's first instruction
    /// runs once it is mapped).
    first_fault_pending: AtomicBool,
    /// Data-cache lines cleaned to the PoC for the guest since the last restore began.
    pub cmo_lines: AtomicU64,
    /// `snapshot_on=`: the text watched for in the VM's console output (`vm::uart_tap`).
    pub watch: Option<alloc::sync::Arc<ConsoleWatch>>,
    /// The last restore's report, printed once its first guest entry is timed (printing before
    /// would count the console's time).
    pub report: spin::Mutex<Option<RestoreReport>>,
    /// What el2visor's console asked for, done by the VM's next vCPU to leave its guest
    /// (`vcpu::snapshot::on_request`): 0 nothing, [`REQUEST_TAKE`], or [`REQUEST_RESTORE`] plus
    /// the kind's code.
    pub request: AtomicU8,
}

/// [`Snapshot::request`]: take a snapshot.
pub const REQUEST_TAKE: u8 = 1;
/// [`Snapshot::request`]: restore, the kind's code added.
pub const REQUEST_RESTORE: u8 = 2;

/// What a restore did, for the log and `make bench`.
#[derive(Clone, Copy)]
pub struct RestoreReport {
    pub kind: RestoreKind,
    pub pages: usize,
    pub cmo_lines: u64,
    pub ticks: u64,
}

impl Snapshot {
    /// Snapshots for `vm`: every RAM mapping of its Stage 2 becomes a region; its RAM goes to an
    /// area of the pool when the first snapshot is taken. `watch`: the `snapshot_on=` text its
    /// console is watched for.
    pub fn new(vm: &Vm, options: &SnapshotOptions, watch: Option<&str>) -> Result<Snapshot, &'static str> {
        let mut s2 = vm.s2.lock();
        let mapped: Vec<(u64, u64, u64)> = s2
            .ranges()
            .iter()
            .filter(|r| r.attrs == S2Attrs::ram() && vm.is_ram(r.ipa.raw()))
            .map(|r| (r.ipa.raw(), r.pa.raw(), r.size))
            .collect();
        let pieces = layout(&mapped, 0, u64::MAX).map_err(|_| "its RAM cannot be laid out")?;
        let mut regions = Vec::new();
        let before = s2.regions().len();
        for p in &pieces {
            match s2.add_region(Ipa(p.ipa), crate::mm::addr::Pa(p.pa), p.size, S2Attrs::ram()) {
                Ok(id) => regions.push(id),
                Err(e) => {
                    // The regions made so far go too (their bitmaps are on the heap).
                    s2.truncate_regions(before);
                    log::error!("snapshot: VM {}: {e}", vm.name);
                    return Err(match e {
                        S2Error::OutOfMemory => "its RAM is too large for the dirty and missing-page bitmaps el2visor's heap can hold (32 KiB each per GiB)",
                        _ => "its RAM cannot be a Stage-2 region",
                    });
                }
            }
        }
        Ok(Snapshot {
            pieces,
            area: spin::Once::new(),
            refused: AtomicBool::new(false),
            regions,
            saved: spin::Mutex::new(None),
            live: (0..vm.vcpus.len()).map(|_| spin::Mutex::new(None)).collect(),
            options: options.clone(),
            clean: vm.clean,
            reset_restores: AtomicU32::new(0),
            restores: AtomicU64::new(0),
            lazy_left: AtomicUsize::new(0),
            request_t: AtomicU64::new(0),
            first_entry_pending: AtomicBool::new(false),
            first_fault_pending: AtomicBool::new(false),
            cmo_lines: AtomicU64::new(0),
            watch: watch.map(|t| alloc::sync::Arc::new(ConsoleWatch::new(t.as_bytes()))),
            report: spin::Mutex::new(None),
            request: AtomicU8::new(0),
        })
    }

    pub fn is_taken(&self) -> bool {
        self.saved.lock().is_some()
    }

    /// Bytes of RAM a snapshot holds.
    pub fn ram_size(&self) -> u64 {
        self.pieces.iter().map(|p| p.size).sum()
    }

    /// Write `len` bytes just copied to guest RAM at `pa` back to the PoC (without FWB) or make
    /// them safe to execute (FWB), counting the lines cleaned.
    fn publish(&self, pa: u64, len: usize) {
        if self.clean {
            cache::clean_inval_range(pa, len);
            self.cmo_lines.fetch_add(len as u64 / cache::dcache_line(), Ordering::Relaxed);
        } else {
            cache::sync_icache_range(pa, len);
        }
    }

    /// The area's address, from the pool at the first call: `None` (said once) when the pool
    /// has no room for it.
    fn area(&self, vm: &Vm) -> Option<u64> {
        if let Some(&a) = self.area.get() {
            return Some(a);
        }
        if self.refused.load(Ordering::Relaxed) {
            return None;
        }
        let mut pool = POOL.lock();
        let Some(pool) = pool.as_mut() else {
            self.refused.store(true, Ordering::Relaxed);
            return None;
        };
        match pool.take(self.ram_size()) {
            Ok(a) => {
                log::info!("snapshot: VM {}: {} MiB of snapshot_mem= at {a:#x} hold its snapshot", vm.name, self.ram_size() >> 20);
                Some(*self.area.call_once(|| a))
            }
            Err(e) => {
                log::warn!("snapshot: VM {}: {e}", vm.name);
                self.refused.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Where piece `i`'s copy is (the area exists once a snapshot is taken).
    fn copy_of(&self, i: usize) -> u64 {
        self.area.get().copied().unwrap_or(0) + self.pieces[i].copy
    }

    /// Copy page `page` of piece `i` from the snapshot into guest RAM.
    fn restore_page(&self, i: usize, page: usize) {
        let p = &self.pieces[i];
        let copy = self.copy_of(i);
        let off = page as u64 * PAGE_SIZE;
        // SAFETY: both are whole pages inside the VM's RAM piece and its copy in the snapshot
        // area (el2visor's, kept from every allocator), identity mapped at EL2, 64-byte aligned,
        // apart; the page is not mapped for the guest (missing) or the VM is paused.
        unsafe { cache::copy_aligned_64(p.pa + off, copy + off, PAGE_SIZE) };
        self.publish(p.pa + off, PAGE_SIZE as usize);
    }
}

/// The vCPU state of this pCPU's guest, with `frame` as its general registers.
pub fn save_vcpu(vm: &Vm, v: usize, frame: &TrapFrame) -> VcpuState {
    let me = crate::arch::cpu::this();
    let feat = FeatureRegs::save();
    VcpuState {
        frame: *frame,
        el1: El1State::save(),
        fp: FpState::save(),
        keys: PauthKeys::save(),
        sve: SveState::save(&feat.present),
        sme: SmeState::save(&feat.present),
        feat,
        lrs: crate::gic::lrs::save(&vm.irqs[v]),
        guest_mair: me.guest_mair.load(Ordering::Relaxed),
        guest_tcr: me.guest_tcr.load(Ordering::Relaxed),
        guest_sctlr: me.guest_sctlr.load(Ordering::Relaxed),
    }
}

/// Take the snapshot: every vCPU of `vm` is paused with its state in `live` (or none when it is
/// off). `caller`: the vCPU whose vendor call asked for it. `log_dirty`: track the pages written
/// from now on (for a dirty-only restore); otherwise RAM goes back to blocks.
pub fn take(vm: &Vm, caller: Option<usize>, log_dirty: bool) -> Result<(), SnapError> {
    let snap = vm.snapshot.as_ref().ok_or("no snapshot area for this VM")?;
    snap.area(vm).ok_or("no room for it in snapshot_mem=")?;
    let t0 = sysreg::cntpct_el0();
    finish_lazy(vm, snap);
    let mut s2 = vm.s2.lock();
    for (i, p) in snap.pieces.iter().enumerate() {
        let copy = snap.copy_of(i);
        if snap.clean {
            // Lines the guest left dirty with its caches on go to memory first, so that what it
            // wrote with them off is what is read.
            cache::clean_inval_range(p.pa, p.size as usize);
        }
        // SAFETY: the VM's RAM piece and its copy in the snapshot area, both identity mapped at
        // EL2, page aligned and apart; every vCPU is paused.
        unsafe { cache::copy_aligned_64(copy, p.pa, p.size) };
        let id = snap.regions[i];
        let r = if log_dirty {
            if s2.region(id).log_dirty {
                s2.clear_dirty(id)
            } else {
                s2.set_log_dirty(id, true)
            }
        } else if s2.region(id).held {
            s2.set_log_dirty(id, false).and_then(|()| s2.collapse_region(id))
        } else {
            Ok(())
        };
        if let Err(e) = r {
            // The area now holds this snapshot's RAM up to this piece and the previous one's
            // after it: neither can be restored any more.
            *snap.saved.lock() = None;
            log::error!("snapshot: VM {}: {e}; the area is half overwritten, so the previous snapshot is dropped too", vm.name);
            return Err("Stage 2 could not change");
        }
    }
    drop(s2);
    let vcpus = snap.live.iter().map(|l| l.lock().clone()).collect();
    let starts = vm.vcpus.iter().map(|c| *c.start.lock()).collect();
    let vuart = vm.vuart.as_ref().map(|u| u.save());
    let its = vm.vgic.as_ref().and_then(|g| g.its()).map(|i| i.save());
    *snap.saved.lock() = Some(Saved { vcpus, starts, dist: vm.vgic.as_ref().map(|g| g.save()), its, vuart, caller });
    log::info!(
        "snapshot: VM {}: taken ({} MiB of RAM{}) in {} us",
        vm.name,
        snap.ram_size() >> 20,
        if log_dirty { ", log-dirty on" } else { "" },
        ticks_us(sysreg::cntpct_el0() - t0)
    );
    Ok(())
}

/// el2visor is about to write `[ipa, ipa + len)` of `vm`'s RAM itself (a reboot reloading its
/// images; every vCPU stopped): a lazy restore still under way is finished first, or the first
/// touch of a page still missing would copy the snapshot's bytes over what el2visor wrote; and
/// under log-dirty the pages count as dirty, so that a dirty-only restore undoes the write too.
pub fn host_write(vm: &Vm, ipa: u64, len: u64) {
    let Some(snap) = vm.snapshot.as_ref() else { return };
    finish_lazy(vm, snap);
    vm.s2.lock().mark_dirty(ipa, len);
}

/// Bring a lazy restore's missing pages back at once (a new snapshot or restore comes).
fn finish_lazy(vm: &Vm, snap: &Snapshot) {
    if snap.lazy_left.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut s2 = vm.s2.lock();
    for (i, &id) in snap.regions.iter().enumerate() {
        // Walked, not collected: a list of a GiB's pages would be the whole EL2 heap.
        let mut at = 0;
        while let Some(page) = s2.region(id).missing.next_one(at) {
            at = page + 1;
            snap.restore_page(i, page);
        }
        let _ = s2.set_userfault(id, false);
    }
    snap.lazy_left.store(0, Ordering::Release);
}

/// Restore the snapshot (every vCPU paused): RAM the `kind` way, the distributor, and each
/// vCPU's state into `live` (the vCPUs that were off stay off). `None` when there is none.
pub fn restore(vm: &Vm, kind: RestoreKind) -> Result<RestoreReport, SnapError> {
    let snap = vm.snapshot.as_ref().ok_or("no snapshot area for this VM")?;
    let t0 = sysreg::cntpct_el0();
    snap.request_t.store(t0, Ordering::Relaxed);
    snap.cmo_lines.store(0, Ordering::Relaxed);
    let saved = snap.saved.lock();
    let saved = saved.as_ref().ok_or("no snapshot taken yet")?;
    finish_lazy(vm, snap);
    let mut kind = kind;
    let mut pages = 0;
    {
        let mut s2 = vm.s2.lock();
        if kind == RestoreKind::DirtyOnly && snap.regions.iter().any(|&id| !s2.region(id).log_dirty) {
            log::warn!("snapshot: VM {}: a dirty-only restore needs log-dirty since the snapshot; restoring eagerly", vm.name);
            kind = RestoreKind::Eager;
        }
        for (i, &id) in snap.regions.iter().enumerate() {
            let p = &snap.pieces[i];
            let r = match kind {
                RestoreKind::Eager => {
                    // SAFETY: as in `take`, the other way round; every vCPU is paused.
                    unsafe { cache::copy_aligned_64(p.pa, snap.copy_of(i), p.size) };
                    snap.publish(p.pa, p.size as usize);
                    pages += (p.size / PAGE_SIZE) as usize;
                    s2.clear_dirty(id)
                }
                RestoreKind::DirtyOnly => {
                    let mut at = 0;
                    while let Some(page) = s2.region(id).dirty.next_one(at) {
                        at = page + 1;
                        snap.restore_page(i, page);
                        pages += 1;
                    }
                    s2.clear_dirty(id)
                }
                RestoreKind::Lazy => {
                    snap.first_fault_pending.store(true, Ordering::Release);
                    let n = (p.size / PAGE_SIZE) as usize;
                    snap.lazy_left.fetch_add(n, Ordering::AcqRel);
                    s2.clear_dirty(id).and_then(|()| s2.set_userfault(id, true))
                }
            };
            if let Err(e) = r {
                log::error!("snapshot: VM {}: {e}", vm.name);
                return Err("Stage 2 could not change");
            }
        }
    }
    // The instruction cache may hold what the guest ran since the snapshot.
    cache::invalidate_icache_all();
    if let (Some(g), Some(d)) = (&vm.vgic, &saved.dist) {
        g.restore(&vm.irqs, d);
    }
    if let (Some(i), Some(s)) = (vm.vgic.as_ref().and_then(|g| g.its()), &saved.its) {
        i.restore(&vm.name, s);
    }
    if let (Some(u), Some(v)) = (&vm.vuart, &saved.vuart) {
        u.restore(vm.vgic.as_ref(), &vm.irqs, v);
    }
    let n = snap.restores.fetch_add(1, Ordering::AcqRel) + 1;
    for (v, s) in saved.vcpus.iter().enumerate() {
        let mut s = s.clone();
        if let (Some(st), Some(c)) = (&mut s, saved.caller) {
            if c == v {
                // The snapshot call returns again, saying so: x0 = 1, x1 = restores so far.
                st.frame.x[0] = 1;
                st.frame.x[1] = n;
            }
        }
        *snap.live[v].lock() = s;
        // A vCPU whose CPU_ON was pending starts then; one pending now, not in the snapshot, not.
        *vm.vcpus[v].start.lock() = saved.starts.get(v).copied().flatten();
    }
    snap.first_entry_pending.store(true, Ordering::Release);
    Ok(RestoreReport { kind, pages, cmo_lines: snap.cmo_lines.load(Ordering::Relaxed), ticks: sysreg::cntpct_el0() - t0 })
}

/// Bring back page `page` of region `region`, which a lazy restore left missing: the snapshot's
/// bytes copied into guest RAM, the page mapped (writable at once for a `write`), and the end
/// of the lazy restore when it was the last one. `ipa` is only for the log.
fn supply(vm: &Vm, snap: &Snapshot, s2: &mut Stage2<GlobalPages, HwTlb>, region: RegionId, page: usize, write: bool, ipa: u64) -> bool {
    let Some(i) = snap.regions.iter().position(|&r| r == region) else { return false };
    snap.restore_page(i, page);
    if let Err(e) = s2.fill(region, page, write) {
        log::error!("snapshot: VM {}: lazy restore of IPA {ipa:#x}: {e}", vm.name);
        return false;
    }
    if snap.lazy_left.fetch_sub(1, Ordering::AcqRel) == 1 {
        // Every page is back: userfault off, and blocks again where log-dirty allows.
        for &id in &snap.regions {
            let r = s2.set_userfault(id, false).and_then(|()| if s2.region(id).log_dirty { Ok(()) } else { s2.collapse_region(id) });
            if let Err(e) = r {
                log::error!("snapshot: VM {}: ending the lazy restore: {e}", vm.name);
            }
        }
        log::info!(
            "snapshot: VM {}: lazy restore complete ({} cache lines cleaned)",
            vm.name,
            snap.cmo_lines.load(Ordering::Relaxed)
        );
    }
    true
}

/// el2visor is about to read (or, with `write`, write) `[ipa, ipa + len)` of `vm`'s RAM on
/// someone's behalf while the VM may run: a guest's `LOG_LINE` text, the debugger's memory
/// accesses. Pages a lazy restore has not brought back yet come back first (their RAM still
/// holds what was there before the restore, and a write would later be overwritten by the
/// snapshot's bytes); a write counts as dirty under log-dirty, as a guest's own write would,
/// so that a dirty-only restore undoes it. Unlike [`host_write`], the rest of a lazy restore
/// stays lazy.
pub fn host_access(vm: &Vm, ipa: u64, len: u64, write: bool) {
    let Some(snap) = vm.snapshot.as_ref() else { return };
    if len == 0 {
        return;
    }
    let end = ipa.saturating_add(len);
    let lazy = snap.lazy_left.load(Ordering::Acquire) != 0;
    if !lazy && !write {
        return;
    }
    let mut s2 = vm.s2.lock();
    if lazy {
        let mut at = ipa & !(PAGE_SIZE - 1);
        while at < end {
            if let Some(region) = s2.region_at(at) {
                let r = s2.region(region);
                let page = r.page_of(at);
                if r.is_missing(page) {
                    supply(vm, snap, &mut s2, region, page, false, at);
                }
            }
            at += PAGE_SIZE;
        }
    }
    if write {
        s2.mark_dirty(ipa, end - ipa);
    }
}

/// A Stage-2 abort at `ipa` (a write when `write`): a lazy restore's missing page is copied
/// back and mapped, a log-dirty first write recorded. `true` when the guest must just run the
/// access again.
pub fn stage2_fault(vm: &Vm, ipa: u64, write: bool) -> bool {
    let Some(snap) = &vm.snapshot else { return false };
    let mut s2 = vm.s2.lock();
    match s2.region_fault(ipa, write) {
        Ok(RegionFault::Missing { region, page, .. }) => {
            let supplied = supply(vm, snap, &mut s2, region, page, write, ipa);
            if supplied && snap.first_fault_pending.swap(false, Ordering::AcqRel) {
                // The guest's first instruction after the restore can run now (a page el2visor
                // brought back for itself before, `host_access`, is not the guest's).
                let us = ticks_us(sysreg::cntpct_el0() - snap.request_t.load(Ordering::Relaxed));
                crate::println!("SNAPSHOT lazy first_page_us={us}");
            }
            supplied
        }
        Ok(RegionFault::Dirtied | RegionFault::Retry) => true,
        Ok(RegionFault::NotOurs) => false,
        Err(e) => {
            log::error!("snapshot: VM {}: Stage-2 fault at {ipa:#x}: {e}", vm.name);
            false
        }
    }
}

/// `SNAPSHOT_INFO`'s answers (trap::abi::vendor): Stage-2 facts about the VM's RAM regions and
/// the last restore.
pub fn info(vm: &Vm, which: u64) -> Option<u64> {
    let snap = vm.snapshot.as_ref()?;
    let s2 = vm.s2.lock();
    let regions: Vec<_> = snap.regions.iter().map(|&id| s2.region(id)).collect();
    let leaves = |want_block: bool| {
        let mut n = 0u64;
        s2.for_each_leaf(|l| {
            if (l.level < 3) == want_block && regions.iter().any(|r| l.ipa.raw() < r.ipa + r.size && r.ipa < l.ipa.raw() + l.size()) {
                n += 1;
            }
        });
        n
    };
    Some(match which {
        0 => leaves(true),
        1 => leaves(false),
        2 => regions.iter().map(|r| r.missing.count() as u64).sum(),
        3 => regions.iter().map(|r| r.dirty.count() as u64).sum(),
        4 => snap.cmo_lines.load(Ordering::Relaxed),
        5 => regions.iter().fold(0, |f, r| f | r.userfault as u64 | (r.log_dirty as u64) << 1 | (r.held as u64) << 2),
        6 => snap.restores.load(Ordering::Relaxed),
        _ => return None,
    })
}

/// Microseconds in `ticks` of the counter.
pub fn ticks_us(ticks: u64) -> u64 {
    let f = sysreg::cntfrq_el0().max(1);
    (ticks as u128 * 1_000_000 / f as u128) as u64
}
