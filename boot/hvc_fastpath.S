/*
 * The HVC fast path: the SMCCC calls whose answer never depends on the VM's state, answered in
 * the vector without a TrapFrame or Rust (issue 15). `lower_sync_fast` (tvm_fastpath.S) comes
 * here for an HVC with immediate 0 (ESR_EL2[31:0] = 0x5a000000), with the guest's x0 and x1 saved
 * at [sp] and [sp + 8]. The function ID is w0 (the upper half of x0 ignored, as SMCCC says and
 * crate::trap::psci::handle_call does):
 *   SMCCC_VERSION, PSCI_VERSION     -> 1.1 (0x10001; SMCCC_VERSION_1_1, PSCI_VERSION_1_1);
 *   SMCCC_ARCH_FEATURES(w1)         -> 0 for SMCCC_VERSION and ARCH_FEATURES, the host firmware's
 *                                      answer for ARCH_WORKAROUND_1/2/3 (arch::hvc_fast::HVC_FAST_WORKAROUNDS,
 *                                      which trap::firmware::init fills at boot from the same
 *                                      answers trap::smccc::arch_features gives), else
 *                                      NOT_SUPPORTED;
 * the same answers as the slow path (crate::trap::psci; host tests in trap::smccc check the
 * constants). The call is counted as an `hvc` exit in the CPU's record (only this CPU writes its
 * counters), x0 is the answer, x1..x3 are unchanged (SMCCC 1.1 lets a callee change them; this
 * one does not), ELR_EL2 already points past the HVC. Every other call restores x0/x1 and takes
 * the slow path (`lower_sync_slow`, boot/vectors.S).
 *
 * Unlike the slow path, a call answered here does not clear the CPU's "same abort again"
 * history (crate::trap::dispatch): a guest that alternates a constant query with the same
 * faulting access is stuck either way, and is reported at the same count.
 */

.equ PC_EXITS_HVC, {PC_EXITS_HVC}           // offset of the record's `hvc` exit counter
.equ ANSWER_1_1, {ANSWER_1_1}
.equ FID_SMCCC_VERSION, {FID_SMCCC_VERSION}
.equ FID_ARCH_FEATURES, {FID_ARCH_FEATURES}
.equ FID_PSCI_VERSION, {FID_PSCI_VERSION}
.equ FID_WORKAROUND_1, {FID_WORKAROUND_1}
.equ FID_WORKAROUND_2, {FID_WORKAROUND_2}
.equ FID_WORKAROUND_3, {FID_WORKAROUND_3}
.if ANSWER_1_1 >> 16 != 1 || ANSWER_1_1 & 0xffff != 1
    .error "the fast path builds 1.1 as 0x10001"
.endif
.if FID_ARCH_FEATURES != FID_SMCCC_VERSION + 1
    .error "ARCH_FEATURES is SMCCC_VERSION + 1"
.endif
.if FID_SMCCC_VERSION & 0xffff || FID_PSCI_VERSION & 0xffff
    .error "the VERSION calls are movz-able"
.endif

.section .text.hvc_fastpath, "ax"
.balign 64
.global hvc_fast_path
hvc_fast_path:
    ldr     w0, [sp]                        // the function ID
    movz    w1, #(FID_SMCCC_VERSION >> 16), lsl #16
    cmp     w0, w1
    b.eq    .Lhvc_1_1
    movz    w1, #(FID_PSCI_VERSION >> 16), lsl #16
    cmp     w0, w1
    b.eq    .Lhvc_1_1
    movz    w1, #(FID_ARCH_FEATURES & 0xffff)
    movk    w1, #(FID_ARCH_FEATURES >> 16), lsl #16
    cmp     w0, w1
    b.ne    .Lhvc_slow
    /* SMCCC_ARCH_FEATURES: the queried ID is the guest's w1. */
    ldr     w0, [sp, #8]
    sub     w1, w1, #1                      // SMCCC_VERSION
    cmp     w0, w1
    b.eq    .Lhvc_zero
    add     w1, w1, #1                      // ARCH_FEATURES
    cmp     w0, w1
    b.eq    .Lhvc_zero
.irp i, 1, 2, 3
    movz    w1, #(FID_WORKAROUND_\i & 0xffff)
    movk    w1, #(FID_WORKAROUND_\i >> 16), lsl #16
    cmp     w0, w1
    b.eq    .Lhvc_workaround_\i
.endr
    mov     x0, #-1                         // NOT_SUPPORTED
    b       .Lhvc_done
.irp i, 1, 2, 3
.Lhvc_workaround_\i:
    adrp    x1, {HVC_FAST_WORKAROUNDS}
    add     x1, x1, :lo12:{HVC_FAST_WORKAROUNDS}
    ldr     x0, [x1, #(8 * (\i - 1))]
    b       .Lhvc_done
.endr

.Lhvc_zero:
    mov     x0, #0
    b       .Lhvc_done
.Lhvc_1_1:
    movz    x0, #1
    movk    x0, #1, lsl #16
.Lhvc_done:                                 // x0 = the answer; the guest's x0/x1 at [sp]
    mrs     x1, tpidr_el2
    str     x0, [sp]                        // the answer goes back in x0
    ldr     x0, [x1, #PC_EXITS_HVC]
    add     x0, x0, #1
    str     x0, [x1, #PC_EXITS_HVC]
    ldp     x0, x1, [sp], #16
    eret
    dsb     nsh                             // speculation barrier after ERET
    isb

.Lhvc_slow:
    ldp     x0, x1, [sp], #16
    b       lower_sync_slow
