//! Tests of the PSCI/SMCCC/vendor call handler against a small model VM.

use super::*;
use crate::coherency::{Mode, Setting};
use crate::trap::abi::vendor;
use crate::trap::smccc::FirmwareArch;
use alloc::vec::Vec;

/// A VM with vCPUs at the given MPIDRs, RAM at 0x4000_0000..0x8000_0000, vCPU 0 on.
struct FakeVm {
    mpidrs: Vec<u64>,
    power: Vec<VcpuPower>,
    coherency: Setting,
    firmware: FirmwareArch,
}

impl FakeVm {
    fn new(mpidrs: &[u64]) -> Self {
        let mut power = alloc::vec![VcpuPower::Off; mpidrs.len()];
        power[0] = VcpuPower::On;
        Self {
            mpidrs: mpidrs.to_vec(),
            power,
            coherency: Setting {
                mode: Mode::MairTrap,
                fast_path: true,
            },
            firmware: FirmwareArch::NONE,
        }
    }

    fn four() -> Self {
        Self::new(&[0x0, 0x1, 0x100, 0x101])
    }
}

impl PowerState for FakeVm {
    fn vcpu_count(&self) -> usize {
        self.mpidrs.len()
    }
    fn mpidr(&self, index: usize) -> u64 {
        self.mpidrs[index]
    }
    fn power(&self, index: usize) -> VcpuPower {
        self.power[index]
    }
    fn set_power(&mut self, index: usize, state: VcpuPower) {
        self.power[index] = state;
    }
    fn is_valid_entry(&self, entry: u64) -> bool {
        (0x4000_0000..0x8000_0000).contains(&entry)
    }
    fn coherency(&self) -> Setting {
        self.coherency
    }
    fn firmware(&self) -> FirmwareArch {
        self.firmware
    }
}

const RAM: u64 = 0x4008_0000;

fn call(vm: &mut FakeVm, fid: u32, args: [u64; 3]) -> CallOutcome {
    handle_call(fid, args, 0, vm)
}

fn ret(v: i64) -> CallOutcome {
    CallOutcome::Return(v)
}

#[test]
fn versions() {
    let mut vm = FakeVm::four();
    assert_eq!(call(&mut vm, psci::VERSION, [0; 3]), ret(0x10001));
    assert_eq!(call(&mut vm, smccc::VERSION, [0; 3]), ret(0x10001));
    assert_eq!(call(&mut vm, psci::MIGRATE_INFO_TYPE, [0; 3]), ret(2));
}

#[test]
fn cpu_on_starts_an_off_vcpu_once() {
    let mut vm = FakeVm::four();
    let out = call(&mut vm, psci::CPU_ON_64, [0x101, RAM, 0xc0ffee]);
    assert_eq!(
        out,
        CallOutcome::StartVcpu {
            index: 3,
            entry: RAM,
            context_id: 0xc0ffee
        }
    );
    assert_eq!(vm.power[3], VcpuPower::OnPending);
    vm.set_power(3, VcpuPower::On);
    assert_eq!(
        call(&mut vm, psci::CPU_ON_64, [0x101, RAM, 0]),
        ret(psci::ALREADY_ON)
    );
    assert_eq!(
        call(&mut vm, psci::CPU_ON_64, [0x0, RAM, 0]),
        ret(psci::ALREADY_ON),
        "the caller"
    );
}

#[test]
fn cpu_on_of_a_vcpu_being_started_is_already_on_as_under_kvm() {
    // Two callers bring up the same vCPU: the second one's CPU_ON arrives while the first has
    // started it but it has not yet entered the guest. KVM answers ALREADY_ON (any vCPU that
    // is not stopped), never ON_PENDING, which a guest's bring-up treats as a failure.
    let mut vm = FakeVm::four();
    assert!(matches!(
        handle_call(psci::CPU_ON_64, [0x1, RAM, 0], 0, &mut vm),
        CallOutcome::StartVcpu { index: 1, .. }
    ));
    assert_eq!(vm.power[1], VcpuPower::OnPending);
    vm.set_power(2, VcpuPower::On);
    for fid in [psci::CPU_ON_64, psci::CPU_ON_32] {
        assert_eq!(
            handle_call(fid, [0x1, RAM + 0x1000, 7], 2, &mut vm),
            ret(psci::ALREADY_ON),
            "{fid:#x}"
        );
    }
    // Nothing changed: still pending, and AFFINITY_INFO still says so.
    assert_eq!(vm.power[1], VcpuPower::OnPending);
    assert_eq!(
        call(&mut vm, psci::AFFINITY_INFO_64, [0x1, 0, 0]),
        ret(psci::AFFINITY_ON_PENDING)
    );
}

