//! What an owned SMMU reports: its event queue (fault records, logged per VM and limited per
//! stream; overflows) and its global errors. `poll` (in `vm::smmu`) calls these from the SMMU's
//! interrupts and when a VM ends.

use alloc::string::String;

use super::Smmu;
use crate::drivers::smmuv3::event::{Event, Verdict, RECORD_BYTES};
use crate::drivers::smmuv3::mmio;
use crate::drivers::smmuv3::queue::Ring;
use crate::drivers::smmuv3::regs as r;

/// Pseudo stream IDs under which the SMMU's own conditions are rate limited like a stream's
/// events: global errors, event-queue overflows, records skipped by a drain that ran too long.
const GERROR_KEY: u32 = u32::MAX;
const OVERFLOW_KEY: u32 = u32::MAX - 1;
const SKIPPED_KEY: u32 = u32::MAX - 2;

/// Records one `drain_events` reads, in queue lengths: a device that faults as fast as the
/// records are read must not hold the CPU in the interrupt handler for ever.
const DRAIN_QUEUES: u32 = 4;

impl Smmu {
    /// Whether to log one more of the SMMU's own conditions (`key`), and the suffix that says how
    /// many were not.
    fn limited(&mut self, key: u32) -> Option<String> {
        match self.limiter.note(key) {
            Verdict::Log => Some(String::new()),
            Verdict::LogAfter(k) => Some(alloc::format!(" ({k} more not logged)")),
            Verdict::Quiet => None,
        }
    }

    /// Read and log the records in the event queue until it is empty. PROD is read again after
    /// each batch: the SMMU raises its interrupt only when the queue goes from empty to non-empty,
    /// so records it adds while this runs would otherwise wait for a later poll. Every CONS write
    /// acknowledges the overflow PROD shows (OVACKFLG = OVFLG, IHI 0070 7.4), so each overflow
    /// is reported once. After `DRAIN_QUEUES` queues' worth of records the rest are skipped
    /// unread (counted in one limited line), leaving the queue empty so the next record raises
    /// the interrupt again.
    pub(super) fn drain_events(&mut self) {
        let q = self.evtq_ring;
        let mut cons = self.regs.read32(r::EVENTQ_CONS);
        let mut budget = DRAIN_QUEUES * q.entries();
        loop {
            let prod = self.regs.read32(r::EVENTQ_PROD);
            self.regs.fence();
            if Ring::overflowed(prod, cons) {
                if let Some(more) = self.limited(OVERFLOW_KEY) {
                    log::warn!("SMMU {}: its event queue overflowed: the SMMU dropped events{more}", self.path);
                }
            }
            // CONS as the register holds it: read above, or written last time round.
            let was = cons;
            cons = q.acknowledged(cons, prod);
            while !q.empty(prod, cons) && budget > 0 {
                // SAFETY: the record CONS points at, in the event queue el2visor allocated.
                let rec = unsafe { mmio::load::<4>(self.evtq + (RECORD_BYTES as u64) * u64::from(q.index(q.pos(cons)))) };
                self.log_event(&Event::decode(&rec));
                cons = q.next_cons(cons);
                budget -= 1;
            }
            let skipped = q.len(prod, cons);
            if skipped != 0 {
                cons = q.acknowledged(prod, prod);
                if let Some(more) = self.limited(SKIPPED_KEY) {
                    log::warn!("SMMU {}: {skipped} event records skipped unread: faults keep coming{more}", self.path);
                }
            }
            if cons == was {
                return;
            }
            self.regs.fence();
            self.regs.write32(r::EVENTQ_CONS, cons);
            if budget == 0 {
                return;
            }
        }
    }

    /// One record: a line naming the VM and the stream, limited per stream.
    fn log_event(&mut self, e: &Event) {
        let verdict = self.limiter.note(e.sid);
        if verdict == Verdict::Quiet {
            return;
        }
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

    pub(super) fn check_gerror(&mut self) {
        let (g, n) = (self.regs.read32(r::GERROR), self.regs.read32(r::GERRORN));
        let active = g ^ n;
        if active == 0 {
            return;
        }
        // Acknowledge: GERRORN takes GERROR's value. A device can provoke these again and again:
        // the lines are limited like the events.
        self.regs.write32(r::GERRORN, g);
        let what = if active & r::GERROR_EVENTQ_ABT != 0 {
            ": an access to the event queue aborted (EVENTQ_ABT_ERR), events were lost"
        } else if active & r::GERROR_CMDQ_ERR != 0 {
            ": command queue error"
        } else {
            ""
        };
        if let Some(more) = self.limited(GERROR_KEY) {
            log::error!("SMMU {}: global error {active:#x}{what}{more}", self.path);
        }
    }
}
