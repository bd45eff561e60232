//! The per-CPU record: everything el2visor keeps for one physical CPU, in one place.
//!
//! TPIDR_EL2 holds the address of the running CPU's [`PerCpu`] (boot/entry.S sets it before any
//! Rust runs), so a CPU finds its own record in one `mrs`. The assembly reads the first words
//! (`mpidr` in entry.S, the TVM fast-path words in boot/tvm_fastpath.S); their offsets are passed
//! to the assembly from this struct with `offset_of!` (see `arch::boot`), so the two cannot drift.
//!
//! This module is plain data, below every other layer: a CPU's VM and vCPU are numbers (the VM's
//! slot in `vm::table`, the vCPU's index in it), not references, so nothing here depends on the
//! layers that own those things.

#![deny(unsafe_code)]

pub mod stats;

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use stats::{ExitCounters, Totals};

/// The most CPUs el2visor brings up (the GICv2 limit, and the size of the stack area in linker.ld).
pub const MAX_CPUS: usize = 8;

/// `tvm_mode`: the TVM fast path (boot/tvm_fastpath.S) is off; every trapped write goes to the
/// Rust slow path.
pub const TVM_FAST_OFF: u64 = 0;
/// `tvm_mode`: the fast path serves trapped writes and writes the values unchanged.
pub const TVM_FAST_PLAIN: u64 = 1;
/// `tvm_mode`: the fast path serves trapped writes, MAIR_EL1 through the mair-trap override
/// (`crate::coherency::override_mair`).
pub const TVM_FAST_MAIR_OVERRIDE: u64 = 2;

/// The `tvm_mode` for a VM's coherency setting: off with `fastpath=off`, else the same rule as
/// the TVM write rule in `trap::sysreg` (the override only in mair-trap mode).
pub const fn tvm_mode_for(setting: crate::coherency::Setting) -> u64 {
    match (setting.fast_path, setting.mode) {
        (false, _) => TVM_FAST_OFF,
        (true, crate::coherency::Mode::MairTrap) => TVM_FAST_MAIR_OVERRIDE,
        (true, _) => TVM_FAST_PLAIN,
    }
}

/// "No VM" in [`PerCpu::vm`].
pub const NO_VM: usize = usize::MAX;

/// The last Stage-2 abort a CPU's vCPU took, to tell a guest stuck on one abort from one that
/// makes progress. An abort is the same as the last one only if its instruction (ELR), syndrome
/// (ESR) and faulting address (the IPA) all match: a guest scanning memory from one load takes
/// aborts at the same ELR and ESR, but on a new address each time, and is making progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AbortHistory {
    pub elr: u64,
    pub esr: u64,
    pub addr: u64,
    pub count: u32,
}

impl AbortHistory {
    /// Record an abort at `elr` with syndrome `esr` on address `addr`; returns how many times in
    /// a row that same abort happened.
    pub fn record(&mut self, elr: u64, esr: u64, addr: u64) -> u32 {
        if self.count > 0 && self.elr == elr && self.esr == esr && self.addr == addr {
            self.count += 1;
        } else {
            *self = AbortHistory { elr, esr, addr, count: 1 };
        }
        self.count
    }

