//! The per-VM distributor: interrupt state, the register semantics both GIC versions share
//! (bitmaps, priorities, trigger configuration), delivery of physical interrupts and release of
//! interrupts the distributor held back.

use alloc::vec::Vec;

use super::live::{LiveState, ModelOnly};
use super::redist::VRedist;
use super::types::{IrqState, Retraction, VcpuPlacement, VgicAction, VgicConfig, VgicError, VgicWarning, Virq};
use crate::gic::{is_ppi, is_spi, mpidr_affinity, GicVersion, FIRST_SPI, NR_SGIS};

/// Priority bits the virtual GIC implements (the top five, as GICv2 list registers keep).
pub(crate) const PRIORITY_MASK: u8 = 0xf8;

/// What to do with a physical interrupt el2visor has just acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwIrq {
    /// Queue `virq` on `vcpu`'s list registers (and kick it if it runs elsewhere).
    Deliver { vcpu: usize, virq: Virq },
    /// The guest has it masked, or routed to no vCPU: the distributor holds it pending, the
    /// physical interrupt stays active, and it is delivered (as [`VgicAction::Inject`]) when the
    /// guest unmasks it or routes it to a vCPU.
    Held,
    /// Not this VM's interrupt.
    NotOwned,
}

/// The bitmap registers (one bit per interrupt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bitmap {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl Bitmap {
    /// The bitmap register at `offset - base` of a distributor or SGI_base frame, with the
    /// index of its first interrupt.
    pub(crate) fn decode(offset: u64) -> Option<(Bitmap, u32)> {
        let kind = match offset & !0x7f {
            0x080 => Bitmap::Group,
            0x100 => Bitmap::SetEnable,
            0x180 => Bitmap::ClearEnable,
            0x200 => Bitmap::SetPending,
            0x280 => Bitmap::ClearPending,
            0x300 => Bitmap::SetActive,
            0x380 => Bitmap::ClearActive,
            _ => return None,
        };
        Some((kind, ((offset & 0x7f) / 4 * 32) as u32))
    }
}

/// A VM's virtual distributor (and, for GICv3, its redistributors).
#[derive(Clone, Debug)]
pub struct VDist {
    pub(crate) version: GicVersion,
    pub(crate) vcpus: Vec<VcpuPlacement>,
    /// Per vCPU: banked interrupts and the GICv3 RD_base frame.
    pub(crate) cpus: Vec<VRedist>,
    /// INTIDs 32.. in order.
    pub(crate) spis: Vec<IrqState>,
    pub(crate) ctlr: u32,
    /// The last read that hit a reserved offset, for the caller to log.
    pub(crate) warning: Option<VgicWarning>,
    /// What the last guest write asked to take back from list registers.
    pub(crate) retractions: Vec<Retraction>,
    /// GICv3 with LPIs: the INTID bits (0: no LPIs).
    pub(crate) lpi_bits: u8,
}

impl VDist {
    /// Build the distributor a VM sees after reset: everything disabled, priorities 0, SPIs
    /// level-sensitive and targeted at vCPU 0. Every SPI up to the last passthrough one (rounded
    /// up to the 32 that GICD_TYPER advertises) has its full state; the ones no device backs are
    /// purely virtual (made pending only by ISPENDR).
    pub fn new(config: &VgicConfig) -> Result<Self, VgicError> {
        let max = match config.version {
            GicVersion::V2 => 8,
            GicVersion::V3 => 0x1_0000,
        };
        let n = config.vcpus.len();
        if n == 0 || n > max {
            return Err(VgicError::BadVcpuCount { count: n, max });
        }
        for &intid in &config.hw_ppis {
            if !is_ppi(intid) {
                return Err(VgicError::BadIntid { intid, expected: "a PPI (16..32)" });
            }
        }
        for &intid in &config.hw_spis {
            if !is_spi(intid) {
                return Err(VgicError::BadIntid { intid, expected: "an SPI (32..1020)" });
            }
        }
        let cpus = config
            .vcpus
            .iter()
            .enumerate()
            .map(|(i, p)| VRedist::new(i, p.mpidr, i + 1 == n, &config.hw_ppis))
            .collect();
        let top = config.hw_spis.iter().copied().max().map_or(FIRST_SPI, |m| m + 1);
        let lines = top.div_ceil(32) * 32;
        let mut spis = Vec::new();
        grow_spis(&mut spis, lines, mpidr_affinity(config.vcpus[0].mpidr));
        for &intid in &config.hw_spis {
            spis[(intid - FIRST_SPI) as usize].hw = true;
        }
        Ok(Self {
            version: config.version,
            vcpus: config.vcpus.clone(),
            cpus,
            spis,
            ctlr: 0,
            warning: None,
            retractions: Vec::new(),
            lpi_bits: 0,
        })
    }

