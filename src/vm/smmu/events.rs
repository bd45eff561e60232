//! What an owned SMMU reports: its event queue (fault records, logged per VM and limited per
//! stream) and its global errors. `poll` (in `vm::smmu`) calls these from the SMMU's interrupts
//! and when a VM ends.

use super::Smmu;
use crate::drivers::smmuv3::event::{Event, Verdict, RECORD_BYTES};
use crate::drivers::smmuv3::mmio;
use crate::drivers::smmuv3::regs as r;

impl Smmu {
    /// Read and log every record in the event queue.
    pub(super) fn drain_events(&mut self) {
        let q = self.evtq_ring;
        let prod = self.regs.read32(r::EVENTQ_PROD);
        let mut cons = q.pos(self.regs.read32(r::EVENTQ_CONS));
        if prod & (1 << 31) != (self.regs.read32(r::EVENTQ_CONS) & (1 << 31)) {
            log::warn!("SMMU {}: its event queue overflowed; events were lost", self.path);
            // Acknowledge the overflow by copying OVFLG into CONS.
            cons |= prod & (1 << 31);
        }
        while !q.empty(prod, cons) {
            // SAFETY: the record CONS points at, in the event queue el2visor allocated.
            let rec = unsafe { mmio::load::<4>(self.evtq + (RECORD_BYTES as u64) * u64::from(q.index(q.pos(cons)))) };
            let e = Event::decode(&rec);
            let verdict = self.limiter.note(e.sid);
            if verdict != Verdict::Quiet {
                let owner = self.owned.iter().find(|o| o.sids.contains(e.sid));
                let vm = owner.map_or("no VM (unassigned stream)", |o| o.vm.as_str());
                let stream = owner.map_or_else(|| alloc::format!("{:#x}", e.sid), |o| o.describe(e.sid));
                match verdict {
                    Verdict::LogAfter(n) => {
                        log::warn!("SMMU: VM {vm}: stream {stream}: {e} ({n} more events of this stream were not logged)")
                    }
                    _ => log::warn!("SMMU: VM {vm}: stream {stream}: {e}"),
                }
            }
            cons = q.next(cons) | (cons & (1 << 31));
        }
        self.regs.write32(r::EVENTQ_CONS, cons);
    }

    pub(super) fn check_gerror(&mut self) {
        let (g, n) = (self.regs.read32(r::GERROR), self.regs.read32(r::GERRORN));
        let active = g ^ n;
        if active == 0 {
            return;
        }
        // Acknowledge: GERRORN takes GERROR's value. A DMA storm can overflow the event queue
        // again and again: these lines are limited like the events (stream ID u32::MAX).
        self.regs.write32(r::GERRORN, g);
        let what = if active & r::GERROR_EVENTQ_ABT != 0 {
            ": the event queue was full, events were dropped"
        } else if active & r::GERROR_CMDQ_ERR != 0 {
            ": command queue error"
        } else {
            ""
        };
        match self.limiter.note(u32::MAX) {
            Verdict::Log => log::error!("SMMU {}: global error {active:#x}{what}", self.path),
            Verdict::LogAfter(k) => log::error!("SMMU {}: global error {active:#x}{what} ({k} more not logged)", self.path),
            Verdict::Quiet => {}
        }
    }
}