    /// Forget the history: the vCPU left the guest for something other than an abort, so
    /// whatever it does next is not "the same abort again, in a row".
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

/// One physical CPU's record. `repr(C)`: the first four words are read by the assembly.
#[repr(C)]
pub struct PerCpu {
    /// What the TVM fast path does for this CPU's vCPU: one of `TVM_FAST_*` (the assembly reads
    /// it first on every synchronous exception from a guest).
    pub tvm_mode: AtomicU64,
    /// The MAIR_EL1 value the guest last wrote, before the mair-trap override (the hardware holds
    /// the rewritten value; the fast and the slow path both keep this).
    pub guest_mair: AtomicU64,
    /// TVM register writes served by the fast path.
    pub tvm_fast: AtomicU64,
    /// MPIDR affinity (Aff3..Aff0) of this CPU; `secondary_entry` looks itself up by it with the
    /// MMU off (the boot CPU cleans it to the point of coherency first). `u64::MAX`: no CPU.
    pub mpidr: AtomicU64,
    /// Logical CPU number: the index in [`PERCPU`].
    pub index: usize,
    /// This CPU's EL2 stack, `[lo, hi)`, set at boot.
    pub stack_lo: AtomicU64,
    pub stack_hi: AtomicU64,
    /// Whether the CPU came up at EL2 and runs el2visor.
    pub online: AtomicBool,
    /// The VM whose vCPU this CPU runs (its slot in the VM table), or [`NO_VM`].
    pub vm: AtomicUsize,
    /// That vCPU's index in its VM.
    pub vcpu: AtomicUsize,
    /// TVM register writes served by the Rust slow path.
    pub tvm_slow: AtomicU64,
    /// The SCTLR_EL1 and TCR_EL1 values the guest last wrote, before the mair-trap rewrite
    /// (the slow path serves both in that mode and keeps them, as `guest_mair`).
    pub guest_sctlr: AtomicU64,
    pub guest_tcr: AtomicU64,
    /// Why this CPU's vCPU left the guest, counted without locks.
    pub exits: ExitCounters,
    /// The last abort injected into this CPU's vCPU.
    pub last_abort: spin::Mutex<AbortHistory>,
    /// An abort was recorded in `last_abort` since it was last cleared (only this CPU reads or
    /// writes either): [`Self::forget_aborts`] takes the lock only then (issue 15: every exit
    /// clears the history, and a lock and release cost more than this one load).
    abort_recorded: AtomicBool,
    /// Set while this CPU reports a fatal error: a second fault there parks at once.
    pub in_fatal: AtomicBool,
    /// Open while `arch::serror` collects an SError a guest left pending: the EL2 vector records
    /// one taken then in `serror_taken` (its ESR with bit 63 set) instead of calling it fatal.
    pub serror_window: AtomicBool,
    pub serror_taken: AtomicU64,
}

impl PerCpu {
    const fn new(index: usize) -> Self {
        PerCpu {
            tvm_mode: AtomicU64::new(TVM_FAST_OFF),
            guest_mair: AtomicU64::new(0),
            tvm_fast: AtomicU64::new(0),
            mpidr: AtomicU64::new(u64::MAX),
            index,
            stack_lo: AtomicU64::new(0),
            stack_hi: AtomicU64::new(0),
            online: AtomicBool::new(false),
            vm: AtomicUsize::new(NO_VM),
            vcpu: AtomicUsize::new(0),
            tvm_slow: AtomicU64::new(0),
            guest_sctlr: AtomicU64::new(0),
            guest_tcr: AtomicU64::new(0),
            exits: ExitCounters::new(),
            last_abort: spin::Mutex::new(AbortHistory { elr: 0, esr: 0, addr: 0, count: 0 }),
            abort_recorded: AtomicBool::new(false),
            in_fatal: AtomicBool::new(false),
            serror_window: AtomicBool::new(false),
            serror_taken: AtomicU64::new(0),
        }
    }

    /// Record a guest abort in `last_abort` ([`AbortHistory::record`]): how many times in a row
    /// the same one happened.
    pub fn record_abort(&self, elr: u64, esr: u64, addr: u64) -> u32 {
        let n = self.last_abort.lock().record(elr, esr, addr);
        self.abort_recorded.store(true, Ordering::Relaxed);
        n
    }

    /// Progress (any exit but an abort): forget the abort history ([`AbortHistory::clear`]).
    #[inline(always)]
    pub fn forget_aborts(&self) {
        if self.abort_recorded.load(Ordering::Relaxed) {
            self.last_abort.lock().clear();
            self.abort_recorded.store(false, Ordering::Relaxed);
        }
    }

    /// The VM slot and vCPU index this CPU runs, if any.
    pub fn assignment(&self) -> Option<(usize, usize)> {
        match self.vm.load(Ordering::Acquire) {
            NO_VM => None,
            vm => Some((vm, self.vcpu.load(Ordering::Acquire))),
        }
    }

