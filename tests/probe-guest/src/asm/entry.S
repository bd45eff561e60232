// Probe guest entry: arm64 Linux Image header, relocation of the static PIE, .bss, stack, then Rust.
// Entered at EL1h, MMU and caches off, x0 = DTB (arm64 boot protocol). Nothing here may touch a
// static that holds a pointer before the relocation loop has run; the code below only uses
// PC-relative addressing (adrp/add).

.section .text.head, "ax"
.global _start
_start:
    b       probe_entry             // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size: file plus .bss, page tables and stacks
    .quad   0xa                     // flags: little endian, 4 KiB pages, 2 MiB base anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

.section .text.entry, "ax"
probe_entry:
    msr     daifset, #0xf
    mov     x19, x0                         // DTB address, kept for probe_main

    // Exceptions from here on are reported, never a silent hang.
    adrp    x1, probe_vectors
    add     x1, x1, :lo12:probe_vectors
    msr     vbar_el1, x1

    // FP/SIMD on at EL1: compiled Rust may use vector registers (memcpy, formatting).
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    // Invalidate the image's cache lines (to PoC) before writing it with the MMU off: a stale
    // line left by the loader (or a hypervisor scrubbing memory) must not later shadow what is
    // written below. Under stage 2 this is a clean+invalidate, harmless for a clean image.
    adrp    x20, _start
    add     x20, x20, :lo12:_start
    adrp    x21, __image_end
    add     x21, x21, :lo12:__image_end
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4                 // DminLine: log2(words per line)
    mov     x4, #4
    lsl     x4, x4, x3                      // line size in bytes
    sub     x5, x4, #1
    bic     x1, x20, x5
0:  dc      ivac, x1
    add     x1, x1, x4
    cmp     x1, x21
    b.lo    0b
    dsb     sy

    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend. The image is
    // linked at 0, so base (x20) is where _start runs now. build.sh rejects any other type.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    3f
    ldp     x3, x4, [x1], #16               // r_offset, r_info
    ldr     x5, [x1], #8                    // r_addend
    cmp     x4, #0x403                      // R_AARCH64_RELATIVE
    b.ne    1b
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
3:
    // Zero .bss (page tables, counters, stacks): 16-byte aligned both ends by link.ld.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b
5:
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mov     x0, x19
    bl      probe_main
6:  wfi
    b       6b

// SMCCC calls. probe_hvc_insn is the one HVC whose UNDEF (no EL2, no PSCI match: bare QEMU) the
// vector table turns into NOT_SUPPORTED (-1) in x0; see vectors.S.
.section .text, "ax"
.global probe_hvc
.global probe_hvc_insn
probe_hvc:
probe_hvc_insn:
    hvc     #0
    ret

.global probe_smc
probe_smc:
    smc     #0
    ret

// The abort_injected probe's two accesses to an address the VM does not own. The vector table
// resumes past probe_abort_load_insn / probe_abort_store_insn when either takes a data abort at
// EL1 (counting it in probe_aborts_caught); see vectors.S. C ABI: x0 = address, x1 = value.
.global probe_abort_load
.global probe_abort_load_insn
probe_abort_load:
    mov     x2, x0
    mov     x0, xzr                 // the result when the load aborts
probe_abort_load_insn:
    ldr     x0, [x2]
    ret

.global probe_abort_store
.global probe_abort_store_insn
probe_abort_store:
probe_abort_store_insn:
    str     x1, [x0]
    ret

// The abort_scan probe's one load: every address it scans is read by this instruction, and the
// vector table resumes past it on a data abort (see vectors.S). C ABI: x0 = address.
.global probe_scan_load
.global probe_scan_load_insn
probe_scan_load:
    mov     x2, x0
    mov     x0, xzr
probe_scan_load_insn:
    ldr     x0, [x2]
    ret

