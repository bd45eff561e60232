/*
 * The TVM fast path: guest writes to the eleven registers HCR_EL2.TVM traps on every CPU (SCTLR,
 * TTBR0, TTBR1, TCR, ESR, FAR, AFSR0, AFSR1, MAIR, AMAIR, CONTEXTIDR, all _EL1) are served here,
 * in the "Lower EL, AArch64, synchronous" vector, without building a TrapFrame or entering Rust.
 * In mair-trap mode (mode 2 below) SCTLR_EL1 and TCR_EL1 are left to the slow path, which
 * rewrites them and makes HCR_EL2.DC follow SCTLR_EL1.M (crate::trap::tvm): they are written
 * at boot, on MMU changes and on suspend/resume, not on hot paths. The feature registers TVM also
 * traps (TCR2_EL1, MAIR2_EL1 …) are not in the tables and always go to the slow path.
 *
 * The vector entry saves x0 and x1 on the EL2 stack, reads ESR_EL2 into x1 and branches to
 * `lower_sync_fast` (below), which sends an SMCCC HVC to boot/hvc_fastpath.S, a trapped MSR/MRS
 * (EC 0x18) to `tvm_fast_path`, a data abort (EC 0x24) to the lean exit (`lower_sync_lean`,
 * boot/vectors.S: the virtual GIC distributor), a trapped WFI (EC 0x01, GICv2 hosts) to the lean
 * exit as well (`vcpu::lean`'s EL2 wait), and everything else straight to the slow path.
 * A trapped MSR/MRS that is no TVM write goes on to the lean exit too (a GICv3 IPI). In mair-trap mode the CPU's vector table is `el2_vectors_mair` (at the end of
 * this file), whose entry does step 2 for MAIR_EL1 itself and jumps straight into the MAIR entries
 * (30 instructions from the exception to ERET, docs/benchmarks.md counts them). The fast path
 * (x2 saved as well on the paths that need a third register):
 *   1. reads the `tvm_mode` word of this CPU's per-CPU record (TPIDR_EL2 points at it; set when
 *      the CPU takes its vCPU, from the VM's coherency setting) first: 0 = off, everything goes to
 *      the slow path; 1 = on, values are written unchanged; 2 = on, MAIR_EL1 values get the
 *      mair-trap override;
 *   2. recognises a write to one of the eleven registers by comparing ESR_EL2[31:0], Rt masked
 *      out, with the register's ESR: EC 0x18, IL 1, ISS op0/op2/op1/CRn/CRm and direction 0
 *      (write) must all match. ESR_EL2[63:32] (ISS2) is RES0 for EC 0x18;
 *   3. takes the value from Rt (x0..x30, 31 = XZR; x0..x2 from the save area, as they are
 *      clobbered), writes the register (MAIR_EL1 through MAIR_OVERRIDE in mode 2), adds one to
 *      the record's `tvm_fast` count, advances ELR_EL2 by 4, restores and ERETs. Unlike every
 *      other emulated instruction's step (`TrapFrame::skip_instruction`), it leaves SPSR_EL2.SS
 *      and BTYPE as they are: clearing them costs 4 instructions on the MAIR write's 30 (issue
 *      15's limit). So a guest single-stepping over one of these writes under its own debugger
 *      sees its step exception one instruction late, and a write that is the last word before a
 *      guarded page (FEAT_BTI), reached by a branch, lets the next instruction's check see that
 *      branch's type. Neither reaches el2visor, and neither happens without trapped TVM
 *      registers (mair-trap mode); `fastpath=off` sends them to the slow path, which clears both.
 * Anything else goes to the lean exit (`lower_sync_lean`), which serves a GIC access or restores
 * x0/x1 and branches to `lower_sync_slow` (boot/vectors.S): the full
 * TrapFrame path into the Rust dispatcher, which serves the same registers with the same rule
 * (crate::trap::sysreg::tvm_write_value).
 *
 * Dispatch is by a jump into per-register blocks with one entry per Rt, so the register number
 * never needs decoding: MAIR_EL1 in mode 2 (the hot case) is checked first against one literal
 * and has 128-byte entries holding the whole override; every other case hashes the ESR into a
 * 16-slot table of (expected ESR, block offset) and jumps into 8-byte `msr <reg>, x<Rt>` entries.
 * Mode 1 uses the table of all eleven; mode 2 its own table, in which SCTLR, TCR and MAIR (the
 * registers with a rewrite) have no key, so a write to them that gets there goes to the slow path.
 * No instruction needs a run-time relocation (PC-relative only), as the image is a PIE.
 */

