// EL1 vector table of the probe guest. Every exception is fatal and reported by probe_exception
// (Rust, on its own stack), with two fix-ups for synchronous exceptions at EL1 (probe_sync_fixup):
// - an UNDEF (EC 0) raised by the HVC at probe_hvc_insn means no hypervisor answers HVC here (bare
//   QEMU without EL2); it returns -1 (SMCCC NOT_SUPPORTED) in x0 past the HVC;
// - any other UNDEF while probe_undef_armed is non-zero (a probe checking that a register access
//   is not UNDEFINED, see probes/tvm_feat.rs) resumes past the instruction and adds one to
//   probe_undefs_caught;
// - a data abort taken at EL1 (EC 0x25) by the load at probe_abort_load_insn or the store at
//   probe_abort_store_insn (the abort_injected and s2_device_alignment probes), the ldp at probe_isv0_load_insn (the
//   vgic_isv0_abort probe), or the abort_scan probe's load at probe_scan_load_insn, resumes past
//   that instruction and adds one to probe_aborts_caught; the probe then reads ESR_EL1 and
//   FAR_EL1 itself;
// - any synchronous exception at an instruction of the hostile probe's try stubs (hostile.S)
//   resumes past it and is counted in probe_try_faults.
// A synchronous exception from AArch32 EL0 ends the aa32_it_block probe's run (aa32.S).
// probe_hvc, probe_abort_load and probe_abort_store are extern "C" functions, so x0-x1 are free
// to use there.

.macro fatal_entry kind
    .balign 128
    mov     x0, #\kind
    b       probe_vector_fatal
.endm

.section .text.vectors, "ax"
.balign 2048
.global probe_vectors
probe_vectors:
    // Current EL with SP_EL0: kinds 0..3 (sync, irq, fiq, serror)
    fatal_entry 0
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    // Current EL with SP_ELx: sync goes through the fix-ups, then kinds 5..7
    .balign 128
    stp     x0, x1, [sp, #-16]!
    b       probe_sync_fixup
    fatal_entry 5
    fatal_entry 6
    fatal_entry 7
    // Lower EL AArch64: the probe never runs AArch64 code below EL1.
    fatal_entry 8
    fatal_entry 9
    fatal_entry 10
    fatal_entry 11
    // Lower EL AArch32: the aa32_it_block probe's EL0 code ends with an SVC (aa32.S); it runs
    // with interrupts masked, so only its synchronous exceptions come here.
    .balign 128
    b       probe_aa32_return
    fatal_entry 13
    fatal_entry 14
    fatal_entry 15

// Synchronous exception at EL1 with SP_EL1; x0, x1 saved on the stack.
probe_sync_fixup:
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cbz     x0, 1f
    cmp     x0, #0x25
    b.eq    2f
    b       9f
1:  // UNDEF: the vendor-call HVC, or an access a probe armed probe_undef_armed for.
    mrs     x0, elr_el1
    adrp    x1, probe_hvc_insn
    add     x1, x1, :lo12:probe_hvc_insn
    cmp     x0, x1
    b.ne    4f
    add     x0, x0, #4
    msr     elr_el1, x0
    ldp     x0, x1, [sp], #16
    mov     x0, #-1
    eret
4:  adrp    x1, probe_undef_armed
    add     x1, x1, :lo12:probe_undef_armed
    ldr     x1, [x1]
    cbz     x1, 9f
    add     x0, x0, #4
    msr     elr_el1, x0
    adrp    x1, probe_undefs_caught
    add     x1, x1, :lo12:probe_undefs_caught
    ldr     x0, [x1]
    add     x0, x0, #1
    str     x0, [x1]
    ldp     x0, x1, [sp], #16
    eret
2:  // Data abort at EL1: only the abort_injected probe's two accesses, the ISV=0 ldp and the scan expect one.
    mrs     x0, elr_el1
    adrp    x1, probe_abort_load_insn
    add     x1, x1, :lo12:probe_abort_load_insn
    cmp     x0, x1
    b.eq    3f
    adrp    x1, probe_abort_store_insn
    add     x1, x1, :lo12:probe_abort_store_insn
    cmp     x0, x1
    b.eq    3f
    adrp    x1, probe_isv0_load_insn
    add     x1, x1, :lo12:probe_isv0_load_insn
    cmp     x0, x1
    b.eq    3f
    adrp    x1, probe_scan_load_insn
    add     x1, x1, :lo12:probe_scan_load_insn
    cmp     x0, x1
    b.ne    9f
3:  add     x0, x0, #4
    msr     elr_el1, x0
    adrp    x1, probe_aborts_caught
    add     x1, x1, :lo12:probe_aborts_caught
    ldr     x0, [x1]
    add     x0, x0, #1
    str     x0, [x1]
    ldp     x0, x1, [sp], #16
    eret
9:  // Any synchronous exception at one of the hostile probe's try instructions (hostile.S):
    // resume past it, count it in probe_try_faults, keep ESR_EL1 in probe_try_last_esr.
    mrs     x0, elr_el1
    adrp    x1, probe_try_start
    add     x1, x1, :lo12:probe_try_start
    cmp     x0, x1
    b.lo    10f
    adrp    x1, probe_try_end
    add     x1, x1, :lo12:probe_try_end
    cmp     x0, x1
    b.hs    10f
    add     x0, x0, #4
    msr     elr_el1, x0
    adrp    x1, probe_try_last_esr
    add     x1, x1, :lo12:probe_try_last_esr
    mrs     x0, esr_el1
    str     x0, [x1]
    adrp    x1, probe_try_faults
    add     x1, x1, :lo12:probe_try_faults
    ldr     x0, [x1]
    add     x0, x0, #1
    str     x0, [x1]
    ldp     x0, x1, [sp], #16
    eret
10: ldp     x0, x1, [sp], #16
    mov     x0, #4
    b       probe_vector_fatal

probe_vector_fatal:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    adrp    x4, __exc_stack_top
    add     x4, x4, :lo12:__exc_stack_top
    mov     sp, x4
    bl      probe_exception
2:  wfi
    b       2b