// Secondary vCPUs (PSCI CPU_ON entry): x0 = the mode (probes/cpu.rs). Entered like the primary,
// EL1h, MMU and caches off, DAIF masked. Mode 4 turns straight off again without touching
// memory (the reset_race probe's CPU_ON target). Every other mode first records the EL1
// registers as the vCPU found them, before anything here changes one (but SCTLR_EL1.EE, which
// it clears), in probe_secondary_seen
// (the order of cpu.rs's SEEN_NAMES), then enables FP (and SVE) and records a summary of those
// registers there too, sets up its vectors and stack and runs probe_secondary_main(mode). Only one such vCPU runs at a time: they share one stack.
// probe_cpu_on_big_endian(target, entry, context): PSCI CPU_ON (HVC) made with SCTLR_EL1.EE set,
// as a big-endian kernel would make it; no memory is accessed while EE is set (PSTATE.I is
// masked, nothing is taken). EE also makes stage-1 table walks big-endian, so the MMU is off
// meanwhile (this code is identity mapped). Returns the call's x0.
.global probe_cpu_on_big_endian
probe_cpu_on_big_endian:
    mov     x3, x2
    mov     x2, x1
    mov     x1, x0
    movz    x0, #0x0003
    movk    x0, #0xc400, lsl #16            // PSCI CPU_ON (SMC64/HVC64)
    mrs     x4, sctlr_el1
    orr     x5, x4, #(1 << 25)
    bic     x5, x5, #1                      // M
    msr     sctlr_el1, x5
    isb
    hvc     #0
    msr     sctlr_el1, x4
    isb
    ret

.global probe_secondary_entry
probe_secondary_entry:
    cmp     x0, #4
    b.ne    1f
    movz    x0, #0x0002
    movk    x0, #0x8400, lsl #16            // PSCI CPU_OFF
    hvc     #0
0:  wfi
    b       0b
1:  mov     x19, x0
    // A vCPU started by a big-endian caller (the cpu_on_endianness probe) has SCTLR_EL1.EE set:
    // cleared before the first store, the value found kept for the record.
    mrs     x2, sctlr_el1
    tbz     x2, #25, 3f
    bic     x3, x2, #(1 << 25)
    msr     sctlr_el1, x3
    isb