    /// The GIC version the VM sees.
    pub fn version(&self) -> GicVersion {
        self.version
    }

    /// Number of vCPUs (and of GICv3 redistributors).
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// Number of interrupt lines the distributor reports (a multiple of 32, private ones included).
    pub fn nr_lines(&self) -> u32 {
        FIRST_SPI + self.spis.len() as u32
    }

    /// vCPU `index`'s redistributor state.
    pub fn redist(&self, index: usize) -> Option<&VRedist> {
        self.cpus.get(index)
    }

    /// The warning left by the last read of a reserved offset, if any (writes return theirs as
    /// [`VgicAction::Warn`]).
    pub fn take_warning(&mut self) -> Option<VgicWarning> {
        self.warning.take()
    }

    /// The interrupts the last [`mmio_write`](Self::mmio_write) or
    /// [`redist_write`](Self::redist_write) cleared the pending or active state of, disabled or
    /// enabled again, and which a vCPU may still hold in its list registers or queue: the
    /// runtime carries each out on that vCPU (see [`Retraction`]) after applying the write's
    /// actions. Each write replaces the previous write's list.
    pub fn take_retractions(&mut self) -> Vec<Retraction> {
        core::mem::take(&mut self.retractions)
    }

    /// What the runtime should do to the hardware when the VM is created: every passthrough
    /// interrupt disabled, and SPIs routed to vCPU 0's pCPU, so the physical GIC matches the
    /// reset state the guest sees.
    pub fn reset_actions(&self) -> Vec<VgicAction> {
        let mut out = Vec::new();
        for (v, cpu) in self.cpus.iter().enumerate() {
            for (intid, st) in cpu.private.iter().enumerate() {
                if st.hw {
                    out.push(VgicAction::DisablePhys { intid: intid as u32, pcpu: self.vcpus[v].pcpu });
                }
            }
        }
        for (i, st) in self.spis.iter().enumerate() {
            if st.hw {
                let intid = FIRST_SPI + i as u32;
                let pcpu = self.vcpus[self.phys_vcpu(0, intid)].pcpu;
                out.push(VgicAction::DisablePhys { intid, pcpu });
                out.push(VgicAction::RouteSpi { intid, pcpu });
            }
        }
        out
    }

    /// A physical interrupt `intid` was acknowledged on the pCPU that runs vCPU `here`.
    pub fn hw_irq(&mut self, here: usize, intid: u32) -> HwIrq {
        if here >= self.vcpus.len() {
            return HwIrq::NotOwned;
        }
        // Not deliverable (disabled, or an SPI routed to no vCPU): held, pending.
        let target = self.target_vcpu(here, intid).filter(|_| self.deliverable(here, intid));
        match (self.irq_mut(here, intid), target) {
            (Some(st), Some(vcpu)) if st.owned && st.hw => {
                st.handed_to = Some(vcpu);
                HwIrq::Deliver { vcpu, virq: virq_of(intid, st, 0) }
            }
            (Some(st), None) if st.owned && st.hw => {
                st.pending = true;
                HwIrq::Held
            }
            _ => HwIrq::NotOwned,
        }
    }

