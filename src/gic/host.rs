//! [`HostGic`]: one interface over the GICv2 and GICv3 host drivers, so the runtime never asks
//! which version it runs on. CPUs are named by MPIDR.

use super::v2::GicV2;
use super::v3::{current_mpidr, GicV3};
use super::vgic::lr::LrFormat;
use super::vgic::VgicAction;
use super::{is_spi, mpidr_affinity, Acked, GicError, GicInfo, GicVersion, FIRST_SPI};

/// The virtual CPU interface state that is not in the list registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifState {
    /// GICH_VMCR or ICH_VMCR_EL2.
    pub vmcr: u64,
    /// ICH_AP0R<n>_EL2; on GICv2, `ap0r[0]` holds GICH_APR.
    pub ap0r: [u32; 4],
    /// ICH_AP1R<n>_EL2 (GICv3 only).
    pub ap1r: [u32; 4],
}

/// The machine's GIC.
pub enum HostGic {
    V2(GicV2),
    V3(GicV3),
}

impl HostGic {
    /// Build the driver for `info` and reset the distributor. Call once, on the boot CPU, then
    /// [`init_cpu`](Self::init_cpu) on every CPU (the boot CPU too).
    ///
    /// # Safety
    /// `info`'s frames must be the GIC described, identity mapped as Device memory at EL2, and
    /// nothing else may drive them.
    pub unsafe fn init_distributor(info: &GicInfo) -> Result<Self, GicError> {
        let gic = match info.version {
            // SAFETY: forwarded from this function's contract.
            GicVersion::V2 => HostGic::V2(unsafe { GicV2::new(info) }?),
            // SAFETY: forwarded from this function's contract.
            GicVersion::V3 => HostGic::V3(unsafe { GicV3::new(info) }?),
        };
        match &gic {
            HostGic::V2(g) => g.init_distributor(),
            HostGic::V3(g) => g.init_distributor(),
        }
        Ok(gic)
    }

    pub fn version(&self) -> GicVersion {
        match self {
            HostGic::V2(_) => GicVersion::V2,
            HostGic::V3(_) => GicVersion::V3,
        }
    }

    /// The list-register layout, for [`crate::gic::vgic::lr::LrManager::new`].
    pub fn lr_format(&self) -> LrFormat {
        self.version().into()
    }

    /// Set up the calling CPU's interface (EOImode = 1), banked interrupts, virtual interface and
    /// maintenance interrupt.
    pub fn init_cpu(&self) -> Result<(), GicError> {
        match self {
            HostGic::V2(g) => {
                g.init_cpu(current_mpidr());
                Ok(())
            }
            HostGic::V3(g) => g.init_cpu(),
        }
    }

    /// Acknowledge the highest-priority pending interrupt, if any.
    pub fn ack(&self) -> Option<Acked> {
        match self {
            HostGic::V2(g) => g.ack(),
            HostGic::V3(g) => g.ack(),
        }
    }

    /// The INTID of the highest-priority pending interrupt (1023: none), without acknowledging
    /// it.
    pub fn highest_pending(&self) -> u32 {
        match self {
            HostGic::V2(g) => g.highest_pending(),
            HostGic::V3(g) => g.highest_pending(),
        }
    }

    /// Priority drop only; the interrupt stays active until deactivated (by el2visor with
    /// [`deactivate`](Self::deactivate), or by the guest through a HW list register).
    pub fn eoi(&self, a: Acked) {
        match self {
            HostGic::V2(g) => g.eoi(a),
            HostGic::V3(g) => g.eoi(a),
        }
    }

    pub fn deactivate(&self, a: Acked) {
        match self {
            HostGic::V2(g) => g.deactivate(a),
            HostGic::V3(g) => g.deactivate(a),
        }
    }

    /// Send SGI `intid` (0..16) to the CPU with this MPIDR.
    pub fn send_sgi(&self, mpidr: u64, intid: u32) -> Result<(), GicError> {
        if intid >= 16 {
            return Err(GicError::BadIntid { intid, expected: "an SGI (0..16)" });
        }
        match self {
            HostGic::V2(g) => g.send_sgi(mpidr, intid),
            HostGic::V3(g) => {
                g.send_sgi(mpidr, intid);
                Ok(())
            }
        }
    }

    /// GICv2 can only change a CPU's banked interrupts from that CPU.
    fn check_local(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        if matches!(self, HostGic::V2(_))
            && intid < FIRST_SPI
            && mpidr_affinity(mpidr) != mpidr_affinity(current_mpidr())
        {
            return Err(GicError::RemotePrivate { intid, mpidr });
        }
        Ok(())
    }

