// probe_tvm_rt_sweep(table): write MAIR_EL1 and CONTEXTIDR_EL1 through every Rt (x0..x30, then
// XZR) and read each write back, so that el2visor's TVM fast path is entered with every Rt it
// decodes (its per-Rt entries, x0..x2 from its save area, XZR). C ABI, x0 = `table`, 128 words:
//   [0..31)    the MAIR_EL1 value written through x0..x30
//   [32..63)   the CONTEXTIDR_EL1 value written through x0..x30
//   [64..96)   MAIR_EL1 read back after the write through x0..x30, XZR (64 + 31)
//   [96..128)  CONTEXTIDR_EL1 read back after the write through x0..x30, XZR (96 + 31)
// The table's address lives in TPIDR_EL1 (saved and restored) while every general register is
// in use; each write's value is loaded from the table into Rt itself. The MAIR_EL1 values keep
// the probe's live attribute indices (see probes/rt_sweep.rs); the XZR write, which makes every
// index Device, is done with the stage-1 MMU off, and MAIR_EL1 gets the value of [30] back before
// the MMU goes on again. That window touches no memory.

// One write and read-back through Rt = x\n; x\p holds the table and x\r the value read back,
// both different from x\n.
.macro SWEEP_RT reg, n, p, r, in_base, out_base
    mrs     x\p, tpidr_el1
    ldr     x\n, [x\p, #(\in_base + 8 * \n)]
    msr     \reg, x\n
    isb
    mrs     x\r, \reg
    str     x\r, [x\p, #(\out_base + 8 * \n)]
.endm

.macro SWEEP_ONE reg, n, in_base, out_base
    .if \n == 9
        SWEEP_RT \reg, \n, 10, 11, \in_base, \out_base
    .else
        .if \n == 11
            SWEEP_RT \reg, \n, 9, 12, \in_base, \out_base
        .else
            SWEEP_RT \reg, \n, 9, 11, \in_base, \out_base
        .endif
    .endif
.endm

.section .text, "ax"
.global probe_tvm_rt_sweep
probe_tvm_rt_sweep:
    stp     x19, x20, [sp, #-112]!
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    mrs     x1, tpidr_el1
    str     x1, [sp, #96]
    msr     tpidr_el1, x0

.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
    SWEEP_ONE mair_el1, \n, 0, 512
.endr
    // MAIR_EL1 through XZR with the MMU off: x12 = SCTLR_EL1 and x14 = MAIR_EL1 to restore.
    mrs     x9, tpidr_el1
    ldr     x14, [x9, #(8 * 30)]
    mrs     x12, sctlr_el1
    bic     x13, x12, #1
    msr     sctlr_el1, x13
    isb
    msr     mair_el1, xzr
    isb
    mrs     x11, mair_el1
    msr     mair_el1, x14
    isb
    msr     sctlr_el1, x12
    isb
    str     x11, [x9, #(512 + 8 * 31)]

.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
    SWEEP_ONE contextidr_el1, \n, 256, 768
.endr
    mrs     x9, tpidr_el1
    msr     contextidr_el1, xzr
    isb
    mrs     x11, contextidr_el1
    str     x11, [x9, #(768 + 8 * 31)]

    ldr     x1, [sp, #96]
    msr     tpidr_el1, x1
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     x19, x20, [sp], #112
    ret
