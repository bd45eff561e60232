// The hostile probe's accesses that may fault. Every instruction between probe_try_start and
// probe_try_end that raises a synchronous exception at EL1 (a data abort el2visor injects, an
// UNDEF for a register it does not emulate) is skipped by vectors.S, which adds one to
// probe_try_faults and leaves ESR_EL1 in probe_try_last_esr. Each stub is an extern "C"
// function: x0 = address or value, x1 = value; a load that faults returns 0. Only x0-x2 are used
// (x0-x3 for the SMC and the SETM).

.section .text, "ax"
.balign 4
.global probe_try_start
.global probe_try_end
probe_try_start:

.global probe_try_load32
probe_try_load32:
    mov     x2, x0
    mov     x0, xzr
    ldr     w0, [x2]
    ret

.global probe_try_store32
probe_try_store32:
    str     w1, [x0]
    ret

.global probe_try_load64
probe_try_load64:
    mov     x2, x0
    mov     x0, xzr
    ldr     x0, [x2]
    ret

.global probe_try_store64
probe_try_store64:
    str     x1, [x0]
    ret

// GICv3 SGI generation registers, by encoding (no GIC feature needed to assemble them).
.global probe_try_sgi1r
probe_try_sgi1r:
    msr     S3_0_C12_C11_5, x0      // ICC_SGI1R_EL1
    isb
    ret

.global probe_try_asgi1r
probe_try_asgi1r:
    msr     S3_0_C12_C11_6, x0      // ICC_ASGI1R_EL1
    isb
    ret

.global probe_try_sgi0r
probe_try_sgi0r:
    msr     S3_0_C12_C11_7, x0      // ICC_SGI0R_EL1
    isb
    ret

// SMCCC through the other conduit: a trapped SMC (el2visor sets HCR_EL2.TSC).
.global probe_try_smc
probe_try_smc:
    smc     #0
    ret

// FEAT_MOPS: a memory set whose main instruction runs in the other option. SETP (the prologue)
// sets up the registers and the PSTATE flags for this CPU's option (A: C = 0, B: C = 1) and may
// do part of the set (QEMU: up to the page boundary); SETM then runs with C inverted, which is
// the MOPS exception (EC 0x27, the wrong-option bit set) before it writes anything, unless the
// prologue left nothing to do (SETM may then do nothing). x0 = a scratch buffer, x1 = its
// length: all the sequence may write (the probe's own buffer, so it is the one stub that writes
// the probe's RAM). Returns the length the prologue left (0: nothing was checked).
.arch_extension mops
.global probe_try_setm
probe_try_setm:
    mov     x2, xzr
    setp    [x0]!, x1!, x2
    cneg    x3, x1, cc              // the length left: Option A keeps it negated (C = 0)
    mrs     x2, nzcv
    eor     x2, x2, #(1 << 29)
    msr     nzcv, x2
    mov     x2, xzr
    setm    [x0]!, x1!, x2
    mov     x0, x3
    ret

probe_try_end:
