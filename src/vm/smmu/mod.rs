//! The SMMUv3s el2visor owns: their stream tables, command and event queues, which VM each
//! stream belongs to, and the SMMU half of Stage-2 TLB maintenance.
//!
//! At boot (`init`, before any VM exists) each usable SMMUv3 of the host DT gets a stream table
//! in which every stream aborts (V = 1, Config = abort; streams beyond the table, or in a
//! level-2 span no device uses, abort with C_BAD_STREAMID), GBPA.ABORT so that nothing bypasses
//! while it is off, a command queue and an event queue, and is enabled. When a VM has been built,
//! `assign` gives the streams of the devices it got a stage-2 STE that points at the VM's own
//! Stage-2 root with its VMID and VTCR: the tables the CPU walks, so a device reaches exactly the
//! memory its VM reaches. `invalidate` is registered with `mm::stage2::hw`: whenever the CPU's
//! TLBs are invalidated for a VM, the SMMUs holding its streams are too (CMD_TLBI_S2_IPA or
//! CMD_TLBI_S12_VMALL, then CMD_SYNC). An SMMU that reports a command error or never completes a
//! CMD_SYNC is switched off for good with GBPA.ABORT set (`fail_closed`): all DMA through it
//! aborts, rather than using tables it can no longer be told about. Faults come in on the event
//! queue (its interrupt, or `poll` when the VM ends) and are logged per VM, limited per stream.

use alloc::string::String;
use alloc::vec::Vec;

use crate::drivers::smmuv3::event::{Limiter, RECORD_BYTES};
use crate::drivers::smmuv3::mmio::{self, Regs};
use crate::drivers::smmuv3::queue::Ring;
use crate::drivers::smmuv3::regs::{self as r, Features};
use crate::drivers::smmuv3::ste::{self, Layout, S2Config, Ste, SPLIT, STE_BYTES};
use crate::drivers::smmuv3::stop;
use crate::drivers::smmuv3::cmd::{self, Cmd};
use crate::mm::addr::{Ipa, PAGE_SIZE};
use crate::mm::frames::global as frames;
use crate::platform::iommu::{bdf, SidRange, Smmu as SmmuNode, StreamOwner};
use crate::platform::Platform;

mod events;

/// Command queue: 256 entries (4 KiB); event queue: 512 records (16 KiB).
const CMDQ_LOG2: u8 = 8;
const EVTQ_LOG2: u8 = 9;
/// Polls of CR0ACK, GBPA, IRQ_CTRLACK or CMDQ_CONS before el2visor gives up on the SMMU.
const SPINS: u32 = 10_000_000;

/// A stream given to a VM.
struct Owned {
    sids: SidRange,
    vmid: u16,
    vm: String,
    /// The device node, and for a PCI bridge the requester ID of `sids.base`.
    device: String,
    rid_base: Option<u32>,
}

impl Owned {
    /// `0x10 (PCI 00:02.0 behind /pcie@10000000)` or `0x20 (/dma@1000)`.
    fn describe(&self, sid: u32) -> String {
        match self.rid_base {
            Some(b) => alloc::format!("{sid:#x} (PCI {} behind {})", bdf(b + (sid - self.sids.base)), self.device),
            None => alloc::format!("{sid:#x} ({})", self.device),
        }
    }
}

pub struct Smmu {
    path: String,
    regs: Regs,
    features: Features,
    layout: Layout,
    /// The stream table (linear) or its level-1 table.
    strtab: u64,
    /// Two levels: the level-2 table of each span, where one was allocated.
    l2: Vec<Option<u64>>,
    cmdq: u64,
    cmdq_ring: Ring,
    cmd_prod: u32,
    evtq: u64,
    evtq_ring: Ring,
    owned: Vec<Owned>,
    limiter: Limiter,
    /// The SMMU stopped answering or reported a command error, and was switched off for good
    /// (`fail_closed`): no more commands are sent.
    broken: bool,
}

static SMMUS: spin::Once<Vec<(u32, spin::Mutex<Smmu>)>> = spin::Once::new();

