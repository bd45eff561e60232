//! The assembly that runs before Rust (`boot/entry.S`), the EL2 vector table (`boot/vectors.S`)
//! and its TVM fast path (`boot/tvm_fastpath.S`), plus the data the assembly reads.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::percpu::{PerCpu, MAX_CPUS, PERCPU, TVM_FAST_MAIR_OVERRIDE, TVM_FAST_PLAIN};

// The assembly takes the per-CPU record's layout from the struct itself: `{PC_*}` are the offsets
// of the words it reads, `{PERCPU_SIZE}` the stride of `PERCPU`, so the two cannot drift apart.
core::arch::global_asm!(
    include_str!("../../boot/entry.S"),
    PC_MPIDR = const core::mem::offset_of!(PerCpu, mpidr),
    PERCPU_SIZE = const core::mem::size_of::<PerCpu>(),
    MAX_CPUS = const MAX_CPUS,
    STACK_SIZE = const STACK_SIZE,
);
core::arch::global_asm!(include_str!("../../boot/vectors.S"));
core::arch::global_asm!(
    include_str!("../../boot/tvm_fastpath.S"),
    HVC_FAST_KEY = sym crate::arch::hvc_fast::HVC_FAST_KEY,
    PC_TVM_MODE = const core::mem::offset_of!(PerCpu, tvm_mode),
    PC_GUEST_MAIR = const core::mem::offset_of!(PerCpu, guest_mair),
    PC_TVM_FAST = const core::mem::offset_of!(PerCpu, tvm_fast),
    TVM_FAST_PLAIN = const TVM_FAST_PLAIN,
    TVM_FAST_MAIR_OVERRIDE = const TVM_FAST_MAIR_OVERRIDE,
);

core::arch::global_asm!(
    include_str!("../../boot/hvc_fastpath.S"),
    PC_EXITS_HVC = const core::mem::offset_of!(PerCpu, exits) + crate::percpu::stats::ExitCounters::offset_of(crate::percpu::stats::ExitReason::Hvc),
    ANSWER_1_1 = const crate::arch::hvc_fast::ANSWER_1_1,
    FID_SMCCC_VERSION = const crate::arch::hvc_fast::FID_SMCCC_VERSION,
    FID_ARCH_FEATURES = const crate::arch::hvc_fast::FID_ARCH_FEATURES,
    FID_PSCI_VERSION = const crate::arch::hvc_fast::FID_PSCI_VERSION,
    FID_WORKAROUND_1 = const crate::arch::hvc_fast::FID_WORKAROUNDS[0],
    FID_WORKAROUND_2 = const crate::arch::hvc_fast::FID_WORKAROUNDS[1],
    FID_WORKAROUND_3 = const crate::arch::hvc_fast::FID_WORKAROUNDS[2],
    HVC_FAST_WORKAROUNDS = sym crate::arch::hvc_fast::HVC_FAST_WORKAROUNDS,
);

// The assembly uses these offsets as load/store immediates (scaled by 8, at most 32760) and adds
// the stride with one `add` (at most 4095).
const _: () = assert!(core::mem::offset_of!(PerCpu, exits) + 80 < 32760);
const _: () = assert!(core::mem::offset_of!(PerCpu, tvm_fast) < 4096 && core::mem::offset_of!(PerCpu, mpidr).is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<PerCpu>() < 4096 && core::mem::size_of::<PerCpu>().is_multiple_of(8));

/// Bytes of EL2 stack slot per CPU (linker.ld and entry.S use the same number), the guard page
/// included; slots are aligned to their size.
pub const STACK_SIZE: usize = 0x10000;
/// The lowest bytes of each slot: a guard page, unmapped at EL2 (`mm::el2_tables::stack_guards`),
/// so that an overflow faults. boot/vectors.S tests SP's offset in its slot against it.
pub const STACK_GUARD: usize = 0x1000;
const _: () = assert!(STACK_SIZE == 0x10000 && STACK_GUARD == 0x1000, "boot/vectors.S hard-codes both");

/// MAIR, TCR, TTBR0 and SCTLR for EL2 that a secondary loads before turning its MMU on
/// (SCTLR = 0 means the primary runs without the MMU and so will the secondary).
#[no_mangle]
pub static EL2_MMU_BOOT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_file_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    static __dtb_slot_start: u8;
    static __dtb_slot_end: u8;
    fn secondary_entry();
    fn relocated_entry();
    fn el2_vectors();
    fn el2_vectors_mair();
}

/// The EL2 vector table for a CPU whose vCPU runs with TVM fast-path mode `tvm_mode`
/// (`percpu::TVM_FAST_*`): `el2_vectors_mair` (boot/tvm_fastpath.S, whose guest-synchronous entry
/// serves a MAIR_EL1 write before reading anything) in mair-trap mode, else `el2_vectors`.
pub fn vectors_for_tvm_mode(tvm_mode: u64) -> u64 {
    if tvm_mode == TVM_FAST_MAIR_OVERRIDE {
        el2_vectors_mair as *const () as u64
    } else {
        el2_vectors as *const () as u64
    }
}