    pub(crate) fn check_vcpu(&self, vcpu: usize) -> Result<(), VgicError> {
        if vcpu < self.vcpus.len() {
            Ok(())
        } else {
            Err(VgicError::NoSuchVcpu { vcpu, count: self.vcpus.len() })
        }
    }

    /// State of `intid` as vCPU `bank` sees it (banked for INTIDs below 32).
    pub(crate) fn irq(&self, bank: usize, intid: u32) -> Option<&IrqState> {
        if intid < FIRST_SPI {
            self.cpus.get(bank).map(|c| &c.private[intid as usize])
        } else {
            self.spis.get((intid - FIRST_SPI) as usize)
        }
    }

    pub(crate) fn irq_mut(&mut self, bank: usize, intid: u32) -> Option<&mut IrqState> {
        if intid < FIRST_SPI {
            self.cpus.get_mut(bank).map(|c| &mut c.private[intid as usize])
        } else {
            self.spis.get_mut((intid - FIRST_SPI) as usize)
        }
    }

    pub(crate) fn group_enabled(&self, group1: bool) -> bool {
        match self.version {
            GicVersion::V2 => self.ctlr & 1 != 0,
            GicVersion::V3 => self.ctlr & (1 << group1 as u32) != 0,
        }
    }

    /// Whether `intid` (as vCPU `bank` sees it) can be handed to a vCPU now: owned, enabled, its
    /// group enabled, and with a target.
    pub(crate) fn deliverable(&self, bank: usize, intid: u32) -> bool {
        self.irq(bank, intid).is_some_and(|st| st.owned && st.enabled && self.group_enabled(st.group1))
            && self.target_vcpu(bank, intid).is_some()
    }

    /// The vCPU an interrupt goes to: its own bank for SGIs/PPIs; for SPIs the lowest vCPU in
    /// ITARGETSR (GICv2; with none set vCPU 0, as KVM does: the reset value of ITARGETSR is
    /// UNKNOWN and guests that never write it still get their SPIs) or the vCPU whose affinity
    /// IROUTER names (GICv3). An IROUTER that names no vCPU has no target (`None`): as the GIC
    /// specification has it and KVM does, the SPI is forwarded to no CPU interface and stays
    /// pending in the distributor until a write routes it to a vCPU ([`Self::deliverable`]).
    pub(crate) fn target_vcpu(&self, bank: usize, intid: u32) -> Option<usize> {
        let st = self.irq(bank, intid)?;
        if intid < FIRST_SPI {
            return Some(bank);
        }
        match self.version {
            GicVersion::V2 => {
                let t = st.targets & self.vcpu_mask();
                Some(if t == 0 { 0 } else { t.trailing_zeros() as usize })
            }
            GicVersion::V3 => self.vcpus.iter().position(|p| mpidr_affinity(p.mpidr) == st.route),
        }
    }

    /// The vCPU on whose pCPU a passthrough interrupt's physical state is kept and routed: its
    /// target, or vCPU 0 for an SPI with none (where it arrives it is held: [`Self::hw_irq`]).
    pub(crate) fn phys_vcpu(&self, bank: usize, intid: u32) -> usize {
        self.target_vcpu(bank, intid).unwrap_or(0)
    }

    pub(crate) fn pcpu_of(&self, vcpu: usize) -> usize {
        self.vcpus[vcpu].pcpu
    }

    /// Bits of the vCPUs that exist, for GICv2 target lists.
    pub(crate) fn vcpu_mask(&self) -> u8 {
        ((1u16 << self.vcpus.len().min(8)) - 1) as u8
    }

    /// Hand every held interrupt that has become deliverable to its vCPU.
    pub(crate) fn release(&mut self, writer: usize, out: &mut Vec<VgicAction>) {
        let mut kicked: Vec<usize> = Vec::new();
        let mut kick = |v: usize, out: &mut Vec<VgicAction>| {
            if v != writer && !kicked.contains(&v) {
                kicked.push(v);
                out.push(VgicAction::Kick(v));
            }
        };
        for bank in 0..self.cpus.len() {
            for intid in 0..FIRST_SPI {
                if !self.deliverable(bank, intid) {
                    continue;
                }
                let v2 = self.version == GicVersion::V2;
                let cpu = &mut self.cpus[bank];
                let st = &mut cpu.private[intid as usize];
                if intid < NR_SGIS && v2 {
                    let sources = core::mem::take(&mut cpu.sgi_sources[intid as usize]);
                    if sources != 0 {
                        st.handed_to = Some(bank);
                    }
                    for src in (0..8).filter(|s| sources & (1 << s) != 0) {
                        let virq = virq_of(intid, st, src as u8);
                        out.push(VgicAction::InjectSgi { vcpu: bank, intid, source: src, virq });
                        kick(bank, out);
                    }
                } else if st.pending {
                    st.pending = false;
                    st.handed_to = Some(bank);
                    let virq = virq_of(intid, st, 0);
                    if intid < NR_SGIS {
                        out.push(VgicAction::InjectSgi { vcpu: bank, intid, source: bank, virq });
                    } else {
                        out.push(VgicAction::Inject { vcpu: bank, virq });
                    }
                    kick(bank, out);
                }
            }
        }
        for i in 0..self.spis.len() {
            let intid = FIRST_SPI + i as u32;
            if !self.spis[i].pending {
                continue;
            }
            if let Some(vcpu) = self.target_vcpu(0, intid).filter(|_| self.deliverable(0, intid)) {
                let st = &mut self.spis[i];
                st.pending = false;
                st.handed_to = Some(vcpu);
                out.push(VgicAction::Inject { vcpu, virq: virq_of(intid, st, 0) });
                kick(vcpu, out);
            }
        }
    }

    /// Read a bitmap register covering INTIDs `first..first + 32` of bank `bank`. The pending and
    /// active registers add the live state: what the vCPU an interrupt was handed to holds of it,
    /// and whether a passthrough interrupt's physical copy is pending.
    pub(crate) fn bitmap_read(&self, kind: Bitmap, bank: usize, first: u32, live: &dyn LiveState) -> u32 {
        let mut v = 0;
        for i in 0..32 {
            let intid = first + i;
            let Some(st) = self.irq(bank, intid) else { break };
            if !st.owned {
                continue;
            }
            let holder = if intid < FIRST_SPI { Some(bank) } else { st.handed_to };
            let held = || holder.map_or((false, false), |h| live.held(h, intid));
            let bit = match kind {
                Bitmap::Group => st.group1,
                Bitmap::SetEnable | Bitmap::ClearEnable => st.enabled,
                Bitmap::SetPending | Bitmap::ClearPending => {
                    st.pending
                        || (intid < NR_SGIS && self.cpus[bank].sgi_sources[intid as usize] != 0)
                        || held().0
                        || (st.hw && live.phys_pending(bank, intid))
                }
                Bitmap::SetActive | Bitmap::ClearActive => st.active || held().1,
            };
            v |= (bit as u32) << i;
        }
        v
    }

