// The aa32_it_block probe's AArch32 EL0 code and the way in and out of it.
//
// probe_aa32_code is a page of T32 code that mmu.rs maps at EL0 (read-only, executable) under
// an alias. It reads through an IT block: with Z set, the load of the first slot (EQ) is the
// emulated distributor access at r3, which el2visor steps over, and the MOV of the second slot
// (NE) must then be skipped, which it is only if the step moved the IT block on. An SVC returns.
//
// probe_aa32_run(x0 = entry VA, x1 = r3) saves the callee-saved registers on SP_EL1, which EL0
// cannot touch, and enters AArch32 User mode in T32 with interrupts masked. Any exception from
// it comes to the lower-EL AArch32 synchronous vector (vectors.S), which branches to
// probe_aa32_return: r0..r3 go to probe_aa32_regs, the registers come back, and probe_aa32_run
// returns ESR_EL1.

.section .text.aa32_code, "ax"
.balign 4096
.global probe_aa32_code
probe_aa32_code:
    .hword  0x2000      // movs  r0, #0         Z set
    .hword  0xbf0c      // ite   eq
    .hword  0x681a      // ldreq r2, [r3]       the emulated read
    .hword  0x2101      // movne r1, #1         skipped
    .hword  0xdf00      // svc   #0
    .hword  0xe7fe      // b     .
.balign 4096

.section .text, "ax"
.balign 4
.global probe_aa32_run
probe_aa32_run:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    msr     elr_el1, x0
    mov     x3, x1
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    // SPSR: AArch32 User mode (0x10), T32 (T, bit 5), A, I and F masked (bits 8:6).
    mov     x4, #0x1f0
    msr     spsr_el1, x4
    eret

.global probe_aa32_return
probe_aa32_return:
    adrp    x4, probe_aa32_regs
    add     x4, x4, :lo12:probe_aa32_regs
    stp     w0, w1, [x4]
    stp     w2, w3, [x4, #8]
    mrs     x0, esr_el1
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret
