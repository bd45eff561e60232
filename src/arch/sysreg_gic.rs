//! The GICv3 system registers el2visor uses: the ICC_* registers of its own CPU interface and the
//! ICH_* registers of the virtual interface. Each is a zero-sized register implementing
//! tock-registers' `Readable` / `Writeable`, used the way aarch64-cpu's registers are:
//! `ICH_HCR_EL2.modify(ICH_HCR_EL2::UIE::SET)`. The list and active-priority registers are
//! generic over their number (`ICH_LR_EL2::<3>` is ICH_LR3_EL2); [`read_ich_lr`] and
//! [`write_ich_lr`] take a run-time index.
//!
//! aarch64-cpu 11 defines some of these registers. Its field definitions of ICC_SRE_EL2,
//! ICH_HCR_EL2 and ICH_VTR_EL2 are the ones used here; its accessors are not, because
//! - its `mrs`/`msr` are `nomem` asm, which lets the compiler move memory accesses across them;
//!   el2visor's are, as they always were, ordered against memory by the compiler, so that (for
//!   one) the stores a kick SGI announces are not moved after the ICC_SGI1R_EL1 write;
//! - its ICC_CTLR_EL1 is read-only, and it lacks ICC_PMR_EL1, ICC_BPR1_EL1, ICC_IGRPEN1_EL1,
//!   ICC_IAR1_EL1, ICC_HPPIR1_EL1, ICC_EOIR1_EL1, ICC_DIR_EL1, ICC_SGI1R_EL1 and ICH_ELRSR_EL2.
//!
//! Registers are named by encoding (`S3_<op1>_C<n>_C<m>_<op2>`) in the assembly, so any assembler
//! takes them. Values without fields here (list registers, VMCR, APRs, MISR, SGI1R, IAR) are built
//! and decoded by the vGIC's host-tested code.
//!
//! Why these accesses are sound: they reach only the GIC CPU interface and virtual interface, never
//! memory, translation or el2visor's own state. The ICC_* registers are used only after
//! `GicV3::init_cpu` has set ICC_SRE_EL2.SRE on that CPU, and the ICH_* registers exist on every
//! CPU with a GICv3 CPU interface; on a CPU without one the instruction is UNDEFINED and ends in
//! el2visor's fatal-exception report, not in undefined behaviour.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;

/// Implement `Readable` (`read`) and/or `Writeable` (`write`) for the zero-sized register `$ty`,
/// one `mrs`/`msr` of the system register with encoding `$enc` each.
macro_rules! sysreg {
    ($(#[$m:meta])* $name:ident: $ty:ident = $enc:literal, $fields:ty, $($access:ident),+) => {
        $(#[$m])*
        pub struct $ty;
        $(#[$m])*
        pub const $name: $ty = $ty;
        $(sysreg!(@$access $ty, $enc, $fields);)+
    };
    (@read $ty:ident, $enc:literal, $fields:ty) => {
        impl Readable for $ty {
            type T = u64;
            type R = $fields;
            #[inline]
            fn get(&self) -> u64 {
                let v: u64;
                // SAFETY: a GIC system register read; see the module documentation.
                unsafe {
                    core::arch::asm!(
                        concat!("mrs {}, ", $enc),
                        out(reg) v,
                        options(nostack, preserves_flags),
                    )
                };
                v
            }
        }
    };
    (@write $ty:ident, $enc:literal, $fields:ty) => {
        impl Writeable for $ty {
            type T = u64;
            type R = $fields;
            #[inline]
            fn set(&self, v: u64) {
                // SAFETY: a GIC system register write; see the module documentation.
                unsafe {
                    core::arch::asm!(
                        concat!("msr ", $enc, ", {}"),
                        in(reg) v,
                        options(nostack, preserves_flags),
                    )
                };
            }
        }
    };
}

/// The fields of ICC_SRE_EL2, as aarch64-cpu defines them.
#[allow(non_snake_case)]
pub mod ICC_SRE_EL2 {
    pub use aarch64_cpu::registers::ICC_SRE_EL2::*;
}

/// The fields of ICH_HCR_EL2, as aarch64-cpu defines them.
#[allow(non_snake_case)]
pub mod ICH_HCR_EL2 {
    pub use aarch64_cpu::registers::ICH_HCR_EL2::*;
}

/// The fields of ICH_VTR_EL2, as aarch64-cpu defines them.
#[allow(non_snake_case)]
pub mod ICH_VTR_EL2 {
    pub use aarch64_cpu::registers::ICH_VTR_EL2::*;
}

register_bitfields! {u64,
    pub ICC_CTLR_EL1 [
        /// Interrupt ID range: SPIs extended with INTIDs 4096..5119 (read-only).
        ExtRange OFFSET(19) NUMBITS(1) [],
        /// Priority bits implemented, minus one (read-only).
        PRIbits OFFSET(8) NUMBITS(3) [],
        /// 1: ICC_EOIR1_EL1 only drops the running priority; ICC_DIR_EL1 deactivates.
        EOImode OFFSET(1) NUMBITS(1) [],
        /// ICC_BPR0_EL1 also controls Group 1 preemption.
        CBPR OFFSET(0) NUMBITS(1) [],
    ],
    pub ICC_PMR_EL1 [
        /// Only interrupts of higher priority (a lower value) than this are signalled.
        Priority OFFSET(0) NUMBITS(8) [],
    ],
    pub ICC_BPR1_EL1 [
        /// Priority bits below this point do not count for preemption.
        BinaryPoint OFFSET(0) NUMBITS(3) [],
    ],
    pub ICC_IGRPEN1_EL1 [
        /// Group 1 interrupts are enabled.
        Enable OFFSET(0) NUMBITS(1) [],
    ],
}

sysreg!(
    /// Interrupt Controller System Register Enable (EL2).
    ICC_SRE_EL2: IccSreEl2 = "S3_4_C12_C9_5", ICC_SRE_EL2::Register, read, write
);
sysreg!(
    /// Interrupt Controller Control Register (EL1), as EL2 uses it for its own interrupts.
    ICC_CTLR_EL1: IccCtlrEl1 = "S3_0_C12_C12_4", ICC_CTLR_EL1::Register, read, write
);
sysreg!(
    /// Interrupt Controller Interrupt Priority Mask Register.
    ICC_PMR_EL1: IccPmrEl1 = "S3_0_C4_C6_0", ICC_PMR_EL1::Register, read, write
);
sysreg!(
    /// Interrupt Controller Binary Point Register 1.
    ICC_BPR1_EL1: IccBpr1El1 = "S3_0_C12_C12_3", ICC_BPR1_EL1::Register, read, write
);
sysreg!(
    /// Interrupt Controller Interrupt Group 1 Enable register.
    ICC_IGRPEN1_EL1: IccIgrpen1El1 = "S3_0_C12_C12_7", ICC_IGRPEN1_EL1::Register, read, write
);
sysreg!(
    /// Interrupt Controller Interrupt Acknowledge Register 1: reading acknowledges.
    ICC_IAR1_EL1: IccIar1El1 = "S3_0_C12_C12_0", (), read
);
sysreg!(
    /// Interrupt Controller Highest Priority Pending Interrupt Register 1: reading does not
    /// acknowledge.
    ICC_HPPIR1_EL1: IccHppir1El1 = "S3_0_C12_C12_2", (), read
);
sysreg!(
    /// Interrupt Controller End Of Interrupt Register 1 (with EOImode = 1: priority drop).
    ICC_EOIR1_EL1: IccEoir1El1 = "S3_0_C12_C12_1", (), write
);
sysreg!(
    /// Interrupt Controller Deactivate Interrupt Register.
    ICC_DIR_EL1: IccDirEl1 = "S3_0_C12_C11_1", (), write
);
sysreg!(
    /// Interrupt Controller Software Generated Interrupt Group 1 Register.
    ICC_SGI1R_EL1: IccSgi1rEl1 = "S3_0_C12_C11_5", (), write
);
sysreg!(
    /// Interrupt Controller Hyp Control Register.
    ICH_HCR_EL2: IchHcrEl2 = "S3_4_C12_C11_0", ICH_HCR_EL2::Register, read, write
);
sysreg!(
    /// Interrupt Controller VGIC Type Register.
    ICH_VTR_EL2: IchVtrEl2 = "S3_4_C12_C11_1", ICH_VTR_EL2::Register, read
);
sysreg!(
    /// Interrupt Controller Maintenance Interrupt State Register.
    ICH_MISR_EL2: IchMisrEl2 = "S3_4_C12_C11_2", (), read
);
sysreg!(
    /// Interrupt Controller Empty List Register Status Register.
    ICH_ELRSR_EL2: IchElrsrEl2 = "S3_4_C12_C11_5", (), read
);
sysreg!(
    /// Interrupt Controller Virtual Machine Control Register.
    ICH_VMCR_EL2: IchVmcrEl2 = "S3_4_C12_C11_7", (), read, write
);

/// Implement `Readable` and `Writeable` for the numbered register `$ty<N>`, encoded
/// `S3_4_C12_C<$crm>_<$op2>`.
macro_rules! numbered_sysreg {
    ($ty:ident, crm = $crm:expr, op2 = $op2:expr) => {
        impl<const N: usize> Readable for $ty<N> {
            type T = u64;
            type R = ();
            #[inline]
            fn get(&self) -> u64 {
                let v: u64;
                // SAFETY: a GIC system register read; see the module documentation.
                unsafe {
                    core::arch::asm!(
                        "mrs {v}, S3_4_C12_C{crm}_{op2}",
                        v = out(reg) v,
                        crm = const $crm,
                        op2 = const $op2,
                        options(nostack, preserves_flags),
                    )
                };
                v
            }
        }
        impl<const N: usize> Writeable for $ty<N> {
            type T = u64;
            type R = ();
            #[inline]
            fn set(&self, v: u64) {
                // SAFETY: a GIC system register write; see the module documentation.
                unsafe {
                    core::arch::asm!(
                        "msr S3_4_C12_C{crm}_{op2}, {v}",
                        v = in(reg) v,
                        crm = const $crm,
                        op2 = const $op2,
                        options(nostack, preserves_flags),
                    )
                };
            }
        }
    };
}

/// ICH_LR<N>_EL2, N = 0..16: S3_4_C12_C12_<N> for N < 8, S3_4_C12_C13_<N - 8> from 8.
#[allow(non_camel_case_types)]
pub struct ICH_LR_EL2<const N: usize>;
numbered_sysreg!(ICH_LR_EL2, crm = { const { assert!(N < 16) }; 12 + N / 8 }, op2 = N % 8);

/// ICH_AP0R<N>_EL2, N = 0..4: the Group 0 active priorities.
#[allow(non_camel_case_types)]
pub struct ICH_AP0R_EL2<const N: usize>;
numbered_sysreg!(ICH_AP0R_EL2, crm = 8, op2 = { const { assert!(N < 4) }; N });

/// ICH_AP1R<N>_EL2, N = 0..4: the Group 1 active priorities.
#[allow(non_camel_case_types)]
pub struct ICH_AP1R_EL2<const N: usize>;
numbered_sysreg!(ICH_AP1R_EL2, crm = 9, op2 = { const { assert!(N < 4) }; N });

/// Call `$f!(N)` for the `N` that equals the run-time `$i` (0..16), else evaluate `$else`.
macro_rules! for_lr {
    ($i:expr, $f:ident, $else:expr) => {
        match $i {
            0 => $f!(0),
            1 => $f!(1),
            2 => $f!(2),
            3 => $f!(3),
            4 => $f!(4),
            5 => $f!(5),
            6 => $f!(6),
            7 => $f!(7),
            8 => $f!(8),
            9 => $f!(9),
            10 => $f!(10),
            11 => $f!(11),
            12 => $f!(12),
            13 => $f!(13),
            14 => $f!(14),
            15 => $f!(15),
            _ => $else,
        }
    };
}

/// ICH_LR<n>_EL2; `None` past the architectural 16.
#[inline]
pub fn read_ich_lr(n: usize) -> Option<u64> {
    macro_rules! read {
        ($n:literal) => {
            Some(ICH_LR_EL2::<$n>.get())
        };
    }
    for_lr!(n, read, None)
}

/// Write ICH_LR<n>_EL2; `false` (and nothing written) past the architectural 16.
#[inline]
pub fn write_ich_lr(n: usize, v: u64) -> bool {
    macro_rules! write {
        ($n:literal) => {{
            ICH_LR_EL2::<$n>.set(v);
            true
        }};
    }
    for_lr!(n, write, false)
}