/// Runtime addresses of the image's sections.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_end: u64,
    /// End of what the file holds (text, rodata, relocations, data); BSS, the stacks, the device
    /// tree's slot and the heap's boot arena follow.
    pub file_end: u64,
    /// End of everything, BSS, stacks and arena included (a multiple of 2 MiB from `start`).
    pub end: u64,
}

/// Where the loader put us.
pub fn image_layout() -> ImageLayout {
    // SAFETY: the linker script defines these symbols; only their addresses are taken.
    unsafe {
        ImageLayout {
            start: &__image_start as *const u8 as u64,
            text_end: &__text_end as *const u8 as u64,
            rodata_end: &__rodata_end as *const u8 as u64,
            file_end: &__image_file_end as *const u8 as u64,
            end: &__image_end as *const u8 as u64,
        }
    }
}

/// Physical address a secondary CPU must start at (PSCI CPU_ON entry or spin-table release).
pub fn secondary_entry_pa() -> u64 {
    secondary_entry as *const () as u64
}

/// Where the image's second entry (`relocated_entry` in entry.S) is, from its start.
pub fn relocated_entry_offset() -> u64 {
    relocated_entry as *const () as u64 - image_layout().start
}

/// Copy `len` bytes (a multiple of 8) from `src` to `dst` (both 8-byte aligned) with 8-byte
/// volatile accesses: with the MMU off all memory is Device, which takes aligned accesses only.
///
/// # Safety
/// Both ranges must be RAM, `dst` writable and owned by the caller, and they must not overlap.
pub unsafe fn copy_words_mmu_off(dst: u64, src: u64, len: u64) {
    for off in (0..len).step_by(8) {
        // SAFETY: the caller's contract; every access is inside the ranges and 8-byte aligned.
        unsafe { core::ptr::write_volatile((dst + off) as *mut u64, core::ptr::read_volatile((src + off) as *const u64)) };
    }
}

/// Jump to a copy of the image at `entry` (its `relocated_entry`) with x0 = `dtb`, never to
/// return: the copy's own code sets up its stack, vectors and per-CPU pointer again. The copy was
/// written with the MMU off (straight to memory); stale instructions for its addresses are
/// dropped first.
///
/// # Safety
/// `entry` must be `relocated_entry` of a complete copy of this image, MMU off, and nothing of
/// the running image may be needed afterwards.
pub unsafe fn enter_copy(entry: u64, dtb: u64) -> ! {
    // SAFETY: the caller's contract. DSB SY completes the copy's stores, IC IALLU drops any
    // instruction-cache line for its addresses, and the branch never comes back.
    unsafe {
        core::arch::asm!(
            "dsb sy",
            "ic iallu",
            "dsb sy",
            "isb",
            "br {entry}",
            entry = in(reg) entry,
            in("x0") dtb,
            options(noreturn, nostack),
        )
    }
}

/// Where the stack slots start (64 KiB aligned).
pub fn stacks_start() -> u64 {
    // SAFETY: only the address of the linker-defined stack area is taken.
    unsafe { &__stacks_start as *const u8 as u64 }
}

/// The image's slot for the moved device tree (`boot::relocate`): start and size, 4 KiB aligned.
pub fn dtb_slot() -> (u64, u64) {
    // SAFETY: only the addresses of the linker-defined slot's bounds are taken.
    let (start, end) = unsafe { (&__dtb_slot_start as *const u8 as u64, &__dtb_slot_end as *const u8 as u64) };
    (start, end - start)
}

/// Lowest address of CPU `cpu`'s EL2 stack slot (its guard page).
pub fn stack_base(cpu: usize) -> u64 {
    stacks_start() + (cpu * STACK_SIZE) as u64
}

/// Record the MPIDRs of the CPUs to start and the EL2 MMU setup, then make both visible to
/// CPUs that will read them with their MMU and caches off.
pub fn publish_for_secondaries(mpidrs: &[u64], mmu: Option<[u64; 4]>) {
    for (c, mpidr) in PERCPU.iter().zip(mpidrs) {
        c.mpidr.store(mpidr & 0xff_00ff_ffff, Ordering::Relaxed);
    }
    if let Some(regs) = mmu {
        for (slot, v) in EL2_MMU_BOOT.iter().zip(regs) {
            slot.store(v, Ordering::Relaxed);
        }
    }
    for c in &PERCPU {
        super::cache::clean_inval_range(&c.mpidr as *const _ as u64, 8);
    }
    super::cache::clean_inval_range(EL2_MMU_BOOT.as_ptr() as u64, core::mem::size_of_val(&EL2_MMU_BOOT));
}