.equ TVM_FAST_PLAIN, {TVM_FAST_PLAIN}                 // `tvm_mode` values (src/percpu/mod.rs)
.equ TVM_FAST_MAIR_OVERRIDE, {TVM_FAST_MAIR_OVERRIDE}
.equ PC_TVM_MODE, {PC_TVM_MODE}                       // offsets in the per-CPU record
.equ PC_GUEST_MAIR, {PC_GUEST_MAIR}
.equ PC_TVM_FAST, {PC_TVM_FAST}
.equ TVM_FAST_OVERRIDE_BIT, 1       // the mode test below is `tbz x0, #TVM_FAST_OVERRIDE_BIT`
.if (TVM_FAST_MAIR_OVERRIDE >> TVM_FAST_OVERRIDE_BIT) & 1 == 0
    .error "TVM_FAST_MAIR_OVERRIDE must have the override bit set"
.endif
.if (TVM_FAST_PLAIN >> TVM_FAST_OVERRIDE_BIT) & 1
    .error "TVM_FAST_PLAIN must not have the override bit set"
.endif

/* ESR_EL2 of a write of x0 to (op0 = 3, op1 = 0, CRn, CRm, op2): EC 0x18, IL, direction 0. */
.equ ESR_SYSREG_WRITE, (0x18 << 26) | (1 << 25) | (3 << 20)
.equ ESR_RT_CLEAR, 0xfffffc1f       // every ESR[31:0] bit but Rt (9:5)
/* A key no exception produces (EC 0x3f is unallocated): the empty hash slots. */
.equ TVM_NO_KEY, 0xfc000000

.macro TVM_KEY name, crn, crm, op2
    .equ TVM_KEY_\name, ESR_SYSREG_WRITE | (\op2 << 17) | (\crn << 10) | (\crm << 1)
.endm
TVM_KEY sctlr_el1, 1, 0, 0
TVM_KEY ttbr0_el1, 2, 0, 0
TVM_KEY ttbr1_el1, 2, 0, 1
TVM_KEY tcr_el1, 2, 0, 2
TVM_KEY afsr0_el1, 5, 1, 0
TVM_KEY afsr1_el1, 5, 1, 1
TVM_KEY esr_el1, 5, 2, 0
TVM_KEY far_el1, 6, 0, 0
TVM_KEY mair_el1, 10, 2, 0
TVM_KEY amair_el1, 10, 3, 0
TVM_KEY contextidr_el1, 13, 0, 1

/*
 * The hash slot of a key: ESR bits 4:1 (CRm) ^ 13:10 (CRn) ^ 20:17 (op2, op0 bit 0). None of these
 * bits is Rt, and the eleven keys land in eleven different slots (checked below, at assembly).
 */
.macro TVM_HASH dst, esr, tmp
    eor     \tmp, \esr, \esr, lsr #9
    eor     \tmp, \tmp, \esr, lsr #16
    ubfx    \dst, \tmp, #1, #4             // (32-bit: ESR[63:32] plays no part)
.endm

/*
 * MAIR_EL1 override, the byte rule of crate::coherency::override_mair done on all eight bytes at
 * once: a byte becomes 0xff unless it is Device (high nibble 0), or both nibbles are write-back,
 * or the high nibble is write-back and the low one 0000. A nibble b3b2b1b0 is write-back when
 * b2 & (b3 | b1 | b0); `bad` (non-zero and not write-back) is then b2 ^ (b3 | b1 | b0). A byte is
 * forced when its high nibble is bad, or its high nibble is write-back (so b2 = bit 6 is set)
 * and its low nibble is bad: forced(bit 6) = bad_hi(6) | (v(6) & bad_lo(2)).
 * In: \v (kept). Out: x1. Clobbers x0.
 */
