//! The assembly that runs before Rust (`boot/entry.S`), the EL2 vector table (`boot/vectors.S`)
//! and its TVM fast path (`boot/tvm_fastpath.S`), plus the data the assembly reads.

use core::sync::atomic::{AtomicU64, Ordering};

core::arch::global_asm!(include_str!("../../boot/entry.S"));
core::arch::global_asm!(include_str!("../../boot/vectors.S"));
core::arch::global_asm!(include_str!("../../boot/tvm_fastpath.S"));

/// `TVM_FAST_PATH_ON`: the TVM fast path (boot/tvm_fastpath.S) is off; every trapped write
/// goes to the Rust slow path.
pub const TVM_FAST_OFF: u64 = 0;
/// `TVM_FAST_PATH_ON`: the fast path serves trapped writes and writes the values unchanged.
pub const TVM_FAST_PLAIN: u64 = 1;
/// `TVM_FAST_PATH_ON`: the fast path serves trapped writes, MAIR_EL1 through the mair-trap
/// override (`crate::coherency::override_mair`).
pub const TVM_FAST_MAIR_OVERRIDE: u64 = 2;

/// What the TVM fast path does for the running VM, read first on every synchronous exception
/// from a guest: one of `TVM_FAST_OFF`, `TVM_FAST_PLAIN`, `TVM_FAST_MAIR_OVERRIDE` (the asm has
/// the same numbers). Set once by `vm::instance::create` from [`tvm_fast_path_word`].
#[no_mangle]
pub static TVM_FAST_PATH_ON: AtomicU64 = AtomicU64::new(TVM_FAST_OFF);

/// The `TVM_FAST_PATH_ON` value for a VM's coherency setting: off with `fastpath=off`, else the
/// same rule as `crate::coherency::tvm_write_value` (the override only in mair-trap mode).
pub const fn tvm_fast_path_word(setting: crate::coherency::Setting) -> u64 {
    match (setting.fast_path, setting.mode) {
        (false, _) => TVM_FAST_OFF,
        (true, crate::coherency::Mode::MairTrap) => TVM_FAST_MAIR_OVERRIDE,
        (true, _) => TVM_FAST_PLAIN,
    }
}

/// The most CPUs el2visor brings up (the GICv2 limit, and the size of the stack area in linker.ld).
pub const MAX_CPUS: usize = 8;
/// Bytes of EL2 stack per CPU (linker.ld and entry.S use the same number).
pub const STACK_SIZE: usize = 0x10000;

/// MPIDR affinity (Aff3..Aff0) of each logical CPU; `secondary_entry` looks itself up here with
/// the MMU off, so `publish_for_secondaries` cleans it to the point of coherency.
#[no_mangle]
pub static CPU_MPIDRS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

/// MAIR, TCR, TTBR0 and SCTLR for EL2 that a secondary loads before turning its MMU on
/// (SCTLR = 0 means the primary runs without the MMU and so will the secondary).
#[no_mangle]
pub static EL2_MMU_BOOT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    fn secondary_entry();
}

/// Runtime addresses of the image's sections.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_end: u64,
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
            end: &__image_end as *const u8 as u64,
        }
    }
}

/// Physical address a secondary CPU must start at (PSCI CPU_ON entry or spin-table release).
pub fn secondary_entry_pa() -> u64 {
    secondary_entry as *const () as u64
}

/// Lowest address of CPU `cpu`'s EL2 stack.
pub fn stack_base(cpu: usize) -> u64 {
    // SAFETY: only the address of the linker-defined stack area is taken.
    let start = unsafe { &__stacks_start as *const u8 as u64 };
    start + (cpu * STACK_SIZE) as u64
}

/// Record the MPIDRs of the CPUs to start and the EL2 MMU setup, then make both visible to
/// CPUs that will read them with their MMU and caches off.
pub fn publish_for_secondaries(mpidrs: &[u64], mmu: Option<[u64; 4]>) {
    for (slot, mpidr) in CPU_MPIDRS.iter().zip(mpidrs) {
        slot.store(mpidr & 0xff_00ff_ffff, Ordering::Relaxed);
    }
    if let Some(regs) = mmu {
        for (slot, v) in EL2_MMU_BOOT.iter().zip(regs) {
            slot.store(v, Ordering::Relaxed);
        }
    }
    super::cache::clean_inval_range(CPU_MPIDRS.as_ptr() as u64, core::mem::size_of_val(&CPU_MPIDRS));
    super::cache::clean_inval_range(EL2_MMU_BOOT.as_ptr() as u64, core::mem::size_of_val(&EL2_MMU_BOOT));
}
