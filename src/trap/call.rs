//! The interface between the SMCCC call handlers ([`super::psci`], [`super::vendor`]) and the
//! runtime: what a handler may ask of the calling VM ([`PowerState`]) and what it tells the
//! runtime to do ([`CallOutcome`]). Its own module so that the handlers depend on it and not on
//! each other.

#![forbid(unsafe_code)]

use crate::coherency;
use crate::vm::power::VcpuPower;

/// The MPIDR affinity fields: Aff3 (39:32), Aff2 (23:16), Aff1 (15:8), Aff0 (7:0).
pub const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// What the call handler needs to know about, and may change in, the calling VM.
pub trait PowerState {
    /// Number of vCPUs; indices are `0..vcpu_count()`.
    fn vcpu_count(&self) -> usize;
    /// The MPIDR affinity fields (Aff3 in 39:32, Aff2..Aff0 in 23:0) the guest sees for vCPU
    /// `index` (its VMPIDR_EL2 and its DT `reg`).
    fn mpidr(&self, index: usize) -> u64;
    fn power(&self, index: usize) -> VcpuPower;
    fn set_power(&mut self, index: usize, state: VcpuPower);
    /// Whether a vCPU may start executing at IPA `entry` (inside the VM's RAM).
    fn is_valid_entry(&self, entry: u64) -> bool;
    /// The VM's coherency mode, for the vendor call `COHERENCY_MODE`.
    fn coherency(&self) -> coherency::Setting;
    /// What the host firmware provides of the SMCCC architecture workarounds.
    fn firmware(&self) -> super::smccc::FirmwareArch;

    /// The vCPU whose MPIDR affinity is `mpidr`.
    fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        (0..self.vcpu_count()).find(|&i| self.mpidr(i) & MPIDR_AFF_MASK == mpidr & MPIDR_AFF_MASK)
    }
}

/// What the runtime must do after a call. Unless stated otherwise, the caller resumes after the
/// call instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallOutcome {
    /// Write this value to the caller's x0.
    Return(i64),
    /// Write these values to the caller's x0..x3.
    ReturnRegs([u64; 4]),
    /// CPU_ON succeeded: the target is now `OnPending`. Write 0 to the caller's x0 and start vCPU
    /// `index` at `entry` in EL1h with DAIF masked, MMU and caches off, x0 = `context_id`; mark it
    /// `On` when it enters the guest.
    StartVcpu {
        index: usize,
        entry: u64,
        context_id: u64,
    },
    /// CPU_OFF: the caller is now `Off`. Stop running it; it does not resume until a CPU_ON.
    StopVcpu,
    /// SYSTEM_OFF: end the VM.
    SystemOff,
    /// SYSTEM_RESET: restart the VM from its pristine images.
    SystemReset,
    /// CPU_SUSPEND: write 0 to x0, then wait as for a trapped WFI.
    Suspend,
    /// A vendor call that needs the hardware: perform it and write its result to x0.
    Vendor(VendorCall),
    /// An SMCCC architecture workaround the host firmware implements: make the same call
    /// (function ID `fid`, x1..x3 = `args`) to the firmware and write its x0 to the caller's x0.
    Forward { fid: u32, args: [u64; 3] },
}

/// Which TVM trap counter `TRAP_COUNTERS` reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TrapCounter {
    /// TVM writes served by the assembly fast path.
    FastTvmWrites,
    /// TVM writes served by the Rust slow path.
    SlowTvmWrites,
}

/// A vendor call the runtime must perform; its result goes in the caller's x0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VendorCall {
    /// Run `AT S12E1R` on the guest VA with the caller's context loaded; return PAR_EL1.
    AtS12e1r { va: u64 },
    /// Run `AT S12E1W` on the guest VA with the caller's context loaded; return PAR_EL1.
    AtS12e1w { va: u64 },
    /// Return the counter's value for vCPU `vcpu` (the caller).
    TrapCount { vcpu: usize, counter: TrapCounter },
    /// Print the `len` bytes (1..=256, checked) at guest-physical `ipa` as a log line of the
    /// caller; return 0, or INVALID_PARAMETER when the range is not the VM's RAM.
    LogLine { ipa: u64, len: u64 },
    /// Take a snapshot of the VM (the caller's call returns 0, and 1 again after a restore).
    SnapshotTake { log_dirty: bool },
    /// Restore the VM's snapshot; kind code as `cmdline::RestoreKind::code`.
    SnapshotRestore { kind: u64 },
    /// A Stage-2 fact about the snapshot regions (`SNAPSHOT_INFO`).
    SnapshotInfo { which: u64 },
}

