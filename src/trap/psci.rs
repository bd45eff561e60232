//! The pure PSCI 1.1 + SMCCC 1.1 call handler: an HVC or SMC from a guest, decoded into what the
//! runtime must do. Function IDs and return codes are in [`super::abi`].
//!
//! The runtime reads the function ID from w0 and the arguments from x1..x3, calls
//! [`handle_call`], and acts on the [`CallOutcome`]. For HVC, ELR_EL2 already points past the
//! instruction; for a trapped SMC (EC 0x17) the runtime advances ELR_EL2 by 4 itself. SMCCC
//! requires the immediate to be 0: an HVC or SMC with another immediate is not a call, and the
//! runtime answers it NOT_SUPPORTED (−1) in x0 without coming here (as KVM does for such an SMC).
//!
//! vCPU power states follow PSCI: `Off` → (CPU_ON) `OnPending` → (the runtime enters the vCPU
//! and calls `set_power(index, On)`) `On` → (CPU_OFF) `Off`. CPU_SUSPEND is a standby: the
//! vCPU waits like WFI for an interrupt and the call returns SUCCESS at the call site, which
//! PSCI allows for every requested state (a power-down request that "did not enter the state").

use super::abi::{psci, smccc};
use super::smccc::{arch_call, arch_features, ArchCall, FunctionId};
pub use super::call::{CallOutcome, PowerState, TrapCounter, VendorCall, MPIDR_AFF_MASK};
use crate::coherency;

pub use crate::vm::power::VcpuPower;


/// PSCI functions el2visor implements (and PSCI_FEATURES reports), plus SMCCC_VERSION, which
/// PSCI_FEATURES must report for a caller to discover SMCCC 1.1.
const IMPLEMENTED: [u32; 13] = [
    psci::VERSION,
    psci::CPU_SUSPEND_32,
    psci::CPU_SUSPEND_64,
    psci::CPU_OFF,
    psci::CPU_ON_32,
    psci::CPU_ON_64,
    psci::AFFINITY_INFO_32,
    psci::AFFINITY_INFO_64,
    psci::MIGRATE_INFO_TYPE,
    psci::SYSTEM_OFF,
    psci::SYSTEM_RESET,
    psci::FEATURES,
    smccc::VERSION,
];

/// Handle an SMCCC call from vCPU `caller`: `fid` is w0 (the upper half of x0 is ignored, as
/// SMCCC says), `args` are x1..x3. SMC32/HVC32 calls see only the low 32 bits of each argument.
pub fn handle_call(
    fid: u32,
    args: [u64; 3],
    caller: usize,
    vm: &mut impl PowerState,
) -> CallOutcome {
    let id = FunctionId(fid);
    let args = id.args(args);
    let ret = CallOutcome::Return;
    match fid {
        psci::VERSION => ret(psci::VERSION_1_1),
        psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => CallOutcome::Suspend,
        psci::CPU_OFF => {
            vm.set_power(caller, VcpuPower::Off);
            CallOutcome::StopVcpu
        }
        psci::CPU_ON_32 | psci::CPU_ON_64 => cpu_on(args, vm),
        psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => ret(affinity_info(args[0], args[1], vm)),
        psci::MIGRATE_INFO_TYPE => ret(psci::MIGRATE_INFO_TYPE_NO_TOS),
        psci::SYSTEM_OFF => CallOutcome::SystemOff,
        psci::SYSTEM_RESET => CallOutcome::SystemReset,
        psci::FEATURES => ret(psci_features(args[0] as u32)),
        smccc::VERSION => ret(smccc::VERSION_1_1),
        smccc::ARCH_FEATURES => ret(arch_features(args[0] as u32, &vm.firmware())),
        smccc::ARCH_WORKAROUND_1 | smccc::ARCH_WORKAROUND_2 | smccc::ARCH_WORKAROUND_3 => {
            match arch_call(fid, &vm.firmware()) {
                ArchCall::Forward => CallOutcome::Forward { fid, args },
                ArchCall::NotSupported => ret(smccc::NOT_SUPPORTED),
            }
        }
        _ if id.is_fast() && id.owner() == smccc::OWNER_VENDOR_HYP => {
            super::vendor::handle(fid, args, caller, vm)
        }
        _ => ret(psci::NOT_SUPPORTED),
    }
}

