//! What the runtime knows of an interrupt beyond the distributor model, for guest reads of the
//! pending and active registers (GICD_ISPENDR/ICPENDR, ISACTIVER/ICACTIVER and the GICv3
//! redistributor's ones). Once the distributor has handed an interrupt to a vCPU, its state lives
//! in that vCPU's list registers (or queue) and, for a passthrough interrupt, in the physical GIC;
//! a passthrough interrupt the guest disabled is still pending in the physical distributor when
//! its line is asserted. A read shows all of that, as the registers of a real GIC would.

/// The live state of interrupts, as the runtime reads it for one guest access.
pub trait LiveState {
    /// The physical interrupt behind passthrough `intid` (banked INTIDs: the one of vCPU
    /// `vcpu`'s pCPU): whether it is pending.
    fn phys_pending(&self, vcpu: usize, intid: u32) -> bool;
    /// What vCPU `vcpu`'s list registers and queue hold of `intid` (GICv2 SGIs: from any
    /// source): (pending, active).
    fn held(&self, vcpu: usize, intid: u32) -> (bool, bool);
    /// GICv2 SGI `intid` as vCPU `vcpu`'s list registers and queue hold it: the sources (a bit
    /// per sending CPU) it is pending from there.
    fn sgi_sources(&self, vcpu: usize, intid: u32) -> u8;
}

/// No runtime: the distributor model alone (host tests, and the model's own bookkeeping).
pub struct ModelOnly;

impl LiveState for ModelOnly {
    fn phys_pending(&self, _vcpu: usize, _intid: u32) -> bool {
        false
    }
    fn held(&self, _vcpu: usize, _intid: u32) -> (bool, bool) {
        (false, false)
    }
    fn sgi_sources(&self, _vcpu: usize, _intid: u32) -> u8 {
        0
    }
}