3:  adrp    x1, probe_secondary_seen
    add     x1, x1, :lo12:probe_secondary_seen
    mrs     x3, tcr_el1
    stp     x2, x3, [x1, #0x00]
    mrs     x2, ttbr0_el1
    mrs     x3, ttbr1_el1
    stp     x2, x3, [x1, #0x10]
    mrs     x2, mair_el1
    mrs     x3, vbar_el1
    stp     x2, x3, [x1, #0x20]
    mrs     x2, contextidr_el1
    mrs     x3, tpidr_el1
    stp     x2, x3, [x1, #0x30]
    mrs     x2, tpidr_el0
    mrs     x3, tpidrro_el0
    stp     x2, x3, [x1, #0x40]
    mrs     x2, cpacr_el1
    mrs     x3, cntkctl_el1
    stp     x2, x3, [x1, #0x50]
    mrs     x2, cntv_ctl_el0
    mrs     x3, cntv_cval_el0
    stp     x2, x3, [x1, #0x60]
    mrs     x2, cntp_ctl_el0
    mrs     x3, cntp_cval_el0
    stp     x2, x3, [x1, #0x70]
    mrs     x2, sp_el0
    mrs     x3, elr_el1
    stp     x2, x3, [x1, #0x80]
    mrs     x2, spsr_el1
    mrs     x3, esr_el1
    stp     x2, x3, [x1, #0x90]
    mrs     x2, far_el1
    mrs     x3, par_el1
    stp     x2, x3, [x1, #0xa0]
    // FP/SIMD (CPACR_EL1.FPEN) and, where the CPU has SVE, SVE (ZEN) on; then the FP/SIMD and SVE
    // registers as the vCPU found them: the OR of V0-V31 in slot 22, and in slot 23 the OR of the
    // counts of true elements of P0-P15 and FFR (nonzero if any is true; 0 without SVE).
    mov     x2, #(3 << 20)
    mrs     x3, id_aa64pfr0_el1
    ubfx    x3, x3, #32, #4
    cbz     x3, 4f
    orr     x2, x2, #(3 << 16)
4:  msr     cpacr_el1, x2
    isb
    orr     v0.16b, v0.16b, v1.16b
    orr     v0.16b, v0.16b, v2.16b
    orr     v0.16b, v0.16b, v3.16b
    orr     v0.16b, v0.16b, v4.16b
    orr     v0.16b, v0.16b, v5.16b
    orr     v0.16b, v0.16b, v6.16b
    orr     v0.16b, v0.16b, v7.16b
    orr     v0.16b, v0.16b, v8.16b
    orr     v0.16b, v0.16b, v9.16b
    orr     v0.16b, v0.16b, v10.16b
    orr     v0.16b, v0.16b, v11.16b
    orr     v0.16b, v0.16b, v12.16b
    orr     v0.16b, v0.16b, v13.16b
    orr     v0.16b, v0.16b, v14.16b
    orr     v0.16b, v0.16b, v15.16b
    orr     v0.16b, v0.16b, v16.16b
    orr     v0.16b, v0.16b, v17.16b
    orr     v0.16b, v0.16b, v18.16b
    orr     v0.16b, v0.16b, v19.16b
    orr     v0.16b, v0.16b, v20.16b
    orr     v0.16b, v0.16b, v21.16b
    orr     v0.16b, v0.16b, v22.16b
    orr     v0.16b, v0.16b, v23.16b
    orr     v0.16b, v0.16b, v24.16b
    orr     v0.16b, v0.16b, v25.16b
    orr     v0.16b, v0.16b, v26.16b
    orr     v0.16b, v0.16b, v27.16b
    orr     v0.16b, v0.16b, v28.16b
    orr     v0.16b, v0.16b, v29.16b
    orr     v0.16b, v0.16b, v30.16b
    orr     v0.16b, v0.16b, v31.16b
    fmov    x2, d0
    mov     x4, v0.d[1]
    orr     x2, x2, x4
    str     x2, [x1, #0xb0]
    mov     x2, #0
    cbz     x3, 5f
    .arch_extension sve
    cntp    x4, p0, p0.b
    orr     x2, x2, x4
    cntp    x4, p1, p1.b
    orr     x2, x2, x4
    cntp    x4, p2, p2.b
    orr     x2, x2, x4
    cntp    x4, p3, p3.b
    orr     x2, x2, x4
    cntp    x4, p4, p4.b
    orr     x2, x2, x4
    cntp    x4, p5, p5.b
    orr     x2, x2, x4
    cntp    x4, p6, p6.b
    orr     x2, x2, x4
    cntp    x4, p7, p7.b
    orr     x2, x2, x4
    cntp    x4, p8, p8.b
    orr     x2, x2, x4
    cntp    x4, p9, p9.b
    orr     x2, x2, x4
    cntp    x4, p10, p10.b
    orr     x2, x2, x4
    cntp    x4, p11, p11.b
    orr     x2, x2, x4
    cntp    x4, p12, p12.b
    orr     x2, x2, x4
    cntp    x4, p13, p13.b
    orr     x2, x2, x4
    cntp    x4, p14, p14.b
    orr     x2, x2, x4
    cntp    x4, p15, p15.b
    orr     x2, x2, x4
    rdffr   p0.b
    cntp    x4, p0, p0.b
    orr     x2, x2, x4
5:  str     x2, [x1, #0xb8]
    dsb     sy

    adrp    x1, probe_vectors
    add     x1, x1, :lo12:probe_vectors
    msr     vbar_el1, x1
    adrp    x1, __secondary_stack_top
    add     x1, x1, :lo12:__secondary_stack_top
    mov     sp, x1
    mov     x0, x19
    bl      probe_secondary_main
2:  wfi
    b       2b