/// PSCI_FEATURES: 0 for an implemented function (for CPU_SUSPEND: original power_state format,
/// no OS-initiated mode), NOT_SUPPORTED otherwise.
const fn psci_features(queried: u32) -> i64 {
    let mut i = 0;
    while i < IMPLEMENTED.len() {
        if IMPLEMENTED[i] == queried {
            return psci::SUCCESS;
        }
        i += 1;
    }
    psci::NOT_SUPPORTED
}

fn cpu_on(args: [u64; 3], vm: &mut impl PowerState) -> CallOutcome {
    let [target, entry, context_id] = args;
    if target & !MPIDR_AFF_MASK != 0 {
        return CallOutcome::Return(psci::INVALID_PARAMETERS);
    }
    let Some(index) = vm.vcpu_by_mpidr(target) else {
        return CallOutcome::Return(psci::INVALID_PARAMETERS);
    };
    // A vCPU another caller has started but that has not entered the guest yet is already on
    // as far as a second CPU_ON goes. PSCI would allow ON_PENDING here, but KVM, which guests'
    // concurrent bring-up code is written and tested against, answers ALREADY_ON for every
    // vCPU that is not stopped, and so does el2visor.
    match vm.power(index) {
        VcpuPower::On | VcpuPower::OnPending => return CallOutcome::Return(psci::ALREADY_ON),
        VcpuPower::Off => {}
    }
    // An AArch64 entry point must be 4-byte aligned and in the VM's RAM; PSCI 1.0+ reports a
    // known-bad entry point as INVALID_ADDRESS.
    if entry & 3 != 0 || !vm.is_valid_entry(entry) {
        return CallOutcome::Return(psci::INVALID_ADDRESS);
    }
    vm.set_power(index, VcpuPower::OnPending);
    CallOutcome::StartVcpu {
        index,
        entry,
        context_id,
    }
}

/// AFFINITY_INFO: the state of the vCPUs whose affinity fields at and above `level` match
/// `target` (ON if any is on, else ON_PENDING if any is pending, else OFF).
fn affinity_info(target: u64, level: u64, vm: &impl PowerState) -> i64 {
    let ignored = match level {
        0 => 0,
        1 => 0xff,
        2 => 0xff_ff,
        3 => 0xff_ff_ff,
        _ => return psci::INVALID_PARAMETERS,
    };
    if target & !MPIDR_AFF_MASK != 0 {
        return psci::INVALID_PARAMETERS;
    }
    let mask = MPIDR_AFF_MASK & !ignored;
    let mut matched = false;
    let mut pending = false;
    for i in 0..vm.vcpu_count() {
        if vm.mpidr(i) & mask != target & mask {
            continue;
        }
        matched = true;
        match vm.power(i) {
            VcpuPower::On => return psci::AFFINITY_ON,
            VcpuPower::OnPending => pending = true,
            VcpuPower::Off => {}
        }
    }
    match (matched, pending) {
        (false, _) => psci::INVALID_PARAMETERS,
        (true, true) => psci::AFFINITY_ON_PENDING,
        (true, false) => psci::AFFINITY_OFF,
    }
}

/// The VM's power record is what PSCI sees and changes.
impl PowerState for crate::vm::power::Power {
    fn vcpu_count(&self) -> usize {
        self.states.len()
    }
    fn mpidr(&self, index: usize) -> u64 {
        self.mpidrs[index]
    }
    fn power(&self, index: usize) -> VcpuPower {
        self.states[index]
    }
    fn set_power(&mut self, index: usize, state: VcpuPower) {
        self.states[index] = state;
    }
    fn is_valid_entry(&self, entry: u64) -> bool {
        crate::vm::power::Power::is_valid_entry(self, entry)
    }
    fn coherency(&self) -> coherency::Setting {
        self.setting
    }
    fn firmware(&self) -> super::smccc::FirmwareArch {
        super::smccc::firmware()
    }
}

#[cfg(test)]
mod tests;