#[test]
fn cpu_on_rejects_bad_targets_and_entries_without_changing_state() {
    let mut vm = FakeVm::four();
    for target in [0x2, 0x1_0000_0001, 1 << 24, 1 << 40] {
        assert_eq!(
            call(&mut vm, psci::CPU_ON_64, [target, RAM, 0]),
            ret(psci::INVALID_PARAMETERS),
            "{target:#x}"
        );
    }
    for entry in [0x1000, RAM + 2, 0x8000_0000] {
        assert_eq!(
            call(&mut vm, psci::CPU_ON_64, [0x1, entry, 0]),
            ret(psci::INVALID_ADDRESS),
            "{entry:#x}"
        );
    }
    assert_eq!(
        vm.power,
        [
            VcpuPower::On,
            VcpuPower::Off,
            VcpuPower::Off,
            VcpuPower::Off
        ]
    );
}

#[test]
fn cpu_on_32_truncates_its_arguments() {
    let mut vm = FakeVm::four();
    let out = call(
        &mut vm,
        psci::CPU_ON_32,
        [
            0xffff_ffff_0000_0100,
            0x1_0000_0000 | RAM,
            0xaaaa_bbbb_cccc_dddd,
        ],
    );
    assert_eq!(
        out,
        CallOutcome::StartVcpu {
            index: 2,
            entry: RAM,
            context_id: 0xcccc_dddd
        }
    );
}

#[test]
fn cpu_off_stops_the_caller() {
    let mut vm = FakeVm::four();
    vm.set_power(2, VcpuPower::On);
    assert_eq!(
        handle_call(psci::CPU_OFF, [0; 3], 2, &mut vm),
        CallOutcome::StopVcpu
    );
    assert_eq!(vm.power[2], VcpuPower::Off);
    assert!(matches!(
        call(&mut vm, psci::CPU_ON_64, [0x100, RAM, 0]),
        CallOutcome::StartVcpu { index: 2, .. }
    ));
}

#[test]
fn affinity_info_is_honest_at_every_level() {
    let mut vm = FakeVm::four();
    let info =
        |vm: &mut FakeVm, target, level| call(vm, psci::AFFINITY_INFO_64, [target, level, 0]);
    assert_eq!(info(&mut vm, 0x0, 0), ret(psci::AFFINITY_ON));
    assert_eq!(info(&mut vm, 0x1, 0), ret(psci::AFFINITY_OFF));
    vm.set_power(3, VcpuPower::OnPending);
    assert_eq!(info(&mut vm, 0x101, 0), ret(psci::AFFINITY_ON_PENDING));
    // Level 1: cluster 1 (0x100, 0x101) has one pending, none on; cluster 0 has vCPU 0 on.
    assert_eq!(info(&mut vm, 0x100, 1), ret(psci::AFFINITY_ON_PENDING));
    assert_eq!(
        info(&mut vm, 0x1ab, 1),
        ret(psci::AFFINITY_ON_PENDING),
        "Aff0 ignored at level 1"
    );
    assert_eq!(info(&mut vm, 0x001, 1), ret(psci::AFFINITY_ON));
    vm.set_power(3, VcpuPower::Off);
    assert_eq!(info(&mut vm, 0x100, 1), ret(psci::AFFINITY_OFF));
    assert_eq!(info(&mut vm, 0x0, 2), ret(psci::AFFINITY_ON));
    assert_eq!(info(&mut vm, 0x0, 3), ret(psci::AFFINITY_ON));
    // Nothing there, bad level, bits outside the affinity fields.
    assert_eq!(info(&mut vm, 0x2, 0), ret(psci::INVALID_PARAMETERS));
    assert_eq!(info(&mut vm, 0x200, 1), ret(psci::INVALID_PARAMETERS));
    assert_eq!(info(&mut vm, 0x1_0000, 2), ret(psci::INVALID_PARAMETERS));
    assert_eq!(info(&mut vm, 0x0, 4), ret(psci::INVALID_PARAMETERS));
    assert_eq!(info(&mut vm, 1 << 31, 0), ret(psci::INVALID_PARAMETERS));
}

