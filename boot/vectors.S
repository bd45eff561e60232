/*
 * The EL2 exception vector table.
 *
 * Every entry saves the full general-purpose context (x0-x30, ELR_EL2, SPSR_EL2) as a TrapFrame
 * on the current CPU's EL2 stack and calls one Rust function with a pointer to it and the kind of
 * exception. Rust may change the frame (results in x0.., a new ELR/SPSR for an injected exception
 * or a vCPU reset); the frame is then restored and ERET resumes whoever was interrupted.
 * A vCPU's EL1 system registers stay live in the hardware: each pCPU runs exactly one vCPU.
 *
 * TrapFrame layout (src/arch/exception.rs must match): x0..x30 at 8*n, padding at 0xf8, ELR at
 * 0x100 and SPSR at 0x108 (FRAME_ELR, FRAME_SPSR); 0x110 bytes in all.
 */

.equ FRAME_SIZE, 0x110          // 31 GPRs + padding + ELR + SPSR = 34 * 8 = 0x110
.equ FRAME_ELR,  0x100
.equ FRAME_SPSR, 0x108

.equ KIND_SYNC, 0
.equ KIND_IRQ, 1
.equ KIND_FIQ, 2
.equ KIND_SERROR, 3

.macro SAVE_FRAME
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0x00]
    stp     x2, x3, [sp, #0x10]
    stp     x4, x5, [sp, #0x20]
    stp     x6, x7, [sp, #0x30]
    stp     x8, x9, [sp, #0x40]
    stp     x10, x11, [sp, #0x50]
    stp     x12, x13, [sp, #0x60]
    stp     x14, x15, [sp, #0x70]
    stp     x16, x17, [sp, #0x80]
    stp     x18, x19, [sp, #0x90]
    stp     x20, x21, [sp, #0xa0]
    stp     x22, x23, [sp, #0xb0]
    stp     x24, x25, [sp, #0xc0]
    stp     x26, x27, [sp, #0xd0]
    stp     x28, x29, [sp, #0xe0]
    str     x30, [sp, #0xf0]
    mrs     x0, elr_el2
    mrs     x1, spsr_el2
    stp     x0, x1, [sp, #FRAME_ELR]
.endm

/* Restore the frame at sp and return to the interrupted context. Shared by every entry. */
.global restore_frame_and_eret
restore_frame_and_eret:
    ldp     x0, x1, [sp, #FRAME_ELR]
    msr     elr_el2, x0
    msr     spsr_el2, x1
    ldp     x0, x1, [sp, #0x00]
    ldp     x2, x3, [sp, #0x10]
    ldp     x4, x5, [sp, #0x20]
    ldp     x6, x7, [sp, #0x30]
    ldp     x8, x9, [sp, #0x40]
    ldp     x10, x11, [sp, #0x50]
    ldp     x12, x13, [sp, #0x60]
    ldp     x14, x15, [sp, #0x70]
    ldp     x16, x17, [sp, #0x80]
    ldp     x18, x19, [sp, #0x90]
    ldp     x20, x21, [sp, #0xa0]
    ldp     x22, x23, [sp, #0xb0]
    ldp     x24, x25, [sp, #0xc0]
    ldp     x26, x27, [sp, #0xd0]
    ldp     x28, x29, [sp, #0xe0]
    ldr     x30, [sp, #0xf0]
    add     sp, sp, #FRAME_SIZE
    eret
    dsb     nsh                         // speculation barrier after ERET
    isb

/*
 * Enter a guest: x0 = a TrapFrame anywhere in memory, x1 = the top of this CPU's EL2 stack.
 * The stack is reset to its top (whatever ran before is abandoned), the frame is loaded into
 * the registers and ERET starts the vCPU. The next exception from the guest builds its frame
 * at the top of the stack again.
 */
.global enter_guest
enter_guest:
    mov     sp, x1
    ldp     x2, x3, [x0, #FRAME_ELR]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x2, x3, [x0, #0x10]
    ldp     x4, x5, [x0, #0x20]
    ldp     x6, x7, [x0, #0x30]
    ldp     x8, x9, [x0, #0x40]
    ldp     x10, x11, [x0, #0x50]
    ldp     x12, x13, [x0, #0x60]
    ldp     x14, x15, [x0, #0x70]
    ldp     x16, x17, [x0, #0x80]
    ldp     x18, x19, [x0, #0x90]
    ldp     x20, x21, [x0, #0xa0]
    ldp     x22, x23, [x0, #0xb0]
    ldp     x24, x25, [x0, #0xc0]
    ldp     x26, x27, [x0, #0xd0]
    ldp     x28, x29, [x0, #0xe0]
    ldr     x30, [x0, #0xf0]
    ldp     x0, x1, [x0, #0x00]
    eret
    dsb     nsh
    isb

/*
 * Abandon the current stack and call a Rust function that never returns:
 * x0 = new stack pointer, x1 = function, x2 = its argument.
 */
.global reset_stack_and_call
reset_stack_and_call:
    mov     sp, x0
    mov     x0, x2
    mov     x29, xzr
    mov     x30, xzr
    br      x1

.macro VECTOR handler, kind
    .balign 0x80
    SAVE_FRAME
    mov     x0, sp
    mov     x1, #\kind
    bl      \handler
    b       restore_frame_and_eret
.endm

/*
 * el2visor's own exceptions (current EL with SP_EL2). Each CPU's stack is a 64 KiB slot, 64 KiB
 * aligned, whose lowest 4 KiB page is unmapped (the guard, arch::boot::STACK_GUARD): a stack that
 * overflows faults there, and the frame of that fault cannot be pushed below it. So if SP is in
 * a guard page, move it to the top of its own slot first (what the stack held is lost; the fatal
 * report follows), keeping every general-purpose register. With no register free, x0 and SP are
 * swapped through each other (add/sub), as Linux's own stack-overflow check does.
 */
.macro VECTOR_SPX handler, kind
    .balign 0x80
    add     sp, sp, x0                  // sp = s + x0
    sub     x0, sp, x0                  // x0 = s
    tst     x0, #0xf000                 // offset in the 64 KiB slot below 4 KiB: the guard page
    b.eq    3f
    sub     x0, sp, x0                  // x0 = x0
    sub     sp, sp, x0                  // sp = s
1:  SAVE_FRAME
    mov     x0, sp
    mov     x1, #\kind
    bl      \handler
    b       restore_frame_and_eret
    .pushsection .text, "ax"
3:  sub     sp, sp, x0                  // sp = x0 (the caller's), x0 = s
    sub     x0, x0, #1                  // s at a slot's very base is the empty stack below: keep it
    and     x0, x0, #0xffffffffffff0000 // the slot's base
    add     x0, x0, #0x10000            // its top
    add     sp, sp, x0                  // sp = x0 + top
    sub     x0, sp, x0                  // x0 = the caller's x0
    sub     sp, sp, x0                  // sp = top
    b       1b
    .popsection
.endm

/*
 * The lean synchronous exit (issue 15; crate::vcpu::lean): a guest's access to the virtual GIC
 * distributor or a trapped GIC CPU-interface register. `lower_sync_fast` (boot/tvm_fastpath.S)
 * comes here for a data abort and for a trapped MSR/MRS its TVM table does not take, with the
 * guest's x0 and x1 saved at [sp]. Only the caller-saved registers are saved (x2..x17, x18, x30
 * below x0/x1: arch::frame::LeanRegs): the Rust function preserves x19..x29, and ELR_EL2/SPSR_EL2
 * stay in their registers. It returns 0 when it served the exit: restore and ERET; anything else
 * means it did nothing: restore every register as the guest left it and take the slow path (the
 * flags of the `cmp` survive the loads).
 */
.equ LEAN_SIZE, 0xa0

/* The lean save (crate::arch::frame::LeanRegs): x2..x18 and x30 below the vector's own push of
 * x0/x1; LEAN_RESTORE leaves the flags alone (`ldp` and `add` set none). */
.macro LEAN_SAVE
    sub     sp, sp, #(LEAN_SIZE - 16)
    stp     x2, x3, [sp, #0x00]
    stp     x4, x5, [sp, #0x10]
    stp     x6, x7, [sp, #0x20]
    stp     x8, x9, [sp, #0x30]
    stp     x10, x11, [sp, #0x40]
    stp     x12, x13, [sp, #0x50]
    stp     x14, x15, [sp, #0x60]
    stp     x16, x17, [sp, #0x70]
    stp     x18, x30, [sp, #0x80]
.endm
.macro LEAN_RESTORE
    ldp     x2, x3, [sp, #0x00]
    ldp     x4, x5, [sp, #0x10]
    ldp     x6, x7, [sp, #0x20]
    ldp     x8, x9, [sp, #0x30]
    ldp     x10, x11, [sp, #0x40]
    ldp     x12, x13, [sp, #0x50]
    ldp     x14, x15, [sp, #0x60]
    ldp     x16, x17, [sp, #0x70]
    ldp     x18, x30, [sp, #0x80]
    ldp     x0, x1, [sp, #0x90]
    add     sp, sp, #LEAN_SIZE
.endm
.text
.global lower_sync_lean
lower_sync_lean:
    LEAN_SAVE
    mov     x0, sp
    bl      lean_sync_exit
    cmp     x0, #0
    LEAN_RESTORE
    b.ne    lower_sync_slow
    eret
    dsb     nsh                         // speculation barrier after ERET
    isb

/*
 * The lean IRQ exit (issue 15; crate::vcpu::lean): el2visor's kick SGI or the virtual timer's
 * tick, served with the same save as `lower_sync_lean`. Returns 0 when served; anything else
 * means nothing was done (nothing acknowledged): every register back as the guest left it, and
 * the full frame and `lower_exception`.
 */
.global lower_irq_lean
lower_irq_lean:
    LEAN_SAVE
    mov     x0, sp
    bl      lean_irq_exit
    cmp     x0, #0
    LEAN_RESTORE
    b.ne    lower_irq_slow
    eret
    dsb     nsh                         // speculation barrier after ERET
    isb
lower_irq_slow:
    SAVE_FRAME
    mov     x0, sp
    mov     x1, #KIND_IRQ
    bl      lower_exception
    b       restore_frame_and_eret

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    /* Current EL with SP0: el2visor never runs on SP_EL0; anything here is a bug. */
    VECTOR  el2_exception, KIND_SYNC
    VECTOR  el2_exception, KIND_IRQ
    VECTOR  el2_exception, KIND_FIQ
    VECTOR  el2_exception, KIND_SERROR
    /* Current EL with SP_ELx: el2visor itself faulted (or took an interrupt with them unmasked),
     * or an SError a guest left pending was collected (arch::serror); see VECTOR_SPX. */
    VECTOR_SPX el2_exception, KIND_SYNC
    VECTOR_SPX el2_exception, KIND_IRQ
    VECTOR_SPX el2_exception, KIND_FIQ
    VECTOR_SPX el2_exception, KIND_SERROR
    /* Lower EL, AArch64: the guests. Synchronous exceptions try the fast paths first (the HVC
     * calls of boot/hvc_fastpath.S, the TVM writes of boot/tvm_fastpath.S) with x0/x1 saved and
     * x1 = ESR_EL2; whatever they do not serve comes back to `lower_sync_slow` with every
     * register as the guest left it, and takes the same path as every other entry. In mair-trap
     * mode VBAR_EL2 is `el2_vectors_mair` (tvm_fastpath.S) instead, whose entry here tries the
     * MAIR_EL1 write first and whose other entries branch to this table's. */
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x1, esr_el2
    b       lower_sync_fast
.global lower_sync_slow
lower_sync_slow:
    SAVE_FRAME
    mov     x0, sp
    mov     x1, #KIND_SYNC
    bl      lower_exception
    b       restore_frame_and_eret
    /* An IRQ from a guest tries the lean IRQ exit first (below, crate::vcpu::lean). */
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    b       lower_irq_lean
    VECTOR  lower_exception, KIND_FIQ
    VECTOR  lower_exception, KIND_SERROR
    /* Lower EL, AArch32: guests are AArch64 only (HCR_EL2.RW = 1); reported as guest faults. */
    VECTOR  lower_exception_aarch32, KIND_SYNC
    VECTOR  lower_exception_aarch32, KIND_IRQ
    VECTOR  lower_exception_aarch32, KIND_FIQ
    VECTOR  lower_exception_aarch32, KIND_SERROR