    /// Enable `intid` for the CPU with this MPIDR (an SPI is routed there first).
    pub fn enable(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        if is_spi(intid) {
            self.route_spi(intid, mpidr)?;
        }
        self.set_enabled(intid, mpidr, true)
    }

    /// Disable `intid` (SGIs and PPIs: the bank of the CPU with this MPIDR).
    pub fn disable(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.set_enabled(intid, mpidr, false)
    }

    fn set_enabled(&self, intid: u32, mpidr: u64, on: bool) -> Result<(), GicError> {
        self.check_local(intid, mpidr)?;
        match self {
            HostGic::V2(g) => {
                g.set_enabled(intid, on);
                Ok(())
            }
            HostGic::V3(g) => g.set_enabled(intid, mpidr, on),
        }
    }

    pub fn route_spi(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        if !is_spi(intid) {
            return Err(GicError::BadIntid { intid, expected: "an SPI (32..1020)" });
        }
        match self {
            HostGic::V2(g) => g.route_spi(intid, mpidr),
            HostGic::V3(g) => {
                g.route_spi(intid, mpidr);
                Ok(())
            }
        }
    }

    pub fn set_priority(&self, intid: u32, mpidr: u64, priority: u8) -> Result<(), GicError> {
        self.check_local(intid, mpidr)?;
        match self {
            HostGic::V2(g) => {
                g.set_priority(intid, priority);
                Ok(())
            }
            HostGic::V3(g) => g.set_priority(intid, mpidr, priority),
        }
    }

    /// Edge-triggered (`true`) or level-sensitive SPI.
    pub fn set_trigger(&self, intid: u32, edge: bool) -> Result<(), GicError> {
        if !is_spi(intid) {
            return Err(GicError::BadIntid { intid, expected: "an SPI (32..1020)" });
        }
        match self {
            HostGic::V2(g) => g.set_trigger(intid, edge),
            HostGic::V3(g) => g.set_trigger(intid, edge),
        }
        Ok(())
    }

    pub fn set_pending(&self, intid: u32, mpidr: u64, pending: bool) -> Result<(), GicError> {
        self.check_local(intid, mpidr)?;
        match self {
            HostGic::V2(g) => {
                g.set_pending(intid, pending);
                Ok(())
            }
            HostGic::V3(g) => g.set_pending(intid, mpidr, pending),
        }
    }

    /// Whether `intid` is pending in the physical GIC (SGIs and PPIs: in the bank of the CPU with
    /// this MPIDR). For a level-sensitive interrupt that is active this is the line's level.
    pub fn is_pending(&self, intid: u32, mpidr: u64) -> Result<bool, GicError> {
        self.check_local(intid, mpidr)?;
        match self {
            HostGic::V2(g) => Ok(g.is_pending(intid)),
            HostGic::V3(g) => g.is_pending(intid, mpidr),
        }
    }

    pub fn clear_active(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        self.check_local(intid, mpidr)?;
        match self {
            HostGic::V2(g) => {
                g.clear_active(intid);
                Ok(())
            }
            HostGic::V3(g) => g.clear_active(intid, mpidr),
        }
    }

    /// Carry out the hardware part of a [`VgicAction`]; `mpidr_of` maps a pCPU index to its
    /// MPIDR. Returns `Ok(false)` for actions that are not about the physical GIC (`Inject`,
    /// `InjectSgi`, `Kick`, `Warn`): those are the runtime's.
    pub fn apply(&self, action: &VgicAction, mpidr_of: impl Fn(usize) -> u64) -> Result<bool, GicError> {
        match *action {
            VgicAction::EnablePhys { intid, pcpu } => self.enable(intid, mpidr_of(pcpu))?,
            VgicAction::DisablePhys { intid, pcpu } => self.disable(intid, mpidr_of(pcpu))?,
            VgicAction::SetPhysPriority { intid, pcpu, priority } => {
                self.set_priority(intid, mpidr_of(pcpu), priority)?
            }
            VgicAction::SetPhysTrigger { intid, edge } => self.set_trigger(intid, edge)?,
            VgicAction::RouteSpi { intid, pcpu } => self.route_spi(intid, mpidr_of(pcpu))?,
            VgicAction::SetPhysPending { intid, pcpu, pending } => {
                self.set_pending(intid, mpidr_of(pcpu), pending)?
            }
            VgicAction::ClearPhysActive { intid, pcpu } => self.clear_active(intid, mpidr_of(pcpu))?,
            VgicAction::InjectSgi { .. }
            | VgicAction::Inject { .. }
            | VgicAction::Kick(_)
            | VgicAction::Warn(_) => return Ok(false),
        }
        Ok(true)
    }

    /// Number of list registers.
    /// GICv3: the RD_base of `mpidr`'s redistributor and GICD_TYPER (for the ITS driver).
    pub fn v3_redist(&self, mpidr: u64) -> Option<(usize, u32)> {
        match self {
            HostGic::V3(g) => g.find_redist(mpidr).ok().map(|rd| (rd, g.typer_raw())),
            HostGic::V2(_) => None,
        }
    }

    pub fn lr_count(&self) -> usize {
        match self {
            HostGic::V2(g) => g.lr_count(),
            HostGic::V3(g) => g.lr_count(),
        }
    }

    pub fn read_lr(&self, i: usize) -> u64 {
        match self {
            HostGic::V2(g) => g.read_lr(i),
            HostGic::V3(g) => g.read_lr(i),
        }
    }

    pub fn write_lr(&self, i: usize, v: u64) {
        match self {
            HostGic::V2(g) => g.write_lr(i, v),
            HostGic::V3(g) => g.write_lr(i, v),
        }
    }

    /// Request (or stop requesting) the underflow maintenance interrupt.
    pub fn set_underflow(&self, on: bool) {
        match self {
            HostGic::V2(g) => g.set_underflow(on),
            HostGic::V3(g) => g.set_underflow(on),
        }
    }

    /// Trap (or stop trapping) the guest's accesses to the group 1 CPU interface registers
    /// (GICv3 ICH_HCR_EL2.TALL1: acknowledge, EOI, ...). GICv2 has no such trap: nothing.
    pub fn set_group1_trap(&self, on: bool) {
        if let HostGic::V3(g) = self {
            g.set_group1_trap(on);
        }
    }

    /// Make the CPU interface re-evaluate pending physical interrupts (GICv2; see
    /// [`GicV2::refresh`]). GICv3 needs nothing.
    pub fn refresh(&self) {
        if let HostGic::V2(g) = self {
            g.refresh();
        }
    }

    /// Whether guests may need to trap WFI so that an idle vCPU gives el2visor the chance to
    /// [`refresh`](Self::refresh) before the CPU sleeps (GICv2): set as a vCPU starts, then only
    /// while a list register holds a physical interrupt (`gic::lrs::set_wfi_trap`).
    pub fn needs_wfi_trap(&self) -> bool {
        matches!(self, HostGic::V2(_))
    }

    /// GICH_MISR / ICH_MISR_EL2: why the maintenance interrupt fired.
    pub fn misr(&self) -> u32 {
        match self {
            HostGic::V2(g) => g.misr(),
            HostGic::V3(g) => g.misr(),
        }
    }

    /// Bitmap of empty list registers.
    pub fn elrsr(&self) -> u64 {
        match self {
            HostGic::V2(g) => g.elrsr(),
            HostGic::V3(g) => g.elrsr(),
        }
    }

    /// Save the virtual CPU interface state outside the list registers.
    pub fn save_vif(&self) -> VifState {
        match self {
            HostGic::V2(g) => VifState { vmcr: g.vmcr() as u64, ap0r: [g.apr(), 0, 0, 0], ap1r: [0; 4] },
            HostGic::V3(g) => {
                let (ap0r, ap1r) = g.aprs();
                VifState { vmcr: g.vmcr(), ap0r, ap1r }
            }
        }
    }

    /// Put the virtual CPU interface outside the list registers back to its reset state (a
    /// vCPU starts: PSCI CPU_ON, a VM reset).
    pub fn reset_vif(&self) {
        match self {
            HostGic::V2(g) => g.reset_vif(),
            HostGic::V3(g) => g.reset_vif(),
        }
    }

    /// Restore what [`save_vif`](Self::save_vif) returned.
    pub fn restore_vif(&self, s: &VifState) {
        match self {
            HostGic::V2(g) => {
                g.set_vmcr(s.vmcr as u32);
                g.set_apr(s.ap0r[0]);
            }
            HostGic::V3(g) => {
                g.set_vmcr(s.vmcr);
                g.set_aprs(&s.ap0r, &s.ap1r);
            }
        }
    }
}