fn alloc_zeroed(bytes: usize) -> Result<u64, String> {
    let frames_n = bytes.div_ceil(PAGE_SIZE as usize);
    // Aligned to its size rounded up to a power of two: the stream table and the queues must be
    // aligned to their size.
    let align = (frames_n.next_power_of_two() as u64) * PAGE_SIZE;
    let pa = frames::alloc_aligned(frames_n, align).ok_or_else(|| alloc::format!("no {bytes} bytes of frames"))?;
    // SAFETY: frames just allocated for the SMMU, identity mapped at EL2, used by nothing else.
    unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, frames_n * PAGE_SIZE as usize) };
    Ok(pa.raw())
}

fn wait(mut done: impl FnMut() -> bool) -> bool {
    (0..SPINS).any(|_| {
        let ok = done();
        core::hint::spin_loop();
        ok
    })
}

impl Smmu {
    /// Program `node` with every stream aborting, and enable it. The error is the whole story for
    /// the log line: whether the SMMU was left alone, or off and aborting DMA.
    fn init(node: &SmmuNode, highest: Option<u32>, used: &[SidRange]) -> Result<Smmu, String> {
        // SAFETY: the SMMU's frame from the host DT; el2visor owns it (the guests' DTs drop it and
        // Stage 2 never maps it).
        let regs = unsafe { Regs::new(node.regs.start.raw() as usize) };
        let features =
            Features::decode(regs.read32(r::IDR0), regs.read32(r::IDR1), regs.read32(r::IDR3), regs.read32(r::IDR5));
        if let Some(why) = features.unusable() {
            return Err(alloc::format!("not used for DMA isolation: {why}; devices behind it master DMA untranslated"));
        }
        Self::take_over(node, regs, features, highest, used).map_err(|e| {
            // SAFETY: as above; the frame `take_over` gave up on.
            let regs = unsafe { Regs::new(node.regs.start.raw() as usize) };
            match stop::abort_all(&regs, SPINS) {
                Ok(()) => alloc::format!("taking it over failed: {e}; it is left off with GBPA.ABORT set, so DMA behind it aborts"),
                Err(again) => alloc::format!("taking it over failed: {e}; stopping it failed too ({again}): DMA behind it may be untranslated"),
            }
        })
    }