#[test]
fn system_and_suspend_calls() {
    let mut vm = FakeVm::four();
    assert_eq!(
        call(&mut vm, psci::SYSTEM_OFF, [0; 3]),
        CallOutcome::SystemOff
    );
    assert_eq!(
        call(&mut vm, psci::SYSTEM_RESET, [0; 3]),
        CallOutcome::SystemReset
    );
    assert_eq!(
        call(&mut vm, psci::CPU_SUSPEND_64, [0x1_0000, RAM, 0]),
        CallOutcome::Suspend
    );
    assert_eq!(
        call(&mut vm, psci::CPU_SUSPEND_32, [0, 0, 0]),
        CallOutcome::Suspend
    );
    assert_eq!(vm.power[0], VcpuPower::On);
}

#[test]
fn features_report_exactly_what_is_implemented() {
    let mut vm = FakeVm::four();
    for fid in IMPLEMENTED {
        assert_eq!(
            call(&mut vm, psci::FEATURES, [u64::from(fid), 0, 0]),
            ret(0),
            "{fid:#x}"
        );
    }
    for fid in [
        psci::MIGRATE_64,
        psci::SYSTEM_SUSPEND_64,
        psci::SYSTEM_RESET2_32,
        psci::MIGRATE_INFO_UP_CPU_32,
        vendor::UID,
        0,
    ] {
        assert_eq!(
            call(&mut vm, psci::FEATURES, [u64::from(fid), 0, 0]),
            ret(-1),
            "{fid:#x}"
        );
    }
    assert_eq!(
        call(
            &mut vm,
            smccc::ARCH_FEATURES,
            [u64::from(smccc::ARCH_WORKAROUND_1), 0, 0]
        ),
        ret(-1)
    );
    assert_eq!(
        call(
            &mut vm,
            smccc::ARCH_FEATURES,
            [u64::from(smccc::ARCH_FEATURES), 0, 0]
        ),
        ret(0)
    );
}

#[test]
fn unknown_and_unimplemented_ids_are_not_supported() {
    let mut vm = FakeVm::four();
    for fid in [
        psci::MIGRATE_32,
        psci::SYSTEM_RESET2_64,
        smccc::ARCH_WORKAROUND_1,
        0x0400_0000, // yielding PSCI_VERSION
        0x4600_0001, // yielding vendor call
        0x8600_0001, // SMC32 form of AT_S12E1R
        0xc600_0006,
        0xc500_0000, // standard hypervisor service
        0xffff_ffff,
    ] {
        assert_eq!(call(&mut vm, fid, [0; 3]), ret(-1), "{fid:#x}");
    }
}

#[test]
fn vendor_calls_that_need_the_hardware_go_to_the_runtime() {
    let mut vm = FakeVm::four();
    let va = 0xffff_0000_1234_5000;
    assert_eq!(
        call(&mut vm, vendor::AT_S12E1R, [va, 0, 0]),
        CallOutcome::Vendor(VendorCall::AtS12e1r { va })
    );
    assert_eq!(
        call(&mut vm, vendor::AT_S12E1W, [va, 0, 0]),
        CallOutcome::Vendor(VendorCall::AtS12e1w { va })
    );
    assert_eq!(
        handle_call(vendor::TRAP_COUNTERS, [1, 0, 0], 3, &mut vm),
        CallOutcome::Vendor(VendorCall::TrapCount {
            vcpu: 3,
            counter: TrapCounter::SlowTvmWrites
        })
    );
    assert_eq!(
        call(&mut vm, vendor::TRAP_COUNTERS, [0, 0, 0]),
        CallOutcome::Vendor(VendorCall::TrapCount {
            vcpu: 0,
            counter: TrapCounter::FastTvmWrites
        })
    );
    assert_eq!(
        call(&mut vm, vendor::TRAP_COUNTERS, [2, 0, 0]),
        ret(smccc::INVALID_PARAMETER)
    );
}

