//! Injecting a synchronous exception into a guest's EL1: the ESR_EL1 syndrome to give it, and
//! where the exception goes (vector address and the new PSTATE), per the Arm ARM rules for
//! taking an exception to AArch64 EL1.
//!
//! # Which exception to inject
//! - A **synchronous external abort** ([`syndrome_for_injected_abort`]) when the guest made a
//!   memory access el2visor will not complete: a data or instruction abort on an IPA the VM does
//!   not own, or an MMIO access an emulated device refuses. This is what real hardware does for
//!   an access to nothing, and Linux reports it as such and kills the task (or oopses) instead
//!   of looping.
//! - An **alignment fault** ([`syndrome_for_alignment_fault`]) when stage 2's Device type made
//!   the guest's access one: what the guest gets on hardware mapping the device Device itself.
//! - An **UNDEF** ([`syndrome_for_undef`], EC 0 "unknown reason") when the guest executed an
//!   instruction el2visor traps but does not emulate: an unhandled system register or system
//!   instruction, an AArch32 coprocessor access, an SMC with a non-zero immediate. This is what
//!   the guest would see on a CPU without that register.
//!
//! # How the runtime applies an injection
//! With `t = inject_target(spsr_el2, vbar_el1, entry)?`: ELR_EL1 ← ELR_EL2 (the faulting
//! instruction, not advanced), SPSR_EL1 ← SPSR_EL2, ESR_EL1 ← the syndrome, FAR_EL1 ← FAR_EL2
//! (for aborts), then ELR_EL2 ← `t.elr`, SPSR_EL2 ← `t.spsr`, and return to the guest.

use core::fmt;

use super::esr::{Esr, ExceptionClass};

const IL: u64 = 1 << 25;
const EC_SHIFT: u32 = 26;
/// DFSC/IFSC 0b010000: synchronous external abort, not on a translation table walk.
const FSC_SYNC_EXTERNAL: u64 = 0b01_0000;
const FSC_ALIGNMENT: u64 = 0b10_0001;
const ISS_EA: u64 = 1 << 9;
const ISS_FNV: u64 = 1 << 10;
const ISS_CM: u64 = 1 << 8;
const ISS_WNR: u64 = 1 << 6;

/// SPSR mode field: bit 4 set = the guest was in AArch32 (with HCR_EL2.RW = 1 only EL0 can be).
const SPSR_M_AARCH32: u64 = 1 << 4;
const SPSR_M_MASK: u64 = 0x1f;
const SPSR_M_EL0T: u64 = 0b0_0000;
const SPSR_M_EL1T: u64 = 0b0_0100;
const SPSR_M_EL1H: u64 = 0b0_0101;
/// AArch32 User mode (EL0).
const SPSR_M32_USR: u64 = 0b1_0000;
const SPSR_DAIF: u64 = 0b1111 << 6;
const SPSR_NZCV: u64 = 0b1111 << 28;
const SPSR_PAN: u64 = 1 << 22;
const SPSR_DIT: u64 = 1 << 24;
const SPSR_TCO: u64 = 1 << 25;
const SPSR_SSBS: u64 = 1 << 12;

/// PSTATE.ALLINT (FEAT_NMI): every interrupt masked, superpriority ones too.
const SPSR_ALLINT: u64 = 1 << 13;
/// PSTATE.EXLOCK (FEAT_GCS): the exception-return lock of GCSCR_ELx.EXLOCKEN.
const SPSR_EXLOCK: u64 = 1 << 34;

const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;
/// SCTLR_EL1.SPINTMASK (FEAT_NMI): 1 leaves PSTATE.ALLINT clear on exception entry.
const SCTLR_SPINTMASK: u64 = 1 << 62;
/// GCSCR_EL1.EXLOCKEN (FEAT_GCS).
const GCSCR_EXLOCKEN: u64 = 1 << 6;

/// True when SPSR_EL2 says the guest was running at EL0 (AArch64 EL0t or any AArch32 mode,
/// since a guest EL1 is always AArch64 under el2visor).
pub const fn guest_was_el0(spsr_el2: u64) -> bool {
    spsr_el2 & SPSR_M_AARCH32 != 0 || spsr_el2 & SPSR_M_MASK == SPSR_M_EL0T
}