    fn take_over(node: &SmmuNode, regs: Regs, features: Features, highest: Option<u32>, used: &[SidRange]) -> Result<Smmu, String> {
        // Firmware may have left it on: GBPA.ABORT, then off (drivers::smmuv3::stop), so that
        // nothing bypasses translation at any point.
        stop::abort_all(&regs, SPINS)?;
        regs.write32(r::CR1, r::CR1_WB_ISH);
        regs.write32(r::CR2, r::CR2_RECINVSID_PTM);

        let layout = Layout::choose(features.sid_bits, features.two_level, highest);
        let strtab = alloc_zeroed(layout.top_bytes())?;
        let mut l2 = Vec::new();
        match layout {
            Layout::Linear { log2 } => {
                for sid in 0..(1u64 << log2) {
                    // SAFETY: the STE lies in the table just allocated.
                    unsafe { mmio::store(strtab + sid * STE_BYTES as u64, &ste::abort()) };
                }
            }
            Layout::TwoLevel { log2 } => {
                let ranges: Vec<(u32, u32)> = used.iter().map(|u| (u.base, u.last())).collect();
                let wanted = ste::spans_used(log2, &ranges);
                l2.resize(wanted.len(), None);
                for (span, slot) in l2.iter_mut().enumerate() {
                    if !wanted[span] {
                        continue;
                    }
                    let table = alloc_zeroed(STE_BYTES << SPLIT)?;
                    for i in 0..(1u64 << SPLIT) {
                        // SAFETY: the STE lies in the level-2 table just allocated.
                        unsafe { mmio::store(table + i * STE_BYTES as u64, &ste::abort()) };
                    }
                    // SAFETY: descriptor `span` of the level-1 table.
                    unsafe { mmio::store(strtab + 8 * span as u64, &[ste::l1_desc(Some(table))]) };
                    *slot = Some(table);
                }
            }
        }
        regs.write64(r::STRTAB_BASE, (strtab & r::STRTAB_BASE_ADDR_MASK) | r::Q_BASE_ALLOC_HINT);
        regs.write32(r::STRTAB_BASE_CFG, layout.base_cfg());

        let cmdq_ring = Ring::new(CMDQ_LOG2.min(features.cmdq_log2));
        let evtq_ring = Ring::new(EVTQ_LOG2.min(features.eventq_log2));
        let cmdq = alloc_zeroed(16 << cmdq_ring.log2)?;
        let evtq = alloc_zeroed(RECORD_BYTES << evtq_ring.log2)?;
        regs.write64(r::CMDQ_BASE, cmdq_ring.base(cmdq));
        regs.write32(r::CMDQ_PROD, 0);
        regs.write32(r::CMDQ_CONS, 0);
        regs.write64(r::EVENTQ_BASE, evtq_ring.base(evtq));
        regs.write32(r::EVENTQ_PROD, 0);
        regs.write32(r::EVENTQ_CONS, 0);
        regs.publish();

        let mut s = Smmu {
            path: node.path.clone(),
            regs,
            features,
            layout,
            strtab,
            l2,
            cmdq,
            cmdq_ring,
            cmd_prod: 0,
            evtq,
            evtq_ring,
            owned: Vec::new(),
            limiter: Limiter::new(),
            broken: false,
        };
        s.enable(r::CR0_CMDQEN)?;
        s.commands(&[cmd::cfgi_all(), cmd::tlbi_nsnh_all()])?;
        s.enable(r::CR0_CMDQEN | r::CR0_EVENTQEN)?;
        let irqs = if node.eventq_irq.is_some() { r::IRQ_CTRL_EVENTQ } else { 0 }
            | if node.gerror_irq.is_some() { r::IRQ_CTRL_GERROR } else { 0 };
        s.regs.write32(r::IRQ_CTRL, irqs);
        if !wait(|| s.regs.read32(r::IRQ_CTRLACK) == irqs) {
            return Err("does not acknowledge IRQ_CTRL".into());
        }
        s.enable(r::CR0_CMDQEN | r::CR0_EVENTQEN | r::CR0_SMMUEN)?;
        Ok(s)
    }

    fn enable(&self, cr0: u32) -> Result<(), String> {
        self.regs.write32(r::CR0, cr0);
        if wait(|| self.regs.read32(r::CR0ACK) == cr0) {
            Ok(())
        } else {
            Err(alloc::format!("does not acknowledge CR0 = {cr0:#x}"))
        }
    }

    /// Queue `cmds` and a CMD_SYNC, and wait until the SMMU has consumed the SYNC. If it does
    /// not, it is switched off (`fail_closed`) before the error is returned.
    fn commands(&mut self, cmds: &[Cmd]) -> Result<(), String> {
        if self.broken {
            return Err("it was switched off after a failure".into());
        }
        let r = self.send(cmds);
        if let Err(e) = &r {
            self.fail_closed(e);
        }
        r
    }

    /// After a command error or a CMD_SYNC that never completes, the SMMU may still hold
    /// configuration and translations el2visor can no longer invalidate, while Stage 2 goes on to
    /// change and free the tables behind them. So it stops translating for good: GBPA.ABORT, then
    /// SMMUEN = 0 (register writes, no command queue), and all DMA through it aborts. Logged once.
    fn fail_closed(&mut self, why: &str) {
        if self.broken {
            return;
        }
        self.broken = true;
        match stop::abort_all(&self.regs, SPINS) {
            Ok(()) => log::error!(
                "SMMU {}: {why}: switched off for good (GBPA.ABORT, SMMUEN = 0): all DMA through it aborts",
                self.path
            ),
            Err(e) => log::error!(
                "SMMU {}: {why}: switching it off failed too ({e}): it may go on using stale tables",
                self.path
            ),
        }
    }

