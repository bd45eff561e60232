//! The pristine images of a running VM, copied after its first boot started (the plan and why:
//! [`super::pristine`]). Every span still to copy is write-protected at Stage 2; a span is
//! copied, then made writable again, by whichever comes first: the background copier (an idle
//! pCPU, [`LazyPristine::copy_all`]) or a guest write to it ([`LazyPristine::fault`]). Nothing
//! but the guest writes those spans meanwhile (the VM is built without a snapshot area and
//! without the GDB stub, whose writes would bypass Stage 2), and a reset completes every copy
//! before it reloads.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::arch::{cache, sysreg};
use crate::mm::addr::{Ipa, SIZE_2M};
use crate::mm::frames::global::GlobalPages;
use crate::mm::stage2::hw::HwTlb;
use crate::mm::stage2::{S2Attrs, S2Error, Stage2};

use super::pristine::{find, Span};

/// A span's states ([`LazyPristine::state`]).
const TO_COPY: u8 = 0;
const COPYING: u8 = 1;
const DONE: u8 = 2;

pub struct LazyPristine {
    spans: Vec<Span>,
    /// The order in which [`Self::copy_all`] takes the spans (`super::pristine::copy_order`).
    order: Vec<usize>,
    /// Each span's state, by index: [`TO_COPY`], [`COPYING`] (by one CPU, which alone writes
    /// the state then) or [`DONE`] (copied, and writable again). Per span, so that a guest's
    /// first write to one span never waits for the copy of another.
    state: Vec<AtomicU8>,
    /// How many spans are not [`DONE`]: the one load a Stage-2 fault pays when all are done.
    remaining: AtomicUsize,
    /// No FWB: the guest may write with its caches off, so the lines the copy read go.
    clean: bool,
    /// Spans copied on a guest's first write (each an abort exit), and by [`Self::copy_all`].
    by_fault: AtomicU32,
    by_copier: AtomicU32,
}

impl LazyPristine {
    /// For `spans`, which the VM's Stage 2 maps read-only (`super::pristine::split`), copied in
    /// the background in `order` (`super::pristine::copy_order`). `clean`: the VM has no FWB.
    pub fn new(spans: Vec<Span>, order: Vec<usize>, clean: bool) -> Self {
        let n = spans.len();
        debug_assert!(order.len() == n && (0..n).all(|i| order.contains(&i)));
        LazyPristine {
            spans,
            order,
            state: (0..n).map(|_| AtomicU8::new(TO_COPY)).collect(),
            remaining: AtomicUsize::new(n),
            clean,
            by_fault: AtomicU32::new(0),
            by_copier: AtomicU32::new(0),
        }
    }

    /// Whether some pristine copy is still to be made.
    pub fn pending(&self) -> bool {
        self.remaining.load(Ordering::Acquire) > 0
    }

    /// A Stage-2 abort at `ipa` (data or instruction): when it is in a span still to copy (a
    /// first write: the spans are readable), copy the span and make it writable. `true` when the
    /// guest must just run the access again: also when another CPU copied the span meanwhile,
    /// or changed its mapping just then (the change is break-before-make: a fetch or read in
    /// between faults too, and its abort may be taken after every copy is done).
    pub fn fault(&self, s2: &spin::Mutex<Stage2<GlobalPages, HwTlb>>, ipa: u64) -> bool {
        let Some(i) = find(&self.spans, ipa) else { return false };
        match self.copy_span(s2, i, true) {
            // Left read-only: the guest gets the abort rather than fault forever.
            Err(_) => return false,
            Ok(0) => {}
            Ok(_) => {
                log::debug!(
                    "pristine copy: span {i} (IPA {:#x}) copied for a guest write to {ipa:#x}, {} us after the counter started",
                    self.spans[i].ipa,
                    super::snapshot::ticks_us(sysreg::cntpct_el0())
                );
                self.by_fault.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Copied: the page is RAM again, read-write, unless it is not RAM at all (a page of
        // the span el2visor never maps), whose abort is the guest's.
        s2.lock().translate(Ipa(ipa)).is_some_and(|(_, a, _)| a == S2Attrs::ram())
    }

    /// Copy every span still to copy (the background copier, or a reset before it finished).
    /// Returns the bytes this call copied and the counter ticks it took.
    pub fn copy_all(&self, s2: &spin::Mutex<Stage2<GlobalPages, HwTlb>>) -> (u64, u64) {
        let t0 = sysreg::cntpct_el0();
        let mut bytes = 0;
        // First the spans no guest write is copying, then (waiting for those) the rest; each
        // time in `order`: the kernel from its image's end down, where its data and BSS are,
        // which it writes first (a Linux guest's first writes hit 4 of its last 5 spans within
        // 20 ms, before a first-to-last copier got there), then the initrd, which the guest
        // writes only once it has unpacked it.
        for wait in [false, true] {
            for &i in &self.order {
                let b = self.copy_span(s2, i, wait).unwrap_or(0);
                if b > 0 {
                    self.by_copier.fetch_add(1, Ordering::Relaxed);
                }
                bytes += b;
            }
        }
        (bytes, sysreg::cntpct_el0() - t0)
    }

    /// (spans copied on a guest's first write, spans copied by `copy_all`), so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.by_fault.load(Ordering::Relaxed), self.by_copier.load(Ordering::Relaxed))
    }

    /// Copy span `i` unless it is done, then make it writable. Returns the bytes this call
    /// copied. When another CPU is copying it: wait for that copy (a failed one puts the span
    /// back to copy, and this CPU tries) if `wait`, else return at once.
    fn copy_span(&self, s2: &spin::Mutex<Stage2<GlobalPages, HwTlb>>, i: usize, wait: bool) -> Result<u64, S2Error> {
        let state = &self.state[i];
        loop {
            match state.compare_exchange(TO_COPY, COPYING, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => break,
                Err(DONE) => return Ok(0),
                Err(_) if !wait => return Ok(0),
                Err(_) => core::hint::spin_loop(),
            }
        }
        let span = &self.spans[i];
        for p in &span.pieces {
            // SAFETY: `p.pa` is the image in the VM's RAM, identity mapped at EL2 and read-only
            // to the guest until this span is marked done; `p.slot` is the image's pristine slot
            // in el2visor's memory, which nothing else writes. They do not overlap.
            unsafe { cache::copy(p.slot, p.pa, p.len) };
            if self.clean {
                // The copy left clean lines of guest RAM in the caches: without FWB a guest that
                // writes with its caches off and then turns them on could read those instead.
                cache::clean_inval_range(p.pa, p.len as usize);
            }
        }
        // Only el2visor reads the slots, with its caches on: no maintenance.
        if let Err(e) = s2.lock().protect(Ipa(span.ipa), SIZE_2M, S2Attrs::ram()) {
            log::error!("pristine copy: making IPA {:#x} writable again: {e}", span.ipa);
            state.store(TO_COPY, Ordering::Release);
            return Err(e);
        }
        state.store(DONE, Ordering::Release);
        self.remaining.fetch_sub(1, Ordering::AcqRel);
        Ok(span.bytes())
    }
}