#[test]
fn vendor_calls_answered_here() {
    let mut vm = FakeVm::four();
    assert_eq!(call(&mut vm, vendor::COHERENCY_MODE, [0; 3]), ret(2));
    vm.coherency = Setting {
        mode: Mode::MairTrap,
        fast_path: false,
    };
    assert_eq!(call(&mut vm, vendor::COHERENCY_MODE, [0; 3]), ret(3));
    vm.coherency = Setting {
        mode: Mode::Fwb,
        fast_path: true,
    };
    assert_eq!(call(&mut vm, vendor::COHERENCY_MODE, [0; 3]), ret(1));
    for fid in [vendor::CALL_COUNT, vendor::CALL_COUNT_64] {
        assert_eq!(call(&mut vm, fid, [0; 3]), ret(vendor::FUNCTION_COUNT as i64));
    }
    for fid in [vendor::REVISION, vendor::REVISION_64] {
        assert_eq!(
            call(&mut vm, fid, [0; 3]),
            CallOutcome::ReturnRegs([1, 0, 0, 0])
        );
    }
    // The UID words are the UUID's bytes in SMCCC order.
    let uuid: [u8; 16] = [
        0x6c, 0x46, 0x61, 0x64, 0xf4, 0x4c, 0x40, 0xc7, 0x91, 0x4f, 0x9d, 0x11, 0xe6, 0x1e, 0x19,
        0x07,
    ];
    let mut expect = [0u64; 4];
    for (word, chunk) in expect.iter_mut().zip(uuid.chunks(4)) {
        *word = u64::from(u32::from_le_bytes(chunk.try_into().unwrap()));
    }
    for fid in [vendor::UID, vendor::UID_64] {
        assert_eq!(call(&mut vm, fid, [0; 3]), CallOutcome::ReturnRegs(expect));
    }
}

/// LOG_LINE takes 1..=256 bytes; the range itself is checked by the runtime against the VM's RAM.
#[test]
fn log_line_lengths() {
    let mut vm = FakeVm::four();
    assert_eq!(
        call(&mut vm, vendor::LOG_LINE, [0x4000_0000, 12, 0]),
        CallOutcome::Vendor(VendorCall::LogLine { ipa: 0x4000_0000, len: 12 })
    );
    assert_eq!(
        call(&mut vm, vendor::LOG_LINE, [0x4000_0000, 256, 0]),
        CallOutcome::Vendor(VendorCall::LogLine { ipa: 0x4000_0000, len: 256 })
    );
    for len in [0, 257, u64::MAX] {
        assert_eq!(call(&mut vm, vendor::LOG_LINE, [0x4000_0000, len, 0]), ret(smccc::INVALID_PARAMETER), "{len}");
    }
}

#[test]
fn mpidr_lookup_ignores_non_affinity_bits_of_the_vm_side() {
    // VMPIDR values carry bit 31 (RES1) and maybe MT/U; lookups go by affinity only.
    let vm = FakeVm::new(&[0x8000_0000, 0x8000_0001]);
    assert_eq!(vm.vcpu_by_mpidr(0x1), Some(1));
    assert_eq!(vm.vcpu_by_mpidr(0x2), None);
}