    fn send(&mut self, cmds: &[Cmd]) -> Result<(), String> {
        let what = cmds.first().map_or("SYNC", |c| cmd::name((c[0] & 0xff) as u8));
        let q = self.cmdq_ring;
        let start = self.regs.read32(r::CMDQ_CONS);
        let mut sync_pos = self.cmd_prod;
        for c in cmds.iter().chain(core::iter::once(&cmd::sync())) {
            if !wait(|| !q.full(self.cmd_prod, self.regs.read32(r::CMDQ_CONS))) {
                return Err(alloc::format!("its command queue stays full (sending {what})"));
            }
            let slot = self.cmdq + 16 * u64::from(q.index(self.cmd_prod));
            // SAFETY: entry `index` of the command queue el2visor allocated.
            unsafe { mmio::store(slot, c) };
            sync_pos = self.cmd_prod;
            self.cmd_prod = q.next(self.cmd_prod);
        }
        self.regs.publish();
        self.regs.write32(r::CMDQ_PROD, self.cmd_prod);
        let ok = wait(|| {
            let cons = self.regs.read32(r::CMDQ_CONS);
            cons & (0x7f << 24) != 0 || q.consumed(sync_pos, start, cons)
        });
        let cons = self.regs.read32(r::CMDQ_CONS);
        if cons & (0x7f << 24) != 0 || self.regs.read32(r::GERROR) & r::GERROR_CMDQ_ERR != 0 {
            // SAFETY: the entry CONS points at is in the command queue.
            let [w0, _] = unsafe { mmio::load::<2>(self.cmdq + 16 * u64::from(q.index(q.pos(cons)))) };
            return Err(alloc::format!(
                "command error {} at {}",
                cmd::error_name(cons),
                cmd::name((w0 & 0xff) as u8)
            ));
        }
        if !ok {
            return Err(alloc::format!("the CMD_SYNC after {what} did not complete"));
        }
        Ok(())
    }

    /// Where stream `sid`'s STE is, if the table has one for it.
    fn ste_at(&self, sid: u32) -> Option<u64> {
        if u64::from(sid) >= self.layout.covers() {
            return None;
        }
        match self.layout {
            Layout::Linear { .. } => Some(self.strtab + u64::from(sid) * STE_BYTES as u64),
            Layout::TwoLevel { .. } => {
                let table = self.l2.get((sid >> SPLIT) as usize).copied().flatten()?;
                Some(table + u64::from(sid & ((1 << SPLIT) - 1)) * STE_BYTES as u64)
            }
        }
    }

    /// The STE of `sid` as the table holds it now.
    fn ste(&self, sid: u32) -> Option<Ste> {
        let at = self.ste_at(sid)?;
        // SAFETY: the STE of `sid` in this SMMU's stream table.
        Some(unsafe { mmio::load::<8>(at) })
    }

    /// Give streams `sids` the STE `ste`. The SMMU may be using (or have cached) their STEs, so
    /// each run of streams whose STE is the same now goes through `ste::update_steps`, and after
    /// each step `commands` makes the stores visible (DSB) and the SMMU drop its copies
    /// (CMD_CFGI_STE, or CFGI_ALL for a long run, and CMD_SYNC) before the next. Returns how many
    /// streams have `ste`: not those beyond the table (`Layout::clip`), which abort.
    fn write_stes(&mut self, sids: SidRange, ste: &Ste) -> Result<u32, String> {
        let Some((first, last)) = self.layout.clip(sids.base, sids.last()) else { return Ok(0) };
        let mut written = 0;
        let mut sid = first;
        loop {
            if let Some(old) = self.ste(sid) {
                let mut end = sid;
                while end < last && self.ste(end + 1) == Some(old) {
                    end += 1;
                }
                for step in ste::update_steps(&old, ste) {
                    for at in (sid..=end).filter_map(|s| self.ste_at(s)) {
                        for (i, w) in step.iter().enumerate().filter_map(|(i, w)| w.map(|w| (i, w))) {
                            // SAFETY: word `i` of an STE in this SMMU's stream table.
                            unsafe { mmio::store(at + 8 * i as u64, &[w]) };
                        }
                    }
                    let inval =
                        if end - sid >= 64 { alloc::vec![cmd::cfgi_all()] } else { (sid..=end).map(cmd::cfgi_ste).collect() };
                    self.commands(&inval)?;
                }
                written += end - sid + 1;
                sid = end;
            }
            if sid >= last {
                return Ok(written);
            }
            sid += 1;
        }
    }
}

