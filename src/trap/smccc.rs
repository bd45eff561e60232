//! SMCCC 1.1 function IDs and the Arm architecture service (owner 0): SMCCC_VERSION,
//! SMCCC_ARCH_FEATURES and the firmware workarounds.
//!
//! SMCCC_ARCH_WORKAROUND_1/2/3 (Spectre v2, SSB, Spectre-BHB) are the firmware's: only it can
//! run the mitigation. el2visor asks the host firmware on every CPU at boot what it provides
//! ([`discover`], through the host DT's PSCI conduit; TF-A answers per CPU, and big.LITTLE
//! systems differ) and keeps the worst answer over the CPUs ([`FirmwareArch::merge`]): a guest
//! may run on any of them, and must not be told it is mitigated where one CPU is not.
//!
//! - WORKAROUND_1 and _3: a guest is told the firmware's answer in SMCCC_ARCH_FEATURES, and its
//!   call is forwarded to the firmware when the firmware implements it ([`arch_call`]); else the
//!   call answers NOT_SUPPORTED, and so does ARCH_FEATURES for it: claiming a workaround the
//!   firmware lacks would tell the guest it is mitigated when it is not. Each pCPU runs one
//!   vCPU, so a forwarded call acts on the CPU the guest runs on.
//! - WORKAROUND_2 (the SSB mitigation's switch) is never forwarded, as KVM never does: turning it
//!   off for a guest would turn it off for el2visor on that CPU too. Where the firmware's
//!   mitigation is dynamic (answer 0), el2visor turns it on at boot on every CPU and leaves it
//!   on, and guests are told it is not required (NOT_REQUIRED, as KVM tells them when the host
//!   is mitigated); any other answer is passed on as it is ([`guest_answers`]), and a guest's
//!   call answers NOT_SUPPORTED.
//!
//! ARCH_SOC_ID is not provided.

use super::abi::smccc;

/// An SMCCC function identifier (the value in w0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FunctionId(pub u32);

impl FunctionId {
    /// Bit 31: a fast call (yielding calls are not supported by el2visor).
    pub const fn is_fast(self) -> bool {
        self.0 & smccc::FAST_CALL != 0
    }

    /// Bit 30: the SMC64/HVC64 calling convention (else SMC32/HVC32: 32-bit arguments).
    pub const fn is_64(self) -> bool {
        self.0 & smccc::SMC64 != 0
    }

    /// Bits 29:24: the service owner (0 Arm architecture, 4 standard secure incl. PSCI,
    /// 5 standard hypervisor, 6 vendor hypervisor).
    pub const fn owner(self) -> u8 {
        ((self.0 >> 24) & 0x3f) as u8
    }

    /// Bits 15:0: the function number within the owner's range.
    pub const fn number(self) -> u16 {
        self.0 as u16
    }

    /// The call's arguments as the convention defines them: SMC32/HVC32 uses only the low
    /// 32 bits of each argument register.
    pub fn args(self, raw: [u64; 3]) -> [u64; 3] {
        if self.is_64() {
            raw
        } else {
            raw.map(|a| a & 0xffff_ffff)
        }
    }
}

/// What the host firmware answered at boot about the architecture workarounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareArch {
    /// SMCCC_ARCH_FEATURES for ARCH_WORKAROUND_1, _2 and _3, as the firmware answered (a
    /// 32-bit signed value); NOT_SUPPORTED where the firmware has no SMCCC 1.1.
    pub workarounds: [i64; 3],
}

/// The workaround calls, in [`FirmwareArch::workarounds`] order.
pub const WORKAROUNDS: [u32; 3] = [smccc::ARCH_WORKAROUND_1, smccc::ARCH_WORKAROUND_2, smccc::ARCH_WORKAROUND_3];

impl FirmwareArch {
    /// No firmware, or one that provides none of the workarounds.
    pub const NONE: FirmwareArch = FirmwareArch { workarounds: [smccc::NOT_SUPPORTED; 3] };

    /// The firmware's ARCH_FEATURES answer for workaround call `fid`, if it is one.
    pub fn answer(&self, fid: u32) -> Option<i64> {
        WORKAROUNDS.iter().position(|&w| w == fid).map(|i| self.workarounds[i])
    }

