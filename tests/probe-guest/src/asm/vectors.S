// EL1 vector table of the probe guest. Every exception is fatal and reported by probe_exception
// (Rust, on its own stack), with one exception: an UNDEF (EC 0) raised by the HVC at probe_hvc_insn
// means no hypervisor answers HVC here (bare QEMU without EL2); it returns -1 (SMCCC NOT_SUPPORTED)
// in x0 past the HVC. probe_hvc is an extern "C" function, so x0-x1 are free to use there.

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
    // Current EL with SP_ELx: sync has the HVC fix-up, then kinds 5..7
    .balign 128
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cbnz    x0, 1f
    mrs     x0, elr_el1
    adrp    x1, probe_hvc_insn
    add     x1, x1, :lo12:probe_hvc_insn
    cmp     x0, x1
    b.ne    1f
    add     x0, x0, #4
    msr     elr_el1, x0
    ldp     x0, x1, [sp], #16
    mov     x0, #-1
    eret
1:  ldp     x0, x1, [sp], #16
    mov     x0, #4
    b       probe_vector_fatal
    fatal_entry 5
    fatal_entry 6
    fatal_entry 7
    // Lower EL AArch64 and AArch32: the probe never runs below EL1.
    fatal_entry 8
    fatal_entry 9
    fatal_entry 10
    fatal_entry 11
    fatal_entry 12
    fatal_entry 13
    fatal_entry 14
    fatal_entry 15

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