/// The workaround calls follow the host firmware: WORKAROUND_1/3 forwarded where it implements
/// them, with the caller's arguments; NOT_SUPPORTED, and ARCH_FEATURES NOT_SUPPORTED, where it
/// does not; WORKAROUND_2 never forwarded.
#[test]
fn workaround_calls_follow_the_firmware() {
    let mut vm = FakeVm::four();
    for w in [smccc::ARCH_WORKAROUND_1, smccc::ARCH_WORKAROUND_2, smccc::ARCH_WORKAROUND_3] {
        assert_eq!(call(&mut vm, w, [1, 0, 0]), CallOutcome::Return(smccc::NOT_SUPPORTED));
        assert_eq!(call(&mut vm, smccc::ARCH_FEATURES, [w as u64, 0, 0]), CallOutcome::Return(-1));
    }
    vm.firmware = FirmwareArch { workarounds: [0, -2, -1] };
    assert_eq!(call(&mut vm, smccc::ARCH_FEATURES, [smccc::ARCH_WORKAROUND_1 as u64, 0, 0]), CallOutcome::Return(0));
    assert_eq!(call(&mut vm, smccc::ARCH_FEATURES, [smccc::ARCH_WORKAROUND_2 as u64, 0, 0]), CallOutcome::Return(-2));
    assert_eq!(call(&mut vm, smccc::ARCH_FEATURES, [smccc::ARCH_WORKAROUND_3 as u64, 0, 0]), CallOutcome::Return(-1));
    assert_eq!(
        call(&mut vm, smccc::ARCH_WORKAROUND_1, [0, 0, 0]),
        CallOutcome::Forward { fid: smccc::ARCH_WORKAROUND_1, args: [0, 0, 0] }
    );
    // WORKAROUND_2 is never forwarded: disabling the mitigation would disable it for el2visor.
    for enable in [0, 1] {
        assert_eq!(call(&mut vm, smccc::ARCH_WORKAROUND_2, [enable, 0, 0]), CallOutcome::Return(smccc::NOT_SUPPORTED));
    }
    assert_eq!(call(&mut vm, smccc::ARCH_WORKAROUND_3, [0; 3]), CallOutcome::Return(smccc::NOT_SUPPORTED));
    // A dynamic WORKAROUND_2, which el2visor keeps on: the guest need not call it.
    vm.firmware = FirmwareArch { workarounds: [0, 0, 0] };
    assert_eq!(call(&mut vm, smccc::ARCH_FEATURES, [smccc::ARCH_WORKAROUND_2 as u64, 0, 0]), CallOutcome::Return(-2));
    assert_eq!(call(&mut vm, smccc::ARCH_WORKAROUND_2, [1, 0, 0]), CallOutcome::Return(smccc::NOT_SUPPORTED));
}

// The fast path's rule, mounted here for the host (`arch` builds only for the target).
#[path = "../../arch/hvc_fast.rs"]
mod hvc_fast;