    /// Give this CPU vCPU `vcpu` of the VM in table slot `vm`.
    pub fn assign(&self, vm: usize, vcpu: usize) {
        self.vcpu.store(vcpu, Ordering::Release);
        self.vm.store(vm, Ordering::Release);
    }

    /// This CPU's exits so far, fast-path TVM writes counted as `sysreg_fast` exits.
    pub fn totals(&self) -> Totals {
        let mut t = self.exits.snapshot();
        t.add_count(stats::ExitReason::SysregFast, self.tvm_fast.load(Ordering::Relaxed));
        t
    }
}

const fn make_percpu() -> [PerCpu; MAX_CPUS] {
    let mut a = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        a[i].index = i;
        i += 1;
    }
    a
}

/// Every CPU's record; TPIDR_EL2 of CPU `i` holds `&PERCPU[i]`. Named for boot/entry.S, which
/// finds a secondary's record by its MPIDR before any Rust runs.
// The one exception to this module's `deny(unsafe_code)`: an unmangled name, which only the
// assembly uses, and no other symbol has.
#[allow(unsafe_code)]
#[no_mangle]
pub static PERCPU: [PerCpu; MAX_CPUS] = make_percpu();

/// CPU `i`'s record.
pub fn get(i: usize) -> &'static PerCpu {
    &PERCPU[i]
}

/// The records of the CPUs that are online.
pub fn online() -> impl Iterator<Item = &'static PerCpu> {
    PERCPU.iter().filter(|c| c.online.load(Ordering::Acquire))
}

/// MPIDR affinity of CPU `i` (for SGIs to it).
pub fn mpidr_of(i: usize) -> u64 {
    PERCPU.get(i).map_or(u64::MAX, |c| c.mpidr.load(Ordering::Relaxed))
}

/// Every CPU's exits, summed.
pub fn totals() -> Totals {
    let mut t = Totals::default();
    for c in &PERCPU {
        t.add(&c.totals());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_know_their_index() {
        for (i, c) in PERCPU.iter().enumerate() {
            assert_eq!(c.index, i);
            assert_eq!(c.assignment(), None);
        }
    }

    #[test]
    fn abort_history_counts_repeats_only() {
        let mut h = AbortHistory::default();
        assert_eq!(h.record(0x1000, 0x9200_0000, 0x8000_0000), 1);
        assert_eq!(h.record(0x1000, 0x9200_0000, 0x8000_0000), 2);
        assert_eq!(h.record(0x1004, 0x9200_0000, 0x8000_0000), 1);
        assert_eq!(h.record(0x1004, 0x9200_0040, 0x8000_0000), 1, "another syndrome");
    }

    /// A memory scan from one load instruction: same ELR and ESR, a new address each time.
    #[test]
    fn a_scan_from_one_instruction_is_not_a_repeat() {
        let mut h = AbortHistory::default();
        for i in 0..10_000u64 {
            assert_eq!(h.record(0x4008_0000, 0x9200_0010, 0x1_0000_0000 + i * 0x4000), 1);
        }
    }

    /// The same abort again after another exit (the guest handled its abort, took an interrupt
    /// or made a call, and retried) starts counting afresh.
    #[test]
    fn another_exit_clears_the_history() {
        let mut h = AbortHistory::default();
        for n in 1..=15 {
            assert_eq!(h.record(0x1000, 0x9200_0000, 0x8000_0000), n);
        }
        h.clear();
        assert_eq!(h.record(0x1000, 0x9200_0000, 0x8000_0000), 1);
    }

    #[test]
    fn totals_count_fast_path_writes() {
        let c = PerCpu::new(3);
        c.exits.count(stats::ExitReason::Hvc);
        c.tvm_fast.store(4, Ordering::Relaxed);
        let t = c.totals();
        assert_eq!(t.exits(), 5);
        assert_eq!(t.get(stats::ExitReason::SysregFast), 4);
    }
}
