//! el2visor's vendor hypervisor service (SMCCC owner 6, fast calls), whose ABI is documented in
//! [`super::abi`]. The calls that need the hardware (AT, the per-CPU trap counters) are handed
//! to the runtime as a [`VendorCall`]; the rest are answered here.

use super::abi::{smccc, vendor};
use super::call::{CallOutcome, PowerState, TrapCounter, VendorCall};

/// Serve an owner-6 fast call. Arguments are already truncated per the calling convention.
pub fn handle(fid: u32, args: [u64; 3], caller: usize, vm: &impl PowerState) -> CallOutcome {
    let va = args[0];
    match fid {
        vendor::AT_S12E1R => CallOutcome::Vendor(VendorCall::AtS12e1r { va }),
        vendor::AT_S12E1W => CallOutcome::Vendor(VendorCall::AtS12e1w { va }),
        vendor::TRAP_COUNTERS => {
            let counter = match args[0] {
                vendor::COUNTER_FAST_TVM_WRITES => TrapCounter::FastTvmWrites,
                vendor::COUNTER_SLOW_TVM_WRITES => TrapCounter::SlowTvmWrites,
                _ => return CallOutcome::Return(smccc::INVALID_PARAMETER),
            };
            CallOutcome::Vendor(VendorCall::TrapCount {
                vcpu: caller,
                counter,
            })
        }
        vendor::LOG_LINE => match args[1] {
            1..=vendor::LOG_LINE_MAX => CallOutcome::Vendor(VendorCall::LogLine { ipa: args[0], len: args[1] }),
            _ => CallOutcome::Return(smccc::INVALID_PARAMETER),
        },
        vendor::SNAPSHOT_TAKE => {
            if args[0] & !vendor::SNAPSHOT_LOG_DIRTY != 0 {
                return CallOutcome::Return(smccc::INVALID_PARAMETER);
            }
            CallOutcome::Vendor(VendorCall::SnapshotTake { log_dirty: args[0] & vendor::SNAPSHOT_LOG_DIRTY != 0 })
        }
        vendor::SNAPSHOT_RESTORE => match args[0] {
            0..=2 => CallOutcome::Vendor(VendorCall::SnapshotRestore { kind: args[0] }),
            _ => CallOutcome::Return(smccc::INVALID_PARAMETER),
        },
        vendor::SNAPSHOT_INFO => CallOutcome::Vendor(VendorCall::SnapshotInfo { which: args[0] }),
        vendor::COHERENCY_MODE => CallOutcome::Return(vm.coherency().abi_code() as i64),
        vendor::CALL_COUNT | vendor::CALL_COUNT_64 => {
            CallOutcome::Return(vendor::FUNCTION_COUNT as i64)
        }
        vendor::UID | vendor::UID_64 => CallOutcome::ReturnRegs(vendor::UID_WORDS.map(u64::from)),
        vendor::REVISION | vendor::REVISION_64 => {
            CallOutcome::ReturnRegs([vendor::REVISION_MAJOR, vendor::REVISION_MINOR, 0, 0])
        }
        _ => CallOutcome::Return(smccc::NOT_SUPPORTED),
    }
}