/// The HVC fast path in the vector (boot/hvc_fastpath.S, its rule in `arch::hvc_fast::answer`)
/// answers exactly what the slow path answers, for every call it takes, whatever the firmware
/// said; its copies of the function IDs are the ABI's.
#[test]
fn hvc_fast_path_answers_as_the_slow_path() {
    assert_eq!(hvc_fast::FID_SMCCC_VERSION, smccc::VERSION);
    assert_eq!(hvc_fast::FID_ARCH_FEATURES, smccc::ARCH_FEATURES);
    assert_eq!(hvc_fast::FID_PSCI_VERSION, psci::VERSION);
    assert_eq!(hvc_fast::FID_WORKAROUNDS, crate::trap::smccc::WORKAROUNDS);
    assert_eq!(hvc_fast::NOT_SUPPORTED, smccc::NOT_SUPPORTED as u64);
    let firmwares = [FirmwareArch::NONE, FirmwareArch { workarounds: [0, 1, -1] }, FirmwareArch { workarounds: [-1, 0, 1] }];
    let queried = [smccc::VERSION, smccc::ARCH_FEATURES, smccc::ARCH_WORKAROUND_1, smccc::ARCH_WORKAROUND_2, smccc::ARCH_WORKAROUND_3, psci::VERSION, psci::CPU_ON_64, 0, u32::MAX];
    let mut fast = 0;
    for fw in firmwares {
        let mut vm = FakeVm::four();
        vm.firmware = fw;
        for fid in [smccc::VERSION, smccc::ARCH_FEATURES, psci::VERSION, psci::FEATURES, psci::CPU_ON_64, smccc::ARCH_WORKAROUND_1, 0xc600_0004] {
            for q in queried {
                // The upper halves of x0 and x1 play no part in either path.
                for high in [0, 0xdead_0000_0000] {
                    // What the assembly reads: the words `trap::firmware::publish` publishes.
                    hvc_fast::publish_workarounds(crate::trap::smccc::guest_answers(&fw));
                    let published = hvc_fast::HVC_FAST_WORKAROUNDS.each_ref().map(|w| w.load(core::sync::atomic::Ordering::Relaxed) as i64);
                    let Some(answer) = hvc_fast::answer(fid, q as u64 | high, published) else { continue };
                    fast += 1;
                    match call(&mut vm, fid, [q as u64 | high, 0, 0]) {
                        CallOutcome::Return(v) => assert_eq!(answer, v as u64, "fid {fid:#x} x1 {q:#x}"),
                        o => panic!("fid {fid:#x}: the slow path did {o:?}, the fast path answers {answer:#x}"),
                    }
                }
            }
        }
    }
    assert!(fast > 0);
    assert_eq!(hvc_fast::answer(psci::CPU_ON_64, 0, [0; 3]), None);
}

/// The vector's key is the syndrome of `hvc #0` from AArch64 (EC 0x16, IL, ISS 0) until
/// `trace=psci` disables the fast path, when it becomes a value with EC 0x3f, which no exception
/// reports, so every HVC reaches the slow path and its trace line.
#[test]
fn hvc_fast_path_key_and_its_disabling() {
    use core::sync::atomic::Ordering;
    let esr = crate::trap::esr::Esr(hvc_fast::ESR_HVC64_IMM0 as u64);
    assert_eq!(esr.0 >> 26, 0x16, "EC: HVC from AArch64");
    assert_eq!(esr.0 & (1 << 25), 1 << 25, "IL");
    assert_eq!(esr.0 & 0xffff, 0, "immediate 0");
    assert_eq!(hvc_fast::HVC_FAST_KEY.load(Ordering::Relaxed), hvc_fast::ESR_HVC64_IMM0);
    hvc_fast::disable();
    let key = hvc_fast::HVC_FAST_KEY.load(Ordering::Relaxed);
    assert_eq!(key >> 26, 0x3f, "reserved EC: never a syndrome");
    hvc_fast::HVC_FAST_KEY.store(hvc_fast::ESR_HVC64_IMM0, Ordering::Relaxed);
}

#[test]
fn snapshot_calls_are_checked_and_handed_to_the_runtime() {
    let mut vm = FakeVm::four();
    assert_eq!(call(&mut vm, vendor::SNAPSHOT_TAKE, [0; 3]), CallOutcome::Vendor(VendorCall::SnapshotTake { log_dirty: false }));
    assert_eq!(call(&mut vm, vendor::SNAPSHOT_TAKE, [1, 0, 0]), CallOutcome::Vendor(VendorCall::SnapshotTake { log_dirty: true }));
    assert_eq!(call(&mut vm, vendor::SNAPSHOT_TAKE, [2, 0, 0]), ret(smccc::INVALID_PARAMETER));
    for k in 0..3 {
        assert_eq!(call(&mut vm, vendor::SNAPSHOT_RESTORE, [k, 0, 0]), CallOutcome::Vendor(VendorCall::SnapshotRestore { kind: k }));
    }
    assert_eq!(call(&mut vm, vendor::SNAPSHOT_RESTORE, [3, 0, 0]), ret(smccc::INVALID_PARAMETER));
    assert_eq!(call(&mut vm, vendor::SNAPSHOT_INFO, [5, 0, 0]), CallOutcome::Vendor(VendorCall::SnapshotInfo { which: 5 }));
    assert_eq!(vendor::FUNCTION_COUNT, 8);
}