.macro MAIR_OVERRIDE v
    lsr     x0, \v, #1
    orr     x0, x0, \v, lsl #1
    orr     x0, x0, \v, lsl #2              // bits 2, 6: b3 | b1 | b0 of each nibble
    eor     x0, x0, \v                      // bits 2, 6: the nibble is bad
    and     x1, \v, x0, lsl #4              // bit 6: high nibble's b2 & low nibble bad
    orr     x0, x0, x1
    and     x0, x0, #0x4040404040404040     // bit 6 of each byte: the byte is forced
    lsl     x1, x0, #2                      // 0x100 per forced byte (byte 7's carry falls off)
    sub     x1, x1, x0, lsr #6              // - 0x01 per forced byte: 0xff in each forced byte
    orr     x1, x1, \v
.endm

/*
 * The end of every served write, with x1 = this CPU's per-CPU record and x0/x1 saved at [sp]:
 * count it (only this CPU writes its counter), step over the MSR, restore and return.
 */
.macro TVM_FINISH
    ldr     x0, [x1, #PC_TVM_FAST]
    add     x0, x0, #1
    str     x0, [x1, #PC_TVM_FAST]
    mrs     x0, elr_el2
    add     x0, x0, #4
    msr     elr_el2, x0
    ldp     x0, x1, [sp], #16
    eret
    dsb     nsh                             // speculation barrier after ERET
    isb
.endm

.section .text.tvm_fastpath, "ax"
/*
 * The guests' synchronous exceptions, from the vector entry (x0, x1 saved at [sp], x1 = ESR_EL2):
 * an SMCCC HVC (EC 0x16, IL, immediate 0: ESR[31:0] = 0x5a000000) tries boot/hvc_fastpath.S,
 * everything else the TVM fast path below.
 */
.equ ESR_HVC64_IMM0, 0x5a000000
.balign 64
.global lower_sync_fast
lower_sync_fast:
    /* The key is ESR_HVC64_IMM0, or 0xffffffff (EC 0x3f, never a syndrome) while trace=psci wants
     * every call to reach the slow path and its trace line (arch::hvc_fast::HVC_FAST_KEY). */
    adrp    x0, {HVC_FAST_KEY}
    ldr     w0, [x0, :lo12:{HVC_FAST_KEY}]
    cmp     w1, w0
    b.eq    hvc_fast_path
    ubfx    w0, w1, #26, #6                 // EC: only a trapped MSR (0x18) can be a TVM write
    cmp     w0, #0x24                       // a data abort: the lean exit (boot/vectors.S) first
    b.eq    lower_sync_lean
    cmp     w0, #0x18
    b.ne    .Lnot_sysreg
.global tvm_fast_path
tvm_fast_path:                              // x0, x1 saved at [sp], x1 = ESR_EL2
    mrs     x0, tpidr_el2                   // this CPU's record
    ldr     x0, [x0, #PC_TVM_MODE]
    tbz     x0, #TVM_FAST_OVERRIDE_BIT, .Ltvm_plain_or_off
    ldr     w0, .Ltvm_mair_key
    eor     w0, w0, w1                      // = Rt << 5 exactly when it is a MAIR_EL1 write
    tst     w0, #ESR_RT_CLEAR
    b.ne    .Ltvm_general_rewrite
    adr     x1, .Ltvm_mair_entries
    add     x1, x1, x0, lsl #2              // 128-byte entries: + Rt * 128
    br      x1

.Ltvm_plain_or_off:                         // mode 1: every key, values unchanged
    cbz     x0, .Ltvm_slow
    str     x2, [sp, #-16]!                 // [sp] = x2, [sp + 16] = x0, [sp + 24] = x1
    TVM_HASH w0, w1, w0                     // x0 = slot
    adr     x2, .Ltvm_keys_plain
    b       .Ltvm_lookup
.Ltvm_general_rewrite:                      // mode 2, not MAIR_EL1; x1 = ESR_EL2
    str     x2, [sp, #-16]!                 // [sp] = x2, [sp + 16] = x0, [sp + 24] = x1
    TVM_HASH w0, w1, w0                     // x0 = slot
    adr     x2, .Ltvm_keys_rewrite
.Ltvm_lookup:
    ldr     x2, [x2, x0, lsl #3]            // key in bits 31:0, block offset in bits 63:32
    eor     w0, w2, w1                      // = Rt << 5 exactly when the key matches
    tst     w0, #ESR_RT_CLEAR
    b.ne    .Ltvm_slow_x2
    adr     x1, .Ltvm_blocks
    add     x1, x1, x2, lsr #32
    add     x1, x1, x0, lsr #2              // 8-byte entries: + Rt * 8
    br      x1

.Ltvm_done_x2:
    ldr     x2, [sp], #16
.Ltvm_done:                                 // the register is written; x0, x1 saved at [sp]
    mrs     x1, tpidr_el2                   // this CPU's record
    TVM_FINISH

.Ltvm_slow_x2:
    ldr     x2, [sp], #16
.Ltvm_slow:                                 // a trapped MSR/MRS that is no TVM write: x0, x1 saved
    b       lower_sync_lean                 // the lean exit tries it (an IPI), else the slow path
.Lnot_sysreg:
    cmp     w0, #0x01                       // a trapped WFI (GICv2 hosts): the lean exit first
    b.eq    lower_sync_lean
    ldp     x0, x1, [sp], #16
    b       lower_sync_slow

.balign 4
.Ltvm_mair_key:
    .word   TVM_KEY_mair_el1

/*
 * Keep the value the guest wrote (before the override) in the record's `guest_mair`: the
 * hardware holds only the rewritten value. Leaves x1 = this CPU's record for TVM_FINISH.
 */
.macro KEEP_GUEST_MAIR v
    mrs     x1, tpidr_el2
    str     \v, [x1, #PC_GUEST_MAIR]
.endm

/*
 * MAIR_EL1 in mode 2, one 128-byte entry per Rt; x0/x1 are saved at [sp]. Rt = x0 or x1 borrows
 * x2 for the value (its own register is a scratch register here); XZR writes 0, which the
 * override keeps (0x00 is Device-nGnRnE in every byte).
 */
.macro MAIR_ENTRY_SAVED off
    .balign 128
    str     x2, [sp, #-16]!
    ldr     x2, [sp, #(16 + \off)]
    MAIR_OVERRIDE x2
    msr     mair_el1, x1
    KEEP_GUEST_MAIR x2
    ldr     x2, [sp], #16
    TVM_FINISH
.endm

.balign 128
.Ltvm_mair_entries:
    MAIR_ENTRY_SAVED 0
    MAIR_ENTRY_SAVED 8
.irp n, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
    .balign 128
    MAIR_OVERRIDE x\n
    msr     mair_el1, x1
    KEEP_GUEST_MAIR x\n
    TVM_FINISH
.endr
    .balign 128
    msr     mair_el1, xzr
    KEEP_GUEST_MAIR xzr
    TVM_FINISH
    /* An entry that outgrew its 128 bytes would push this past the end: .org then fails. */
    .org    .Ltvm_mair_entries + 32 * 128

/*
 * One block per register, one 8-byte entry per Rt: `msr <reg>, x<Rt>`. x0..x2 are scratch here,
 * so their entries load the guest's value from the save area ([sp + 16], [sp + 24], [sp]) and
 * finish in the block's last entry.
 */
.macro TVM_BLOCK reg
.Ltvm_block_\reg:
    ldr     x0, [sp, #16]
    b       .Ltvm_write_x0_\reg
    ldr     x0, [sp, #24]
    b       .Ltvm_write_x0_\reg
    ldr     x0, [sp]
    b       .Ltvm_write_x0_\reg
.irp n, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
    msr     \reg, x\n
    b       .Ltvm_done_x2
.endr
    msr     \reg, xzr
    b       .Ltvm_done_x2
.Ltvm_write_x0_\reg:
    msr     \reg, x0
    b       .Ltvm_done_x2
    .org    .Ltvm_block_\reg + 33 * 8        // fails if the block grew past 33 entries
.endm

.Ltvm_blocks:
    TVM_BLOCK sctlr_el1
    TVM_BLOCK ttbr0_el1
    TVM_BLOCK ttbr1_el1
    TVM_BLOCK tcr_el1
    TVM_BLOCK afsr0_el1
    TVM_BLOCK afsr1_el1
    TVM_BLOCK esr_el1
    TVM_BLOCK far_el1
    TVM_BLOCK mair_el1
    TVM_BLOCK amair_el1
    TVM_BLOCK contextidr_el1

/* The hash tables: slot i holds the key hashing to i and its block's offset, or no key. */
.macro TVM_SLOT slot, reg
    .if (((TVM_KEY_\reg ^ (TVM_KEY_\reg >> 9) ^ (TVM_KEY_\reg >> 16)) >> 1) & 15) != \slot
        .error "TVM fast-path hash table: a register is in the wrong slot"
    .endif
    .word   TVM_KEY_\reg
    .word   .Ltvm_block_\reg - .Ltvm_blocks
.endm
.macro TVM_EMPTY_SLOT
    .word   TVM_NO_KEY
    .word   0
.endm

/* Mode 1 (values unchanged): all eleven. */
.balign 8
.Ltvm_keys_plain:
    TVM_SLOT 0, mair_el1
    TVM_SLOT 1, amair_el1
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_SLOT 4, contextidr_el1
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_SLOT 8, tcr_el1
    TVM_SLOT 9, sctlr_el1
    TVM_SLOT 10, ttbr0_el1
    TVM_SLOT 11, ttbr1_el1
    TVM_SLOT 12, afsr0_el1
    TVM_SLOT 13, afsr1_el1
    TVM_SLOT 14, far_el1
    TVM_SLOT 15, esr_el1

/*
 * Mode 2 (mair-trap): only the registers written as the guest asked. MAIR_EL1 has its own entries
 * above; SCTLR_EL1 and TCR_EL1 are rewritten by the slow path (crate::trap::tvm). A host test
 * (trap::sysreg) checks this list against crate::trap::sysreg::tvm_write_value.
 */
.Ltvm_keys_rewrite:
    TVM_EMPTY_SLOT                          // mair_el1
    TVM_SLOT 1, amair_el1
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_SLOT 4, contextidr_el1
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT
    TVM_EMPTY_SLOT                          // tcr_el1
    TVM_EMPTY_SLOT                          // sctlr_el1
    TVM_SLOT 10, ttbr0_el1
    TVM_SLOT 11, ttbr1_el1
    TVM_SLOT 12, afsr0_el1
    TVM_SLOT 13, afsr1_el1
    TVM_SLOT 14, far_el1
    TVM_SLOT 15, esr_el1

/*
 * The vector table of a CPU whose vCPU runs in mair-trap mode with the fast path on
 * (`arch::boot::vectors_for_tvm_mode`; VBAR_EL2 is set when the CPU takes its vCPU): its lower-EL
 * synchronous entry checks for a MAIR_EL1 write before anything else and jumps straight into its
 * entry above, so that the hot case reads no mode word and takes no branch to get there; every
 * other exception branches to the same entry of `el2_vectors` (boot/vectors.S), where SP and every
 * register are as the exception left them.
 */
.macro VECTOR_TO_MAIN n
    .balign 0x80
    b       el2_vectors + \n * 0x80
.endm
.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors_mair
el2_vectors_mair:
.irp n, 0, 1, 2, 3, 4, 5, 6, 7
    VECTOR_TO_MAIN \n
.endr
    .balign 0x80                            // lower EL, AArch64, synchronous
    stp     x0, x1, [sp, #-16]!
    mrs     x1, esr_el2
    ldr     w0, 1f
    eor     w0, w0, w1                      // = Rt << 5 exactly when it is a MAIR_EL1 write
    tst     w0, #ESR_RT_CLEAR
    b.ne    lower_sync_fast
    adr     x1, .Ltvm_mair_entries
    add     x1, x1, x0, lsl #2              // 128-byte entries: + Rt * 128
    br      x1
1:  .word   TVM_KEY_mair_el1
.irp n, 9, 10, 11, 12, 13, 14, 15
    VECTOR_TO_MAIN \n
.endr