    /// The worse of two CPUs' answers, per workaround: NOT_SUPPORTED on either (no mitigation
    /// there), else 0 on either (the call is needed there; forwarded where it is not, it does
    /// no harm), else the first's (both say no call is needed).
    pub fn merge(self, other: FirmwareArch) -> FirmwareArch {
        let rank = |a: i64| match a {
            smccc::NOT_SUPPORTED => 0,
            smccc::SUCCESS => 1,
            _ => 2,
        };
        let mut w = self.workarounds;
        for (mine, theirs) in w.iter_mut().zip(other.workarounds) {
            if rank(theirs) < rank(*mine) {
                *mine = theirs;
            }
        }
        FirmwareArch { workarounds: w }
    }

    /// Whether this CPU's firmware has WORKAROUND_2 as a dynamic switch (answer 0), which
    /// el2visor then turns on (argument 1) and leaves on.
    pub fn wa2_dynamic(&self) -> bool {
        self.workarounds[1] == smccc::SUCCESS
    }

    /// Whether the firmware implements workaround call `fid` (any answer but NOT_SUPPORTED:
    /// NOT_REQUIRED and the positive WORKAROUND_2 answers still name an implemented call).
    pub fn implements(&self, fid: u32) -> bool {
        self.answer(fid).is_some_and(|a| a != smccc::NOT_SUPPORTED)
    }
}

/// PSCI_VERSION and PSCI_FEATURES, to ask the firmware whether it has SMCCC_VERSION.
const PSCI_VERSION: u32 = 0x8400_0000;
const PSCI_FEATURES: u32 = 0x8400_000a;

/// An SMCCC result as the 32-bit signed value it is (w0; firmware may leave x0's upper half 0).
fn ret32(x0: i64) -> i64 {
    x0 as i32 as i64
}

/// Ask the firmware what it provides, as SMCCC says to discover it: PSCI 1.0 or later whose
/// PSCI_FEATURES reports SMCCC_VERSION, SMCCC 1.1 or later, then SMCCC_ARCH_FEATURES for each
/// workaround. `call(fid, x1)` makes one fast call and returns x0.
pub fn discover(mut call: impl FnMut(u32, u64) -> i64) -> FirmwareArch {
    let psci = ret32(call(PSCI_VERSION, 0));
    if psci < 0 || (psci >> 16) < 1 {
        return FirmwareArch::NONE;
    }
    if ret32(call(PSCI_FEATURES, smccc::VERSION as u64)) != smccc::SUCCESS {
        return FirmwareArch::NONE;
    }
    if ret32(call(smccc::VERSION, 0)) < smccc::VERSION_1_1 {
        return FirmwareArch::NONE;
    }
    FirmwareArch { workarounds: WORKAROUNDS.map(|w| ret32(call(smccc::ARCH_FEATURES, w as u64))) }
}

/// What guests are told in SMCCC_ARCH_FEATURES for WORKAROUND_1/2/3: the firmware's answers,
/// but NOT_REQUIRED for a dynamic WORKAROUND_2, which el2visor keeps on (see the module docs).
pub fn guest_answers(fw: &FirmwareArch) -> [i64; 3] {
    let mut a = fw.workarounds;
    if fw.wa2_dynamic() {
        a[1] = smccc::NOT_REQUIRED;
    }
    a
}

/// SMCCC_ARCH_FEATURES: 0 for the architecture calls el2visor implements, [`guest_answers`]
/// for the workarounds, NOT_SUPPORTED for the rest (see the module docs).
pub fn arch_features(queried: u32, fw: &FirmwareArch) -> i64 {
    match queried {
        smccc::VERSION | smccc::ARCH_FEATURES => smccc::SUCCESS,
        q => match WORKAROUNDS.iter().position(|&w| w == q) {
            Some(i) => guest_answers(fw)[i],
            None => smccc::NOT_SUPPORTED,
        },
    }
}

/// What a workaround call from a guest becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchCall {
    /// Make the same call to the firmware and give the guest its x0.
    Forward,
    /// Answer NOT_SUPPORTED.
    NotSupported,
}