/// The ESR_EL1 value for a synchronous external abort el2visor injects in place of the
/// `trapped` data or instruction abort, or `None` when `trapped` is not an abort (then inject
/// an UNDEF with [`syndrome_for_undef`]).
///
/// The class is the "same EL" one (0x25 data, 0x21 instruction) when the guest was at EL1 and
/// the "lower EL" one (0x24, 0x20) when it was at EL0. The ISS has DFSC/IFSC = synchronous
/// external abort and EA = 1; WnR and CM (data aborts) and FnV are kept from the trap. ISV is 0:
/// the guest gets no instruction syndrome, so IL is 1 whatever the trapped instruction's length
/// (the Arm ARM's ESR_ELx.IL: 1 for an instruction abort and for a data abort with ISV = 0).
/// Give the guest FAR_EL1 = FAR_EL2.
pub fn syndrome_for_injected_abort(trapped: Esr, spsr_el2: u64) -> Option<u64> {
    let from_el0 = guest_was_el0(spsr_el2);
    let raw = u64::from(trapped.iss());
    let (ec, kept) = match trapped.class() {
        ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
            let ec = if from_el0 {
                ExceptionClass::DataAbortLower
            } else {
                ExceptionClass::DataAbortSame
            };
            (ec, raw & (ISS_WNR | ISS_CM | ISS_FNV))
        }
        ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
            let ec = if from_el0 {
                ExceptionClass::InstrAbortLower
            } else {
                ExceptionClass::InstrAbortSame
            };
            (ec, raw & ISS_FNV)
        }
        _ => return None,
    };
    let ec = u64::from(ec.code().unwrap_or(0));
    Some((ec << EC_SHIFT) | IL | kept | ISS_EA | FSC_SYNC_EXTERNAL)
}

/// The ESR_EL1 value for an alignment fault (DFSC 0b100001) in place of the `trapped` data abort
/// that stage 2 turned into one: what the guest takes on hardware for such an access to memory
/// it maps Device itself. The class and WnR/CM/FnV are kept as for
/// [`syndrome_for_injected_abort`]; no EA, no instruction syndrome. `None` for anything but a
/// data abort.
pub fn syndrome_for_alignment_fault(trapped: Esr, spsr_el2: u64) -> Option<u64> {
    if !matches!(trapped.class(), ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame) {
        return None;
    }
    let external = syndrome_for_injected_abort(trapped, spsr_el2)?;
    Some(external & !(ISS_EA | 0x3f) | FSC_ALIGNMENT)
}

/// The ESR_EL1 value for an UNDEF injected in place of the `trapped` instruction: EC 0
/// (unknown reason), ISS 0, and IL 1, which the Arm ARM's ESR_ELx.IL requires for EC 0 whatever
/// the instruction's length (a 16-bit T32 one included).
pub const fn syndrome_for_undef(_trapped: Esr) -> u64 {
    IL
}

/// What PSTATE bits an exception entry to EL1 computes from system state, for
/// [`inject_target`]. Build it with [`EntryState::from_sctlr_el1`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EntryState {
    /// FEAT_PAN is implemented and SCTLR_EL1.SPAN = 0: PSTATE.PAN is set on entry. Otherwise
    /// PAN keeps its value.
    pub set_pan: bool,
    /// SCTLR_EL1.DSSBS: the value PSTATE.SSBS takes on entry (FEAT_SSBS).
    pub ssbs: bool,
    /// FEAT_MTE is implemented: PSTATE.TCO is set on entry.
    pub set_tco: bool,
    /// FEAT_NMI is implemented and SCTLR_EL1.SPINTMASK = 0: PSTATE.ALLINT is set on entry (it
    /// is clear otherwise).
    pub set_allint: bool,
    /// FEAT_GCS is implemented and GCSCR_EL1.EXLOCKEN = 1: PSTATE.EXLOCK is set on an entry
    /// from EL1 (an ERET back to EL1 is then illegal until the guest's GCSPOPCX takes it).
    pub exlock: bool,
}