    /// Write a bitmap register covering INTIDs `first..first + 32` of bank `bank`, on behalf of
    /// vCPU `writer`.
    pub(crate) fn bitmap_write(
        &mut self,
        kind: Bitmap,
        bank: usize,
        first: u32,
        value: u32,
        writer: usize,
    ) -> Vec<VgicAction> {
        let mut out = Vec::new();
        let mut retract = Vec::new();
        let v2 = self.version == GicVersion::V2;
        for i in 0..32 {
            let intid = first + i;
            let bit = value & (1 << i) != 0;
            let pcpu = self.pcpu_of(self.phys_vcpu(bank, intid));
            let Some(st) = self.irq_mut(bank, intid) else { break };
            if !st.owned || (!bit && kind != Bitmap::Group) {
                continue;
            }
            match kind {
                Bitmap::Group => st.group1 = bit,
                Bitmap::SetEnable | Bitmap::ClearEnable => {
                    let enable = kind == Bitmap::SetEnable;
                    if st.enabled != enable {
                        if st.hw {
                            out.push(if enable { VgicAction::EnablePhys { intid, pcpu } } else { VgicAction::DisablePhys { intid, pcpu } });
                        }
                        // A pending copy the vCPU it was handed to still holds waits there while
                        // disabled, and goes when enabled again (before `release` below hands it
                        // anything new).
                        if let Some(vcpu) = st.handed_to {
                            retract.push(Retraction { vcpu, intid, source: None, pending: false, active: false, hold: Some(!enable) });
                        }
                    }
                    st.enabled = enable;
                }
                // GICv2 SGIs are made pending through SPENDSGIR/CPENDSGIR only.
                Bitmap::SetPending | Bitmap::ClearPending if v2 && intid < NR_SGIS => {}
                Bitmap::SetPending => {
                    if st.hw {
                        out.push(VgicAction::SetPhysPending { intid, pcpu, pending: true });
                    } else {
                        st.pending = true;
                    }
                }
                Bitmap::ClearPending => {
                    if st.hw {
                        // A held HW interrupt was acknowledged: its physical copy is active.
                        if st.pending {
                            out.push(VgicAction::ClearPhysActive { intid, pcpu });
                        }
                        out.push(VgicAction::SetPhysPending { intid, pcpu, pending: false });
                    }
                    st.pending = false;
                    if let Some(vcpu) = st.handed_to {
                        retract.push(Retraction { vcpu, intid, source: None, pending: true, active: false, hold: None });
                    }
                }
                Bitmap::SetActive => st.active = true,
                Bitmap::ClearActive => {
                    if st.hw {
                        out.push(VgicAction::ClearPhysActive { intid, pcpu });
                    }
                    st.active = false;
                    if let Some(vcpu) = st.handed_to {
                        retract.push(Retraction { vcpu, intid, source: None, pending: false, active: true, hold: None });
                    }
                }
            }
        }
        self.retractions.extend(retract);
        if matches!(kind, Bitmap::Group | Bitmap::SetEnable | Bitmap::SetPending) {
            self.release(writer, &mut out);
        }
        out
    }

    /// Read `size` priority bytes starting at INTID `first`.
    pub(crate) fn priority_read(&self, bank: usize, first: u32, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..size as u32 {
            if let Some(st) = self.irq(bank, first + i).filter(|st| st.owned) {
                v |= (st.priority as u64) << (8 * i);
            }
        }
        v
    }

    /// Write `size` priority bytes starting at INTID `first`.
    pub(crate) fn priority_write(&mut self, bank: usize, first: u32, size: u8, value: u64) -> Vec<VgicAction> {
        let mut out = Vec::new();
        for i in 0..size as u32 {
            let intid = first + i;
            let pcpu = self.pcpu_of(self.phys_vcpu(bank, intid));
            let prio = (value >> (8 * i)) as u8 & PRIORITY_MASK;
            if let Some(st) = self.irq_mut(bank, intid).filter(|st| st.owned) {
                if st.hw && st.priority != prio {
                    out.push(VgicAction::SetPhysPriority { intid, pcpu, priority: prio });
                }
                st.priority = prio;
            }
        }
        out
    }

    /// Read an ICFGR word covering INTIDs `first..first + 16`.
    pub(crate) fn icfgr_read(&self, bank: usize, first: u32) -> u32 {
        let mut v = 0;
        for i in 0..16 {
            if let Some(st) = self.irq(bank, first + i).filter(|st| st.owned) {
                v |= (st.edge as u32) << (2 * i + 1);
            }
        }
        v
    }