/// A guest's ARCH_WORKAROUND_1/2/3 call `fid`: WORKAROUND_1 and _3 forwarded where the
/// firmware implements them, WORKAROUND_2 never (see the module docs).
pub fn arch_call(fid: u32, fw: &FirmwareArch) -> ArchCall {
    if fid != smccc::ARCH_WORKAROUND_2 && fw.implements(fid) {
        ArchCall::Forward
    } else {
        ArchCall::NotSupported
    }
}

/// The answers kept at boot, the worst over the CPUs (`trap::firmware::publish`); none before.
pub static FIRMWARE: spin::Once<FirmwareArch> = spin::Once::new();

/// The firmware's answers as kept at boot, or [`FirmwareArch::NONE`].
pub fn firmware() -> FirmwareArch {
    FIRMWARE.get().copied().unwrap_or(FirmwareArch::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_function_ids() {
        let cpu_on = FunctionId(0xc400_0003);
        assert!(cpu_on.is_fast() && cpu_on.is_64());
        assert_eq!(
            (cpu_on.owner(), cpu_on.number()),
            (smccc::OWNER_STANDARD, 3)
        );
        let uid = FunctionId(0x8600_ff01);
        assert!(uid.is_fast() && !uid.is_64());
        assert_eq!(
            (uid.owner(), uid.number()),
            (smccc::OWNER_VENDOR_HYP, 0xff01)
        );
        assert!(!FunctionId(0x0400_0003).is_fast());
    }

    #[test]
    fn smc32_truncates_arguments() {
        let raw = [0xdead_beef_0000_0001, u64::MAX, 0x1_0000_0000];
        assert_eq!(FunctionId(0x8400_0003).args(raw), [1, 0xffff_ffff, 0]);
        assert_eq!(FunctionId(0xc400_0003).args(raw), raw);
    }

    #[test]
    fn arch_features_are_honest() {
        let none = FirmwareArch::NONE;
        assert_eq!(arch_features(smccc::VERSION, &none), 0);
        assert_eq!(arch_features(smccc::ARCH_FEATURES, &none), 0);
        for unsupported in [
            smccc::ARCH_WORKAROUND_1,
            smccc::ARCH_WORKAROUND_2,
            smccc::ARCH_WORKAROUND_3,
            smccc::ARCH_SOC_ID,
            0x8400_0000,
        ] {
            assert_eq!(arch_features(unsupported, &none), -1);
        }
    }

    /// A fake firmware: PSCI `psci`, SMCCC_VERSION `smccc` (or absent from PSCI_FEATURES), and
    /// these ARCH_FEATURES answers, returned in w0 only (upper half zero) like SMC32 firmware.
    fn fake(psci: i64, smccc: Option<i64>, answers: [i64; 3]) -> impl FnMut(u32, u64) -> i64 {
        move |fid, x1| {
            let r: i64 = match (fid, x1) {
                (PSCI_VERSION, _) => psci,
                (PSCI_FEATURES, x) if x == smccc::VERSION as u64 && smccc.is_some() => 0,
                (smccc::VERSION, _) => smccc.unwrap_or(-1),
                (smccc::ARCH_FEATURES, x) => WORKAROUNDS.iter().position(|&w| w as u64 == x).map_or(-1, |i| answers[i]),
                _ => -1,
            };
            r as u32 as i64
        }
    }

    #[test]
    fn discovery_keeps_what_the_firmware_answers() {
        // TF-A on a CPU that needs WORKAROUND_1, has WORKAROUND_2 always on, no WORKAROUND_3.
        let fw = discover(fake(0x1_0001, Some(0x1_0002), [0, 1, -1]));
        assert_eq!(fw.workarounds, [0, 1, -1]);
        assert_eq!(arch_features(smccc::ARCH_WORKAROUND_1, &fw), 0);
        assert_eq!(arch_features(smccc::ARCH_WORKAROUND_2, &fw), 1);
        assert_eq!(arch_features(smccc::ARCH_WORKAROUND_3, &fw), -1);
        assert_eq!(arch_call(smccc::ARCH_WORKAROUND_1, &fw), ArchCall::Forward);
        // WORKAROUND_2 is never forwarded: a guest could turn the mitigation off for el2visor.
        assert_eq!(arch_call(smccc::ARCH_WORKAROUND_2, &fw), ArchCall::NotSupported);
        assert_eq!(arch_call(smccc::ARCH_WORKAROUND_3, &fw), ArchCall::NotSupported);
        assert!(!fw.wa2_dynamic());
        // NOT_REQUIRED is an implemented call: forwarded, and reported as the firmware said.
        let fw = discover(fake(0x1_0001, Some(0x1_0001), [-2, -2, 0]));
        assert_eq!(fw.workarounds, [-2, -2, 0]);
        assert_eq!(arch_call(smccc::ARCH_WORKAROUND_1, &fw), ArchCall::Forward);
        assert_eq!(arch_features(smccc::ARCH_WORKAROUND_3, &fw), 0);
    }

    #[test]
    fn a_dynamic_wa2_is_kept_on_and_guests_need_not_call_it() {
        let fw = FirmwareArch { workarounds: [0, 0, 0] };
        assert!(fw.wa2_dynamic());
        assert_eq!(guest_answers(&fw), [0, smccc::NOT_REQUIRED, 0]);
        assert_eq!(arch_features(smccc::ARCH_WORKAROUND_2, &fw), smccc::NOT_REQUIRED);
        assert_eq!(arch_call(smccc::ARCH_WORKAROUND_2, &fw), ArchCall::NotSupported);
        // NOT_SUPPORTED and NOT_REQUIRED pass as they are.
        for a in [smccc::NOT_SUPPORTED, smccc::NOT_REQUIRED] {
            assert_eq!(guest_answers(&FirmwareArch { workarounds: [a; 3] })[1], a);
        }
    }

    #[test]
    fn the_worst_cpu_decides() {
        let big = FirmwareArch { workarounds: [0, 0, 0] };
        let little = FirmwareArch { workarounds: [1, smccc::NOT_REQUIRED, 1] };
        let lacking = FirmwareArch { workarounds: [smccc::NOT_SUPPORTED, 1, 0] };
        // A CPU that needs the call wins over one that is unaffected, in either order.
        assert_eq!(little.merge(big).workarounds, [0, 0, 0]);
        assert_eq!(big.merge(little).workarounds, [0, 0, 0]);
        // A CPU whose firmware lacks a workaround makes it NOT_SUPPORTED for every guest.
        assert_eq!(big.merge(lacking).workarounds, [smccc::NOT_SUPPORTED, 0, 0]);
        assert_eq!(little.merge(lacking).workarounds, [smccc::NOT_SUPPORTED, smccc::NOT_REQUIRED, 0]);
        // Two answers that both need no call: the first's.
        assert_eq!(little.merge(FirmwareArch { workarounds: [smccc::NOT_REQUIRED; 3] }).workarounds, little.workarounds);
        assert_eq!(FirmwareArch::NONE.merge(big), FirmwareArch::NONE);
    }

    #[test]
    fn no_smccc_1_1_means_no_workarounds() {
        // QEMU's own PSCI (no SMCCC_VERSION in PSCI_FEATURES), PSCI 0.2, SMCCC 1.0.
        for fw in [
            discover(fake(0x1_0001, None, [0; 3])),
            discover(fake(0x2, Some(0x1_0001), [0; 3])),
            discover(fake(0x1_0000, Some(0x1_0000), [0; 3])),
            discover(fake(-1, Some(0x1_0001), [0; 3])),
        ] {
            assert_eq!(fw, FirmwareArch::NONE);
            for w in WORKAROUNDS {
                assert_eq!(arch_features(w, &fw), -1);
                assert_eq!(arch_call(w, &fw), ArchCall::NotSupported);
            }
        }
    }

    #[test]
    fn discovery_asks_nothing_more_once_an_answer_rules_smccc_out() {
        let mut asked = alloc::vec::Vec::new();
        let mut inner = fake(0x1_0001, None, [0; 3]);
        let fw = discover(|fid, x1| {
            asked.push(fid);
            inner(fid, x1)
        });
        assert_eq!(fw, FirmwareArch::NONE);
        assert_eq!(asked, [PSCI_VERSION, PSCI_FEATURES], "no SMCCC_VERSION call without PSCI_FEATURES saying so");
    }
}