impl EntryState {
    /// From the guest's SCTLR_EL1 and whether the CPU implements FEAT_PAN, FEAT_MTE and
    /// FEAT_NMI (as the guest sees them); no exception-return lock (see [`Self::with_gcscr_el1`]).
    pub const fn from_sctlr_el1(sctlr_el1: u64, feat_pan: bool, feat_mte: bool, feat_nmi: bool) -> Self {
        Self {
            set_pan: feat_pan && sctlr_el1 & SCTLR_SPAN == 0,
            ssbs: sctlr_el1 & SCTLR_DSSBS != 0,
            set_tco: feat_mte,
            set_allint: feat_nmi && sctlr_el1 & SCTLR_SPINTMASK == 0,
            exlock: false,
        }
    }

    /// With the guest's GCSCR_EL1 (read only where FEAT_GCS is implemented).
    pub const fn with_gcscr_el1(mut self, gcscr_el1: u64) -> Self {
        self.exlock = gcscr_el1 & GCSCR_EXLOCKEN != 0;
        self
    }
}

/// Where an injected synchronous exception enters the guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InjectTarget {
    /// The new ELR_EL2: VBAR_EL1 + `offset`.
    pub elr: u64,
    /// The new SPSR_EL2: EL1h, DAIF masked, NZCV/DIT kept, PAN/SSBS/TCO/ALLINT/EXLOCK per
    /// [`EntryState`].
    pub spsr: u64,
    /// The synchronous vector offset: 0x000 current EL with SP0, 0x200 current EL with SPx,
    /// 0x400 lower EL AArch64, 0x600 lower EL AArch32.
    pub offset: u64,
}

/// Why an exception cannot be injected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InjectError {
    /// SPSR_EL2.M names a mode a guest cannot be in (EL2, EL3, or an AArch32 mode other than
    /// User, since a guest's EL1 is AArch64).
    ImpossibleMode { spsr: u64 },
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImpossibleMode { spsr } => write!(
                f,
                "cannot inject an exception: SPSR_EL2 {spsr:#x} has mode {:#07b}, which is not \
                 guest EL0 or AArch64 EL1 (the saved guest state is corrupt)",
                spsr & SPSR_M_MASK
            ),
        }
    }
}

