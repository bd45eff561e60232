//! What a physical SError caused by a guest becomes: a virtual SError for that guest (HCR_EL2.VSE),
//! never the end of the VM or of the machine, as KVM does (`kvm_handle_guest_serror`). Pure: the
//! runtime passes the syndrome and whether the CPU has FEAT_RAS.
//!
//! Without FEAT_RAS, or with an IMPLEMENTATION DEFINED syndrome (ESR.IDS), nothing says how bad
//! the error is, so the guest gets it. With FEAT_RAS and an architected syndrome, errors that
//! were corrected (AET CE) or that are restartable and not yet consumed (AET UEO) need nothing
//! from the guest and are dropped; every other one (uncontainable, unrecoverable, recoverable
//! but consumed, or not an asynchronous SError at all) is injected.

#![forbid(unsafe_code)]

/// ISS.IDS (bit 24): the syndrome is IMPLEMENTATION DEFINED.
pub const IDS: u64 = 1 << 24;
/// ISS.DFSC (bits 5:0) of an asynchronous SError with an architected syndrome.
const DFSC_ASYNC_SERROR: u64 = 0x11;
/// ISS.AET (bits 12:10) values that need no action from the guest.
const AET_UEO: u64 = 0b010;
const AET_CE: u64 = 0b110;

/// The syndrome of the virtual SError el2visor injects (VSESR_EL2): IDS set and nothing else, as
/// KVM's `kvm_inject_vabt`: the host's own error record is not the guest's business.
pub const VIRTUAL_SYNDROME: u64 = IDS;

/// What to do with a guest's SError.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SErrorAction {
    /// Make a virtual SError with syndrome [`VIRTUAL_SYNDROME`] pending for the guest.
    Inject,
    /// The error needs nothing from the guest (corrected, or restartable and not consumed).
    Ignore,
}

/// The action for an SError with syndrome `iss` (ESR_EL2 of the SError exit, or DISR_EL1 after
/// an `esb`: both hold IDS, AET and DFSC at the same bits) on a CPU with or without FEAT_RAS.
pub fn action(iss: u64, ras: bool) -> SErrorAction {
    if !ras || iss & IDS != 0 || iss & 0x3f != DFSC_ASYNC_SERROR {
        return SErrorAction::Inject;
    }
    match (iss >> 10) & 0b111 {
        AET_CE | AET_UEO => SErrorAction::Ignore,
        _ => SErrorAction::Inject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SError exit's ESR_EL2: EC 0x2f, IL, then the ISS.
    fn esr(iss: u64) -> u64 {
        (0x2f << 26) | (1 << 25) | iss
    }

    #[test]
    fn without_ras_every_serror_is_injected() {
        for iss in [0, IDS, 0x11, (AET_CE << 10) | 0x11, 0xff_ffff] {
            assert_eq!(action(esr(iss), false), SErrorAction::Inject, "ISS {iss:#x}");
        }
    }

    #[test]
    fn with_ras_corrected_and_restartable_errors_are_dropped() {
        assert_eq!(action(esr((AET_CE << 10) | 0x11), true), SErrorAction::Ignore);
        assert_eq!(action(esr((AET_UEO << 10) | 0x11), true), SErrorAction::Ignore);
        // Uncontainable, unrecoverable, recoverable-but-consumed, reserved: the guest gets them.
        for aet in [0b000, 0b001, 0b011, 0b100, 0b101, 0b111] {
            assert_eq!(action(esr((aet << 10) | 0x11), true), SErrorAction::Inject, "AET {aet:#05b}");
        }
    }

    #[test]
    fn with_ras_an_unarchitected_syndrome_is_injected() {
        // IMPLEMENTATION DEFINED syndrome, even one that looks like a corrected error.
        assert_eq!(action(esr(IDS | (AET_CE << 10) | 0x11), true), SErrorAction::Inject);
        // DFSC 0 (uncategorized): AET means nothing.
        assert_eq!(action(esr(AET_CE << 10), true), SErrorAction::Inject);
    }

    #[test]
    fn the_virtual_syndrome_hides_the_host_record() {
        assert_eq!(VIRTUAL_SYNDROME, 1 << 24);
        assert_eq!(action(VIRTUAL_SYNDROME, true), SErrorAction::Inject);
    }
}