    /// Write an ICFGR word covering INTIDs `first..first + 16`; SGIs stay edge-triggered.
    pub(crate) fn icfgr_write(&mut self, bank: usize, first: u32, value: u32) -> Vec<VgicAction> {
        let mut out = Vec::new();
        for i in 0..16 {
            let intid = first + i;
            if intid < NR_SGIS {
                continue;
            }
            let edge = value & (1 << (2 * i + 1)) != 0;
            if let Some(st) = self.irq_mut(bank, intid).filter(|st| st.owned) {
                if st.hw && is_spi(intid) && st.edge != edge {
                    out.push(VgicAction::SetPhysTrigger { intid, edge });
                }
                st.edge = edge;
            }
        }
        out
    }

    /// After a write to SPI `intid`'s target (by vCPU `writer`; the target was `before`):
    /// re-route a passthrough SPI's physical copy to its new target's pCPU (one with no target
    /// stays where it is routed, and is held when it arrives), and hand the SPI to the new
    /// target if it was pending with none.
    pub(crate) fn retarget(&mut self, intid: u32, before: Option<usize>, writer: usize, out: &mut Vec<VgicAction>) {
        let after = self.target_vcpu(0, intid);
        if after == before {
            return;
        }
        if let Some(after) = after {
            if self.irq(0, intid).is_some_and(|st| st.hw) {
                out.push(VgicAction::RouteSpi { intid, pcpu: self.pcpu_of(after) });
            }
            if before.is_none() {
                self.release(writer, out);
            }
        }
    }
}

/// The list-register view of an interrupt.
/// Grow the SPI states `spis` to `lines` interrupt lines (a multiple of 32), the new ones owned
/// by the VM and routed to `route`, except the special INTIDs 1020..=1023 (spurious), which the
/// last 32 lines hold: no interrupt, whatever the guest writes there.
pub(super) fn grow_spis(spis: &mut Vec<IrqState>, lines: u32, route: u64) {
    let spi = IrqState { owned: true, route, ..IrqState::default() };
    spis.resize((lines - FIRST_SPI) as usize, spi);
    for st in spis.iter_mut().skip((crate::gic::MAX_SPI_END - FIRST_SPI) as usize) {
        st.owned = false;
    }
}

pub(crate) fn virq_of(intid: u32, st: &IrqState, source: u8) -> Virq {
    Virq {
        intid,
        pintid: st.hw.then_some(intid),
        priority: st.priority,
        group1: st.group1,
        source,
        level: !st.edge,
    }
}

impl VDist {
    /// A guest read of `size` bytes at `offset` in the distributor frame, by vCPU `vcpu`.
    /// Reserved offsets read as zero and leave a warning for [`VDist::take_warning`].
    pub fn mmio_read(&mut self, vcpu: usize, offset: u64, size: u8) -> Result<u64, VgicError> {
        self.mmio_read_live(vcpu, offset, size, &ModelOnly)
    }

    /// [`mmio_read`](Self::mmio_read) with the runtime's `live` state of the interrupts.
    pub fn mmio_read_live(&mut self, vcpu: usize, offset: u64, size: u8, live: &dyn LiveState) -> Result<u64, VgicError> {
        self.check_vcpu(vcpu)?;
        let (value, warning) = match self.version {
            GicVersion::V2 => self.v2_read(vcpu, offset, size, live)?,
            GicVersion::V3 => self.v3_read(vcpu, offset, size, live)?,
        };
        if warning.is_some() {
            self.warning = warning;
        }
        Ok(value)
    }

    /// A guest write of `size` bytes at `offset` in the distributor frame, by vCPU `vcpu`.
    pub fn mmio_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Vec<VgicAction>, VgicError> {
        self.check_vcpu(vcpu)?;
        self.retractions.clear();
        match self.version {
            GicVersion::V2 => self.v2_write(vcpu, offset, size, value),
            GicVersion::V3 => self.v3_write(vcpu, offset, size, value),
        }
    }
}