/// Where a synchronous exception injected into the guest goes, given the guest's PSTATE at
/// the trap (SPSR_EL2) and its VBAR_EL1.
pub fn inject_target(
    spsr_el2: u64,
    vbar_el1: u64,
    entry: EntryState,
) -> Result<InjectTarget, InjectError> {
    let mode = spsr_el2 & SPSR_M_MASK;
    let offset = match mode {
        SPSR_M_EL1T => 0x000,
        SPSR_M_EL1H => 0x200,
        SPSR_M_EL0T => 0x400,
        SPSR_M32_USR => 0x600,
        _ => return Err(InjectError::ImpossibleMode { spsr: spsr_el2 }),
    };
    let mut spsr = (spsr_el2 & (SPSR_NZCV | SPSR_DIT | SPSR_PAN)) | SPSR_DAIF | SPSR_M_EL1H;
    if entry.set_pan {
        spsr |= SPSR_PAN;
    }
    if entry.ssbs {
        spsr |= SPSR_SSBS;
    }
    if entry.set_tco {
        spsr |= SPSR_TCO;
    }
    if entry.set_allint {
        spsr |= SPSR_ALLINT;
    }
    if entry.exlock && matches!(mode, SPSR_M_EL1T | SPSR_M_EL1H) {
        spsr |= SPSR_EXLOCK;
    }
    // VBAR_EL1 bits 10:0 are RES0.
    Ok(InjectTarget {
        elr: (vbar_el1 & !0x7ff).wrapping_add(offset),
        spsr,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const PLAIN: EntryState = EntryState {
        set_pan: false,
        ssbs: false,
        set_tco: false,
        set_allint: false,
        exlock: false,
    };

    #[test]
    fn abort_from_el1_becomes_same_el_external_abort_keeping_wnr() {
        // Guest kernel (EL1h) writes to an unowned IPA: EC 0x24, ISV, translation fault L3.
        let trapped = Esr((0x24 << 26) | IL | (1 << 24) | (3 << 16) | ISS_WNR | 0x07);
        let esr = Esr(syndrome_for_injected_abort(trapped, 0x3c5).unwrap());
        assert_eq!(esr.class(), ExceptionClass::DataAbortSame);
        let da = esr.data_abort().unwrap();
        assert!(da.wnr && da.ea && !da.isv && !da.s1ptw);
        assert_eq!(da.dfsc, super::super::iss::FaultStatus::SyncExternal);
        assert!(esr.il());
        assert_eq!(esr.0, 0x9600_0250);
    }

    #[test]
    fn abort_from_el0_becomes_lower_el_abort() {
        let trapped = Esr((0x24 << 26) | IL | 0x06);
        let el0t = Esr(syndrome_for_injected_abort(trapped, 0).unwrap());
        assert_eq!(el0t.class(), ExceptionClass::DataAbortLower);
        assert!(!el0t.data_abort().unwrap().wnr);
        // AArch32 user mode counts as EL0 too.
        let usr = Esr(syndrome_for_injected_abort(trapped, 0x10).unwrap());
        assert_eq!(usr.class(), ExceptionClass::DataAbortLower);
    }

    #[test]
    fn instruction_abort_keeps_fnv_and_class_follows_mode() {
        let trapped = Esr((0x20 << 26) | IL | ISS_FNV | (1 << 7) | 0x05);
        let el1 = Esr(syndrome_for_injected_abort(trapped, 0x3c4).unwrap());
        assert_eq!(el1.class(), ExceptionClass::InstrAbortSame);
        let ia = el1.instruction_abort().unwrap();
        assert!(ia.fnv && ia.ea && !ia.s1ptw);
        let el0 = Esr(syndrome_for_injected_abort(trapped, 0).unwrap());
        assert_eq!(el0.class(), ExceptionClass::InstrAbortLower);
    }

    #[test]
    fn a_stage2_alignment_fault_is_mirrored_as_one() {
        // EL1 DC ZVA on a device stage 2 maps Device: EC 0x24, CM, WnR, DFSC alignment.
        let trapped = Esr((0x24 << 26) | IL | ISS_CM | ISS_WNR | 0x21);
        let esr = Esr(syndrome_for_alignment_fault(trapped, 0x3c5).unwrap());
        assert_eq!(esr.class(), ExceptionClass::DataAbortSame);
        let da = esr.data_abort().unwrap();
        assert!(da.wnr && da.cm && !da.ea && !da.isv);
        assert_eq!(esr.0, 0x9600_0161);
        // From EL0; and never for an instruction abort.
        assert_eq!(Esr(syndrome_for_alignment_fault(trapped, 0).unwrap()).class(), ExceptionClass::DataAbortLower);
        assert_eq!(syndrome_for_alignment_fault(Esr((0x20 << 26) | IL | 0x21), 0x3c5), None);
    }

    #[test]
    fn non_aborts_have_no_abort_syndrome_and_undef_has_il_set() {
        assert_eq!(syndrome_for_injected_abort(Esr(0x6230_2804), 0x3c5), None);
        assert_eq!(syndrome_for_undef(Esr(0x6230_2804)), 0x0200_0000);
        // A 16-bit T32 instruction (IL = 0) trapped: EC 0 still has IL = 1.
        assert_eq!(syndrome_for_undef(Esr(0x0c << 26)), 0x0200_0000);
    }

    #[test]
    fn an_injected_abort_has_il_set_even_for_a_16_bit_instruction() {
        // AArch32 EL0 T32 `ldr r0, [r1]` (16-bit: IL = 0, ISV = 1) to an unowned address.
        let trapped = Esr((0x24 << 26) | (1 << 24) | (2 << 22) | 0x07);
        let esr = Esr(syndrome_for_injected_abort(trapped, 0x30).unwrap());
        assert!(esr.il(), "ISV = 0 in the injected syndrome: IL must be 1");
        assert!(!esr.data_abort().unwrap().isv);
    }

    #[test]
    fn vector_offsets_per_mode() {
        let vbar = 0xffff_8000_1000_0800;
        for (spsr, offset) in [
            (0x3c4, 0x000),
            (0x3c5, 0x200),
            (0x000, 0x400),
            (0x010, 0x600),
        ] {
            let t = inject_target(spsr, vbar, PLAIN).unwrap();
            assert_eq!(t.offset, offset);
            assert_eq!(t.elr, vbar + offset);
            assert_eq!(t.spsr & 0x3ff, 0x3c5, "EL1h with DAIF masked");
        }
        // RES0 low bits of VBAR are ignored.
        assert_eq!(
            inject_target(0x3c5, 0x1000_0fff, PLAIN).unwrap().elr,
            0x1000_0a00
        );
    }

    #[test]
    fn new_pstate_keeps_flags_and_applies_entry_state() {
        let old = SPSR_NZCV | SPSR_DIT | SPSR_SSBS | (1 << 21) | (1 << 20) | SPSR_M_EL0T;
        let t = inject_target(old, 0, PLAIN).unwrap();
        assert_eq!(
            t.spsr,
            SPSR_NZCV | SPSR_DIT | SPSR_DAIF | SPSR_M_EL1H,
            "SS, IL, SSBS cleared"
        );
        let entry = EntryState::from_sctlr_el1(SCTLR_DSSBS, true, true, false);
        assert_eq!(
            entry,
            EntryState {
                set_pan: true,
                ssbs: true,
                set_tco: true,
                set_allint: false,
                exlock: false,
            }
        );
        let t = inject_target(SPSR_M_EL1H, 0, entry).unwrap();
        assert_eq!(
            t.spsr,
            SPSR_PAN | SPSR_SSBS | SPSR_TCO | SPSR_DAIF | SPSR_M_EL1H
        );
        // SPAN = 1: PAN unchanged, whether it was set or clear.
        let keep = EntryState::from_sctlr_el1(SCTLR_SPAN, true, false, false);
        assert!(!keep.set_pan);
        assert_eq!(
            inject_target(SPSR_M_EL1H | SPSR_PAN, 0, keep).unwrap().spsr & SPSR_PAN,
            SPSR_PAN
        );
        assert_eq!(
            inject_target(SPSR_M_EL1H, 0, keep).unwrap().spsr & SPSR_PAN,
            0
        );
        // Without FEAT_PAN nothing sets it.
        assert!(!EntryState::from_sctlr_el1(0, false, false, false).set_pan);
    }

    /// FEAT_NMI: ALLINT is set on entry unless SCTLR_EL1.SPINTMASK, and clear without the
    /// feature whatever it was. FEAT_GCS: EXLOCK with GCSCR_EL1.EXLOCKEN, on an entry from EL1
    /// only (the lock guards a return to the same EL).
    #[test]
    fn allint_and_exlock_on_entry() {
        let nmi = EntryState::from_sctlr_el1(0, false, false, true);
        assert_ne!(inject_target(SPSR_M_EL0T, 0, nmi).unwrap().spsr & SPSR_ALLINT, 0);
        let masked = EntryState::from_sctlr_el1(SCTLR_SPINTMASK, false, false, true);
        assert_eq!(inject_target(SPSR_M_EL1H | SPSR_ALLINT, 0, masked).unwrap().spsr & SPSR_ALLINT, 0);
        let none = EntryState::from_sctlr_el1(0, false, false, false);
        assert_eq!(inject_target(SPSR_M_EL1H | SPSR_ALLINT, 0, none).unwrap().spsr & SPSR_ALLINT, 0);
        let lock = none.with_gcscr_el1(GCSCR_EXLOCKEN);
        assert!(lock.exlock && !none.with_gcscr_el1(!GCSCR_EXLOCKEN).exlock);
        for (mode, want) in [(SPSR_M_EL1H, SPSR_EXLOCK), (SPSR_M_EL1T, SPSR_EXLOCK), (SPSR_M_EL0T, 0), (SPSR_M32_USR, 0)] {
            assert_eq!(inject_target(mode, 0, lock).unwrap().spsr & SPSR_EXLOCK, want, "mode {mode:#x}");
        }
        assert_eq!(inject_target(SPSR_M_EL1H | SPSR_EXLOCK, 0, none).unwrap().spsr & SPSR_EXLOCK, 0);
    }

    #[test]
    fn impossible_modes_are_errors_with_a_message() {
        for spsr in [0x3c9, 0x3cd, 0x1d3, 0x1f] {
            let err = inject_target(spsr, 0, PLAIN).unwrap_err();
            assert_eq!(err, InjectError::ImpossibleMode { spsr });
            assert!(err.to_string().contains("not guest EL0 or AArch64 EL1"));
        }
    }
}