/// Take over every usable SMMUv3 of the host DT: all streams abort until `assign`. Returns the
/// DT paths of the SMMUs el2visor now owns (the guests must not see them).
pub fn init(p: &Platform) -> Vec<String> {
    let mut out = Vec::new();
    let mut owned_paths = Vec::new();
    for node in p.iommus.smmus.iter().filter(|s| s.enabled) {
        let Some(ph) = node.phandle else {
            log::warn!("SMMU {}: no phandle, so no device uses it; left alone", node.path);
            continue;
        };
        let used: Vec<SidRange> = p.iommus.owners_of(ph).flat_map(|o| o.sids.iter().copied()).collect();
        match Smmu::init(node, p.iommus.highest_sid(ph), &used) {
            Ok(s) => {
                log::info!(
                    "SMMU {}: owned by el2visor (IDR0 {:#x}): {:?} stream table ({} stream IDs), OAS {} bits, VMID{}; every stream aborts until assigned",
                    node.path,
                    s.regs.read32(r::IDR0),
                    s.layout,
                    s.layout.covers(),
                    s.features.oas_bits,
                    if s.features.vmid16 { 16 } else { 8 }
                );
                if let Some(h) = p.iommus.highest_sid(ph).filter(|&h| u64::from(h) >= s.layout.covers()) {
                    log::warn!("SMMU {}: stream IDs up to {h:#x} are named but the table covers {:#x}: the rest abort", node.path, s.layout.covers());
                }
                owned_paths.push(node.path.clone());
                out.push((ph, spin::Mutex::new(s)));
            }
            Err(e) => log::warn!("SMMU {}: {e}", node.path),
        }
    }
    if !out.is_empty() {
        SMMUS.call_once(|| out);
        crate::mm::stage2::hw::register_invalidator(invalidate);
    }
    owned_paths
}

/// Whether el2visor owns the SMMU with this phandle.
pub fn owns(phandle: u32) -> bool {
    SMMUS.get().is_some_and(|v| v.iter().any(|(p, _)| *p == phandle))
}

/// The interrupts to claim for the owned SMMUs: (INTID, edge-triggered) of event queues and
/// global errors.
pub fn interrupts(p: &Platform) -> Vec<(u32, bool)> {
    p.iommus
        .smmus
        .iter()
        .filter(|s| s.phandle.is_some_and(owns))
        .flat_map(|s| s.eventq_irq.into_iter().chain(s.gerror_irq))
        .collect()
}

/// Give the streams of `owner` (a device behind an SMMU el2visor owns) to VM `vm`: stage-2 STEs
/// with its tables and VMID.
pub fn assign(owner: &StreamOwner, vm: &crate::vm::instance::Vm) {
    let Some((_, s)) = SMMUS.get().and_then(|v| v.iter().find(|(p, _)| *p == owner.iommu)) else { return };
    let device = owner.path.as_str();
    let mut s = s.lock();
    if s.broken {
        log::error!("SMMU {}: {device} stays aborted: the SMMU was switched off after a failure", s.path);
        return;
    }
    let vmid = (vm.vttbr >> 48) as u16;
    let ipa_bits = 64 - (vm.vtcr & 0x3f) as u8;
    let ps = ((vm.vtcr >> 16) & 7) as u32;
    if ipa_bits > s.features.oas_bits || (!s.features.vmid16 && vmid > 0xff) {
        log::error!(
            "SMMU {}: {device} stays aborted: VM {}'s {ipa_bits}-bit IPA space or VMID {vmid} is more than the SMMU translates",
            s.path,
            vm.name
        );
        return;
    }
    let cfg = S2Config {
        vmid,
        root: vm.vttbr & ((1 << 48) - 1) & !1,
        vtcr: vm.vtcr,
        ps: s.features.s2ps(ps),
        fwb: s.features.fwb && vm.setting.mode == crate::coherency::Mode::Fwb,
    };
    let entry = ste::stage2(&cfg);
    let mut total = 0;
    for (i, &r) in owner.sids.iter().enumerate() {
        match s.write_stes(r, &entry) {
            Ok(n) => {
                total += n;
                if n < r.count {
                    log::warn!(
                        "SMMU {}: {device}: {} of its stream IDs {:#x}..={:#x} have no STE (the table covers {:#x} IDs): they keep aborting",
                        s.path,
                        r.count - n,
                        r.base,
                        r.last(),
                        s.layout.covers()
                    );
                }
            }
            // Only a command failure: the SMMU is off for good and its streams abort.
            Err(_) => {
                log::error!("SMMU {}: {device} stays aborted, not given to VM {}: the SMMU failed", s.path, vm.name);
                return;
            }
        }
        let rid_base = owner.rid_bases.get(i).copied();
        s.owned.push(Owned { sids: r, vmid, vm: vm.name.clone(), device: device.into(), rid_base });
    }
    if s.commands(&[cmd::tlbi_s12_vmall(vmid)]).is_err() {
        log::error!("SMMU {}: {device} stays aborted, not given to VM {}: the SMMU failed", s.path, vm.name);
        return;
    }
    if cfg.fwb != (vm.setting.mode == crate::coherency::Mode::Fwb) {
        // Its FWB encoding of Normal write-back RAM (MemAttr 0b0110) reads, classically, as outer
        // non-cacheable, inner write-through: on hardware that snoops only write-back accesses
        // the device's DMA is then not coherent with the CPU's caches. QEMU models no caches.
        log::warn!(
            "SMMU {}: no S2FWB: VM {}'s device DMA reads its FWB-encoded Stage-2 attributes as classic ones (RAM as non-cacheable); boot with coherency=mair-trap where DMA must be coherent",
            s.path,
            vm.name
        );
    }
    log::info!("SMMU {}: {device} ({total} streams) translates through VM {}'s Stage 2 (VMID {vmid})", s.path, vm.name);
}

/// The SMMU half of Stage-2 TLB maintenance (registered with `mm::stage2::hw`): after the CPU's
/// TLBI for `vmid` (by IPA, or everything with `None`), the same for every SMMU holding streams
/// of that VMID, completed with CMD_SYNC before the table code goes on. An SMMU where that fails
/// is switched off first (`Smmu::fail_closed`): it caches nothing the table code could free.
fn invalidate(vmid: u16, ipa: Option<Ipa>) {
    let Some(all) = SMMUS.get() else { return };
    for (_, s) in all {
        let mut s = s.lock();
        if s.broken || !s.owned.iter().any(|o| o.vmid == vmid) {
            continue;
        }
        let c = match ipa {
            Some(a) => cmd::tlbi_s2_ipa(vmid, a.raw(), false),
            None => cmd::tlbi_s12_vmall(vmid),
        };
        // A failure has switched the SMMU off and said why.
        let _ = s.commands(&[c]);
    }
}

/// Log what the SMMUs reported: event-queue records (per VM, rate limited) and global errors.
/// The handler of their interrupts; also called when a VM ends, so its last faults are in the
/// log before its STATS line.
pub fn poll() {
    let Some(all) = SMMUS.get() else { return };
    for (_, s) in all {
        // From an interrupt the lock may be held by this very CPU (an assignment or an
        // invalidation that took the interrupt): then the next poll does it.
        if let Some(mut s) = s.try_lock() {
            s.check_gerror();
            s.drain_events();
        }
    }
}
